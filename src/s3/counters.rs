//! Requests this node has answered, by S3 operation and outcome, as `cairn admin metrics`
//! shows them (`GET /cairn/admin/v1/metrics`): a view of the node's request table
//! ([`crate::metrics::Requests`], which the Prometheus endpoints expose too).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::router::Op;
use crate::metrics::Requests;

/// The name of the slot that counts requests refused before an operation was known (bad
/// signature, malformed target).
pub const UNROUTED: &str = "Unrouted";

/// A request table with one slot per S3 operation, in [`Op::index`] order.
pub fn table() -> Requests {
    let names: Vec<&'static str> = Op::ALL.iter().map(|o| o.name()).collect();
    Requests::new(&names, UNROUTED)
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

/// Every operation answered at least once, by name.
pub fn snapshot(requests: &Requests) -> BTreeMap<String, Outcomes> {
    requests
        .snapshot()
        .apis
        .into_iter()
        .filter(|a| a.total > 0)
        .map(|a| {
            let failed = a.client_errors + a.server_errors + a.not_implemented;
            let o = Outcomes {
                ok: a.total.saturating_sub(failed),
                client_errors: a.client_errors,
                server_errors: a.server_errors,
                not_implemented: a.not_implemented,
            };
            (a.api, o)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use std::time::Duration;

    #[test]
    fn counts_by_operation_and_outcome() {
        let c = table();
        let record = |op: Option<Op>, status| {
            c.answered(op.map(Op::index), status, Duration::ZERO, None);
        };
        record(Some(Op::GetObject), StatusCode::OK);
        record(Some(Op::GetObject), StatusCode::PARTIAL_CONTENT);
        record(Some(Op::GetObject), StatusCode::NOT_FOUND);
        record(Some(Op::ListObjects { v2: true }), StatusCode::OK);
        record(None, StatusCode::FORBIDDEN);
        record(Some(Op::PutObject), StatusCode::SERVICE_UNAVAILABLE);
        record(None, StatusCode::NOT_IMPLEMENTED);
        let s = snapshot(&c);
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
