//! Lock-free instruments every layer may record into: a fixed-bucket histogram and the
//! request table. Recording is a few relaxed atomic adds, never a lock or an allocation;
//! reading (a scrape) takes a snapshot that may be a few increments apart between fields.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of latency histograms: 250 µs to 10 s, then `+Inf`.
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A histogram of durations with [`LATENCY_BOUNDS`] buckets (the last slot is `+Inf`).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// What a [`Histogram`] held at one moment: per-bucket (not cumulative) counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub sum_secs: f64,
    pub count: u64,
}

impl HistogramSnapshot {
    /// `(upper bound, count)` pairs, the last one `+Inf`.
    pub fn pairs(&self) -> Vec<(f64, u64)> {
        LATENCY_BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().copied().chain(std::iter::repeat(0)))
            .collect()
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_secs: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// Counters of one API (an S3 operation).
#[derive(Debug, Default)]
pub struct ApiStats {
    total: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    not_implemented: AtomicU64,
    /// Answers whose body the client stopped reading before its end.
    canceled: AtomicU64,
    /// Until the handler's answer (status and headers) was ready.
    ttfb: Histogram,
    /// Until the body's last byte was handed to the connection.
    duration: Histogram,
}

/// One API's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiSnapshot {
    pub api: String,
    pub total: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub not_implemented: u64,
    pub canceled: u64,
    pub ttfb: HistogramSnapshot,
    pub duration: HistogramSnapshot,
}

/// Every request this node answered: per API, bytes in and out, errors by S3 code.
#[derive(Debug)]
pub struct Requests {
    names: Vec<&'static str>,
    apis: Vec<ApiStats>,
    received: AtomicU64,
    sent: AtomicU64,
    /// Requests arrived and not yet finished (their body sent, or dropped).
    inflight: AtomicI64,
    /// Error answers by S3 code: a read lock to count a code seen before (error paths
    /// only; a success never touches it).
    by_code: parking_lot::RwLock<std::collections::BTreeMap<&'static str, AtomicU64>>,
}

/// A node's request counters at one moment (travels between nodes for the cluster scrape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestsSnapshot {
    pub apis: Vec<ApiSnapshot>,
    pub received: u64,
    pub sent: u64,
    pub inflight: i64,
    pub errors: Vec<(String, u64)>,
}

impl Requests {
    /// A table for the APIs `names` (by index) and one more slot, `unrouted`, for requests
    /// refused before an API was known.
    pub fn new(names: &[&'static str], unrouted: &'static str) -> Requests {
        let mut names = names.to_vec();
        names.push(unrouted);
        Requests {
            apis: names.iter().map(|_| ApiStats::default()).collect(),
            names,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            inflight: AtomicI64::new(0),
            by_code: Default::default(),
        }
    }

    /// The counters of API `api` (`None` or out of range: the unrouted slot).
    pub fn stats(&self, api: Option<usize>) -> &ApiStats {
        let last = self.apis.len() - 1;
        &self.apis[api.filter(|&i| i < last).unwrap_or(last)]
    }

    /// A request arrived (before its API is known); `body_len` is its declared length. It
    /// is in flight until the guard is dropped.
    pub fn started(self: &Arc<Self>, body_len: u64) -> InFlight {
        self.received.fetch_add(body_len, Ordering::Relaxed);
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The handler answered `status` after `ttfb`; the body is yet to be sent (see
    /// [`ApiStats::finish`]).
    pub fn answered(
        &self,
        api: Option<usize>,
        status: http::StatusCode,
        ttfb: Duration,
        error_code: Option<&'static str>,
    ) -> &ApiStats {
        let s = self.stats(api);
        s.total.fetch_add(1, Ordering::Relaxed);
        if status == http::StatusCode::NOT_IMPLEMENTED {
            s.not_implemented.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            s.server_errors.fetch_add(1, Ordering::Relaxed);
        } else if status.is_client_error() {
            s.client_errors.fetch_add(1, Ordering::Relaxed);
        }
        s.ttfb.observe(ttfb);
        if let Some(code) = error_code {
            self.count_code(code);
        }
        s
    }

    fn count_code(&self, code: &'static str) {
        if let Some(c) = self.by_code.read().get(code) {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.by_code
            .write()
            .entry(code)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RequestsSnapshot {
        RequestsSnapshot {
            apis: self
                .names
                .iter()
                .zip(&self.apis)
                .map(|(name, s)| ApiSnapshot {
                    api: name.to_string(),
                    total: s.total.load(Ordering::Relaxed),
                    client_errors: s.client_errors.load(Ordering::Relaxed),
                    server_errors: s.server_errors.load(Ordering::Relaxed),
                    not_implemented: s.not_implemented.load(Ordering::Relaxed),
                    canceled: s.canceled.load(Ordering::Relaxed),
                    ttfb: s.ttfb.snapshot(),
                    duration: s.duration.snapshot(),
                })
                .collect(),
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            inflight: self.inflight.load(Ordering::Relaxed),
            errors: self
                .by_code
                .read()
                .iter()
                .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

/// A request in flight: counted until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Requests>);

impl InFlight {
    pub fn requests(&self) -> &Requests {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ApiStats {
    /// The body ended (`complete`) or was dropped before its end; `elapsed` since arrival.
    pub fn finish(&self, elapsed: Duration, complete: bool) {
        self.duration.observe(elapsed);
        if !complete {
            self.canceled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert!((s.sum_secs - 60.0031).abs() < 1e-9, "{}", s.sum_secs);
        let p = s.pairs();
        assert_eq!(p.len(), LATENCY_BOUNDS.len() + 1);
        assert_eq!(p[0], (0.00025, 1));
        assert_eq!(p[4], (0.005, 1));
        assert_eq!(p.last(), Some(&(f64::INFINITY, 1)));
    }

    #[test]
    fn requests_count_by_api_class_and_code() {
        let r = Arc::new(Requests::new(&["GetObject", "PutObject"], "Unrouted"));
        let guard = r.started(10);
        assert_eq!(r.snapshot().inflight, 1);
        drop(guard);
        let s = r.answered(
            Some(0),
            http::StatusCode::OK,
            Duration::from_millis(1),
            None,
        );
        s.finish(Duration::from_millis(2), true);
        r.sent(4096);
        let s = r.answered(
            Some(0),
            http::StatusCode::NOT_FOUND,
            Duration::from_millis(1),
            Some("NoSuchKey"),
        );
        s.finish(Duration::from_millis(1), false);
        r.answered(
            None,
            http::StatusCode::NOT_IMPLEMENTED,
            Duration::ZERO,
            Some("NotImplemented"),
        );
        r.answered(Some(9), http::StatusCode::FORBIDDEN, Duration::ZERO, None);
        let snap = r.snapshot();
        let get = &snap.apis[0];
        assert_eq!((get.total, get.client_errors, get.canceled), (2, 1, 1));
        assert_eq!(snap.inflight, 0);
        assert_eq!(get.duration.count, 2);
        let unrouted = &snap.apis[2];
        assert_eq!(unrouted.api, "Unrouted");
        assert_eq!((unrouted.total, unrouted.not_implemented), (2, 1));
        assert_eq!(unrouted.server_errors, 0);
        assert_eq!((snap.received, snap.sent), (10, 4096));
        assert_eq!(
            snap.errors,
            vec![
                ("NoSuchKey".to_string(), 1),
                ("NotImplemented".to_string(), 1)
            ]
        );
    }
}
