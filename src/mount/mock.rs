//! An in-memory object store for the filesystem tests, with fault injection.

use std::collections::BTreeMap;
use std::io::Read;

use parking_lot::Mutex;

use super::client::{ClientError, ClientResult, Head, ListedObject, Listing, ObjectClient, Usage};

#[derive(Default)]
struct Object {
    data: Vec<u8>,
    meta: BTreeMap<String, String>,
    modified: i64,
}

#[derive(Default)]
pub struct MockClient {
    objects: Mutex<BTreeMap<String, Object>>,
    uploads: Mutex<BTreeMap<String, BTreeMap<u32, Vec<u8>>>>,
    /// Fail every call whose name is in the list with the given error.
    faults: Mutex<Vec<(&'static str, ClientError)>>,
    pub quota: Mutex<u64>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl MockClient {
    pub fn inject(&self, call: &'static str, e: ClientError) {
        self.faults.lock().push((call, e));
    }

    pub fn clear_faults(&self) {
        self.faults.lock().clear();
    }

    pub fn calls(&self, call: &'static str) -> u64 {
        self.calls.lock().get(call).copied().unwrap_or(0)
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.lock().get(key).map(|o| o.data.clone())
    }

    pub fn meta(&self, key: &str) -> Option<BTreeMap<String, String>> {
        self.objects.lock().get(key).map(|o| o.meta.clone())
    }

    pub fn pending_uploads(&self) -> usize {
        self.uploads.lock().len()
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().keys().cloned().collect()
    }

    pub fn insert(&self, key: &str, data: &[u8]) {
        self.objects.lock().insert(
            key.to_string(),
            Object {
                data: data.to_vec(),
                meta: BTreeMap::new(),
                modified: 1_700_000_000,
            },
        );
    }

    fn enter(&self, call: &'static str) -> ClientResult<()> {
        *self.calls.lock().entry(call).or_default() += 1;
        match self.faults.lock().iter().find(|(c, _)| *c == call) {
            Some((_, e)) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn used(&self) -> u64 {
        self.objects
            .lock()
            .values()
            .map(|o| o.data.len() as u64)
            .sum()
    }

    fn admit(&self, key: &str, len: u64) -> ClientResult<()> {
        let quota = *self.quota.lock();
        let old = self
            .objects
            .lock()
            .get(key)
            .map_or(0, |o| o.data.len() as u64);
        if quota > 0 && self.used() - old + len > quota {
            return Err(ClientError::QuotaExceeded);
        }
        Ok(())
    }
}

/// The mock's continuation token: the last key or prefix of the page.
fn last_listed(page: &Listing) -> String {
    let key = page.objects.last().map(|o| o.key.clone());
    key.into_iter()
        .chain(page.prefixes.last().cloned())
        .max()
        .unwrap_or_default()
}

impl ObjectClient for MockClient {
    fn head(&self, key: &str) -> ClientResult<Head> {
        self.enter("head")?;
        let o = self.objects.lock();
        let o = o.get(key).ok_or(ClientError::NotFound)?;
        Ok(Head {
            size: o.data.len() as u64,
            modified: o.modified,
            meta: o.meta.clone(),
        })
    }

    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        if_match: Option<&str>,
    ) -> ClientResult<(Vec<u8>, String)> {
        self.enter("get")?;
        let o = self.objects.lock();
        let o = o.get(key).ok_or(ClientError::NotFound)?;
        let etag = format!("\"{}\"", blake3::hash(&o.data).to_hex());
        if if_match.is_some_and(|m| m != etag) {
            return Err(ClientError::Changed);
        }
        let start = (offset as usize).min(o.data.len());
        let end = (offset.saturating_add(len) as usize).min(o.data.len());
        Ok((o.data[start..end].to_vec(), etag))
    }

    fn get_into(&self, key: &str, out: &mut dyn std::io::Write) -> ClientResult<u64> {
        self.enter("get")?;
        let data = self.object(key).ok_or(ClientError::NotFound)?;
        out.write_all(&data)
            .map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(data.len() as u64)
    }

    fn put(
        &self,
        key: &str,
        body: &mut dyn Read,
        len: u64,
        meta: &BTreeMap<String, String>,
    ) -> ClientResult<()> {
        self.enter("put")?;
        let mut data = Vec::new();
        body.read_to_end(&mut data)
            .map_err(|e| ClientError::Other(e.to_string()))?;
        assert_eq!(
            data.len() as u64,
            len,
            "declared length must match the body"
        );
        self.admit(key, len)?;
        self.objects.lock().insert(
            key.to_string(),
            Object {
                data,
                meta: meta.clone(),
                modified: 1_700_000_000,
            },
        );
        Ok(())
    }

    fn create_multipart(&self, key: &str, meta: &BTreeMap<String, String>) -> ClientResult<String> {
        self.enter("create_multipart")?;
        let id = format!("{key}#{}", meta.len());
        self.uploads.lock().insert(id.clone(), BTreeMap::new());
        Ok(id)
    }

    fn upload_part(
        &self,
        _key: &str,
        upload_id: &str,
        number: u32,
        body: &mut dyn Read,
        len: u64,
    ) -> ClientResult<String> {
        self.enter("upload_part")?;
        let mut data = Vec::new();
        body.read_to_end(&mut data)
            .map_err(|e| ClientError::Other(e.to_string()))?;
        assert_eq!(data.len() as u64, len);
        // As the store: parts count against the quota beside the object they will replace.
        let quota = *self.quota.lock();
        if quota > 0 && self.used() + len > quota {
            return Err(ClientError::QuotaExceeded);
        }
        self.uploads
            .lock()
            .get_mut(upload_id)
            .ok_or(ClientError::NotFound)?
            .insert(number, data);
        Ok(format!("\"etag-{number}\""))
    }

    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> ClientResult<()> {
        self.enter("complete_multipart")?;
        let up = self
            .uploads
            .lock()
            .remove(upload_id)
            .ok_or(ClientError::NotFound)?;
        let mut data = Vec::new();
        for (n, _) in parts {
            data.extend_from_slice(up.get(n).ok_or(ClientError::NotFound)?);
        }
        let up_bytes = data.len() as u64;
        // The parts stop counting as the object replaces them.
        self.admit(key, up_bytes)?;
        let meta = self
            .objects
            .lock()
            .get(key)
            .map(|o| o.meta.clone())
            .unwrap_or_default();
        self.objects.lock().insert(
            key.to_string(),
            Object {
                data,
                meta,
                modified: 1_700_000_000,
            },
        );
        Ok(())
    }

    fn abort_multipart(&self, _key: &str, upload_id: &str) -> ClientResult<()> {
        self.enter("abort_multipart")?;
        self.uploads.lock().remove(upload_id);
        Ok(())
    }

    fn copy(
        &self,
        from: &str,
        to: &str,
        meta: Option<&BTreeMap<String, String>>,
    ) -> ClientResult<()> {
        self.enter("copy")?;
        let mut objects = self.objects.lock();
        let src = objects.get(from).ok_or(ClientError::NotFound)?;
        let copy = Object {
            data: src.data.clone(),
            meta: meta.cloned().unwrap_or_else(|| src.meta.clone()),
            modified: src.modified,
        };
        objects.insert(to.to_string(), copy);
        Ok(())
    }

    fn delete(&self, key: &str) -> ClientResult<()> {
        self.enter("delete")?;
        self.objects.lock().remove(key);
        Ok(())
    }

    fn list(
        &self,
        prefix: &str,
        delimited: bool,
        start_after: Option<&str>,
        max: usize,
    ) -> ClientResult<Listing> {
        self.enter("list")?;
        let objects = self.objects.lock();
        let mut out = Listing::default();
        let mut count = 0;
        let mut last_prefix: Option<String> = None;
        for (k, o) in objects.range(prefix.to_string()..) {
            if !k.starts_with(prefix) {
                break;
            }
            if start_after.is_some_and(|s| k.as_str() <= s) {
                continue;
            }
            let rest = &k[prefix.len()..];
            if delimited {
                if let Some(i) = rest.find('/') {
                    let p = format!("{prefix}{}", &rest[..=i]);
                    if last_prefix.as_deref() == Some(p.as_str())
                        || start_after.is_some_and(|s| s.starts_with(&p))
                    {
                        continue;
                    }
                    if count == max {
                        out.next = Some(last_listed(&out));
                        break;
                    }
                    last_prefix = Some(p.clone());
                    out.prefixes.push(p);
                    count += 1;
                    continue;
                }
            }
            if count == max {
                out.next = Some(last_listed(&out));
                break;
            }
            out.objects.push(ListedObject {
                key: k.clone(),
                size: o.data.len() as u64,
                modified: o.modified,
            });
            count += 1;
        }
        Ok(out)
    }

    fn usage(&self) -> ClientResult<Usage> {
        self.enter("usage")?;
        let parts: u64 = self
            .uploads
            .lock()
            .values()
            .flat_map(|u| u.values())
            .map(|p| p.len() as u64)
            .sum();
        Ok(Usage {
            quota: *self.quota.lock(),
            used: self.used(),
            objects: self.objects.lock().len() as u64,
            parts,
        })
    }
}
