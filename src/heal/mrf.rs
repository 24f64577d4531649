//! `mrf`: drains the partial-write queue ([`HealQueue`](crate::object::HealQueue)) of partial
//! writes and degraded reads, persisted on the drives across restarts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Healer;
use crate::object::{HealOptions, ObjectError};

/// The persisted partial-write queue, under `.cairn.sys/`.
pub const MRF_FILE: &str = "mrf.json";

/// One persisted entry: `[bucket, key, deep]` (written), or `[bucket, key]` (older files: not
/// deep).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Saved {
    Marked(String, String, bool),
    Plain(String, String),
}

impl Healer {
    /// Persist the partial-write queue on every drive (at shutdown).
    pub async fn save_mrf(&self) {
        let items = self.store.heal_queue.snapshot();
        let body = Bytes::from(serde_json::to_vec(&items).unwrap_or_default());
        for d in self.drives() {
            if let Err(e) = d.write_sys(MRF_FILE, body.clone()).await {
                tracing::warn!(drive = d.name(), error = %e, "cannot persist the heal queue");
            }
        }
        tracing::info!(items = items.len(), "heal queue saved");
    }

    /// Re-queue what a previous run saved (the union over drives), then forget it.
    pub(super) async fn load_mrf(&self) {
        let mut n = 0;
        for d in self.drives() {
            if let Ok(raw) = d.read_sys(MRF_FILE).await {
                let items: Vec<Saved> = serde_json::from_slice(&raw).unwrap_or_default();
                for item in items {
                    match item {
                        Saved::Marked(b, k, true) => self.store.heal_queue.push_deep(&b, &k),
                        Saved::Marked(b, k, false) | Saved::Plain(b, k) => {
                            self.store.heal_queue.push(&b, &k)
                        }
                    }
                    n += 1;
                }
                let _ = d.delete_sys(MRF_FILE).await;
            }
        }
        if n > 0 {
            tracing::info!(items = n, "heal queue restored");
        }
    }

    /// Drain the partial-write queue; objects whose drives are still away are retried with
    /// backoff (1 s doubling to 30 s), waiting in the queue (counted as queued, saved at
    /// shutdown).
    pub(super) async fn mrf_worker(self: Arc<Self>) {
        let (mut done, mut failed) = (0u64, 0u64);
        self.set_worker("mrf", "idle", 0, 0);
        loop {
            if self.shutdown.is_cancelled() {
                self.set_worker("mrf", "stopped", done, failed);
                return;
            }
            let Some(task) = self.store.heal_queue.take() else {
                self.set_worker("mrf", "idle", done, failed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                continue;
            };
            self.set_worker("mrf", "healing", done, failed);
            let options = HealOptions {
                deep: task.deep,
                dry_run: false,
            };
            match self
                .store
                .heal_object(&task.bucket, &task.key, options)
                .await
            {
                Ok(r) if r.complete() => {
                    self.store.heal_queue.finish(&task);
                    done += 1
                }
                Ok(_)
                | Err(
                    ObjectError::ReadQuorum { .. }
                    | ObjectError::WriteQuorum { .. }
                    | ObjectError::StorageFull { .. }
                    | ObjectError::LockTimeout,
                ) => {
                    let backoff = Duration::from_secs((1u64 << task.tries.min(5)).min(30));
                    if !self.store.heal_queue.retry_later(task, backoff) {
                        failed += 1;
                    }
                }
                Err(ObjectError::NoSuchBucket | ObjectError::NoSuchKey) => {
                    self.store.heal_queue.finish(&task);
                    done += 1
                }
                Err(e) => {
                    self.store.heal_queue.finish(&task);
                    tracing::warn!(bucket = task.bucket, key = task.key, error = %e, "heal failed");
                    failed += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Saved;
    use crate::object::HealQueue;

    /// A queue saved with deep marks comes back with them; a file from before the marks
    /// reads as shallow heals; a shallow entry queued again as deep becomes deep.
    #[test]
    fn saved_queues_keep_their_deep_marks_and_old_files_still_read() {
        let q = HealQueue::default();
        q.push("b", "partial");
        q.push_deep("b", "rot");
        q.push("b", "later-rot");
        q.push_deep("b", "later-rot");
        q.push("b", "rot");
        let saved = serde_json::to_vec(&q.snapshot()).expect("encode");
        let items: Vec<Saved> = serde_json::from_slice(&saved).expect("decode");
        let marks: Vec<(String, bool)> = items
            .into_iter()
            .map(|i| match i {
                Saved::Marked(_, k, deep) => (k, deep),
                Saved::Plain(_, k) => (k, false),
            })
            .collect();
        let want = [("partial", false), ("rot", true), ("later-rot", true)];
        assert_eq!(
            marks,
            want.map(|(k, d)| (k.to_string(), d)).to_vec(),
            "order and marks"
        );
        let old: Vec<Saved> = serde_json::from_slice(br#"[["b","k"]]"#).expect("old file");
        assert!(matches!(&old[..], [Saved::Plain(b, k)] if b == "b" && k == "k"));
        assert_eq!(q.pop(), Some(("b".into(), "partial".into(), false)));
        assert_eq!(q.pop(), Some(("b".into(), "rot".into(), true)));
    }

    /// A heal that could not finish waits in the queue for its next try: counted as queued,
    /// saved at shutdown, not taken before its time, taken with its tries counted; queued
    /// again meanwhile it is not doubled and keeps a deep mark.
    #[test]
    fn heals_waiting_for_another_try_stay_in_the_queue() {
        use std::time::Duration;
        let q = HealQueue::default();
        q.push("b", "away");
        let task = q.take().expect("queued");
        assert_eq!(task.tries, 0);
        assert_eq!(q.len(), 1, "a heal under way counts as queued");
        assert_eq!(q.snapshot(), [("b".into(), "away".into(), false)]);
        assert!(q.retry_later(task, Duration::from_millis(200)));
        assert_eq!(q.len(), 1, "a waiting heal counts as queued");
        assert_eq!(q.snapshot(), [("b".into(), "away".into(), false)]);
        assert_eq!(q.take(), None, "not before its time");
        q.push_deep("b", "away");
        assert_eq!(q.len(), 1, "not doubled");
        q.push("b", "next");
        let next = q.take().expect("queued");
        assert_eq!(next.key, "next");
        q.finish(&next);
        std::thread::sleep(Duration::from_millis(250));
        let again = q.take().expect("due");
        assert_eq!(
            (again.key.as_str(), again.deep, again.tries),
            ("away", true, 1)
        );
        // Queued again while its heal runs: healed again after it.
        q.push("b", "away");
        q.finish(&again);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some(("b".into(), "away".into(), false)));
        assert!(q.is_empty());
    }
}
