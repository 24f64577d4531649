//! Fan-out to the drives of a set and agreement on object metadata.

use super::{ErasureSet, ObjectError, ObjectResult};
use bytes::Bytes;

pub(crate) use crate::drive::fanout::{fan_out, fan_out_preferring, fan_out_until, STILL_RUNNING};
use crate::drive::{DriveError, DriveResult};
use crate::meta::{HeadSig, ObjectMeta, Signature, Version, VersionKind};
use crate::placement::read_quorum;

/// A drive's metadata answer, decoded as it arrives (once: a read judges every answer so
/// far each time one comes in).
type Decoded = Result<ObjectMeta, crate::meta::MetaError>;

/// Do the metadata answers so far decide a read? Only a success is decided early: some
/// version is backed by a read quorum, and neither another version seen nor one not yet
/// seen could overtake it with the answers still missing.
fn read_settled(answers: &[Option<DriveResult<Decoded>>]) -> bool {
    let missing = answers.iter().filter(|a| a.is_none()).count();
    // Each distinct latest version answered, and how many drives hold it.
    let mut groups: Vec<(&Version, usize)> = Vec::new();
    for a in answers.iter().flatten() {
        let Some(v) = a
            .as_ref()
            .ok()
            .and_then(|m| m.as_ref().ok())
            .and_then(|m| m.latest())
        else {
            continue;
        };
        match groups
            .iter_mut()
            .find(|(g, _)| g.signature() == v.signature())
        {
            Some((_, n)) => *n += 1,
            None => groups.push((v, 1)),
        }
    }
    let rq = |v: &Version| read_quorum(v.erasure.data as usize);
    let Some((best, _)) = groups
        .iter()
        .filter(|(v, n)| *n >= rq(v))
        .max_by_key(|(v, n)| (v.mod_time, *n))
    else {
        return false;
    };
    missing < rq(best)
        && groups.iter().all(|(v, n)| {
            v.signature() == best.signature() || v.mod_time < best.mod_time || n + missing < rq(v)
        })
}

/// The latest version of the head `bucket/key` has on drive `d`, decoded as it arrives.
async fn head_of(
    d: &std::sync::Arc<dyn crate::drive::Drive>,
    bucket: &str,
    key: &str,
) -> DriveResult<Decoded> {
    d.read_meta_head(bucket, key)
        .await
        .map(|b| decode_latest(&b))
}

/// Agreement on the latest version (a delete marker included) for reads: done as soon as
/// the answers decide it, without waiting for a slow drive. Drives that had not answered
/// are not counted as disagreeing.
///
/// Only the head of each drive's metadata is read and decoded (its latest version), so the
/// cost does not grow with the number of versions; the [`Agreed::metas`] it returns hold
/// that one version each.
pub(crate) async fn agree_fast(set: &ErasureSet, bucket: &str, key: &str) -> ObjectResult<Agreed> {
    let results = fan_out_preferring(
        &set.drives,
        &first_readers(set, bucket, key),
        |_, d| head_of(d, bucket, key),
        read_settled,
    )
    .await;
    agree_decoded(set, results, VersionRef::Latest)
}

/// [`agree_fast`] asking every drive at once (a read whose first wave ran out of good
/// shards): done once the answers decide it, without waiting for a hung drive.
pub(crate) async fn agree_everywhere(
    set: &ErasureSet,
    bucket: &str,
    key: &str,
) -> ObjectResult<Agreed> {
    let results = fan_out_until(&set.drives, |_, d| head_of(d, bucket, key), read_settled).await;
    agree_decoded(set, results, VersionRef::Latest)
}

/// The drive positions a read asks first, until the first wave alone can settle a read
/// (`parity + 1` answers: no version missing from all of them can hold a read quorum) and
/// holds enough shards to read the data: local drives first (their shards cost no network
/// hop; a parity shard among them is decoded, cheaper than moving a data shard between
/// nodes), those holding data shards of `bucket/key` before others (no decoding). The rest
/// are asked only when the first wave does not settle the read.
///
/// Other nodes are asked whole: every drive of a node the wave reaches is in it, as the
/// heads asked of one node travel in one request (a node's further drives cost a file
/// read there, not another request). Nodes holding more data shards come first.
pub(crate) fn first_readers(set: &ErasureSet, bucket: &str, key: &str) -> Vec<bool> {
    let n = set.size();
    let order = crate::placement::distribution(bucket, key, n);
    let at: Vec<(bool, Option<&str>)> = set
        .drives
        .iter()
        .map(|d| {
            (
                d.as_ref().is_some_and(|d| d.is_local()),
                d.as_ref().and_then(|d| d.node()),
            )
        })
        .collect();
    first_wave(&order, set.parity, &at)
}

/// [`first_readers`] of drives whose shard numbers are `order` and which are each local or
/// on a node (`at`).
fn first_wave(order: &[u16], parity: usize, at: &[(bool, Option<&str>)]) -> Vec<bool> {
    let n = order.len().min(at.len());
    let data = n.saturating_sub(parity);
    let node = |i: usize| at[i].1;
    let local = |i: usize| at[i].0;
    let holds_data = |i: usize| usize::from(order[i]) <= data;
    // Data shards each node holds, and where it first appears (a stable tie-break).
    let mut nodes: Vec<(&str, usize, usize)> = Vec::new();
    for i in 0..n {
        let Some(name) = node(i) else { continue };
        match nodes.iter_mut().find(|(m, _, _)| *m == name) {
            Some((_, shards, _)) => *shards += usize::from(holds_data(i)),
            None => nodes.push((name, usize::from(holds_data(i)), i)),
        }
    }
    let node_rank = |i: usize| {
        node(i).map_or((0, 0), |name| {
            nodes
                .iter()
                .find(|(m, _, _)| *m == name)
                .map_or((0, 0), |&(_, shards, at)| (usize::MAX - shards, at))
        })
    };
    let mut ranked: Vec<usize> = (0..n).collect();
    // A position without a drive goes last: it only answers that it is missing.
    let missing = |i: usize| !local(i) && node(i).is_none();
    ranked.sort_by_key(|&i| (missing(i), !local(i), node_rank(i), !holds_data(i)));
    let want = data.max(parity + 1).min(n);
    let mut first = vec![false; n];
    for &i in ranked.iter().take(want) {
        first[i] = true;
    }
    // The rest of each node already reached.
    for &i in ranked.iter().skip(want) {
        if node(i).is_some_and(|name| (0..n).any(|j| first[j] && node(j) == Some(name))) {
            first[i] = true;
        }
    }
    first
}

/// A head (or a whole file) as metadata holding only its latest version.
fn decode_latest(b: &[u8]) -> Result<ObjectMeta, crate::meta::MetaError> {
    ObjectMeta::decode_head(b).map(|v| ObjectMeta {
        versions: v.into_iter().collect(),
    })
}

/// Which version of a key a read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    /// The newest version (which may be a delete marker).
    Latest,
    /// The version with this id (`None`: the null version).
    Id(Option<uuid::Uuid>),
}

impl VersionRef {
    pub(crate) fn of<'m>(&self, m: &'m ObjectMeta) -> Option<&'m Version> {
        match self {
            VersionRef::Latest => m.latest(),
            VersionRef::Id(id) => m.version(*id),
        }
    }
}

/// The metadata a read quorum of a set's drives agrees on.
pub(crate) struct Agreed {
    /// The agreed version, as stored on one agreeing drive.
    pub latest: Version,
    /// Per drive position: its metadata when its copy of the version is the agreed one
    /// (shared: heal agrees on every version of one read) — every version when whole files
    /// were read, the latest alone after [`agree_fast`]/[`agree`], which read heads only:
    /// never write these back.
    pub metas: Vec<Option<std::sync::Arc<ObjectMeta>>>,
    /// True when some drive answered but disagreed, or did not answer: a heal candidate.
    pub degraded: bool,
    /// Which version was agreed on.
    pub which: VersionRef,
}

impl Agreed {
    /// This drive position's copy of the agreed version.
    pub fn version_at(&self, i: usize) -> Option<&Version> {
        self.metas[i].as_deref().and_then(|m| self.which.of(m))
    }
}

/// Read the head of `bucket/key`'s metadata from every drive of `set` and pick the latest
/// version that a read quorum agrees on (the metas returned hold that version only). A
/// delete marker as the agreed version is `NoSuchKey`.
pub(crate) async fn agree(set: &ErasureSet, bucket: &str, key: &str) -> ObjectResult<Agreed> {
    let results = fan_out(&set.drives, |_, d| head_of(d, bucket, key)).await;
    let agreed = agree_decoded(set, results, VersionRef::Latest)?;
    if agreed.latest.kind == VersionKind::DeleteMarker {
        return Err(ObjectError::NoSuchKey);
    }
    Ok(agreed)
}

/// Agreement on the latest version over metadata already read from each drive position of
/// `set`. A delete marker as the agreed version is `NoSuchKey`.
pub(crate) fn agree_on(set: &ErasureSet, results: Vec<DriveResult<Bytes>>) -> ObjectResult<Agreed> {
    let agreed = agree_ref(set, results, VersionRef::Latest)?;
    if agreed.latest.kind == VersionKind::DeleteMarker {
        return Err(ObjectError::NoSuchKey);
    }
    Ok(agreed)
}

/// A listing's agreement on a key's latest version (a delete marker included) over heads
/// ([`crate::drive::Drive::read_entry_heads`]), and how many drive positions hold it: judged
/// on each copy's [`HeadSig`] as [`agree_ref`] judges whole versions, with only the agreed
/// version decoded whole (a listing shows one copy; decoding every copy whole was most of
/// what agreement cost it). Should the agreed copy not decode whole, or the version hold
/// no more than its read quorum, every copy is.
pub(crate) fn agree_listed(
    set: &ErasureSet,
    results: &[DriveResult<Bytes>],
) -> ObjectResult<(Version, usize)> {
    let mut missing = Missing::default();
    let sigs: Vec<Option<HeadSig>> = results
        .iter()
        .map(|r| match r {
            Ok(b) => ObjectMeta::decode_head_sig(b).ok().flatten().or_else(|| {
                missing.failed += 1;
                None
            }),
            Err(e) => {
                missing.count(e);
                None
            }
        })
        .collect();
    let copies: Vec<Option<&HeadSig>> = sigs.iter().map(Option::as_ref).collect();
    let members = best_group(set, &copies, &missing, VersionRef::Latest)?;
    // With no member to spare, one whose head does not decode whole (which the signature
    // alone cannot tell) would leave the version short of its quorum: judge them all whole.
    let spare = members
        .first()
        .and_then(|&i| copies[i])
        .is_some_and(|s| members.len() > s.quorum());
    let whole = members.first().filter(|_| spare).and_then(|&i| {
        let b = results[i].as_ref().ok()?;
        let v = ObjectMeta::decode_head(b).ok().flatten()?;
        copies[i]
            .is_some_and(|s| s.signature() == v.signature())
            .then_some(v)
    });
    match whole {
        Some(v) => Ok((v, members.len())),
        None => agree_decoded(
            set,
            decode_all(self::copies(results), decode_latest),
            VersionRef::Latest,
        )
        .map(|a| {
            let n = a.metas.iter().flatten().count();
            (a.latest, n)
        }),
    }
}

/// Agreement on the version `which` (a delete marker included) over metadata already read
/// from each drive position of `set`.
pub(crate) fn agree_ref(
    set: &ErasureSet,
    results: Vec<DriveResult<Bytes>>,
    which: VersionRef,
) -> ObjectResult<Agreed> {
    agree_decoded(set, decode_all(results, ObjectMeta::decode), which)
}

/// Each answer decoded by `decode` (whole files, or heads only).
fn decode_all(
    results: Vec<DriveResult<Bytes>>,
    decode: fn(&[u8]) -> Decoded,
) -> Vec<DriveResult<Decoded>> {
    results.into_iter().map(|r| r.map(|b| decode(&b))).collect()
}

/// What agreement needs of a drive's copy of a version: a whole [`Version`] or its
/// [`HeadSig`].
trait VersionCopy {
    fn signature(&self) -> Signature<'_>;
    fn mod_time(&self) -> i64;
    /// The read quorum of its geometry.
    fn quorum(&self) -> usize;
}

impl VersionCopy for Version {
    fn signature(&self) -> Signature<'_> {
        Version::signature(self)
    }
    fn mod_time(&self) -> i64 {
        self.mod_time
    }
    fn quorum(&self) -> usize {
        read_quorum(self.erasure.data as usize)
    }
}

impl VersionCopy for HeadSig {
    fn signature(&self) -> Signature<'_> {
        HeadSig::signature(self)
    }
    fn mod_time(&self) -> i64 {
        self.mod_time
    }
    fn quorum(&self) -> usize {
        read_quorum(self.erasure.data as usize)
    }
}

/// How the drive positions that did not answer with a copy answered.
#[derive(Default)]
struct Missing {
    no_bucket: usize,
    /// Errors other than "no such key", and copies that do not decode.
    failed: usize,
}

impl Missing {
    /// Counts an answer that holds no copy.
    fn count(&mut self, e: &DriveError) {
        match e {
            DriveError::NotFound => {}
            DriveError::BucketNotFound => self.no_bucket += 1,
            _ => self.failed += 1,
        }
    }
}

/// The positions holding the latest version a read quorum agrees on (`copies` per drive
/// position), or why there is none.
fn best_group<V: VersionCopy>(
    set: &ErasureSet,
    copies: &[Option<&V>],
    missing: &Missing,
    which: VersionRef,
) -> ObjectResult<Vec<usize>> {
    // Group drives by the identity of their copy of the version.
    let mut groups: Vec<(&V, Vec<usize>)> = Vec::new();
    for (i, v) in copies.iter().enumerate() {
        let Some(v) = v else { continue };
        match groups
            .iter_mut()
            .find(|(rep, _)| rep.signature() == v.signature())
        {
            Some((_, members)) => members.push(i),
            None => groups.push((v, vec![i])),
        }
    }
    let best = groups
        .iter()
        .filter(|(rep, members)| members.len() >= rep.quorum())
        .max_by_key(|(rep, members)| (rep.mod_time(), members.len()));
    if let Some((_, members)) = best {
        return Ok(members.clone());
    }
    if missing.no_bucket * 2 > copies.len() {
        return Err(ObjectError::NoSuchBucket);
    }
    let most = groups.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
    let need = read_quorum(set.size() - set.parity);
    if most + missing.failed >= need && missing.failed > 0 {
        Err(ObjectError::ReadQuorum { ok: most, need })
    } else if matches!(which, VersionRef::Id(_)) {
        Err(ObjectError::NoSuchVersion)
    } else {
        Err(ObjectError::NoSuchKey)
    }
}

/// [`agree_ref`] over answers already decoded.
fn agree_decoded(
    set: &ErasureSet,
    results: Vec<DriveResult<Decoded>>,
    which: VersionRef,
) -> ObjectResult<Agreed> {
    let n = results.len();
    let mut metas: Vec<Option<ObjectMeta>> = Vec::with_capacity(n);
    let mut missing = Missing::default();
    let still_running = results
        .iter()
        .filter(|r| matches!(r, Err(DriveError::NotDone(s)) if *s == STILL_RUNNING))
        .count();
    for r in results {
        match r {
            Ok(Ok(m)) if m.latest().is_some() => metas.push(Some(m)),
            // Corrupt or empty metadata: treat like a missing copy that needs healing.
            Ok(_) => {
                missing.failed += 1;
                metas.push(None);
            }
            Err(e) => {
                missing.count(&e);
                metas.push(None);
            }
        }
    }
    let copies: Vec<Option<&Version>> = metas
        .iter()
        .map(|m| m.as_ref().and_then(|m| which.of(m)))
        .collect();
    let members = best_group(set, &copies, &missing, which)?;
    let latest = members
        .first()
        .and_then(|i| copies[*i])
        .cloned()
        .ok_or_else(|| ObjectError::Internal("agreed version vanished".into()))?;
    // A drive that merely had not answered yet is no sign of damage.
    let degraded = members.len() + still_running < n;
    let metas = metas
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            if members.contains(&i) {
                m.map(std::sync::Arc::new)
            } else {
                None
            }
        })
        .collect();
    Ok(Agreed {
        latest,
        metas,
        degraded,
        which,
    })
}

/// Judge a write's condition against metadata read from each drive position (under the
/// key's lock, at commit).
pub(crate) fn judge_on(
    set: &ErasureSet,
    results: &[DriveResult<Bytes>],
    cond: &crate::object::WriteCondition,
) -> ObjectResult<()> {
    cond.judge(
        agree_on(set, copies(results))
            .as_ref()
            .map(|a| &a.latest)
            .map_err(clone_err),
    )
}

/// The same answers again (drive errors are not `Clone`; agreement needs only their kind).
pub(crate) fn copies(results: &[DriveResult<Bytes>]) -> Vec<DriveResult<Bytes>> {
    results
        .iter()
        .map(|r| match r {
            Ok(b) => Ok(b.clone()),
            Err(DriveError::NotFound) => Err(DriveError::NotFound),
            Err(DriveError::BucketNotFound) => Err(DriveError::BucketNotFound),
            Err(DriveError::NotDone(STILL_RUNNING)) => Err(DriveError::NotDone(STILL_RUNNING)),
            Err(_) => Err(DriveError::NotDone("unreadable")),
        })
        .collect()
}

/// Judge a write's condition before the write begins.
pub(crate) async fn judge(
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    cond: &crate::object::WriteCondition,
) -> ObjectResult<()> {
    let agreed = agree(set, bucket, key).await;
    cond.judge(agreed.as_ref().map(|a| &a.latest).map_err(clone_err))
}

/// The outcomes of an agreement a condition can meet (others become a read-quorum error).
fn clone_err(e: &ObjectError) -> ObjectError {
    match e {
        ObjectError::NoSuchKey => ObjectError::NoSuchKey,
        ObjectError::NoSuchBucket => ObjectError::NoSuchBucket,
        ObjectError::ReadQuorum { ok, need } => ObjectError::ReadQuorum {
            ok: *ok,
            need: *need,
        },
        other => ObjectError::Internal(other.to_string()),
    }
}

/// Count successes of a fan-out; fail with `WriteQuorum` below `need` (`StorageFull` when
/// the full drives alone made the difference).
pub(crate) fn write_ok<T>(results: &[DriveResult<T>], need: usize) -> ObjectResult<usize> {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(crate::drive::DriveError::Full)))
        .count();
    short_of(ok, full, need).map(|()| ok)
}

/// `ok` drives did a write that needs `need`, `full` failed for want of space.
pub(crate) fn short_of(ok: usize, full: usize, need: usize) -> ObjectResult<()> {
    if ok >= need {
        Ok(())
    } else if full > 0 && ok + full >= need {
        Err(ObjectError::StorageFull { ok, need, full })
    } else {
        Err(ObjectError::WriteQuorum { ok, need })
    }
}

/// The agreement on `v` (one of [`agreed_versions`]) over metadata already decoded: the
/// drives whose copy of `v`'s id is `v` itself.
pub(crate) fn agreement_on(metas: &[Option<std::sync::Arc<ObjectMeta>>], v: &Version) -> Agreed {
    let metas: Vec<_> = metas
        .iter()
        .map(|m| {
            m.as_ref()
                .filter(|m| {
                    m.version(v.version_id)
                        .is_some_and(|c| c.signature() == v.signature())
                })
                .cloned()
        })
        .collect();
    Agreed {
        latest: v.clone(),
        degraded: metas.iter().any(Option::is_none),
        metas,
        which: VersionRef::Id(v.version_id),
    }
}

/// Every version of a key that a read quorum of the set's drives holds identically, newest
/// first: the versions heal brings to every drive.
pub(crate) fn agreed_versions(results: &[DriveResult<Bytes>]) -> Vec<Version> {
    type Signature = (
        Option<uuid::Uuid>,
        i64,
        Option<uuid::Uuid>,
        VersionKind,
        String,
    );
    let mut groups: std::collections::HashMap<Signature, (Version, usize)> = Default::default();
    for m in results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|b| ObjectMeta::decode(b).ok())
    {
        for v in m.versions {
            let (id, t, dir, kind, etag) = v.signature();
            let sig = (id, t, dir, kind, etag.to_string());
            groups.entry(sig).or_insert((v, 0)).1 += 1;
        }
    }
    // Per version id, the newest copy a read quorum backs: a drive that missed an overwrite
    // of the null version holds an older one under the same id, and that one is stale.
    let mut best: std::collections::HashMap<Option<uuid::Uuid>, (Version, usize)> =
        Default::default();
    for (v, n) in groups.into_values() {
        if n < read_quorum(v.erasure.data as usize) {
            continue;
        }
        match best.get(&v.version_id) {
            Some((b, bn)) if (b.mod_time, *bn) >= (v.mod_time, n) => {}
            _ => {
                best.insert(v.version_id, (v, n));
            }
        }
    }
    let mut out: Vec<Version> = best.into_values().map(|(v, _)| v).collect();
    out.sort_by_key(|v| std::cmp::Reverse((v.mod_time, v.version_id)));
    out
}

#[cfg(test)]
mod tests {
    use super::first_wave;

    /// 8 drives, EC 4+4, 2 per node; this node has drives 0 and 1. Shards 1..=4 hold data.
    #[test]
    fn a_first_wave_asks_local_drives_then_whole_nodes_with_the_most_data() {
        let at: Vec<(bool, Option<&str>)> = (0..8)
            .map(|i| match i / 2 {
                0 => (true, None),
                1 => (false, Some("b")),
                2 => (false, Some("c")),
                _ => (false, Some("d")),
            })
            .collect();
        // Node c (drives 4, 5) holds two data shards (1 and 3), b one, d one.
        let order = [7, 8, 2, 5, 1, 3, 4, 6];
        let first = first_wave(&order, 4, &at);
        // 5 answers settle a read: both local drives, all of c, then all of b (b and d tie
        // on data; b comes first in the list): 6 drives, two requests.
        assert_eq!(first, [true, true, true, true, true, true, false, false]);
        // One node (all local): exactly the wave, data shards first.
        let local: Vec<(bool, Option<&str>)> = (0..8).map(|_| (true, None)).collect();
        let first = first_wave(&order, 4, &local);
        assert_eq!(first.iter().filter(|f| **f).count(), 5);
        for (i, f) in first.iter().enumerate() {
            if order[i] <= 4 {
                assert!(f, "drive {i} holds a data shard");
            }
        }
        // A missing drive (no drive at a position) goes after every other.
        let mut gap = at.clone();
        gap[0] = (false, None);
        let first = first_wave(&order, 4, &gap);
        assert!(!first[0], "a missing drive took a place in the wave");
        assert_eq!(first.iter().filter(|f| **f).count(), 5);
        // Remote drives only (a set on other nodes): whole nodes, most data first.
        let remote: Vec<(bool, Option<&str>)> = (0..8)
            .map(|i| (false, Some(["b", "c", "d", "e"][i / 2])))
            .collect();
        let first = first_wave(&order, 4, &remote);
        // d (2 data), then c and e (1 each, in list order; b has none): 6 drives.
        assert_eq!(first, [false, false, true, true, true, true, true, true]);
    }
}
