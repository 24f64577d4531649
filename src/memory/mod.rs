//! The server-wide memory budget for request buffers.
//!
//! Every request that streams object data (GET, PUT, UploadPart, copies, form uploads)
//! reserves what its buffers may hold before it starts — at most two erasure blocks, less
//! for a smaller body — and keeps the reservation until its response body is sent. Past the
//! budget (`CAIRN_MAX_MEMORY`) a request waits up to `CAIRN_MAX_MEMORY_WAIT` for others to
//! finish, then is answered `503 SlowDown`, which every SDK retries with backoff: a burst
//! of clients slows down instead of growing the server until the OOM killer comes.
//!
//! The budget counts request buffers only; the shard chunks on their way to the drives
//! have their own bound (`CAIRN_WRITE_BUDGET`, in `object::put`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in units of this many bytes.
const UNIT: u64 = 64 << 10;

/// The memory budget shared by all requests of the server.
#[derive(Debug)]
pub struct Budget {
    units: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// What a refused request is told (`SlowDown`).
#[derive(Debug, thiserror::Error)]
#[error("the server's memory budget for requests is in use; retry later")]
pub struct Busy;

/// A reservation, released when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl Budget {
    /// A budget of `bytes` (at least one [`UNIT`]); requests wait up to `wait` for room.
    pub fn new(bytes: u64, wait: Duration) -> Budget {
        let units = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX >> 3);
        let units = units.min(Semaphore::MAX_PERMITS as u32);
        Budget {
            units: Arc::new(Semaphore::new(units as usize)),
            total_units: units,
            wait,
        }
    }

    /// From `CAIRN_MAX_MEMORY` (a size: `1GiB`, `512MiB`) and `CAIRN_MAX_MEMORY_WAIT` (a
    /// duration: `5s`), defaulting to a quarter of the memory this process may use (the
    /// machine's, or its cgroup's limit when lower) and 5 seconds.
    pub fn from_env() -> Result<Budget, String> {
        let bytes = match std::env::var("CAIRN_MAX_MEMORY") {
            Ok(v) => crate::units::parse_bytes(&v)
                .filter(|b| *b >= UNIT)
                .ok_or_else(|| {
                    format!("CAIRN_MAX_MEMORY={v}: expected a size of at least 64KiB, such as 1GiB")
                })?,
            Err(_) => default_bytes(),
        };
        let wait = match std::env::var("CAIRN_MAX_MEMORY_WAIT") {
            Ok(v) => crate::units::parse_duration(&v).ok_or_else(|| {
                format!("CAIRN_MAX_MEMORY_WAIT={v}: expected a duration such as 5s or 500ms")
            })?,
            Err(_) => Duration::from_secs(5),
        };
        Ok(Budget::new(bytes, wait))
    }

    /// The budget in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        let free = self.units.available_permits() as u64;
        (u64::from(self.total_units).saturating_sub(free)) * UNIT
    }

    /// Reserve `bytes` (rounded up to a unit, at most the whole budget), waiting up to the
    /// budget's wait for room.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, Busy> {
        let units = bytes.div_ceil(UNIT).clamp(1, u64::from(self.total_units));
        let units = u32::try_from(units).unwrap_or(self.total_units);
        match tokio::time::timeout(self.wait, self.units.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(Reservation { _permit: permit }),
            _ => Err(Busy),
        }
    }
}

/// A quarter of the memory available to this process: the machine's, or its cgroup's
/// limit when one is set and lower; at least 256 MiB.
fn default_bytes() -> u64 {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib.saturating_mul(1024));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let available = match (machine, cgroup) {
        (Some(m), Some(c)) => m.min(c),
        (Some(m), None) => m,
        (None, Some(c)) => c,
        (None, None) => 4 << 30,
    };
    (available / 4).max(256 << 20)
}

/// A response body that holds a reservation until it is sent (or dropped).
pub struct Held {
    inner: axum::body::Body,
    reservation: Option<Reservation>,
}

impl Held {
    pub fn new(inner: axum::body::Body, reservation: Reservation) -> Held {
        Held {
            inner,
            reservation: Some(reservation),
        }
    }
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.reservation = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_then_are_refused() {
        let b = Budget::new(4 * UNIT, Duration::from_millis(50));
        assert_eq!(b.total(), 4 * UNIT);
        let first = b.reserve(3 * UNIT).await.expect("room");
        // Rounded up to a unit.
        let second = b.reserve(1).await.expect("room");
        assert_eq!(b.in_use(), 4 * UNIT);
        assert!(b.reserve(1).await.is_err(), "past the budget");
        drop(first);
        // A request larger than the whole budget takes all of it rather than never starting.
        let all = b.reserve(100 * UNIT).await;
        assert!(all.is_err(), "one unit still held");
        drop(second);
        let all = b.reserve(100 * UNIT).await.expect("whole budget");
        assert_eq!(b.in_use(), 4 * UNIT);
        // A waiter gets room as soon as it is released.
        let b = Arc::new(b);
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.reserve(UNIT).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(all);
        waiter.await.expect("join").expect("room after release");
    }
}
