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
        Ok(())
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
        let mut bad = r;
        bad.events = vec!["s3:ObjectAccessed:Get".into()];
        let n = Notification { rules: vec![bad] };
        assert!(n.validate().expect_err("test").contains("not supported"));
    }
}
