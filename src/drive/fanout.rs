//! Fan-out of one call to a list of drive slots, in parallel: every answer
//! ([`fan_out`]), or as soon as the answers so far decide the caller's outcome
//! ([`fan_out_until`], for reads). Shared by the object layer and the system records
//! (bucket configuration, IAM), which each judge quorum on the answers themselves.

use std::sync::Arc;

use futures::future::join_all;

use super::{Drive, DriveError, DriveResult};

/// Run `f` on every drive slot in parallel; missing slots answer `Offline`.
pub async fn fan_out<'a, T, F, Fut>(
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
pub const STRAGGLER_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// What a drive position still running answers when [`fan_out_until`] returned without it.
pub const STILL_RUNNING: &str = "still running";

/// Like [`fan_out`], but returns once `settled` says the answers so far decide the outcome
/// and the others had as long again as that took (at least [`STRAGGLER_GRACE`]): a drive
/// more than twice as slow as the quorum, a hung one, costs nothing, while drives merely a
/// little behind still count. Positions still running answer
/// `NotDone(STILL_RUNNING)` and their calls are dropped (a local drive's finishes on its own
/// thread under its deadline; a remote one is cancelled). For reads only: a write waits
/// for every drive (each under its deadline), so nothing lands after it is acknowledged.
pub async fn fan_out_until<'a, T, F, Fut, S>(
    drives: &'a [Option<Arc<dyn Drive>>],
    f: F,
    settled: S,
) -> Vec<DriveResult<T>>
where
    F: Fn(usize, &'a Arc<dyn Drive>) -> Fut,
    Fut: std::future::Future<Output = DriveResult<T>>,
    S: Fn(&[Option<DriveResult<T>>]) -> bool,
{
    let everyone = vec![true; drives.len()];
    fan_out_preferring(drives, &everyone, f, settled).await
}

/// How long a [`fan_out_preferring`] waits on its first wave before asking the others.
pub const HEDGE_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// [`fan_out_until`] asking the drive positions `first` marks before the others: the rest
/// are asked only when the first wave has all answered without settling the outcome, or
/// has taken [`HEDGE_AFTER`] (a slow or hung drive among them). When the first wave settles
/// it — the common case — the others are never asked and answer `NotDone(STILL_RUNNING)`,
/// like drives still running: not counted as disagreeing.
pub async fn fan_out_preferring<'a, T, F, Fut, S>(
    drives: &'a [Option<Arc<dyn Drive>>],
    first: &[bool],
    f: F,
    settled: S,
) -> Vec<DriveResult<T>>
where
    F: Fn(usize, &'a Arc<dyn Drive>) -> Fut,
    Fut: std::future::Future<Output = DriveResult<T>>,
    S: Fn(&[Option<DriveResult<T>>]) -> bool,
{
    use futures::stream::{FuturesUnordered, StreamExt};
    let call = |i: usize| {
        let fut = drives[i].as_ref().map(|d| f(i, d));
        async move {
            let r = match fut {
                Some(fut) => fut.await,
                None => Err(DriveError::Offline("drive missing".into())),
            };
            (i, r)
        }
    };
    let n = drives.len();
    let wave_one = |i: usize| first.get(i).copied().unwrap_or(true);
    let mut pending: FuturesUnordered<_> = (0..n).filter(|&i| wave_one(i)).map(&call).collect();
    let start = tokio::time::Instant::now();
    // When to ask the others, while some are not asked and nothing is settled.
    let mut hedge = (pending.len() < n).then(|| start + HEDGE_AFTER);
    let mut out: Vec<Option<DriveResult<T>>> = drives.iter().map(|_| None).collect();
    let mut grace_until = None;
    loop {
        if pending.is_empty() && hedge.is_none() {
            break;
        }
        let wait = grace_until.or(hedge);
        let next = if pending.is_empty() {
            None
        } else {
            match wait {
                None => pending.next().await,
                Some(t) => match tokio::time::timeout_at(t, pending.next()).await {
                    Ok(next) => next,
                    Err(_) if grace_until.is_some() => break,
                    Err(_) => None,
                },
            }
        };
        let Some((i, r)) = next else {
            // The first wave is all in without settling, or is slow: ask the others.
            if hedge.take().is_some() {
                pending.extend((0..n).filter(|&i| !wave_one(i)).map(&call));
            }
            continue;
        };
        out[i] = Some(r);
        if grace_until.is_none() && settled(&out) {
            hedge = None;
            grace_until = Some(tokio::time::Instant::now() + start.elapsed().max(STRAGGLER_GRACE));
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or(Err(DriveError::NotDone(STILL_RUNNING))))
        .collect()
}
