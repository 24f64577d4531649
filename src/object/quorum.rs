//! Fan-out to the drives of a set and agreement on object metadata.

use std::sync::Arc;

use futures::future::join_all;

use super::{ErasureSet, ObjectError, ObjectResult};
use bytes::Bytes;

use crate::drive::{Drive, DriveError, DriveResult};
use crate::meta::{ObjectMeta, Version, VersionKind};
use crate::placement::read_quorum;

/// Run `f` on every drive slot in parallel; missing slots answer `Offline`.
pub(crate) async fn fan_out<'a, T, F, Fut>(
    drives: &'a [Option<Arc<dyn Drive>>],
    f: F,
) -> Vec<DriveResult<T>>
where
    F: Fn(usize, &'a Arc<dyn Drive>) -> Fut,
    Fut: std::future::Future<Output = DriveResult<T>>,
{
    join_all(drives.iter().enumerate().map(|(i, d)| {
        let fut = d.as_ref().map(|d| f(i, d));
        async move {
            match fut {
                Some(fut) => fut.await,
                None => Err(DriveError::Offline("drive missing".into())),
            }
        }
    }))
    .await
}

/// The least a settled fan-out waits for the drives still running.
const STRAGGLER_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// What a drive position still running answers when [`fan_out_until`] returned without it.
pub(crate) const STILL_RUNNING: &str = "still running";

/// Like [`fan_out`], but returns once `settled` says the answers so far decide the outcome
/// and the others had as long again as that took (at least [`STRAGGLER_GRACE`]): a drive
/// more than twice as slow as the quorum, a hung one, costs nothing, while drives merely a
/// little behind still count. Positions still running answer
/// `NotDone(STILL_RUNNING)` and their calls are dropped (a local drive's finishes on its own
/// thread under its deadline; a remote one is cancelled). For reads only: a write waits
/// for every drive (each under its deadline), so nothing lands after it is acknowledged.
pub(crate) async fn fan_out_until<'a, T, F, Fut, S>(
    drives: &'a [Option<Arc<dyn Drive>>],
    f: F,
    settled: S,
) -> Vec<DriveResult<T>>
where
    F: Fn(usize, &'a Arc<dyn Drive>) -> Fut,
    Fut: std::future::Future<Output = DriveResult<T>>,
    S: Fn(&[Option<DriveResult<T>>]) -> bool,
{
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut pending: FuturesUnordered<_> = drives
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let fut = d.as_ref().map(|d| f(i, d));
            async move {
                let r = match fut {
                    Some(fut) => fut.await,
                    None => Err(DriveError::Offline("drive missing".into())),
                };
                (i, r)
            }
        })
        .collect();
    let mut out: Vec<Option<DriveResult<T>>> = drives.iter().map(|_| None).collect();
    let start = tokio::time::Instant::now();
    let mut grace_until = None;
    loop {
        let next = match grace_until {
            None => pending.next().await,
            Some(t) => match tokio::time::timeout_at(t, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((i, r)) = next else { break };
        out[i] = Some(r);
        if grace_until.is_none() && settled(&out) {
            grace_until = Some(tokio::time::Instant::now() + start.elapsed().max(STRAGGLER_GRACE));
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or(Err(DriveError::NotDone(STILL_RUNNING))))
        .collect()
}

/// Do the metadata answers so far decide a read? Only a success is decided early: some
/// version is backed by a read quorum, and neither another version seen nor one not yet
/// seen could overtake it with the answers still missing.
fn read_settled(answers: &[Option<DriveResult<Bytes>>]) -> bool {
    let missing = answers.iter().filter(|a| a.is_none()).count();
    // (mod_time, members, read quorum) of each distinct latest version answered.
    let mut groups: Vec<(Version, usize)> = Vec::new();
    for a in answers.iter().flatten() {
        let Ok(b) = a else { continue };
        let Some(v) = ObjectMeta::decode(b).ok().and_then(|m| m.latest().cloned()) else {
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

/// [`agree`] for reads: done as soon as the answers decide it, without waiting for a slow
/// drive. Drives that had not answered are not counted as disagreeing.
pub(crate) async fn agree_fast(set: &ErasureSet, bucket: &str, key: &str) -> ObjectResult<Agreed> {
    let results = fan_out_until(&set.drives, |_, d| d.read_meta(bucket, key), read_settled).await;
    agree_on(set, results)
}

/// The metadata a read quorum of a set's drives agrees on.
pub(crate) struct Agreed {
    /// The agreed latest version, as stored on one agreeing drive.
    pub latest: Version,
    /// Per drive position: its full metadata when its latest version is the agreed one.
    pub metas: Vec<Option<ObjectMeta>>,
    /// True when some drive answered but disagreed, or did not answer: a heal candidate.
    pub degraded: bool,
}

impl Agreed {
    /// This drive position's copy of the agreed version.
    pub fn version_at(&self, i: usize) -> Option<&Version> {
        self.metas[i].as_ref().and_then(ObjectMeta::latest)
    }
}

/// Read `bucket/key`'s metadata from every drive of `set` and pick the latest version that
/// a read quorum agrees on. A delete marker as the agreed version is `NoSuchKey`.
pub(crate) async fn agree(set: &ErasureSet, bucket: &str, key: &str) -> ObjectResult<Agreed> {
    let results = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
    agree_on(set, results)
}

/// Agreement over metadata already read from each drive position of `set`.
pub(crate) fn agree_on(set: &ErasureSet, results: Vec<DriveResult<Bytes>>) -> ObjectResult<Agreed> {
    let n = results.len();
    let mut metas: Vec<Option<ObjectMeta>> = Vec::with_capacity(n);
    let (mut not_found, mut no_bucket, mut failed) = (0usize, 0usize, 0usize);
    let still_running = results
        .iter()
        .filter(|r| matches!(r, Err(DriveError::NotDone(s)) if *s == STILL_RUNNING))
        .count();
    for r in results {
        match r.map(|b| ObjectMeta::decode(&b)) {
            Ok(Ok(m)) if m.latest().is_some() => metas.push(Some(m)),
            Ok(_) => {
                // Corrupt or empty metadata: treat like a missing copy that needs healing.
                failed += 1;
                metas.push(None);
            }
            Err(DriveError::NotFound) => {
                not_found += 1;
                metas.push(None);
            }
            Err(DriveError::BucketNotFound) => {
                no_bucket += 1;
                metas.push(None);
            }
            Err(_) => {
                failed += 1;
                metas.push(None);
            }
        }
    }
    // Group drives by the identity of their latest version.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new(); // (representative, members)
    for (i, m) in metas.iter().enumerate() {
        let Some(v) = m.as_ref().and_then(ObjectMeta::latest) else {
            continue;
        };
        match groups.iter_mut().find(|(rep, _)| {
            metas[*rep]
                .as_ref()
                .and_then(ObjectMeta::latest)
                .is_some_and(|r| r.signature() == v.signature())
        }) {
            Some((_, members)) => members.push(i),
            None => groups.push((i, vec![i])),
        }
    }
    let version_of = |rep: usize| metas[rep].as_ref().and_then(ObjectMeta::latest);
    let best = groups
        .iter()
        .filter(|(rep, members)| {
            version_of(*rep).is_some_and(|v| members.len() >= read_quorum(v.erasure.data as usize))
        })
        .max_by_key(|(rep, members)| (version_of(*rep).map_or(0, |v| v.mod_time), members.len()));
    let Some((rep, members)) = best else {
        if no_bucket * 2 > n {
            return Err(ObjectError::NoSuchBucket);
        }
        let most = groups.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
        let need = read_quorum(set.size() - set.parity);
        return if most + failed >= need && failed > 0 {
            Err(ObjectError::ReadQuorum { ok: most, need })
        } else {
            let _ = not_found;
            Err(ObjectError::NoSuchKey)
        };
    };
    let latest = version_of(*rep)
        .cloned()
        .ok_or_else(|| ObjectError::Internal("agreed version vanished".into()))?;
    // A drive that merely had not answered yet is no sign of damage.
    let degraded = members.len() + still_running < n;
    let members = members.clone();
    let metas = metas
        .into_iter()
        .enumerate()
        .map(|(i, m)| if members.contains(&i) { m } else { None })
        .collect();
    if latest.kind == VersionKind::DeleteMarker {
        return Err(ObjectError::NoSuchKey);
    }
    Ok(Agreed {
        latest,
        metas,
        degraded,
    })
}

/// Judge a write's condition against metadata read from each drive position (under the
/// key's lock, at commit).
pub(crate) fn judge_on(
    set: &ErasureSet,
    results: &[DriveResult<Bytes>],
    cond: &crate::object::WriteCondition,
) -> ObjectResult<()> {
    let copies = results
        .iter()
        .map(|r| match r {
            Ok(b) => Ok(b.clone()),
            Err(DriveError::NotFound) => Err(DriveError::NotFound),
            Err(DriveError::BucketNotFound) => Err(DriveError::BucketNotFound),
            Err(_) => Err(DriveError::NotDone("unreadable")),
        })
        .collect();
    cond.judge(
        agree_on(set, copies)
            .as_ref()
            .map(|a| &a.latest)
            .map_err(clone_err),
    )
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

/// Count successes of a fan-out; fail with `WriteQuorum` below `need`.
pub(crate) fn write_ok<T>(results: &[DriveResult<T>], need: usize) -> ObjectResult<usize> {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    if ok < need {
        Err(ObjectError::WriteQuorum { ok, need })
    } else {
        Ok(ok)
    }
}
