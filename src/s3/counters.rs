//! Requests this node has answered, by S3 operation and outcome: the server's own count, which
//! load generators (`cairn bench`) and operators reconcile against
//! (`GET /cairn/admin/v1/metrics`, `cairn admin metrics`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::router::Op;

/// The slot after every operation's counts requests refused before an operation was known
/// (bad signature, malformed target).
const UNROUTED: usize = Op::ALL.len();

fn index(op: Option<Op>) -> usize {
    op.map_or(UNROUTED, Op::index)
}

fn name(i: usize) -> &'static str {
    Op::ALL.get(i).map_or("Unrouted", |o| o.name())
}

/// Answers of one operation: 2xx/3xx, 4xx, 5xx, and `NotImplemented` (501: a feature
/// Cairn refuses on purpose, not a fault, so not among the 5xx).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    #[serde(default)]
    pub not_implemented: u64,
}

pub struct Counters {
    by_op: [[AtomicU64; 4]; UNROUTED + 1],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            by_op: std::array::from_fn(|_| Default::default()),
        }
    }
}

impl Counters {
    /// Count one answer (its status as sent; a body that fails while streaming is not seen).
    pub fn record(&self, op: Option<Op>, status: StatusCode) {
        let outcome = if status == StatusCode::NOT_IMPLEMENTED {
            3
        } else if status.is_server_error() {
            2
        } else if status.is_client_error() {
            1
        } else {
            0
        };
        self.by_op[index(op)][outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// Every operation answered at least once, by name.
    pub fn snapshot(&self) -> BTreeMap<String, Outcomes> {
        self.by_op
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let o = Outcomes {
                    ok: c[0].load(Ordering::Relaxed),
                    client_errors: c[1].load(Ordering::Relaxed),
                    server_errors: c[2].load(Ordering::Relaxed),
                    not_implemented: c[3].load(Ordering::Relaxed),
                };
                (o != Outcomes::default()).then(|| (name(i).to_string(), o))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_operation_and_outcome() {
        let c = Counters::default();
        c.record(Some(Op::GetObject), StatusCode::OK);
        c.record(Some(Op::GetObject), StatusCode::PARTIAL_CONTENT);
        c.record(Some(Op::GetObject), StatusCode::NOT_FOUND);
        c.record(Some(Op::ListObjects { v2: true }), StatusCode::OK);
        c.record(None, StatusCode::FORBIDDEN);
        c.record(Some(Op::PutObject), StatusCode::SERVICE_UNAVAILABLE);
        c.record(None, StatusCode::NOT_IMPLEMENTED);
        let s = c.snapshot();
        let get = &s["GetObject"];
        assert_eq!((get.ok, get.client_errors, get.server_errors), (2, 1, 0));
        assert_eq!(s["ListObjectsV2"].ok, 1);
        assert_eq!(s["Unrouted"].client_errors, 1);
        // A refused feature is not a server fault.
        assert_eq!(
            (s["Unrouted"].server_errors, s["Unrouted"].not_implemented),
            (0, 1)
        );
        assert_eq!(s["PutObject"].server_errors, 1);
        assert_eq!(s.len(), 4);
    }
}
