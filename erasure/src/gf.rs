//! GF(2^8) arithmetic with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), the field of
//! klauspost/reedsolomon, and the matrices built over it.

const POLY: u16 = 0x11d;

/// `EXP[i] = 2^i` for i in 0..510 (doubled so that `EXP[log a + log b]` needs no modulo).
static EXP: [u8; 510] = exp_table();
/// `LOG[a]` for a != 0 (`LOG[0]` is unused).
static LOG: [u8; 256] = log_table();

const fn exp_table() -> [u8; 510] {
    let mut t = [0u8; 510];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 510 {
        t[i] = x as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLY;
        }
        i += 1;
    }
    t
}

const fn log_table() -> [u8; 256] {
    let exp = exp_table();
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        t[exp[i] as usize] = i as u8;
        i += 1;
    }
    t
}

pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// Multiplicative inverse; `None` for zero.
pub fn inv(a: u8) -> Option<u8> {
    (a != 0).then(|| EXP[255 - LOG[a as usize] as usize])
}

fn pow(a: u8, n: usize) -> u8 {
    (0..n).fold(1, |acc, _| mul(acc, a))
}

/// A row-major matrix over GF(2^8).
pub type Matrix = Vec<Vec<u8>>;

/// Invert a square matrix by Gauss-Jordan elimination; `None` when it is singular.
pub fn invert(m: &[Vec<u8>]) -> Option<Matrix> {
    let n = m.len();
    let mut a: Matrix = m.to_vec();
    let mut r: Matrix = (0..n)
        .map(|i| (0..n).map(|j| u8::from(i == j)).collect())
        .collect();
    for c in 0..n {
        let p = (c..n).find(|&i| a[i][c] != 0)?;
        a.swap(c, p);
        r.swap(c, p);
        let f = inv(a[c][c])?;
        for j in 0..n {
            a[c][j] = mul(a[c][j], f);
            r[c][j] = mul(r[c][j], f);
        }
        for i in 0..n {
            let f = a[i][c];
            if i != c && f != 0 {
                for j in 0..n {
                    a[i][j] ^= mul(f, a[c][j]);
                    r[i][j] ^= mul(f, r[c][j]);
                }
            }
        }
    }
    Some(r)
}

/// klauspost/reedsolomon's default encoding matrix: a `total x data` Vandermonde matrix
/// (`row r = [r^0, r^1, ...]`) times the inverse of its top square, so the top is the
/// identity (data shards are the data) and any `data` rows are independent.
pub fn encoding_matrix(data: usize, total: usize) -> Option<Matrix> {
    let vm: Matrix = (0..total)
        .map(|r| (0..data).map(|c| pow(r as u8, c)).collect())
        .collect();
    let top_inv = invert(&vm[..data])?;
    Some(
        vm.iter()
            .map(|row| {
                (0..data)
                    .map(|j| (0..data).fold(0, |acc, k| acc ^ mul(row[k], top_inv[k][j])))
                    .collect()
            })
            .collect(),
    )
}

/// Multiplication by `c` as the 8x8 bit matrix `vgf2p8affineqb` applies to each byte: output
/// bit `i` is the parity of `x & row_i`, and row `i` sits in byte `7 - i` of the qword.
pub fn affine_matrix(c: u8) -> u64 {
    // Column j of the bit matrix is c * 2^j.
    let cols: [u8; 8] = std::array::from_fn(|j| mul(c, 1 << j));
    let mut m = 0u64;
    for i in 0..8 {
        // Row i: the input bits j whose product c * 2^j has bit i set.
        let row = cols
            .iter()
            .enumerate()
            .fold(0u8, |row, (j, col)| row | (((col >> i) & 1) << j));
        m |= (row as u64) << (8 * (7 - i));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tests::klauspost_matrix::mul as slow_mul;

    #[test]
    fn tables_agree_with_shift_and_add() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), slow_mul(a, b), "{a} * {b}");
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a).expect("nonzero")), 1);
            }
        }
        assert_eq!(inv(0), None);
    }

    /// Apply an affine matrix the way the instruction does, bit by bit.
    fn affine(m: u64, x: u8) -> u8 {
        (0..8).fold(0u8, |out, i| {
            let row = (m >> (8 * (7 - i))) as u8;
            out | ((((row & x).count_ones() & 1) as u8) << i)
        })
    }

    #[test]
    fn affine_matrices_multiply() {
        for c in 0..=255u8 {
            let m = affine_matrix(c);
            for x in 0..=255u8 {
                assert_eq!(affine(m, x), mul(c, x), "{c} * {x}");
            }
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // matrix index math reads clearest
    fn inverse_times_matrix_is_identity() {
        let m = encoding_matrix(6, 10).expect("matrix");
        for rows in [[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9], [0, 2, 4, 6, 8, 9]] {
            let sub: Matrix = rows.iter().map(|&r| m[r].clone()).collect();
            let i = invert(&sub).expect("any 6 rows are independent");
            for a in 0..6 {
                for b in 0..6 {
                    let v = (0..6).fold(0, |acc, k| acc ^ mul(i[a][k], sub[k][b]));
                    assert_eq!(v, u8::from(a == b));
                }
            }
        }
        assert!(invert(&[vec![1, 1], vec![1, 1]]).is_none());
    }
}
