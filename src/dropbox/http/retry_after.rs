//! Retry-After, kept for every route in one place: the client's requests all pass here.
//!
//! Dropbox's rate limits and namespace write locks apply to the whole account, not to the one
//! route or request that met them: after a 429 the next request is as unwelcome on
//! `files/list_folder` or `sharing/…` as on the upload route that was refused. So a 429's
//! Retry-After (from the header, else the body; see `status::decode_rate_limit`) holds back
//! every request the client sends, whoever sends it (the engine's transfers and listings, the
//! folder browser, shared links, the account), until it has passed. The wait starts from the
//! 429's head, before its body is read (`Client::held_from_the_head`): once the body is in,
//! its connection is free for the next request. A request already on the wire when the 429
//! arrives cannot be called back; the next one waits.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The instant before which no request leaves.
#[derive(Debug, Default)]
pub(in crate::dropbox) struct Gate {
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    /// Waits until the latest Retry-After has passed (at once when none is pending). Checked
    /// again after each wait: another 429 may have pushed the instant further meanwhile.
    pub(in crate::dropbox) async fn wait(&self) {
        loop {
            let until = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    /// The instant before which no request leaves, if it has not passed (for tests).
    #[cfg(test)]
    pub(in crate::dropbox) fn pending(&self) -> Option<Instant> {
        let until = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        until.filter(|until| *until > Instant::now())
    }

    /// A 429 said to wait `after`: nothing leaves before then (a later instant already set
    /// stays).
    pub(in crate::dropbox) fn defer(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut not_before = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if not_before.is_none_or(|t| t < until) {
            tracing::debug!("Dropbox asked to slow down: no request for {after:?}");
            *not_before = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_wait_for_the_latest_retry_after() {
        let gate = Gate::default();
        let start = Instant::now();
        gate.wait().await;
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "nothing pending: no wait"
        );
        gate.defer(Duration::from_millis(300));
        // A shorter Retry-After does not shorten the wait.
        gate.defer(Duration::from_millis(100));
        gate.wait().await;
        assert!(start.elapsed() >= Duration::from_millis(300));
        let passed = Instant::now();
        gate.wait().await;
        assert!(
            passed.elapsed() < Duration::from_millis(50),
            "passed: no more wait"
        );
    }
}
