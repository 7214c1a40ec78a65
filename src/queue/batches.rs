//! Batch records: when a batch is over, its summary, and pruning what ended long ago.
//!
//! Whether a batch still has unfinished jobs is the index's count (`index`), the one place
//! it is kept.

use tokio::sync::broadcast;

use super::store::{decode, encode, key};
use super::{Batch, BatchId, BatchSummary, Job, Queue, QueueError, Result, SharedLink};

impl Queue {
    /// Batches whose last unfinished job just became final.
    pub fn subscribe_batches(&self) -> broadcast::Receiver<BatchId> {
        self.inner.batches_done.subscribe()
    }

    /// Batches without a summary whose jobs are all final: those a crash (or a stop) caught
    /// between their last job and their summary.
    pub fn unsummarized_batches(&self) -> Result<Vec<BatchId>> {
        let mut out = Vec::new();
        for entry in self.inner.batches.iter() {
            let (_, value) = entry?;
            let batch: Batch = decode(&value)?;
            if batch.summary.is_none() && !self.index().has_unfinished(batch.id) {
                out.push(batch.id);
            }
        }
        Ok(out)
    }

    /// Records how a batch ended.
    pub async fn set_summary(&self, id: BatchId, summary: BatchSummary) -> Result<Batch> {
        let mut batch = self.batch(id)?.ok_or(QueueError::NotFound(id))?;
        batch.summary = Some(summary);
        self.inner.batches.insert(key(id), encode(&batch))?;
        self.flush().await?;
        Ok(batch)
    }

    /// Records how the making of the batch's shared link ended.
    pub async fn set_shared_link(&self, id: BatchId, link: SharedLink) -> Result<Batch> {
        let mut batch = self.batch(id)?.ok_or(QueueError::NotFound(id))?;
        batch.shared_link = Some(link);
        self.inner.batches.insert(key(id), encode(&batch))?;
        self.flush().await?;
        Ok(batch)
    }

    /// Removes finished jobs (done, failed, cancelled) that ended before `before_ms`, and the
    /// batches left with no job. A job's end is its batch's summary time, or, before a batch
    /// has one, the job's creation. Other trees (the watches' record of uploaded files) are
    /// not touched: a watch must not send again what it sent before. Returns how many jobs
    /// went. Blocking work runs on the blocking pool.
    pub async fn prune(&self, before_ms: u64) -> Result<usize> {
        let inner = self.inner.clone();
        let removed = tokio::task::spawn_blocking(move || -> Result<usize> {
            let mut removed = 0;
            for entry in inner.batches.iter() {
                let (batch_key, value) = entry?;
                let mut batch: Batch = decode(&value)?;
                let ended_ms = batch.summary.as_ref().map(|s| s.finished_ms);
                let mut kept = Vec::with_capacity(batch.jobs.len());
                let mut write = sled::Batch::default();
                for id in &batch.jobs {
                    let Some(bytes) = inner.jobs.get(key(*id))? else {
                        continue;
                    };
                    let job: Job = decode(&bytes)?;
                    let ended = ended_ms.unwrap_or(job.created_ms);
                    if job.state.is_terminal() && ended < before_ms {
                        write.remove(&key(*id));
                        removed += 1;
                    } else {
                        kept.push(*id);
                    }
                }
                if kept.len() == batch.jobs.len() {
                    continue;
                }
                inner.jobs.apply_batch(write)?;
                if kept.is_empty() {
                    inner.batches.remove(batch_key)?;
                } else {
                    batch.jobs = kept;
                    inner.batches.insert(batch_key, encode(&batch))?;
                }
            }
            inner.db.flush()?;
            Ok(removed)
        })
        .await
        .map_err(|e| QueueError::Join(e.to_string()))??;
        Ok(removed)
    }
}
