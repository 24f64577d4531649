//! Failed console logins, per client address: after [`FREE_FAILURES`] failures in a row an
//! address must wait before its next attempt, twice as long after each further failure (up
//! to [`MAX_WAIT`]), so guessing secrets through the login form is slow. A success clears
//! the address; an address quiet for [`FORGET_AFTER`] starts afresh. The table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures in a row allowed without waiting.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// An address with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Addresses remembered at most (the oldest are dropped past it).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long after the last failure the next attempt is allowed.
    fn wait(&self) -> Duration {
        match self.count.checked_sub(FREE_FAILURES) {
            None => Duration::ZERO,
            Some(extra) => Duration::from_secs(1u64 << extra.min(16)).min(MAX_WAIT),
        }
    }
}

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// `Err(wait)` when `addr` must wait that much longer before trying again.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let map = self.failures.lock();
        let Some(f) = map.get(&addr) else {
            return Ok(());
        };
        let until = f.last + f.wait();
        if now < until {
            Err(until - now)
        } else {
            Ok(())
        }
    }

    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let mut map = self.failures.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&addr) {
            map.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if map.len() >= MAX_ADDRESSES {
                let oldest = map.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a);
                if let Some(a) = oldest {
                    map.remove(&a);
                }
            }
        }
        let f = map.entry(addr).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    pub fn succeeded(&self, addr: IpAddr) {
        self.failures.lock().remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_free_failures_and_a_success_clears_them() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.7".parse().expect("ip");
        let b: IpAddr = "10.0.0.8".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            t.failed(a, t0);
            assert!(t.check(a, t0).is_ok());
        }
        t.failed(a, t0);
        assert_eq!(t.check(a, t0), Err(Duration::from_secs(1)));
        assert!(t.check(a, t0 + Duration::from_secs(1)).is_ok());
        assert!(t.check(b, t0).is_ok(), "other addresses are not held up");
        t.failed(a, t0 + Duration::from_secs(1));
        assert_eq!(
            t.check(a, t0 + Duration::from_secs(1)),
            Err(Duration::from_secs(2))
        );
        for i in 0..30 {
            t.failed(a, t0 + Duration::from_secs(2 + i));
        }
        assert_eq!(t.check(a, t0 + Duration::from_secs(31)), Err(MAX_WAIT));
        t.succeeded(a);
        assert!(t.check(a, t0 + Duration::from_secs(31)).is_ok());
        // A quiet address starts afresh.
        for _ in 0..FREE_FAILURES {
            t.failed(b, t0);
        }
        t.failed(b, t0 + FORGET_AFTER);
        assert!(t.check(b, t0 + FORGET_AFTER).is_ok());
    }
}
