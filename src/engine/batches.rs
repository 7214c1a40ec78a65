//! The end of a batch: once its last job is final, count the outcomes, record the summary with
//! the shared link if the batch asked for one, and announce it (`BatchFinished`). The link
//! itself is made earlier, by the batch's first finished job (`ensure_shared_link`), so that
//! its retries are that job's Waiting, like any other request's.
//!
//! The queue says when a batch's last unfinished job becomes final; batches that a stop or a
//! crash caught between their last job and their summary are finished at the next start.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Engine, Step, dropbox_step, session_step};
use crate::dropbox;
use crate::queue::{BatchId, BatchSummary, Filter, Job, JobState, SharedLink, now_ms};

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
                    self.finish_batch(batch).await;
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
                Ok(batch) => self.finish_batch(batch).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Ok(batches) = self.queue.unsummarized_batches() {
                        for batch in batches {
                            self.finish_batch(batch).await;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn finish_batch(&self, id: BatchId) {
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
            summary
                .warnings
                .extend(job.warnings.iter().map(|w| job.shown(w)));
            match &job.state {
                JobState::Done { skipped: true, .. } => summary.skipped += 1,
                JobState::Done { .. } => summary.done += 1,
                JobState::Failed { message, .. } => {
                    summary.failed += 1;
                    summary.failures.push(job.shown(message));
                }
                JobState::Cancelled => summary.cancelled += 1,
                _ => {}
            }
        }
        let wants_link = jobs.iter().any(|j| j.options.share_link);
        if wants_link && summary.done + summary.skipped > 0 {
            // Made with the first file that went up (`ensure_shared_link`).
            match batch.shared_link {
                Some(SharedLink::Made { url }) => summary.link = Some(url),
                Some(SharedLink::Refused { reason }) => summary.link_error = Some(reason),
                None => {
                    summary.link_error = Some(format!(
                        "no shared link for {}: its files went up before links were made with \
                         them (by an earlier version of dbxport)",
                        batch.remote_folder
                    ))
                }
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

    /// With `share_link`, the batch's shared link is made (or the existing one found) as its
    /// first file is done, before that job is Done, once per batch; later jobs find it
    /// recorded. A transient failure is the job's like any other request's: it waits as
    /// Waiting, never sooner than Retry-After, and tries again (ARCHITECTURE.md, invariant 6).
    /// A refusal is recorded for the summary and the file is Done all the same: the link was
    /// asked for, the file went up.
    pub(super) async fn ensure_shared_link(&self, job: &Job) -> Result<(), Step> {
        if !job.options.share_link {
            return Ok(());
        }
        // One at a time, so a batch's jobs finishing together make one link.
        let _making = self.links.lock().await;
        let Some(batch) = self.queue.batch(job.batch)? else {
            return Ok(());
        };
        if batch.shared_link.is_some() {
            return Ok(());
        }
        let folder = batch.remote_folder;
        let path = if folder == "/" { "" } else { folder.as_str() };
        let result = call!(self, |token| self.client.shared_link_for(token, path));
        let link = match result {
            Ok(link) => SharedLink::Made {
                url: link.url().to_string(),
            },
            // An expired token waits; a refused one logs the account out: as for any request.
            Err(e @ dropbox::Error::Auth(_)) => return Err(dropbox_step(job, e)),
            Err(e) if e.is_transient() => {
                return Err(Step::Transient {
                    reason: format!("making the shared link to {folder}: {e}"),
                    retry_after: e.retry_after(),
                });
            }
            Err(e) => SharedLink::Refused {
                reason: format!("no shared link for {folder}: {e}"),
            },
        };
        if let SharedLink::Refused { reason } = &link {
            tracing::warn!(batch = job.batch, "{reason}");
        }
        self.queue.set_shared_link(job.batch, link).await?;
        Ok(())
    }
}
