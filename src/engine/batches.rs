//! The end of a batch: once its last job is final, count the outcomes, make the shared link if
//! the batch asked for one, record the summary, and announce it (`BatchFinished`).
//!
//! The queue says when a batch's last unfinished job becomes final; batches that a stop or a
//! crash caught between their last job and their summary are finished at the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::credentials::SessionError;
use crate::queue::{BatchId, BatchSummary, Filter, JobState, now_ms};

/// Attempts at making a shared link before the batch is summarized without one.
const LINK_ATTEMPTS: u32 = 4;

/// A finished batch, for the D-Bus signal.
#[derive(Debug, Clone)]
pub struct BatchFinished {
    pub batch: BatchId,
    pub summary: BatchSummary,
}

impl Engine {
    pub fn subscribe_batches(&self) -> broadcast::Receiver<BatchFinished> {
        self.batches.subscribe()
    }

    /// Summarizes batches as they end, until `shutdown`.
    pub(super) async fn finish_batches(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ended = self.queue.subscribe_batches();
        match self.queue.unsummarized_batches() {
            Ok(batches) => {
                for batch in batches {
                    self.finish_batch(batch, &shutdown).await;
                }
            }
            Err(e) => tracing::warn!("cannot look for unfinished batch summaries: {e}"),
        }
        loop {
            let batch = tokio::select! {
                batch = ended.recv() => batch,
                _ = shutdown.cancelled() => return,
            };
            match batch {
                Ok(batch) => self.finish_batch(batch, &shutdown).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Ok(batches) = self.queue.unsummarized_batches() {
                        for batch in batches {
                            self.finish_batch(batch, &shutdown).await;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn finish_batch(&self, id: BatchId, shutdown: &CancellationToken) {
        let (batch, jobs) = match (self.queue.batch(id), self.queue.list(Filter::Batch(id))) {
            (Ok(Some(batch)), Ok(jobs)) => (batch, jobs),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(batch = id, "cannot read the batch to summarize it: {e}");
                return;
            }
            (Ok(None), _) => return,
        };
        if batch.summary.is_some() || jobs.iter().any(|j| !j.state.is_terminal()) {
            return;
        }
        let mut summary = BatchSummary {
            finished_ms: now_ms(),
            ..Default::default()
        };
        for job in &jobs {
            summary.warnings.extend(job.warnings.iter().cloned());
            match &job.state {
                JobState::Done { skipped: true, .. } => summary.skipped += 1,
                JobState::Done { .. } => summary.done += 1,
                JobState::Failed { message, .. } => {
                    summary.failed += 1;
                    summary.failures.push(message.clone());
                }
                JobState::Cancelled => summary.cancelled += 1,
                _ => {}
            }
        }
        let wants_link = jobs.iter().any(|j| j.options.share_link);
        if wants_link && summary.done + summary.skipped > 0 {
            match self.shared_link(&batch.remote_folder, shutdown).await {
                Ok(url) => summary.link = Some(url),
                Err(why) => summary.link_error = Some(why),
            }
        }
        match self.queue.set_summary(id, summary.clone()).await {
            Ok(_) => {
                tracing::info!(
                    batch = id,
                    done = summary.done,
                    skipped = summary.skipped,
                    failed = summary.failed,
                    cancelled = summary.cancelled,
                    "batch finished"
                );
                let _ = self.batches.send(BatchFinished { batch: id, summary });
            }
            Err(e) => tracing::warn!(batch = id, "cannot record the batch's summary: {e}"),
        }
    }

    /// A public view link to `folder`: made, or the one that already exists. Transient errors
    /// are retried a few times; the batch is not held up for long over a link.
    async fn shared_link(
        &self,
        folder: &str,
        shutdown: &CancellationToken,
    ) -> Result<String, String> {
        let path = if folder == "/" { "" } else { folder };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .session
                .with_token(|token| async move {
                    let token = token;
                    self.client.shared_link_for(&token, path).await
                })
                .await;
            let error = match result {
                Ok(Ok(link)) => return Ok(link.url().to_string()),
                Ok(Err(e)) if e.is_transient() && attempt < LINK_ATTEMPTS => {
                    super::retry::backoff(attempt, e.retry_after())
                }
                Ok(Err(e)) => return Err(format!("no shared link for {folder}: {e}")),
                Err(SessionError::Transient(why)) if attempt < LINK_ATTEMPTS => {
                    let _ = why;
                    super::retry::backoff(attempt, None)
                }
                Err(e) => return Err(format!("no shared link for {folder}: {e}")),
            };
            tokio::select! {
                _ = tokio::time::sleep(error.min(Duration::from_secs(30))) => {}
                _ = shutdown.cancelled() => return Err("the daemon stopped before the link was made".into()),
            }
        }
    }
}
