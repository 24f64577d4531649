//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, and the crash cases under
//! `fuzz/artifacts/<target>/`) through the same entry points the cargo-fuzz targets use, so
//! every past crash stays fixed on stable Rust; then a few thousand deterministic mutations
//! of each seed (bit flips, truncations, splices, repeated runs), a short fuzz run of its own.

use std::path::Path;

use cairn::fuzzing::TARGETS;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = rd
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("read corpus file"))
        })
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    out.sort();
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(other.len() + 1);
                let tail = other[j..].to_vec();
                v.truncate(i);
                v.extend(tail);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let run = vec![v[i]; rng.below(300)];
                v.splice(i..i, run);
            }
            4 => {
                let i = rng.below(v.len() + 1);
                let b = [
                    b'\r', b'\n', b':', b';', b'&', b'=', b'%', b'<', b'>', 0, 0xff, b'9',
                ];
                v.insert(i, b[rng.below(b.len())]);
            }
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            _ => {}
        }
    }
    v
}

#[test]
fn every_committed_fuzz_input_and_its_mutations_are_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in TARGETS {
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "no corpus for fuzz target {name}");
        for (file, data) in seeds
            .iter()
            .chain(&inputs(&root.join("artifacts").join(name)))
        {
            let r = std::panic::catch_unwind(|| target(data));
            assert!(r.is_ok(), "fuzz target {name} panicked on {file}");
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        for round in 0..3000 {
            let seed = &seeds[round % seeds.len()].1;
            let other = &seeds[rng.below(seeds.len())].1;
            let input = mutate(seed, other, &mut rng);
            let r = std::panic::catch_unwind(|| target(&input));
            assert!(
                r.is_ok(),
                "fuzz target {name} panicked on mutation {round} of {}: {:?}",
                seeds[round % seeds.len()].0,
                String::from_utf8_lossy(&input)
            );
        }
    }
}
