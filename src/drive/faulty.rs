//! A drive wrapper that injects faults, for tests of quorum, healing and crash safety.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use uuid::Uuid;

use super::{
    BucketEntry, DirPage, DirQuery, DiskInfo, Drive, DriveError, DriveResult, Entry, FileRef,
    FileWriter, Probe, StagedData,
};

/// What the wrapped drive does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Every call fails as if the drive were unreachable.
    Offline,
    /// Writes (file writes and commits) fail; reads work.
    FailWrites,
    /// File writers accept half of each write then fail: a torn write.
    TornWrites,
    /// `read_file` returns the data with one byte flipped.
    CorruptReads,
    /// Every call is delayed.
    Latency(Duration),
}

#[derive(Debug)]
pub struct FaultyDrive {
    inner: Arc<dyn Drive>,
    fault: Arc<Mutex<Fault>>,
    /// File writers of this drive that reached `finish`.
    finished: Arc<AtomicUsize>,
}

impl FaultyDrive {
    /// Wrap `inner`; the returned handle changes the fault at any time.
    pub fn new(inner: Arc<dyn Drive>) -> (FaultyDrive, Arc<Mutex<Fault>>) {
        let fault = Arc::new(Mutex::new(Fault::None));
        (
            FaultyDrive {
                inner,
                fault: fault.clone(),
                finished: Arc::default(),
            },
            fault,
        )
    }

    /// How many of this drive's file writers reached `finish` so far.
    pub fn finished(&self) -> Arc<AtomicUsize> {
        self.finished.clone()
    }

    async fn check(&self, write: bool) -> DriveResult<()> {
        let f = *self.fault.lock();
        match f {
            Fault::Offline => Err(DriveError::Offline(self.inner.name().to_string())),
            Fault::FailWrites if write => Err(DriveError::Injected("write failure")),
            Fault::Latency(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

struct TornWriter {
    inner: Box<dyn FileWriter>,
    fault: Arc<Mutex<Fault>>,
    finished: Arc<AtomicUsize>,
}

#[async_trait]
impl FileWriter for TornWriter {
    async fn write(&mut self, data: Bytes) -> DriveResult<()> {
        let fault = *self.fault.lock();
        match fault {
            Fault::Offline => return Err(DriveError::Offline("writer".into())),
            Fault::FailWrites => return Err(DriveError::Injected("write failure")),
            Fault::TornWrites => {}
            _ => return self.inner.write(data).await,
        }
        let half = data.slice(..data.len() / 2);
        self.inner.write(half).await?;
        Err(DriveError::Injected("torn write"))
    }

    async fn finish(self: Box<Self>) -> DriveResult<()> {
        self.finished.fetch_add(1, Ordering::Relaxed);
        let fault = *self.fault.lock();
        if matches!(fault, Fault::Offline | Fault::FailWrites) {
            return Err(DriveError::Injected("write failure"));
        }
        self.inner.finish().await
    }
}

#[async_trait]
impl Drive for FaultyDrive {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn is_local(&self) -> bool {
        self.inner.is_local()
    }
    fn node(&self) -> Option<&str> {
        self.inner.node()
    }
    fn known_offline(&self) -> bool {
        matches!(*self.fault.lock(), Fault::Offline) || self.inner.known_offline()
    }
    async fn disk_info(&self) -> DriveResult<DiskInfo> {
        self.check(false).await?;
        self.inner.disk_info().await
    }
    async fn probe(&self) -> DriveResult<Probe> {
        self.check(false).await?;
        self.inner.probe().await
    }
    async fn format(
        &self,
        format: Bytes,
        healing: Option<Bytes>,
        create_root: bool,
    ) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.format(format, healing, create_root).await
    }
    async fn read_sys(&self, path: &str) -> DriveResult<Bytes> {
        self.check(false).await?;
        self.inner.read_sys(path).await
    }
    async fn write_sys(&self, path: &str, data: Bytes) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.write_sys(path, data).await
    }
    async fn create_sys_file(&self, path: &str) -> DriveResult<Box<dyn FileWriter>> {
        self.check(true).await?;
        let inner = self.inner.create_sys_file(path).await?;
        Ok(Box::new(TornWriter {
            inner,
            fault: self.fault.clone(),
            finished: self.finished.clone(),
        }))
    }
    async fn rename_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.rename_sys(from, to).await
    }
    async fn link_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.link_sys(from, to).await
    }
    async fn delete_sys(&self, path: &str) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.delete_sys(path).await
    }
    async fn list_sys(&self, dir: &str) -> DriveResult<Vec<String>> {
        self.check(false).await?;
        self.inner.list_sys(dir).await
    }
    async fn make_bucket(&self, bucket: &str, created: i64) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.make_bucket(bucket, created).await
    }
    async fn list_buckets(&self) -> DriveResult<Vec<BucketEntry>> {
        self.check(false).await?;
        self.inner.list_buckets().await
    }
    async fn delete_bucket(&self, bucket: &str) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.delete_bucket(bucket).await
    }
    async fn read_meta(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        self.check(false).await?;
        self.inner.read_meta(bucket, key).await
    }
    async fn read_meta_head(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        self.check(false).await?;
        self.inner.read_meta_head(bucket, key).await
    }
    async fn read_entries(&self, bucket: &str, keys: &[String]) -> DriveResult<Vec<Entry>> {
        self.check(false).await?;
        self.inner.read_entries(bucket, keys).await
    }
    async fn read_entry_heads(
        &self,
        bucket: &str,
        keys: &[String],
        metas: bool,
    ) -> DriveResult<Vec<Entry>> {
        self.check(false).await?;
        self.inner.read_entry_heads(bucket, keys, metas).await
    }
    async fn write_meta(
        &self,
        bucket: &str,
        key: &str,
        meta: Option<Bytes>,
        staged: Option<StagedData>,
    ) -> DriveResult<Option<Bytes>> {
        self.check(true).await?;
        self.inner.write_meta(bucket, key, meta, staged).await
    }
    async fn delete_data_dir(&self, bucket: &str, key: &str, data_dir: Uuid) -> DriveResult<()> {
        self.check(true).await?;
        self.inner.delete_data_dir(bucket, key, data_dir).await
    }
    async fn file_size(&self, file: &FileRef) -> DriveResult<u64> {
        self.check(false).await?;
        self.inner.file_size(file).await
    }
    async fn read_file(&self, file: &FileRef, offset: u64, len: usize) -> DriveResult<Bytes> {
        self.check(false).await?;
        let data = self.inner.read_file(file, offset, len).await?;
        let fault = *self.fault.lock();
        if fault == Fault::CorruptReads && !data.is_empty() {
            let mut v = data.to_vec();
            let i = v.len() / 2;
            v[i] ^= 0xff;
            return Ok(Bytes::from(v));
        }
        Ok(data)
    }
    async fn list_dir(&self, bucket: &str, prefix: &str, query: &DirQuery) -> DriveResult<DirPage> {
        self.check(false).await?;
        self.inner.list_dir(bucket, prefix, query).await
    }
}
