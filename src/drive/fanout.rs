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
