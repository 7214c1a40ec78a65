//! The queue's switches, kept in the `meta` tree so they outlive a restart: the pause switch
//! (and since when), the bandwidth limit set over D-Bus, and the last export options chosen.

use tokio::sync::watch;

use super::store::encode;
use super::{Queue, Result, now_ms};

const PAUSED_KEY: &[u8] = b"paused";
const LAST_OPTIONS_KEY: &[u8] = b"last_export_options";
const BANDWIDTH_KEY: &[u8] = b"bandwidth_limit";
const PAUSED_SINCE_KEY: &[u8] = b"paused_since_ms";

/// Whether the stored pause switch is on (read at open, before a `Queue` exists).
pub(super) fn stored_paused(meta: &sled::Tree) -> bool {
    matches!(meta.get(PAUSED_KEY), Ok(Some(v)) if v.as_ref() == [1])
}

impl Queue {
    /// The export options of the last batch that chose any (see `export.remember_last_choice`).
    pub fn last_export_options(&self) -> Option<crate::export::ExportOptions> {
        let bytes = self.inner.meta.get(LAST_OPTIONS_KEY).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    pub async fn set_last_export_options(
        &self,
        options: &crate::export::ExportOptions,
    ) -> Result<()> {
        self.inner.meta.insert(LAST_OPTIONS_KEY, encode(options))?;
        self.flush().await
    }

    /// The bandwidth limit set over D-Bus, if one was (it outlives restarts).
    pub fn bandwidth_limit(&self) -> Option<u64> {
        let bytes = self.inner.meta.get(BANDWIDTH_KEY).ok()??;
        Some(u64::from_be_bytes(bytes.as_ref().try_into().ok()?))
    }

    pub async fn set_bandwidth_limit(&self, bytes_per_sec: u64) -> Result<()> {
        self.inner
            .meta
            .insert(BANDWIDTH_KEY, &bytes_per_sec.to_be_bytes())?;
        self.flush().await
    }

    pub fn paused(&self) -> bool {
        stored_paused(&self.inner.meta)
    }

    /// When the queue was paused (ms since the epoch), while it is.
    pub fn paused_since(&self) -> Option<u64> {
        if !self.paused() {
            return None;
        }
        let bytes = self.inner.meta.get(PAUSED_SINCE_KEY).ok()??;
        Some(u64::from_be_bytes(bytes.as_ref().try_into().ok()?))
    }

    pub async fn set_paused(&self, paused: bool) -> Result<()> {
        // A second `pause` keeps the first one's time: the queue has been paused since then.
        if paused && !self.paused() {
            self.inner
                .meta
                .insert(PAUSED_SINCE_KEY, &now_ms().to_be_bytes())?;
        }
        self.inner.meta.insert(PAUSED_KEY, &[paused as u8])?;
        self.flush().await?;
        self.inner.paused.send_replace(paused);
        self.inner.changed.notify_waiters();
        Ok(())
    }

    /// Follows the pause switch.
    pub fn watch_paused(&self) -> watch::Receiver<bool> {
        self.inner.paused.subscribe()
    }
}
