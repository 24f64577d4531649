//! A bucket's event notification rules (PutBucketNotificationConfiguration): which events
//! on which keys go to which target. The targets themselves are configured on the server
//! (`crate::notify`); a rule names one by ARN.

use serde::{Deserialize, Serialize};

/// The events Cairn emits, and the wildcards that cover them.
pub const EVENTS: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
];

/// Every rule of a bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub rules: Vec<Rule>,
}

/// One `QueueConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    /// The target's ARN, as the client wrote it.
    pub arn: String,
    /// Event names or wildcards from [`EVENTS`].
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

impl Rule {
    /// Whether `event` (a full name such as `s3:ObjectCreated:Put`) on `key` fires this rule.
    pub fn matches(&self, event: &str, key: &str) -> bool {
        self.events.iter().any(|p| match p.strip_suffix('*') {
            Some(stem) => event.starts_with(stem),
            None => p == event,
        }) && self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
    }
}

impl Notification {
    /// Check the rules: known events, unique ids, at most one prefix and one suffix.
    pub fn validate(&self) -> Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        for r in &self.rules {
            if !ids.insert(r.id.as_str()) {
                return Err(format!("configuration id {:?} is used twice", r.id));
            }
            if r.events.is_empty() {
                return Err("a configuration needs at least one Event".into());
            }
            if let Some(e) = r.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err(format!(
                    "the event {e:?} is not supported for notifications (supported: {})",
                    EVENTS.join(", ")
                ));
            }
        }
        // Two rules sending the same event on the same key to the same target would send it
        // twice: refused as AWS refuses overlapping configurations. Rules for different
        // targets may overlap (MinIO allows it: one change, one event per target).
        for (i, a) in self.rules.iter().enumerate() {
            for b in &self.rules[i + 1..] {
                if target_of(&a.arn) == target_of(&b.arn) && a.overlaps(b) {
                    return Err(format!(
                        "Configurations overlap. Configurations on the same bucket cannot share a common event type ({:?} and {:?} send the same events on the same keys to one target).",
                        a.id, b.id
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The target an ARN names (`arn:<partition>:sqs:<region>:<ID>:<kind>` → `(ID, kind)`).
fn target_of(arn: &str) -> (Option<&str>, Option<&str>) {
    let mut fields = arn.split(':').skip(4);
    (fields.next(), fields.next())
}

impl Rule {
    /// Whether some event on some key fires both rules (AWS's test: a common event type,
    /// prefixes one of which starts the other, suffixes one of which ends the other).
    fn overlaps(&self, other: &Rule) -> bool {
        let event = |a: &str, b: &str| match (a.strip_suffix('*'), b.strip_suffix('*')) {
            (Some(x), Some(y)) => x.starts_with(y) || y.starts_with(x),
            (Some(x), None) => b.starts_with(x),
            (None, Some(y)) => a.starts_with(y),
            (None, None) => a == b,
        };
        let common_event = self
            .events
            .iter()
            .any(|a| other.events.iter().any(|b| event(a, b)));
        let (p1, p2) = (
            self.prefix.as_deref().unwrap_or(""),
            other.prefix.as_deref().unwrap_or(""),
        );
        let (s1, s2) = (
            self.suffix.as_deref().unwrap_or(""),
            other.suffix.as_deref().unwrap_or(""),
        );
        common_event
            && (p1.starts_with(p2) || p2.starts_with(p1))
            && (s1.ends_with(s2) || s2.ends_with(s1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_prefixes_and_suffixes() {
        let r = Rule {
            id: "1".into(),
            arn: "arn:cairn:sqs::1:webhook".into(),
            events: vec![
                "s3:ObjectCreated:*".into(),
                "s3:ObjectRemoved:Delete".into(),
            ],
            prefix: Some("images/".into()),
            suffix: Some(".jpg".into()),
        };
        assert!(r.matches("s3:ObjectCreated:Put", "images/a.jpg"));
        assert!(r.matches("s3:ObjectCreated:CompleteMultipartUpload", "images/b.jpg"));
        assert!(r.matches("s3:ObjectRemoved:Delete", "images/a.jpg"));
        assert!(!r.matches("s3:ObjectRemoved:DeleteMarkerCreated", "images/a.jpg"));
        assert!(!r.matches("s3:ObjectCreated:Put", "docs/a.jpg"));
        assert!(!r.matches("s3:ObjectCreated:Put", "images/a.png"));
        let n = Notification {
            rules: vec![r.clone(), r.clone()],
        };
        assert!(n.validate().expect_err("test").contains("twice"));
        // The same events on overlapping keys to one target: refused; to another: allowed.
        let rule =
            |id: &str, arn: &str, ev: &str, prefix: Option<&str>, suffix: Option<&str>| Rule {
                id: id.into(),
                arn: arn.into(),
                events: vec![ev.into()],
                prefix: prefix.map(String::from),
                suffix: suffix.map(String::from),
            };
        let one = "arn:cairn:sqs::1:webhook";
        let one_minio = "arn:minio:sqs::1:webhook";
        let two = "arn:cairn:sqs::2:webhook";
        let cases = [
            (
                rule("a", one, "s3:ObjectCreated:*", None, None),
                rule("b", one_minio, "s3:ObjectCreated:Put", Some("img/"), None),
                true,
            ),
            (
                rule("a", one, "s3:ObjectCreated:Put", Some("img/"), None),
                rule("b", one, "s3:ObjectCreated:Put", None, Some(".jpg")),
                true,
            ),
            (
                rule("a", one, "s3:ObjectCreated:Put", Some("img/"), None),
                rule("b", one, "s3:ObjectCreated:Put", Some("doc/"), None),
                false,
            ),
            (
                rule("a", one, "s3:ObjectCreated:Put", None, Some(".jpg")),
                rule("b", one, "s3:ObjectCreated:Put", None, Some(".png")),
                false,
            ),
            (
                rule("a", one, "s3:ObjectCreated:*", None, None),
                rule("b", one, "s3:ObjectRemoved:*", None, None),
                false,
            ),
            (
                rule("a", one, "s3:ObjectCreated:*", None, None),
                rule("b", two, "s3:ObjectCreated:*", None, None),
                false,
            ),
        ];
        for (a, b, refused) in cases {
            let n = Notification {
                rules: vec![a.clone(), b.clone()],
            };
            assert_eq!(
                n.validate().is_err_and(|e| e.contains("overlap")),
                refused,
                "{a:?} / {b:?}"
            );
        }
        let mut bad = r;
        bad.events = vec!["s3:ObjectAccessed:Get".into()];
        let n = Notification { rules: vec![bad] };
        assert!(n.validate().expect_err("test").contains("not supported"));
    }
}
