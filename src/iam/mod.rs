//! Identities and policy evaluation: users, groups, policies, access keys (service
//! accounts) and temporary credentials (STS), stored as system records on every drive
//! ([`crate::records`]) and cached on every node, plus the pure policy language
//! ([`policy`]) and ACLs ([`acl`]).
//!
//! Secret keys are stored sealed ([`seal`]) under a key derived from the deployment's IAM
//! secret, itself a system record made once under a cluster lock. Every node keeps an index
//! from access key to [`Identity`], rebuilt on each change; a request costs one hash lookup
//! and the evaluation of the identity's parsed policies. Changes reach the other nodes at
//! once by an RPC notice and every [`REFRESH`] by a re-read.

pub mod acl;
pub mod builtin;
pub mod policy;
pub(crate) mod seal;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::auth::{Credentials, RootCredentials};
use crate::drive::Drive;
use crate::lock::{LockError, Locker};
use crate::records::{RecordError, Records};
pub use policy::{Context, Decision, Keys, NoKeys, Policy, PolicyError, Principal};

/// The RPC service that tells a node IAM records changed.
pub const CHANGED_SERVICE: &str = "iam-changed";
pub const REFRESH: Duration = Duration::from_secs(5);
/// Shortest and longest life of temporary credentials (AWS's bounds).
pub const MIN_STS: Duration = Duration::from_secs(15 * 60);
pub const MAX_STS: Duration = Duration::from_secs(12 * 3600);
const DEFAULT_STS: Duration = Duration::from_secs(3600);
/// The lock every change of users, groups, policies and removals of keys holds.
const CONFIG_LOCK: &str = "iam/config";
/// The records directory of the IAM seal key.
const SYSTEM_DIR: &str = "iam/system";
/// The lock the IAM seal key is made under.
const SEAL_LOCK: &str = "iam/seal";

/// The lock the writers of record `name` in directory `dir` hold (a heal takes it too).
fn record_lock(dir: &str, name: &str) -> String {
    if dir == SYSTEM_DIR && name == "seal" {
        SEAL_LOCK.to_string()
    } else {
        CONFIG_LOCK.to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

pub type IamResult<T> = Result<T, IamError>;

/// A secret in memory: never in `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    /// The access key (MinIO's user name).
    name: String,
    sealed_secret: String,
    enabled: bool,
    #[serde(default)]
    policies: Vec<String>,
    created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroupRecord {
    name: String,
    #[serde(default)]
    members: BTreeSet<String>,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PolicyRecord {
    name: String,
    document: String,
    created: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// A long-lived access key of a user (MinIO's service account).
    ServiceAccount,
    /// Temporary credentials from AssumeRole.
    Session,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    access_key: String,
    sealed_secret: String,
    kind: KeyKind,
    /// The owning user (or the root user's access key).
    parent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiry: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    /// blake3 of the session token (sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hash: Option<String>,
    /// The access key a session was made with, when it was one (not the user's own): the
    /// session lives no longer than that key, and no longer once it is removed or disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealKey {
    /// Hex of 32 random bytes.
    secret: String,
}

/// Why an access key cannot be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Disabled,
    Expired,
}

/// Who a verified access key is.
#[derive(Debug)]
pub enum Identity {
    Root {
        access_key: String,
    },
    User {
        name: String,
        policies: Vec<Arc<Policy>>,
    },
    /// An access key acting for `parent` (a user, or the root user when `parent_policies`
    /// is `None`), limited by its own policy.
    Key {
        access_key: String,
        kind: KeyKind,
        parent: String,
        parent_policies: Option<Vec<Arc<Policy>>>,
        inline: Option<Arc<Policy>>,
        token_hash: Option<String>,
    },
}

impl Identity {
    pub fn is_root(&self) -> bool {
        matches!(self, Identity::Root { .. })
    }

    /// The user this identity acts for (the root user's access key for root).
    pub fn user_name(&self) -> &str {
        match self {
            Identity::Root { access_key } => access_key,
            Identity::User { name, .. } => name,
            Identity::Key { parent, .. } => parent,
        }
    }

    pub fn principal(&self, access_key: &'_ str) -> Principal<'_> {
        match self {
            Identity::Root { access_key } => Principal::Root { access_key },
            Identity::User { name, .. } => Principal::User {
                name,
                access_key: name,
            },
            Identity::Key {
                parent,
                parent_policies: None,
                ..
            } => Principal::Root { access_key: parent },
            Identity::Key { parent, .. } => {
                let _ = access_key;
                Principal::User {
                    name: parent,
                    access_key: parent,
                }
            }
        }
    }

    /// `aws:PrincipalType`.
    pub fn principal_type(&self) -> &'static str {
        match self {
            Identity::Root { .. } => "Account",
            Identity::User { .. } => "User",
            Identity::Key {
                kind: KeyKind::Session,
                ..
            } => "AssumedRole",
            Identity::Key { .. } => "User",
        }
    }

    /// The identity side of a decision: the user's policies (ANDed with the key's own
    /// policy for access keys). Root: always Allow.
    pub fn decide(&self, ctx: &Context) -> Decision {
        let any = |ps: &[Arc<Policy>]| {
            ps.iter()
                .fold(Decision::NotApplicable, |d, p| d.and(p.evaluate(ctx)))
        };
        match self {
            Identity::Root { .. } => Decision::Allow,
            Identity::User { policies, .. } => any(policies),
            Identity::Key {
                parent_policies,
                inline,
                ..
            } => {
                let parent = match parent_policies {
                    None => Decision::Allow,
                    Some(ps) => any(ps),
                };
                match inline.as_ref().map(|p| p.evaluate(ctx)) {
                    None => parent,
                    Some(Decision::Deny) => Decision::Deny,
                    Some(Decision::Allow) => parent,
                    // The key's policy does not allow it: nothing else may.
                    Some(Decision::NotApplicable) if parent == Decision::Deny => Decision::Deny,
                    Some(Decision::NotApplicable) => Decision::Deny,
                }
            }
        }
    }

    /// Does the key's own policy leave room for `ctx` (resource-based grants too must pass
    /// it)? True for identities without one.
    pub fn inline_allows(&self, ctx: &Context) -> bool {
        match self {
            Identity::Key {
                inline: Some(p), ..
            } => p.evaluate(ctx) == Decision::Allow,
            _ => true,
        }
    }
}

struct Entry {
    secret: Secret,
    identity: Arc<Identity>,
    refusal_at: Option<i64>,
    enabled: bool,
}

#[derive(Default)]
struct Cache {
    users: BTreeMap<String, (UserRecord, Option<Secret>)>,
    groups: BTreeMap<String, GroupRecord>,
    policies: BTreeMap<String, (PolicyRecord, Arc<Policy>)>,
    keys: BTreeMap<String, (KeyRecord, Option<Secret>)>,
    index: HashMap<String, Entry>,
}

/// What `user info` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    pub access_key: String,
    pub enabled: bool,
    pub policies: Vec<String>,
    pub groups: Vec<String>,
    /// Policies that apply through groups.
    #[serde(default)]
    pub group_policies: Vec<String>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub members: Vec<String>,
    pub policies: Vec<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyInfo {
    pub name: String,
    pub builtin: bool,
    pub document: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub access_key: String,
    pub parent: String,
    pub kind: KeyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 3339, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    pub enabled: bool,
    pub has_policy: bool,
}

pub use crate::api::NewKey;

pub struct Iam {
    root: RootCredentials,
    users: Records,
    groups: Records,
    policies: Records,
    keys: Records,
    system: Records,
    locker: Arc<dyn Locker>,
    sealer: RwLock<Option<Arc<seal::Sealer>>>,
    cache: RwLock<Cache>,
    builtin: Vec<(String, Arc<Policy>)>,
    notifier: RwLock<Option<Arc<dyn crate::records::Notifier>>>,
    /// Shortest session AssumeRole grants ([`MIN_STS`]; lower only in tests).
    min_session: RwLock<Duration>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Names of users, groups and policies: AWS's `[\w+=,.@-]`, 1–128 characters (access keys
/// at least 3, as MinIO), never starting with a dot.
pub fn valid_name(name: &str, min: usize) -> bool {
    (min..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

fn new_access_key() -> String {
    random_string(20, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
}

pub fn new_secret_key() -> String {
    random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    )
}

fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl Iam {
    /// Copy every identity record to drives that miss it or hold an older copy (drives of
    /// a pool just added, or after a pool was removed).
    pub async fn heal(&self) -> Result<usize, crate::records::RecordError> {
        // The seal key first: without it no sealed secret opens. Each record under the
        // lock its writers take, so a change made meanwhile is not overwritten.
        Records::heal_dirs(
            &[
                &self.system,
                &self.users,
                &self.groups,
                &self.policies,
                &self.keys,
            ],
            Some((self.locker.as_ref(), record_lock)),
        )
        .await
    }

    pub fn new(
        root: RootCredentials,
        drives: Vec<Option<Arc<dyn Drive>>>,
        locker: Arc<dyn Locker>,
    ) -> Iam {
        let builtin = builtin::BUILTIN
            .iter()
            .filter_map(|(n, doc)| Some((n.to_string(), Arc::new(Policy::parse(doc).ok()?))))
            .collect();
        Iam {
            root,
            users: Records::new(drives.clone(), "iam/users"),
            groups: Records::new(drives.clone(), "iam/groups"),
            policies: Records::new(drives.clone(), "iam/policies"),
            keys: Records::new(drives.clone(), "iam/keys"),
            system: Records::new(drives, SYSTEM_DIR),
            locker,
            sealer: RwLock::new(None),
            cache: RwLock::new(Cache::default()),
            builtin,
            notifier: RwLock::new(None),
            min_session: RwLock::new(MIN_STS),
        }
    }

    /// Let AssumeRole grant sessions shorter than AWS's 15 minutes (tests of expiry).
    pub fn set_min_session(&self, d: Duration) {
        *self.min_session.write() = d;
    }

    pub fn root(&self) -> &RootCredentials {
        &self.root
    }

    pub fn set_notifier(&self, notifier: Arc<dyn crate::records::Notifier>) {
        *self.notifier.write() = Some(notifier);
    }

    /// The sealer, made (once per deployment, under a cluster lock) on first use.
    async fn sealer(&self) -> IamResult<Arc<seal::Sealer>> {
        if let Some(s) = self.sealer.read().clone() {
            return Ok(s);
        }
        let key = match self.system.get::<SealKey>("seal").await? {
            Some(k) => k,
            None => {
                let _guard = self
                    .locker
                    .lock(SEAL_LOCK, true, Duration::from_secs(10))
                    .await?;
                match self.system.get::<SealKey>("seal").await? {
                    Some(k) => k,
                    None => {
                        let mut raw = [0u8; 32];
                        rand::thread_rng().fill(&mut raw);
                        let k = SealKey {
                            secret: hex::encode(raw),
                        };
                        self.system.put("seal", Some(&k), 0).await?;
                        k
                    }
                }
            }
        };
        let raw = hex::decode(&key.secret)
            .map_err(|_| IamError::Invalid("the IAM seal key record is damaged".into()))?;
        let s = Arc::new(seal::Sealer::new(&raw));
        *self.sealer.write() = Some(s.clone());
        Ok(s)
    }

    /// Read every record into the cache.
    pub async fn load(&self) -> IamResult<()> {
        let has_any = !self.users.names().await?.is_empty() || !self.keys.names().await?.is_empty();
        let sealer = if has_any {
            Some(self.sealer().await?)
        } else {
            self.sealer.read().clone()
        };
        let mut c = Cache::default();
        for (name, r) in self.users.all::<UserRecord>().await? {
            if let Some(u) = r.value {
                let secret = sealer
                    .as_ref()
                    .and_then(|s| s.open(&u.sealed_secret, &name))
                    .map(Secret);
                if secret.is_none() {
                    tracing::warn!(user = %name, "secret key does not open: the user cannot sign in");
                }
                c.users.insert(name, (u, secret));
            }
        }
        for (name, r) in self.groups.all::<GroupRecord>().await? {
            if let Some(g) = r.value {
                c.groups.insert(name, g);
            }
        }
        for (name, r) in self.policies.all::<PolicyRecord>().await? {
            if let Some(p) = r.value {
                match Policy::parse(&p.document) {
                    Ok(parsed) => {
                        c.policies.insert(name, (p, Arc::new(parsed)));
                    }
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "stored policy does not parse")
                    }
                }
            }
        }
        let now = now_secs();
        for (name, r) in self.keys.all::<KeyRecord>().await? {
            if let Some(k) = r.value {
                // Sessions long expired are dropped from the drives.
                if k.kind == KeyKind::Session && k.expiry.is_some_and(|e| e + 3600 < now) {
                    let _ = self.keys.put::<KeyRecord>(&name, None, r.stamp).await;
                    continue;
                }
                let secret = sealer
                    .as_ref()
                    .and_then(|s| s.open(&k.sealed_secret, &name))
                    .map(Secret);
                c.keys.insert(name, (k, secret));
            }
        }
        self.rebuild(&mut c);
        *self.cache.write() = c;
        Ok(())
    }

    /// Re-read every record every [`REFRESH`] until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        crate::records::spawn_refresh(self, REFRESH, stop, "IAM records", |me| async move {
            me.load().await
        });
    }

    fn named_policy(&self, c: &Cache, name: &str) -> Option<Arc<Policy>> {
        self.builtin
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .or_else(|| c.policies.get(name).map(|(_, p)| p.clone()))
    }

    /// The policies that apply to a user: its own and those of its enabled groups.
    fn user_policies(&self, c: &Cache, user: &str) -> Vec<Arc<Policy>> {
        let mut names: Vec<&String> = Vec::new();
        if let Some((u, _)) = c.users.get(user) {
            names.extend(u.policies.iter());
        }
        for g in c
            .groups
            .values()
            .filter(|g| g.enabled && g.members.contains(user))
        {
            names.extend(g.policies.iter());
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| self.named_policy(c, n))
            .collect()
    }

    fn rebuild(&self, c: &mut Cache) {
        let mut index = HashMap::new();
        for (name, (u, secret)) in &c.users {
            let Some(secret) = secret.clone() else {
                continue;
            };
            index.insert(
                name.clone(),
                Entry {
                    secret,
                    identity: Arc::new(Identity::User {
                        name: name.clone(),
                        policies: self.user_policies(c, name),
                    }),
                    refusal_at: None,
                    enabled: u.enabled,
                },
            );
        }
        for (key, (k, secret)) in &c.keys {
            let Some(secret) = secret.clone() else {
                continue;
            };
            let (parent_policies, parent_enabled) = if k.parent == self.root.access_key {
                (None, true)
            } else {
                match c.users.get(&k.parent) {
                    Some((u, _)) => (Some(self.user_policies(c, &k.parent)), u.enabled),
                    // The owner is gone: so is its key.
                    None => continue,
                }
            };
            // A session made with an access key goes with that key.
            let (source_enabled, source_expiry) = match &k.source {
                None => (true, None),
                Some(src) => match c.keys.get(src) {
                    Some((s, _)) => (s.enabled, s.expiry),
                    None => continue,
                },
            };
            let inline = k
                .policy
                .as_deref()
                .and_then(|p| Policy::parse(p).ok())
                .map(Arc::new);
            index.insert(
                key.clone(),
                Entry {
                    secret,
                    identity: Arc::new(Identity::Key {
                        access_key: key.clone(),
                        kind: k.kind,
                        parent: k.parent.clone(),
                        parent_policies,
                        inline,
                        token_hash: k.token_hash.clone(),
                    }),
                    refusal_at: match (k.expiry, source_expiry) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                    enabled: k.enabled && parent_enabled && source_enabled,
                },
            );
        }
        c.index = index;
    }

    /// The identity of a verified access key, or why it cannot be used.
    pub fn identity(&self, access_key: &str) -> Result<Arc<Identity>, Refusal> {
        if access_key == self.root.access_key {
            return Ok(Arc::new(Identity::Root {
                access_key: access_key.to_string(),
            }));
        }
        let c = self.cache.read();
        let e = c.index.get(access_key).ok_or(Refusal::Disabled)?;
        if !e.enabled {
            return Err(Refusal::Disabled);
        }
        if e.refusal_at.is_some_and(|t| t <= now_secs()) {
            return Err(Refusal::Expired);
        }
        Ok(e.identity.clone())
    }

    async fn changed(&self) {
        let n = self.notifier.read().clone();
        if let Some(n) = n {
            n.changed(CHANGED_SERVICE, "").await;
        }
    }

    async fn lock(&self) -> IamResult<crate::lock::LockGuard> {
        Ok(self
            .locker
            .lock(CONFIG_LOCK, true, Duration::from_secs(10))
            .await?)
    }

    /// Apply a change to the cache after its record was written, then tell the peers.
    async fn commit(&self) -> IamResult<()> {
        self.load().await?;
        self.changed().await;
        Ok(())
    }

    fn check_policies_exist(&self, names: &[String]) -> IamResult<()> {
        let c = self.cache.read();
        for n in names {
            if self.named_policy(&c, n).is_none() {
                return Err(IamError::NotFound(format!("policy {n}")));
            }
        }
        Ok(())
    }

    // ---- users ----

    pub async fn add_user(&self, access_key: &str, secret_key: &str) -> IamResult<()> {
        if !valid_name(access_key, 3) || access_key.contains(['=', ',']) {
            return Err(IamError::Invalid(
                "access key must be 3-128 characters of letters, digits and +.@_-".into(),
            ));
        }
        if !(8..=40).contains(&secret_key.len()) {
            return Err(IamError::Invalid(
                "secret key must be 8-40 characters".into(),
            ));
        }
        if access_key == self.root.access_key {
            return Err(IamError::Exists("the root user".into()));
        }
        let _g = self.lock().await?;
        if self.keys.get::<KeyRecord>(access_key).await?.is_some() {
            return Err(IamError::Exists(format!("access key {access_key}")));
        }
        let prev = self.users.read::<UserRecord>(access_key).await?;
        let sealer = self.sealer().await?;
        let (policies, created, after) = match &prev {
            Some(r) => match &r.value {
                // Adding an existing user sets its secret (MinIO's behaviour) and keeps the rest.
                Some(u) => (u.policies.clone(), u.created, r.stamp),
                None => (Vec::new(), now_nanos(), r.stamp),
            },
            None => (Vec::new(), now_nanos(), 0),
        };
        let rec = UserRecord {
            name: access_key.to_string(),
            sealed_secret: sealer.seal(secret_key, access_key),
            enabled: true,
            policies,
            created,
        };
        self.users.put(access_key, Some(&rec), after).await?;
        drop(_g);
        self.commit().await
    }

    async fn change_user<F: FnOnce(&mut UserRecord) -> IamResult<()>>(
        &self,
        access_key: &str,
        f: F,
    ) -> IamResult<()> {
        let _g = self.lock().await?;
        let Some(r) = self.users.read::<UserRecord>(access_key).await? else {
            return Err(IamError::NotFound(format!("user {access_key}")));
        };
        let Some(mut u) = r.value else {
            return Err(IamError::NotFound(format!("user {access_key}")));
        };
        f(&mut u)?;
        self.users.put(access_key, Some(&u), r.stamp).await?;
        drop(_g);
        self.commit().await
    }

    pub async fn set_user_enabled(&self, access_key: &str, enabled: bool) -> IamResult<()> {
        self.change_user(access_key, |u| {
            u.enabled = enabled;
            Ok(())
        })
        .await
    }

    pub async fn remove_user(&self, access_key: &str) -> IamResult<()> {
        let _g = self.lock().await?;
        let Some(r) = self.users.read::<UserRecord>(access_key).await? else {
            return Err(IamError::NotFound(format!("user {access_key}")));
        };
        if r.value.is_none() {
            return Err(IamError::NotFound(format!("user {access_key}")));
        }
        self.users
            .put::<UserRecord>(access_key, None, r.stamp)
            .await?;
        // Its access keys and group memberships go with it.
        let owned: Vec<String> = self
            .cache
            .read()
            .keys
            .iter()
            .filter(|(_, (k, _))| k.parent == access_key)
            .map(|(n, _)| n.clone())
            .collect();
        for k in owned {
            if let Some(r) = self.keys.read::<KeyRecord>(&k).await? {
                self.keys.put::<KeyRecord>(&k, None, r.stamp).await?;
            }
        }
        let groups: Vec<String> = self
            .cache
            .read()
            .groups
            .values()
            .filter(|g| g.members.contains(access_key))
            .map(|g| g.name.clone())
            .collect();
        for name in groups {
            if let Some(r) = self.groups.read::<GroupRecord>(&name).await? {
                if let Some(mut g) = r.value {
                    g.members.remove(access_key);
                    self.groups.put(&name, Some(&g), r.stamp).await?;
                }
            }
        }
        drop(_g);
        self.commit().await
    }

    pub fn list_users(&self) -> Vec<UserInfo> {
        let c = self.cache.read();
        c.users
            .keys()
            .filter_map(|n| self.user_info_in(&c, n))
            .collect()
    }

    fn user_info_in(&self, c: &Cache, name: &str) -> Option<UserInfo> {
        let (u, _) = c.users.get(name)?;
        let groups: Vec<&GroupRecord> = c
            .groups
            .values()
            .filter(|g| g.members.contains(name))
            .collect();
        let mut group_policies: Vec<String> = groups
            .iter()
            .filter(|g| g.enabled)
            .flat_map(|g| g.policies.iter().cloned())
            .collect();
        group_policies.sort();
        group_policies.dedup();
        Some(UserInfo {
            access_key: name.to_string(),
            enabled: u.enabled,
            policies: u.policies.clone(),
            groups: groups.iter().map(|g| g.name.clone()).collect(),
            group_policies,
            created: u.created,
        })
    }

    pub fn user_info(&self, name: &str) -> IamResult<UserInfo> {
        let c = self.cache.read();
        self.user_info_in(&c, name)
            .ok_or_else(|| IamError::NotFound(format!("user {name}")))
    }

    // ---- groups ----

    /// Add members to a group (made if new).
    pub async fn group_add(&self, group: &str, members: &[String]) -> IamResult<()> {
        if !valid_name(group, 1) {
            return Err(IamError::Invalid("invalid group name".into()));
        }
        {
            let c = self.cache.read();
            if let Some(m) = members.iter().find(|m| !c.users.contains_key(*m)) {
                return Err(IamError::NotFound(format!("user {m}")));
            }
        }
        let _g = self.lock().await?;
        let prev = self.groups.read::<GroupRecord>(group).await?;
        let after = prev.as_ref().map_or(0, |r| r.stamp);
        let mut g = prev.and_then(|r| r.value).unwrap_or(GroupRecord {
            name: group.to_string(),
            members: BTreeSet::new(),
            policies: Vec::new(),
            enabled: true,
        });
        g.members.extend(members.iter().cloned());
        self.groups.put(group, Some(&g), after).await?;
        drop(_g);
        self.commit().await
    }

    /// Remove members, or (none given) the group itself, which must then be empty.
    pub async fn group_remove(&self, group: &str, members: &[String]) -> IamResult<()> {
        let _g = self.lock().await?;
        let Some(r) = self.groups.read::<GroupRecord>(group).await? else {
            return Err(IamError::NotFound(format!("group {group}")));
        };
        let Some(mut g) = r.value else {
            return Err(IamError::NotFound(format!("group {group}")));
        };
        if members.is_empty() {
            if !g.members.is_empty() {
                return Err(IamError::Invalid(format!(
                    "group {group} still has members: remove them first"
                )));
            }
            self.groups.put::<GroupRecord>(group, None, r.stamp).await?;
        } else {
            for m in members {
                if !g.members.remove(m) {
                    return Err(IamError::NotFound(format!("member {m} of group {group}")));
                }
            }
            self.groups.put(group, Some(&g), r.stamp).await?;
        }
        drop(_g);
        self.commit().await
    }

    /// Enable or disable a group: a disabled group's policies stop applying to its members
    /// (MinIO's `mc admin group enable|disable`); its members and policies are kept.
    pub async fn set_group_enabled(&self, group: &str, enabled: bool) -> IamResult<()> {
        let _g = self.lock().await?;
        let Some(r) = self.groups.read::<GroupRecord>(group).await? else {
            return Err(IamError::NotFound(format!("group {group}")));
        };
        let Some(mut g) = r.value else {
            return Err(IamError::NotFound(format!("group {group}")));
        };
        g.enabled = enabled;
        self.groups.put(group, Some(&g), r.stamp).await?;
        drop(_g);
        self.commit().await
    }

    pub fn list_groups(&self) -> Vec<GroupInfo> {
        self.cache.read().groups.values().map(group_info).collect()
    }

    pub fn group_info(&self, group: &str) -> IamResult<GroupInfo> {
        self.cache
            .read()
            .groups
            .get(group)
            .map(group_info)
            .ok_or_else(|| IamError::NotFound(format!("group {group}")))
    }

    // ---- policies ----

    pub async fn create_policy(&self, name: &str, document: &str) -> IamResult<()> {
        if !valid_name(name, 1) {
            return Err(IamError::Invalid("invalid policy name".into()));
        }
        if builtin::is_builtin(name) {
            return Err(IamError::Invalid(format!("{name} is a built-in policy")));
        }
        Policy::parse_identity_policy(document)?;
        let _g = self.lock().await?;
        let prev = self.policies.read::<PolicyRecord>(name).await?;
        let rec = PolicyRecord {
            name: name.to_string(),
            document: document.to_string(),
            created: now_nanos(),
        };
        self.policies
            .put(name, Some(&rec), prev.map_or(0, |r| r.stamp))
            .await?;
        drop(_g);
        self.commit().await
    }

    pub async fn remove_policy(&self, name: &str) -> IamResult<()> {
        if builtin::is_builtin(name) {
            return Err(IamError::Invalid(format!("{name} is a built-in policy")));
        }
        {
            let c = self.cache.read();
            let used = c
                .users
                .values()
                .any(|(u, _)| u.policies.iter().any(|p| p == name))
                || c.groups
                    .values()
                    .any(|g| g.policies.iter().any(|p| p == name));
            if used {
                return Err(IamError::Invalid(format!(
                    "policy {name} is attached: detach it first"
                )));
            }
        }
        let _g = self.lock().await?;
        let Some(r) = self.policies.read::<PolicyRecord>(name).await? else {
            return Err(IamError::NotFound(format!("policy {name}")));
        };
        if r.value.is_none() {
            return Err(IamError::NotFound(format!("policy {name}")));
        }
        self.policies
            .put::<PolicyRecord>(name, None, r.stamp)
            .await?;
        drop(_g);
        self.commit().await
    }

    pub fn list_policies(&self) -> Vec<PolicyInfo> {
        let c = self.cache.read();
        let mut out: Vec<PolicyInfo> = builtin::BUILTIN
            .iter()
            .map(|(n, d)| PolicyInfo {
                name: n.to_string(),
                builtin: true,
                document: serde_json::from_str(d).unwrap_or_default(),
            })
            .collect();
        out.extend(c.policies.values().map(|(p, _)| PolicyInfo {
            name: p.name.clone(),
            builtin: false,
            document: serde_json::from_str(&p.document).unwrap_or_default(),
        }));
        out
    }

    pub fn policy_info(&self, name: &str) -> IamResult<PolicyInfo> {
        self.list_policies()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| IamError::NotFound(format!("policy {name}")))
    }

    /// Attach (or detach) a policy to a user or a group.
    pub async fn attach(&self, policy: &str, target: &Target, attach: bool) -> IamResult<()> {
        self.check_policies_exist(&[policy.to_string()])?;
        let edit = |list: &mut Vec<String>| -> IamResult<()> {
            let has = list.iter().any(|p| p == policy);
            match (attach, has) {
                (true, false) => list.push(policy.to_string()),
                (false, true) => list.retain(|p| p != policy),
                (true, true) => {}
                (false, false) => {
                    return Err(IamError::NotFound(format!(
                        "policy {policy} is not attached"
                    )))
                }
            }
            Ok(())
        };
        match target {
            Target::User(u) => self.change_user(u, |rec| edit(&mut rec.policies)).await,
            Target::Group(g) => {
                let _l = self.lock().await?;
                let Some(r) = self.groups.read::<GroupRecord>(g).await? else {
                    return Err(IamError::NotFound(format!("group {g}")));
                };
                let Some(mut rec) = r.value else {
                    return Err(IamError::NotFound(format!("group {g}")));
                };
                edit(&mut rec.policies)?;
                self.groups.put(g, Some(&rec), r.stamp).await?;
                drop(_l);
                self.commit().await
            }
        }
    }

    // ---- access keys ----

    /// Create an access key for `parent` (a user, or the root user), limited by `policy`.
    pub async fn create_key(
        &self,
        parent: &str,
        policy: Option<&str>,
        expiry: Option<i64>,
        name: Option<&str>,
    ) -> IamResult<NewKey> {
        if parent != self.root.access_key && !self.cache.read().users.contains_key(parent) {
            return Err(IamError::NotFound(format!("user {parent}")));
        }
        if let Some(p) = policy {
            Policy::parse_identity_policy(p)?;
        }
        if expiry.is_some_and(|e| e <= now_secs()) {
            return Err(IamError::Invalid("the expiry is in the past".into()));
        }
        self.store_key(
            KeyKind::ServiceAccount,
            parent,
            policy,
            expiry,
            name,
            None,
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_key(
        &self,
        kind: KeyKind,
        parent: &str,
        policy: Option<&str>,
        expiry: Option<i64>,
        name: Option<&str>,
        token: Option<&str>,
        source: Option<&str>,
    ) -> IamResult<NewKey> {
        let sealer = self.sealer().await?;
        let access_key = new_access_key();
        let secret_key = new_secret_key();
        let rec = KeyRecord {
            access_key: access_key.clone(),
            sealed_secret: sealer.seal(&secret_key, &access_key),
            kind,
            parent: parent.to_string(),
            policy: policy.map(String::from),
            expiry,
            name: name.map(String::from),
            enabled: true,
            token_hash: token.map(token_hash),
            source: source.map(String::from),
            created: now_nanos(),
        };
        self.keys.put(&access_key, Some(&rec), 0).await?;
        self.commit().await?;
        Ok(NewKey {
            access_key,
            secret_key,
            session_token: token.map(String::from),
            expiry: expiry.map(rfc3339),
        })
    }

    pub async fn remove_key(&self, access_key: &str) -> IamResult<()> {
        let g = self.lock().await?;
        let Some(r) = self.keys.read::<KeyRecord>(access_key).await? else {
            return Err(IamError::NotFound(format!("access key {access_key}")));
        };
        if r.value.is_none() {
            return Err(IamError::NotFound(format!("access key {access_key}")));
        }
        self.keys
            .put::<KeyRecord>(access_key, None, r.stamp)
            .await?;
        drop(g);
        self.commit().await
    }

    /// The owner of an access key, if it is one.
    pub fn key_parent(&self, access_key: &str) -> Option<String> {
        self.cache
            .read()
            .keys
            .get(access_key)
            .map(|(k, _)| k.parent.clone())
    }

    /// When an access key expires (seconds since the epoch), if it does.
    pub fn key_expiry(&self, access_key: &str) -> Option<i64> {
        self.cache
            .read()
            .keys
            .get(access_key)
            .and_then(|(k, _)| k.expiry)
    }

    pub fn list_keys(&self, parent: Option<&str>) -> Vec<KeyInfo> {
        self.cache
            .read()
            .keys
            .values()
            .filter(|(k, _)| k.kind == KeyKind::ServiceAccount)
            .filter(|(k, _)| parent.is_none_or(|p| k.parent == p))
            .map(|(k, _)| KeyInfo {
                access_key: k.access_key.clone(),
                parent: k.parent.clone(),
                kind: k.kind,
                name: k.name.clone(),
                expiry: k.expiry.map(rfc3339),
                enabled: k.enabled,
                has_policy: k.policy.is_some(),
            })
            .collect()
    }

    /// STS AssumeRole: temporary credentials for `identity`'s user, limited by `policy`.
    pub async fn assume_role(
        &self,
        identity: &Identity,
        duration: Option<Duration>,
        policy: Option<&str>,
    ) -> IamResult<NewKey> {
        let duration = duration.unwrap_or(DEFAULT_STS);
        if duration < *self.min_session.read() || duration > MAX_STS {
            return Err(IamError::Invalid(
                "DurationSeconds must be between 900 and 43200".into(),
            ));
        }
        if let Some(p) = policy {
            Policy::parse_identity_policy(p)?;
        }
        // A session's own session cannot outlive or outgrow it: sessions are made from
        // long-lived identities only.
        if let Identity::Key {
            kind: KeyKind::Session,
            ..
        } = identity
        {
            return Err(IamError::Invalid(
                "temporary credentials cannot assume a role".into(),
            ));
        }
        let inline = match (identity, policy) {
            (
                Identity::Key {
                    inline: Some(_), ..
                },
                Some(_),
            ) => {
                return Err(IamError::Invalid(
                    "an access key with its own policy cannot add a session policy".into(),
                ))
            }
            (Identity::Key { access_key, .. }, None) => self
                .cache
                .read()
                .keys
                .get(access_key)
                .and_then(|(k, _)| k.policy.clone()),
            (_, p) => p.map(String::from),
        };
        let token = random_string(
            96,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        );
        // A session made with an access key ends no later than the key (and with it: see
        // `source` in `rebuild`).
        let source = match identity {
            Identity::Key { access_key, .. } => Some(access_key.as_str()),
            _ => None,
        };
        let mut expiry = now_secs().saturating_add(duration.as_secs() as i64);
        if let Some(key_expiry) = source.and_then(|k| self.key_expiry(k)) {
            expiry = expiry.min(key_expiry);
        }
        self.store_key(
            KeyKind::Session,
            identity.user_name(),
            inline.as_deref(),
            Some(expiry),
            None,
            Some(&token),
            source,
        )
        .await
    }

    /// Does a request's `x-amz-security-token` fit its access key?
    pub fn token_fits(identity: &Identity, token: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        match (identity, token) {
            (
                Identity::Key {
                    token_hash: Some(h),
                    ..
                },
                Some(t),
            ) => bool::from(token_hash(t).as_bytes().ct_eq(h.as_bytes())),
            (
                Identity::Key {
                    token_hash: Some(_),
                    ..
                },
                None,
            ) => false,
            (_, None) => true,
            (_, Some(_)) => false,
        }
    }
}

fn group_info(g: &GroupRecord) -> GroupInfo {
    GroupInfo {
        name: g.name.clone(),
        members: g.members.iter().cloned().collect(),
        policies: g.policies.clone(),
        enabled: g.enabled,
    }
}

/// A user or a group, for policy attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(String),
    Group(String),
}

impl Credentials for Iam {
    fn secret_for(&self, access_key: &str) -> Option<String> {
        if access_key == self.root.access_key {
            return Some(self.root.secret_key.clone());
        }
        self.cache
            .read()
            .index
            .get(access_key)
            .map(|e| e.secret.0.clone())
    }
}

/// Peers tell this node IAM records changed: re-read them.
#[async_trait::async_trait]
impl crate::rpc::Service for Iam {
    async fn call(&self, _body: bytes::Bytes) -> Result<Vec<u8>, String> {
        self.load().await.map_err(|e| e.to_string())?;
        Ok(Vec::new())
    }
}
