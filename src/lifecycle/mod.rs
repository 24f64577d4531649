//! Lifecycle rules of a bucket (S3's `LifecycleConfiguration`, validated) and what they
//! decide about one version or one incomplete upload at a given time. Pure: no I/O, no
//! clock of its own. The bucket store keeps the rules ([`crate::bucket::BucketConfig`]),
//! `s3::lifecycle` turns them into and out of XML, and the heal module's `lifecycle`
//! worker walks the versions and acts on what [`Lifecycle::decide`] says.
//!
//! Days count as S3 counts them: the start (creation, or the moment a version became
//! noncurrent) plus the days, rounded up to the next day boundary (midnight UTC). A
//! [`Day`] is normally 24 hours; `CAIRN_LIFECYCLE_DEBUG_DAY` shortens it for tests, and
//! boundaries are then multiples of that length since the epoch.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most rules one configuration may hold (AWS's limit).
pub const MAX_RULES: usize = 1000;
/// The longest rule id (AWS's limit).
pub const MAX_ID_LEN: usize = 255;
/// The most noncurrent versions a rule may keep (AWS's limit).
pub const MAX_NEWER_NONCURRENT: u32 = 100;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The length of one lifecycle day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    nanos: i64,
}

impl Default for Day {
    fn default() -> Day {
        Day {
            nanos: NANOS_PER_DAY,
        }
    }
}

impl Day {
    /// A day of `d` (at least a second; at most a real day).
    pub fn of(d: Duration) -> Day {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(NANOS_PER_DAY);
        Day {
            nanos: nanos.clamp(1_000_000_000, NANOS_PER_DAY),
        }
    }

    /// Whether this is a shortened (testing) day.
    pub fn is_debug(self) -> bool {
        self.nanos != NANOS_PER_DAY
    }

    pub fn duration(self) -> Duration {
        Duration::from_nanos(self.nanos.unsigned_abs())
    }

    /// `start` (nanoseconds since the epoch) plus `days`, rounded up to a day boundary.
    pub fn due(self, start: i64, days: u32) -> i64 {
        let end = start.saturating_add(self.nanos.saturating_mul(i64::from(days)));
        let rem = end.rem_euclid(self.nanos);
        if rem == 0 {
            end
        } else {
            end.saturating_add(self.nanos - rem)
        }
    }
}

/// A bucket's lifecycle configuration: its rules in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub rules: Vec<Rule>,
}

/// One rule: which objects (the filter) and what happens to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    #[serde(default)]
    pub filter: Filter,
    /// Kept as the client wrote it: the deprecated rule-level `<Prefix>` rather than a
    /// `<Filter>` (the meaning is the same).
    #[serde(default)]
    pub legacy_prefix: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent: Option<NoncurrentExpiration>,
    /// `AbortIncompleteMultipartUpload`'s `DaysAfterInitiation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_upload_days: Option<u32>,
}

/// Which objects a rule covers: all of these must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
    /// Written as `<And>` (kept so the configuration reads back as it was sent).
    #[serde(default)]
    pub and: bool,
}

/// What expires the current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// `days` after creation (rounded up to a day boundary).
    Days(u32),
    /// On this date (seconds since the epoch, a midnight UTC).
    Date(i64),
    /// `ExpiredObjectDeleteMarker`: a delete marker that is its key's only version goes
    /// (`false`: the element was given and asks for nothing).
    DeleteMarker(bool),
}

/// What expires noncurrent versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Days after the version became noncurrent.
    pub days: u32,
    /// Keep this many newer noncurrent versions regardless of their age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_versions: Option<u32>,
}

/// Why a configuration is refused, with the S3 error it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the lifecycle configuration is malformed: {0}")]
    Malformed(String),
}

/// What a version looks like to the rules.
#[derive(Debug, Clone, Copy)]
pub struct VersionFacts<'a> {
    pub key: &'a str,
    pub size: u64,
    /// Creation time, nanoseconds since the epoch.
    pub mod_time: i64,
    pub tags: &'a [(String, String)],
    pub delete_marker: bool,
    /// Where it stands among its key's versions.
    pub place: Place,
}

/// A version's place among its key's versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The latest version; `only` when it is the key's single version.
    Current { only: bool },
    /// Superseded: `since` is when its successor was created (nanoseconds since the
    /// epoch); `newer_noncurrent` counts the noncurrent versions newer than it.
    Noncurrent { since: i64, newer_noncurrent: usize },
}

/// What the rules decide for one version now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Expire the current object: a delete marker on a versioned bucket, removal on an
    /// unversioned one.
    ExpireCurrent { rule: String },
    /// Remove this version (a noncurrent one, or a delete marker with nothing behind it)
    /// for good.
    Remove { rule: String },
}

impl Filter {
    fn matches(&self, v: &VersionFacts) -> bool {
        if !v.key.starts_with(&self.prefix) {
            return false;
        }
        if v.delete_marker {
            // A marker has no tags and no size: rules that filter on tags never apply to
            // it (a tag-selected lifetime must not reach keys that lost their tags), size
            // bounds do not constrain it.
            return self.tags.is_empty();
        }
        self.tags
            .iter()
            .all(|(k, val)| v.tags.iter().any(|(tk, tv)| tk == k && tv == val))
            && self.size_greater_than.is_none_or(|n| v.size > n)
            && self.size_less_than.is_none_or(|n| v.size < n)
    }

    /// Whether the filter says anything beyond a prefix.
    fn is_prefix_only(&self) -> bool {
        self.tags.is_empty() && self.size_greater_than.is_none() && self.size_less_than.is_none()
    }
}

impl Lifecycle {
    /// Check a configuration as AWS does. `now` (seconds) is not needed: past dates are
    /// allowed (they expire at once).
    pub fn validate(&self) -> Result<(), RuleError> {
        use RuleError::*;
        if self.rules.is_empty() {
            return Err(Malformed("a configuration needs at least one rule".into()));
        }
        if self.rules.len() > MAX_RULES {
            return Err(InvalidRequest(format!(
                "A lifecycle configuration can have at most {MAX_RULES} rules"
            )));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.id.len() > MAX_ID_LEN {
                return Err(InvalidArgument(
                    "ID length should not exceed allowed limit of 255".into(),
                ));
            }
            if self.rules[..i].iter().any(|o| o.id == r.id) {
                return Err(InvalidArgument(
                    "Rule ID must be unique. Found same ID for more than one rule".into(),
                ));
            }
            if r.expiration.is_none() && r.noncurrent.is_none() && r.abort_upload_days.is_none() {
                return Err(InvalidRequest(
                    "At least one action needs to be specified in a rule".into(),
                ));
            }
            match r.expiration {
                Some(Expiration::Days(0)) => {
                    return Err(InvalidArgument(
                        "'Days' for Expiration action must be a positive integer".into(),
                    ))
                }
                Some(Expiration::Date(d)) if d.rem_euclid(86_400) != 0 => {
                    return Err(InvalidArgument("'Date' must be at midnight GMT".into()))
                }
                Some(Expiration::DeleteMarker(true)) if !r.filter.tags.is_empty() => {
                    return Err(InvalidRequest(
                        "ExpiredObjectDeleteMarker cannot be specified with tags".into(),
                    ))
                }
                _ => {}
            }
            if let Some(n) = r.noncurrent {
                if n.days == 0 {
                    return Err(InvalidArgument(
                        "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer".into(),
                    ));
                }
                if n.newer_versions
                    .is_some_and(|k| k == 0 || k > MAX_NEWER_NONCURRENT)
                {
                    return Err(InvalidArgument(format!(
                        "'NewerNoncurrentVersions' must be between 1 and {MAX_NEWER_NONCURRENT}"
                    )));
                }
            }
            match r.abort_upload_days {
                Some(0) => {
                    return Err(InvalidArgument(
                        "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer".into(),
                    ))
                }
                Some(_) if !r.filter.tags.is_empty() => {
                    return Err(InvalidRequest(
                        "AbortIncompleteMultipartUpload cannot be specified with Tags".into(),
                    ))
                }
                _ => {}
            }
            if let (Some(gt), Some(lt)) = (r.filter.size_greater_than, r.filter.size_less_than) {
                if gt >= lt {
                    return Err(InvalidArgument(
                        "ObjectSizeGreaterThan must be less than ObjectSizeLessThan".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// Whether any enabled rule acts on versions (not only on uploads).
    pub fn acts_on_versions(&self) -> bool {
        self.enabled()
            .any(|r| r.expiration.is_some() || r.noncurrent.is_some())
    }

    /// What should happen to version `v` at `now` (nanoseconds since the epoch).
    pub fn decide(&self, v: &VersionFacts, now: i64, day: Day) -> Option<Decision> {
        let rule = |r: &Rule| Some(r.id.clone());
        for r in self.enabled().filter(|r| r.filter.matches(v)) {
            match v.place {
                Place::Current { only } if v.delete_marker => {
                    // A marker with no versions behind it is "expired": it goes by
                    // ExpiredObjectDeleteMarker at once, or by an age or date rule once
                    // that rule would have expired an object made when the marker was.
                    let due = match r.expiration {
                        Some(Expiration::DeleteMarker(true)) => true,
                        Some(Expiration::Days(d)) => day.due(v.mod_time, d) <= now,
                        Some(Expiration::Date(s)) => s.saturating_mul(1_000_000_000) <= now,
                        _ => false,
                    };
                    if only && due {
                        return rule(r).map(|rule| Decision::Remove { rule });
                    }
                }
                Place::Current { .. } => {
                    if let Some(due) = expiry_of(r, v.mod_time, day) {
                        if due <= now {
                            return rule(r).map(|rule| Decision::ExpireCurrent { rule });
                        }
                    }
                }
                Place::Noncurrent {
                    since,
                    newer_noncurrent,
                } => {
                    if let Some(n) = r.noncurrent {
                        let keep = n.newer_versions.map_or(0, |k| k as usize);
                        if newer_noncurrent >= keep && day.due(since, n.days) <= now {
                            return rule(r).map(|rule| Decision::Remove { rule });
                        }
                    }
                }
            }
        }
        None
    }

    /// When the current object `v` expires and by which rule (the earliest), for
    /// `x-amz-expiration`.
    pub fn expiration(&self, v: &VersionFacts, day: Day) -> Option<(i64, String)> {
        if v.delete_marker {
            return None;
        }
        self.enabled()
            .filter(|r| r.filter.matches(v))
            .filter_map(|r| expiry_of(r, v.mod_time, day).map(|t| (t, r.id.clone())))
            .min_by_key(|(t, _)| *t)
    }

    /// The rule that aborts an upload of `key` started at `initiated` (nanoseconds), if
    /// one is due at `now`.
    pub fn abort_upload(&self, key: &str, initiated: i64, now: i64, day: Day) -> Option<&str> {
        self.enabled()
            .filter(|r| key.starts_with(&r.filter.prefix) && r.filter.is_prefix_only())
            .find(|r| {
                r.abort_upload_days
                    .is_some_and(|d| day.due(initiated, d) <= now)
            })
            .map(|r| r.id.as_str())
    }

    /// Whether any enabled rule aborts uploads.
    pub fn aborts_uploads(&self) -> bool {
        self.enabled().any(|r| r.abort_upload_days.is_some())
    }
}

/// When rule `r` expires a current object created at `created`.
fn expiry_of(r: &Rule, created: i64, day: Day) -> Option<i64> {
    match r.expiration? {
        Expiration::Days(d) => Some(day.due(created, d)),
        Expiration::Date(s) => Some(s.saturating_mul(1_000_000_000)),
        Expiration::DeleteMarker(_) => None,
    }
}

#[cfg(test)]
mod tests;
