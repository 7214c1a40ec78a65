//! An upload's body on its way out: streamed in slices so that progress moves smoothly, held
//! to the shared bandwidth limit, and watched for stalls (the content host has no reqwest read
//! timeout; see `Client`'s `content` pool).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::Progress;
use super::limit;

/// Upload bodies are streamed in slices of this size, so that progress moves smoothly and a
/// stalled connection is noticed.
pub(in crate::dropbox) const SLICE: usize = 256 * 1024;

/// When an upload last moved, for the stall watchdog. A std mutex: held for an assignment only.
pub(super) struct Activity {
    last: Mutex<Instant>,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            last: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last.lock().expect("activity lock") = Instant::now();
    }

    /// Resolves once nothing has moved for `limit`.
    pub(super) async fn stalled(&self, limit: Duration) {
        loop {
            let deadline = *self.last.lock().expect("activity lock") + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The upload body as a stream of slices of at most [`SLICE`] bytes. A slice counts as sent
/// when the connection takes it; the caller sets `Content-Length`, so the body is not chunked.
/// Under a bandwidth limit a slice waits its turn first; waiting counts as activity, so the
/// progress watchdog does not take throttling for a stall.
pub(super) fn upload_body(
    body: Bytes,
    progress: Option<Progress>,
    activity: Arc<Activity>,
    limit: Arc<limit::RateLimit>,
) -> reqwest::Body {
    if body.is_empty() {
        return reqwest::Body::from(body);
    }
    let total = body.len();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slices = futures_util::stream::iter((0..total).step_by(SLICE)).then(move |start| {
        let slice = body.slice(start..(start + SLICE).min(total));
        let (activity, progress, limit, sent) = (
            activity.clone(),
            progress.clone(),
            limit.clone(),
            sent.clone(),
        );
        async move {
            if let Some(at) = limit.reserve(slice.len() as u64) {
                while tokio::time::Instant::now() < at {
                    activity.touch();
                    let step = at.min(tokio::time::Instant::now() + Duration::from_secs(1));
                    tokio::time::sleep_until(step).await;
                }
            }
            let sent = sent.fetch_add(slice.len() as u64, std::sync::atomic::Ordering::Relaxed)
                + slice.len() as u64;
            activity.touch();
            if let Some(progress) = &progress {
                progress(sent);
            }
            Ok::<Bytes, std::io::Error>(slice)
        }
    });
    reqwest::Body::wrap_stream(slices)
}
