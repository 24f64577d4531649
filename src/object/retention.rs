//! Object lock state of one version: a retention (mode and date) and a legal hold, kept
//! among the version's stored headers. The object layer enforces it wherever a version can
//! disappear (a delete by version id); the S3 layer sets it.

use std::collections::BTreeMap;

pub use crate::bucket::LockMode;

/// Stored header names (never returned as headers themselves).
pub const MODE_HEADER: &str = "x-cairn-lock-mode";
/// Seconds since the epoch.
pub const UNTIL_HEADER: &str = "x-cairn-lock-until";
pub const HOLD_HEADER: &str = "x-cairn-legal-hold";

/// A version's lock state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Mode and retain-until date (seconds since the epoch).
    pub retention: Option<(LockMode, i64)>,
    pub legal_hold: bool,
}

impl Retention {
    pub fn of(headers: &BTreeMap<String, String>) -> Retention {
        let mode = headers.get(MODE_HEADER).and_then(|m| LockMode::parse(m));
        let until = headers
            .get(UNTIL_HEADER)
            .and_then(|u| u.parse::<i64>().ok());
        Retention {
            retention: mode.zip(until),
            legal_hold: headers.get(HOLD_HEADER).is_some_and(|h| h == "ON"),
        }
    }

    /// The stored headers for this state (a `None` value removes the header).
    pub fn headers(&self) -> Vec<(String, Option<String>)> {
        vec![
            (
                MODE_HEADER.to_string(),
                self.retention.map(|(m, _)| m.as_str().to_string()),
            ),
            (
                UNTIL_HEADER.to_string(),
                self.retention.map(|(_, u)| u.to_string()),
            ),
            (
                HOLD_HEADER.to_string(),
                self.legal_hold.then(|| "ON".to_string()),
            ),
        ]
    }

    /// Whether the version may not be removed at `now` (seconds), given whether the
    /// request may bypass governance retention.
    pub fn protects(&self, now: i64, bypass_governance: bool) -> bool {
        if self.legal_hold {
            return true;
        }
        match self.retention {
            Some((_, until)) if until <= now => false,
            Some((LockMode::Compliance, _)) => true,
            Some((LockMode::Governance, _)) => !bypass_governance,
            None => false,
        }
    }
}

/// Seconds since the epoch, now (the server's clock: see docs/operations.md).
pub fn now_secs() -> i64 {
    super::now_nanos() / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_protects_a_version() {
        let now = 1_000;
        let gov = Retention {
            retention: Some((LockMode::Governance, now + 10)),
            legal_hold: false,
        };
        assert!(gov.protects(now, false));
        assert!(!gov.protects(now, true), "governance is bypassable");
        assert!(!gov.protects(now + 10, false), "until the date only");
        let comp = Retention {
            retention: Some((LockMode::Compliance, now + 10)),
            legal_hold: false,
        };
        assert!(comp.protects(now, true), "compliance is not");
        assert!(!comp.protects(now + 11, false));
        let hold = Retention {
            retention: None,
            legal_hold: true,
        };
        assert!(hold.protects(now, true));
        assert!(!Retention::default().protects(now, false));
        let mut headers = BTreeMap::new();
        for (k, v) in comp.headers() {
            if let Some(v) = v {
                headers.insert(k, v);
            }
        }
        assert_eq!(Retention::of(&headers), comp);
    }
}
