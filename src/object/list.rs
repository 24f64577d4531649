//! Listing: a lazy, ordered walk of each set's directory tree (the union of its drives'
//! entries), merged across sets. A page costs the directories it passes through and the
//! objects it returns, not the size of the bucket: each directory is fetched from the drives
//! in sorted batches of the names the walk still wants (after the start key, under the
//! prefix), so a page of a directory of 100,000 keys sends one page of names per drive.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;

use super::put::info_of;
use super::quorum::{agree_listed, agree_on, agreed_versions, fan_out, STILL_RUNNING};
use super::{check_bucket, ErasureSet, ObjectError, ObjectInfo, ObjectResult, Store};
use crate::drive::{DirQuery, DriveError, DriveResult};
use crate::meta::{Version, VersionKind};

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Return keys (and common prefixes) strictly after this one.
    pub start_after: String,
    pub max_keys: usize,
    /// Also keys whose latest version is a delete marker (as that marker): every key that
    /// has versions, for the walks of heal and the scanner.
    pub every_key: bool,
    /// Only the keys this server pool holds (a decommission's or rebalance's walk).
    pub pool: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    pub next_marker: Option<String>,
}

#[derive(Debug)]
enum Candidate {
    Object(String),
    Dir(String),
}

/// One page of a bucket's versions (`ListObjectVersions`).
#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    /// Versions and delete markers in key order, newest first within a key, each with
    /// whether it is the key's latest.
    pub versions: Vec<(ObjectInfo, bool)>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts: after this key...
    pub next_key_marker: Option<String>,
    /// ...and, within it, after this version (`Some(None)`: the null version).
    pub next_version_marker: Option<Option<uuid::Uuid>>,
}

/// A walk over a bucket's versions ([`Store::walk_versions`]).
pub struct VersionWalk<'a> {
    store: &'a Store,
    bucket: String,
    key_marker: String,
    version_marker: Option<Option<uuid::Uuid>>,
    done: bool,
}

impl VersionWalk<'_> {
    /// The next page (up to 1,000 versions; a key's versions may span pages), or `None`
    /// at the end.
    pub async fn next_page(&mut self) -> ObjectResult<Option<Vec<ObjectInfo>>> {
        if self.done {
            return Ok(None);
        }
        let opts = ListOptions {
            prefix: String::new(),
            delimiter: None,
            start_after: self.key_marker.clone(),
            max_keys: 1000,
            every_key: true,
            pool: None,
        };
        let page = self
            .store
            .list_versions(&self.bucket, &opts, self.version_marker)
            .await?;
        match (page.truncated, page.next_key_marker) {
            (true, Some(k)) => {
                self.key_marker = k;
                self.version_marker = page.next_version_marker;
            }
            _ => self.done = true,
        }
        Ok(Some(page.versions.into_iter().map(|(v, _)| v).collect()))
    }
}

enum Item {
    Object(Box<ObjectInfo>),
    /// Every version of one key, newest first (version listings).
    Versions(String, Vec<ObjectInfo>),
    Prefix(String),
}

impl Item {
    /// The modification time of the newest version it carries (prefixes: none).
    fn newest(&self) -> i64 {
        match self {
            Item::Object(o) => o.mod_time,
            Item::Versions(_, v) => v.first().map_or(i64::MIN, |v| v.mod_time),
            Item::Prefix(_) => i64::MIN,
        }
    }

    fn name(&self) -> &str {
        match self {
            Item::Object(o) => &o.key,
            Item::Versions(k, _) => k,
            Item::Prefix(p) => p,
        }
    }
}

/// How far a directory has been fetched.
enum Fetched {
    Nothing,
    /// Every name whose key (`dir + name`) is at or before this one is among the candidates.
    UpTo(String),
    All,
}

/// One directory of the walk: the candidates fetched so far, in key order.
struct DirCursor {
    dir: String,
    /// Candidate key → whether it stands for the directory `name/` (else the object `name`).
    pending: BTreeMap<String, bool>,
    fetched: Fetched,
}

impl DirCursor {
    fn new(dir: String) -> Self {
        DirCursor {
            dir,
            pending: BTreeMap::new(),
            fetched: Fetched::Nothing,
        }
    }

    /// The next candidate, if the fetched names are enough to know it.
    fn ready(&mut self) -> Option<Candidate> {
        let (key, _) = self.pending.first_key_value()?;
        let known = match &self.fetched {
            Fetched::Nothing => false,
            Fetched::All => true,
            // A name not fetched yet sorts after `last`, so only a candidate past `last`
            // (like `a/` for the name `a` when `a-b` is not fetched yet) has to wait.
            Fetched::UpTo(last) => key <= last,
        };
        if !known {
            return None;
        }
        let (key, is_dir) = self.pending.pop_first()?;
        Some(if is_dir {
            Candidate::Dir(key)
        } else {
            Candidate::Object(key)
        })
    }
}

/// Ordered walk of one set.
struct SetWalker<'a> {
    set: &'a ErasureSet,
    bucket: &'a str,
    prefix: String,
    after: String,
    /// Fold directories into common prefixes at the first `/` after the prefix.
    slash_delimited: bool,
    stack: Vec<DirCursor>,
    started: bool,
    /// Names fetched per drive call.
    batch: usize,
    /// Metadata read ahead for the next object candidates: key → one result per drive.
    prefetched: HashMap<String, Vec<DriveResult<Bytes>>>,
    /// Listings of latest versions: each prefetched key's agreed latest version.
    agreed: HashMap<String, ObjectResult<Version>>,
    /// Keys known to have nothing below them on any drive asked (so nothing a read would
    /// find): their `key/` is not descended.
    leaves: HashSet<String>,
    /// Yield every version of each key (a version listing), not only the latest.
    versions: bool,
}

/// Object metadata is read at most this many keys at a time (one call per drive, which a
/// local drive whose reads go to the device splits among a few blocking calls), and no more
/// than a page's worth of names.
const PREFETCH: usize = 256;
/// Names fetched per drive call when a walk only asks whether a directory holds anything.
/// (Tiny in tests, so that small listings cross batch boundaries.)
const PROBE_BATCH: usize = if cfg!(test) { 2 } else { 16 };
/// Most names fetched per drive call.
const MAX_BATCH: usize = 10_000;

/// A drive position a listing did not read the metadata from: not a disagreement.
fn not_asked() -> DriveError {
    DriveError::NotDone(STILL_RUNNING)
}

impl<'a> SetWalker<'a> {
    fn new(
        set: &'a ErasureSet,
        bucket: &'a str,
        prefix: &str,
        after: &str,
        slash: bool,
        batch: usize,
    ) -> Self {
        SetWalker {
            set,
            bucket,
            prefix: prefix.to_string(),
            after: after.to_string(),
            slash_delimited: slash,
            stack: Vec::new(),
            started: false,
            batch,
            prefetched: HashMap::new(),
            agreed: HashMap::new(),
            leaves: HashSet::new(),
            versions: false,
        }
    }

    fn with_versions(mut self) -> Self {
        self.versions = true;
        self
    }

    /// Fetch the next batch of the top directory's names (the union of the drives' sorted
    /// batches, up to the smallest last name of a drive that has more).
    async fn fetch(&mut self) -> ObjectResult<()> {
        let Some(top) = self.stack.last_mut() else {
            return Ok(());
        };
        let query = DirQuery {
            from: match &top.fetched {
                Fetched::UpTo(k) => Some(k[top.dir.len()..].to_string()),
                _ => None,
            },
            after: self.after.clone(),
            prefix: self.prefix.clone(),
            limit: self.batch,
        };
        let dir = top.dir.clone();
        let results = fan_out(&self.set.drives, |_, d| {
            d.list_dir(self.bucket, &dir, &query)
        })
        .await;
        let (mut ok, mut no_bucket) = (0, 0);
        let mut pages = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(p) => {
                    ok += 1;
                    pages.push(p);
                }
                Err(DriveError::BucketNotFound) => no_bucket += 1,
                Err(_) => {}
            }
        }
        let n = self.set.size();
        if no_bucket * 2 > n {
            return Err(ObjectError::NoSuchBucket);
        }
        let need = n - self.set.parity;
        if ok < need.min(n.div_ceil(2)) {
            return Err(ObjectError::ReadQuorum { ok, need });
        }
        // Names past a drive's last one may be missing from its page: stop at the first.
        let bound = pages
            .iter()
            .filter(|p| p.more)
            .filter_map(|p| p.names.last())
            .min()
            .cloned();
        // A name flagged as a delete marker with nothing below it, by so many drives that the
        // others are fewer than a read quorum, is no key of a listing of latest versions and
        // holds none: skipped unread. (A flag is true on its drive: cleared before any other
        // commit of its key or below it. With fewer than a read quorum unflagged, no newer
        // version — not even one a crash left on a minority of drives — has the quorum a
        // read would take it on; and after a write acknowledged at write quorum, fewer than
        // a read quorum still flag it.)
        let mut flagged: HashMap<String, usize> = HashMap::new();
        if !self.versions {
            for name in pages.iter().flat_map(|p| &p.markers) {
                *flagged.entry(name.clone()).or_default() += 1;
            }
        }
        // Counted against every drive, not those that answered: a drive that did not answer
        // may hold a newer version too.
        let rq = crate::placement::read_quorum(n - self.set.parity);
        let skip = rq.max((n + 1).saturating_sub(rq));
        // Mostly the same names from every drive: each is made a candidate once.
        let mut names: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.names)
            .filter(|name| bound.as_ref().is_none_or(|b| name <= b))
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            if flagged.get(&name).is_some_and(|c| *c >= skip) {
                continue;
            }
            let key = format!("{dir}{name}");
            top.pending.insert(format!("{key}/"), true);
            top.pending.insert(key, false);
        }
        top.fetched = match bound {
            Some(b) => Fetched::UpTo(format!("{dir}{b}")),
            None => Fetched::All,
        };
        Ok(())
    }

    /// The next candidate of the walk, fetching directories as needed.
    async fn next_candidate(&mut self) -> ObjectResult<Option<Candidate>> {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            if let Some(c) = top.ready() {
                return Ok(Some(c));
            }
            if matches!(top.fetched, Fetched::All) {
                self.stack.pop();
                continue;
            }
            self.fetch().await?;
        }
    }

    /// Read the metadata of `key` and of the object candidates that follow it in the current
    /// directory, one call per drive.
    ///
    /// A version listing reads every drive. A listing of latest versions reads the heads
    /// from a read quorum (at least `parity + 1`) of the drives first
    /// ([`SetWalker::meta_drives`]), and whether keys continue below each key from those
    /// drives too; the others are not asked unless a key's asked drives do not all agree on
    /// a version backed by its read quorum, which is then read from the others too. The
    /// asked drives meet every write quorum (`read quorum + write quorum > drives`), so an
    /// acknowledged change to a key is always among what they hold; and the others are
    /// fewer than a read quorum, so no version a read would take (one a crash left on a
    /// read quorum only) and no key below that a read would find is missing from them all.
    async fn prefetch(&mut self, key: &str) {
        let mut batch = vec![key.to_string()];
        if let Some(top) = self.stack.last() {
            batch.extend(
                top.pending
                    .iter()
                    .filter(|(k, is_dir)| {
                        !**is_dir && k.starts_with(&self.prefix) && **k > self.after
                    })
                    .map(|(k, _)| k.clone())
                    .take(self.batch.min(PREFETCH) - 1),
            );
        }
        let n = self.set.drives.len();
        let asked = if self.versions {
            vec![true; n]
        } else {
            self.meta_drives()
        };
        let results = if self.versions {
            fan_out(&self.set.drives, |_, d| d.read_entries(self.bucket, &batch)).await
        } else {
            let (batch, bucket) = (&batch, self.bucket);
            fan_out(&self.set.drives, |i, d| {
                let asked = asked[i];
                async move {
                    match asked {
                        true => d.read_entry_heads(bucket, batch, true).await,
                        false => Err(not_asked()),
                    }
                }
            })
            .await
        };
        let mut per_key: Vec<Vec<DriveResult<Bytes>>> =
            (0..batch.len()).map(|_| Vec::with_capacity(n)).collect();
        // A key is a leaf only if every drive asked answered and none has keys below it.
        // The drives not asked are fewer than a read quorum, so a key below that a read
        // would find (on a read quorum) is on at least one drive asked.
        let mut leaf = vec![asked.contains(&true); batch.len()];
        for (r, asked) in results.into_iter().zip(&asked) {
            if !*asked {
                per_key.iter_mut().for_each(|s| s.push(Err(not_asked())));
                continue;
            }
            match r {
                Ok(v) if v.len() == batch.len() => {
                    for ((slot, e), l) in per_key.iter_mut().zip(v).zip(leaf.iter_mut()) {
                        *l &= !e.has_children;
                        slot.push(e.meta);
                    }
                }
                Ok(_) => {
                    leaf.iter_mut().for_each(|l| *l = false);
                    per_key
                        .iter_mut()
                        .for_each(|s| s.push(Err(DriveError::Offline("short answer".into()))));
                }
                Err(e) => {
                    leaf.iter_mut().for_each(|l| *l = false);
                    per_key.iter_mut().for_each(|s| s.push(Err(e.again())));
                }
            }
        }
        self.leaves.extend(
            batch
                .iter()
                .zip(&leaf)
                .filter(|(_, l)| **l)
                .map(|(k, _)| k.clone()),
        );
        if self.versions {
            self.prefetched.extend(batch.into_iter().zip(per_key));
            return;
        }
        // Keys the asked drives settle; the rest read from the other drives as well.
        let asked_count = asked.iter().filter(|a| **a).count();
        let mut unsettled = Vec::new();
        for (k, metas) in batch.into_iter().zip(per_key) {
            match agree_listed(self.set, &metas) {
                Ok((v, members)) if members == asked_count => {
                    self.agreed.insert(k, Ok(v));
                }
                _ => unsettled.push((k, metas)),
            }
        }
        if unsettled.is_empty() {
            return;
        }
        let keys: Vec<String> = unsettled.iter().map(|(k, _)| k.clone()).collect();
        let (keys, bucket) = (&keys, self.bucket);
        let rest = fan_out(&self.set.drives, |i, d| {
            let asked = asked[i];
            async move {
                match asked {
                    true => Ok(Vec::new()),
                    false => d.read_entry_heads(bucket, keys, true).await,
                }
            }
        })
        .await;
        for (i, r) in rest.into_iter().enumerate() {
            if asked[i] {
                continue;
            }
            match r {
                Ok(v) if v.len() == keys.len() => {
                    for ((_, metas), e) in unsettled.iter_mut().zip(v) {
                        metas[i] = e.meta;
                    }
                }
                Ok(_) => unsettled
                    .iter_mut()
                    .for_each(|(_, m)| m[i] = Err(DriveError::Offline("short answer".into()))),
                Err(e) => unsettled
                    .iter_mut()
                    .for_each(|(_, m)| m[i] = Err(e.again())),
            }
        }
        for (k, metas) in unsettled {
            let agreed = agree_listed(self.set, &metas).map(|(v, _)| v);
            self.agreed.insert(k, agreed);
        }
    }

    /// The drives a listing of latest versions reads heads from first, this node's own
    /// drives before remote ones: a read quorum of the set (`drives − parity`), and at least
    /// `parity + 1` — so that the drives not asked are fewer than a read quorum and cannot
    /// hold a version a read would take (a write cut short on exactly a read quorum of a
    /// 2+2 set is read as new; asking only the other two would list it as old).
    fn meta_drives(&self) -> Vec<bool> {
        let n = self.set.drives.len();
        let want = crate::placement::read_quorum(n - self.set.parity).max(self.set.parity + 1);
        let mut asked = vec![false; n];
        let mut order: Vec<usize> = (0..n).filter(|i| self.set.drives[*i].is_some()).collect();
        order.sort_by_key(|i| !self.set.drives[*i].as_ref().is_some_and(|d| d.is_local()));
        for i in order.into_iter().take(want) {
            asked[i] = true;
        }
        asked
    }

    fn next(&mut self) -> Pin<Box<dyn Future<Output = ObjectResult<Option<Item>>> + Send + '_>> {
        Box::pin(async move {
            if !self.started {
                self.started = true;
                let dir = match self.prefix.rfind('/') {
                    Some(i) => self.prefix[..=i].to_string(),
                    None => String::new(),
                };
                self.stack.push(DirCursor::new(dir));
            }
            loop {
                let Some(c) = self.next_candidate().await? else {
                    return Ok(None);
                };
                match c {
                    Candidate::Object(key) => {
                        if !key.starts_with(&self.prefix) || key <= self.after {
                            continue;
                        }
                        if !self.versions {
                            let agreed =
                                match self.agreed.remove(&key) {
                                    Some(a) => a,
                                    None => {
                                        self.prefetch(&key).await;
                                        self.agreed.remove(&key).unwrap_or(Err(
                                            ObjectError::Internal("key not prefetched".into()),
                                        ))
                                    }
                                };
                            match agreed {
                                Ok(v) if v.kind == VersionKind::DeleteMarker => continue,
                                Ok(v) => {
                                    return Ok(Some(Item::Object(Box::new(info_of(
                                        self.bucket,
                                        &key,
                                        &v,
                                    )))))
                                }
                                Err(ObjectError::NoSuchKey) => continue,
                                Err(ObjectError::NoSuchBucket) => {
                                    return Err(ObjectError::NoSuchBucket)
                                }
                                Err(e) => {
                                    tracing::warn!(bucket = self.bucket, key, error = %e, "skipping unreadable object in listing");
                                    continue;
                                }
                            }
                        }
                        let metas = match self.prefetched.remove(&key) {
                            Some(m) => m,
                            None => {
                                self.prefetch(&key).await;
                                self.prefetched.remove(&key).unwrap_or_default()
                            }
                        };
                        let all = agreed_versions(&metas);
                        if !all.is_empty() {
                            let infos = all.iter().map(|v| info_of(self.bucket, &key, v)).collect();
                            return Ok(Some(Item::Versions(key, infos)));
                        }
                        match agree_on(self.set, metas) {
                            Err(ObjectError::NoSuchBucket) => {
                                return Err(ObjectError::NoSuchBucket)
                            }
                            Ok(_) | Err(ObjectError::NoSuchKey) => continue,
                            Err(e) => {
                                tracing::warn!(bucket = self.bucket, key, error = %e, "skipping unreadable object in listing");
                                continue;
                            }
                        }
                    }
                    Candidate::Dir(dir) => {
                        if self.leaves.remove(&dir[..dir.len() - 1]) {
                            continue;
                        }
                        let under_prefix = dir.starts_with(&self.prefix);
                        if !under_prefix && !self.prefix.starts_with(&dir) {
                            continue;
                        }
                        // Everything under `dir` sorts before `after`.
                        if dir < self.after && !self.after.starts_with(&dir) {
                            continue;
                        }
                        if self.slash_delimited && under_prefix {
                            if dir <= self.after || self.after.starts_with(&dir) {
                                continue;
                            }
                            // A version listing shows a prefix holding only versions and
                            // markers; a listing of latest versions does not.
                            let mut sub =
                                SetWalker::new(self.set, self.bucket, &dir, "", false, PROBE_BATCH);
                            sub.versions = self.versions;
                            if sub.next().await?.is_some() {
                                return Ok(Some(Item::Prefix(dir)));
                            }
                            continue;
                        }
                        self.stack.push(DirCursor::new(dir));
                    }
                }
            }
        })
    }
}

/// The walks of every set merged in key order, with keys folded into common prefixes at
/// the delimiter (each prefix once).
struct Merged<'a> {
    walkers: Vec<SetWalker<'a>>,
    heads: Vec<Option<Item>>,
    prefix: String,
    /// A delimiter other than `/` (which the walkers fold themselves).
    fold: Option<String>,
    start_after: String,
    last_prefix: Option<String>,
}

impl<'a> Merged<'a> {
    async fn new(
        store: &'a Store,
        bucket: &'a str,
        opts: &ListOptions,
        versions: bool,
    ) -> ObjectResult<Merged<'a>> {
        let delimiter = opts.delimiter.as_deref().filter(|d| !d.is_empty());
        let slash = delimiter == Some("/");
        // One more than the page, to know whether it is truncated.
        let batch = opts
            .max_keys
            .saturating_add(1)
            .clamp(PROBE_BATCH, MAX_BATCH);
        let states = store.pool_states();
        let mut walkers: Vec<SetWalker> = store
            .sets
            .iter()
            .filter(|s| match opts.pool {
                Some(p) => s.pool == p,
                // An emptied pool holds nothing to list.
                None => states.get(s.pool) != Some(&super::PoolState::Decommissioned),
            })
            .map(|s| {
                let w = SetWalker::new(s, bucket, &opts.prefix, &opts.start_after, slash, batch);
                if versions {
                    w.with_versions()
                } else {
                    w
                }
            })
            .collect();
        let mut heads: Vec<Option<Item>> = Vec::with_capacity(walkers.len());
        for w in walkers.iter_mut() {
            heads.push(w.next().await?);
        }
        Ok(Merged {
            walkers,
            heads,
            prefix: opts.prefix.clone(),
            fold: delimiter.filter(|_| !slash).map(str::to_string),
            start_after: opts.start_after.clone(),
            last_prefix: None,
        })
    }

    async fn next(&mut self) -> ObjectResult<Option<Item>> {
        // Take the smallest head across sets, until all are done.
        while let Some(i) = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, h.name())))
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i)
        {
            let mut item = self.heads[i].take();
            self.heads[i] = self.walkers[i].next().await?;
            // A key in two pools (a move in flight): the newest copy, once.
            if let Some(name) = item.as_ref().map(|it| it.name().to_string()) {
                for j in 0..self.heads.len() {
                    while self.heads[j].as_ref().is_some_and(|h| h.name() == name) {
                        let other = self.heads[j].take();
                        self.heads[j] = self.walkers[j].next().await?;
                        if let (Some(a), Some(b)) = (&item, &other) {
                            if b.newest() > a.newest() {
                                item = other;
                            }
                        }
                    }
                }
            }
            let Some(item) = item else { continue };
            // Fold into a common prefix for a general delimiter.
            let item = match &self.fold {
                Some(d) if !matches!(item, Item::Prefix(_)) => {
                    let key = item.name();
                    match key[self.prefix.len()..].find(d.as_str()) {
                        Some(pos) => {
                            Item::Prefix(key[..self.prefix.len() + pos + d.len()].to_string())
                        }
                        None => item,
                    }
                }
                _ => item,
            };
            if let Item::Prefix(p) = &item {
                if self.last_prefix.as_deref() == Some(p.as_str()) || *p <= self.start_after {
                    continue;
                }
                self.last_prefix = Some(p.clone());
            }
            return Ok(Some(item));
        }
        Ok(None)
    }
}

impl Store {
    /// One page of `bucket`'s keys in UTF-8 byte order, merged across sets.
    pub async fn list_objects(&self, bucket: &str, opts: &ListOptions) -> ObjectResult<ListPage> {
        check_bucket(bucket)?;
        if !self.bucket_exists(bucket).await? {
            return Err(ObjectError::NoSuchBucket);
        }
        let mut page = ListPage::default();
        if opts.max_keys == 0 {
            // As AWS: an empty page that is not truncated, whatever the bucket holds.
            return Ok(page);
        }
        let mut merged = Merged::new(self, bucket, opts, opts.every_key).await?;
        let mut count = 0usize;
        while let Some(item) = merged.next().await? {
            if count == opts.max_keys {
                page.truncated = true;
                break;
            }
            count += 1;
            page.next_marker = Some(item.name().to_string());
            match item {
                Item::Object(o) => page.objects.push(*o),
                Item::Prefix(p) => page.common_prefixes.push(p),
                Item::Versions(_, versions) => page.objects.extend(versions.into_iter().take(1)),
            }
        }
        if !page.truncated {
            page.next_marker = None;
        }
        Ok(page)
    }

    /// Every version and delete marker of `bucket` after key `after`, in key order (newest
    /// first within a key), a page at a time: the walks of background workers.
    pub fn walk_versions(&self, bucket: &str, after: &str) -> VersionWalk<'_> {
        VersionWalk {
            store: self,
            bucket: bucket.to_string(),
            key_marker: after.to_string(),
            version_marker: None,
            done: false,
        }
    }

    /// One page of `bucket`'s versions and delete markers: keys after `opts.start_after`
    /// (the key marker) in UTF-8 byte order, newest version first within a key. With
    /// `version_marker`, the page starts inside the key marker, after that version.
    pub async fn list_versions(
        &self,
        bucket: &str,
        opts: &ListOptions,
        version_marker: Option<Option<uuid::Uuid>>,
    ) -> ObjectResult<VersionPage> {
        check_bucket(bucket)?;
        if !self.bucket_exists(bucket).await? {
            return Err(ObjectError::NoSuchBucket);
        }
        let mut page = VersionPage::default();
        if opts.max_keys == 0 {
            return Ok(page);
        }
        let mut count = 0usize;
        // The rest of the key marker's versions first.
        let mut first: Option<Item> = None;
        if let Some(marker) = version_marker {
            let key = &opts.start_after;
            if !key.is_empty() && key.starts_with(&opts.prefix) {
                let set = self.write_home(bucket, key, None).await?;
                let metas = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
                let all = agreed_versions(&metas);
                if let Some(at) = all.iter().position(|v| v.version_id == marker) {
                    let rest: Vec<ObjectInfo> = all[at + 1..]
                        .iter()
                        .map(|v| info_of(bucket, key, v))
                        .collect();
                    if !rest.is_empty() {
                        first = Some(Item::Versions(key.clone(), rest));
                    }
                }
            }
        }
        let mut merged = Merged::new(self, bucket, opts, true).await?;
        // The key marker's latest version was on an earlier page.
        let mut pending = first.map(|i| (i, false));
        loop {
            let (item, fresh) = match pending.take() {
                Some(p) => p,
                None => match merged.next().await? {
                    Some(i) => (i, true),
                    None => break,
                },
            };
            match item {
                Item::Prefix(p) => {
                    if count == opts.max_keys {
                        page.truncated = true;
                        break;
                    }
                    count += 1;
                    page.next_key_marker = Some(p.clone());
                    page.next_version_marker = None;
                    page.common_prefixes.push(p);
                }
                Item::Versions(key, versions) => {
                    for (n, v) in versions.into_iter().enumerate() {
                        if count == opts.max_keys {
                            page.truncated = true;
                            break;
                        }
                        count += 1;
                        page.next_key_marker = Some(key.clone());
                        page.next_version_marker = Some(v.version_id);
                        page.versions.push((v, fresh && n == 0));
                    }
                    if page.truncated {
                        break;
                    }
                }
                Item::Object(_) => {}
            }
        }
        if !page.truncated {
            page.next_key_marker = None;
            page.next_version_marker = None;
        }
        Ok(page)
    }
}
