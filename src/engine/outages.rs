//! One log line per cause of waiting, not one per attempt and file. When the network goes,
//! every job of a batch fails its request and waits, and each retry fails again: logged as
//! they happen, a 100-photo batch writes hundreds of identical lines a minute ("cannot reach
//! Dropbox: error sending request: …", once per file and attempt). The log instead says the
//! cause in plain words once — `offline: cannot connect to api.dropboxapi.com (tcp connect
//! error); retrying in 30s` — and again only if it still holds after [`REPEAT_AFTER`]; the
//! per-job lines go to debug. `dbxportctl status` groups waiting jobs by the same
//! [`plain_cause`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cause already told stays quiet: long enough that an outage writes a line every
/// few minutes, not every few seconds; short enough that a reader of the log sees it still holds.
pub const REPEAT_AFTER: Duration = Duration::from_secs(600);

/// A waiting job's reason as a cause shared by many files: its own path left out, and the
/// HTTP library's chain of a failed connection ("error sending request: client error
/// (Connect): tcp connect error: Connection refused (os error 111)") said as what it means.
pub fn plain_cause(reason: &str, source: &str) -> String {
    let name = std::path::Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.into());
    let reason = reason
        .replace(&format!("{source}: "), "")
        .replace(&format!("{name}: "), "");
    let lower = reason.to_lowercase();
    let offline = [
        "tcp connect error",
        "connection refused",
        "dns error",
        "network is unreachable",
        "failed to lookup address",
        "no route to host",
        "timed out",
    ];
    if let Some(hit) = offline.iter().find(|m| lower.contains(*m)) {
        let host = reason
            .split_whitespace()
            .find(|w| w.contains("dropbox") && w.contains('.'))
            .map(|h| h.trim_matches(|c: char| !c.is_alphanumeric() && c != '.'));
        return match host {
            Some(host) => format!("offline: cannot connect to {host} ({hit})"),
            None => format!("offline: cannot connect to Dropbox ({hit})"),
        };
    }
    reason
}

/// The causes told recently, and when.
#[derive(Default)]
pub(super) struct Outages {
    told: Mutex<HashMap<String, Instant>>,
}

impl Outages {
    /// Whether a job waiting on `cause` at `now` is the one to tell the log about.
    pub(super) fn first_telling(&self, cause: &str, now: Instant) -> bool {
        let mut told = self
            .told
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Causes told long ago go, so the map stays as small as the causes of the moment.
        told.retain(|_, at| now.duration_since(*at) < REPEAT_AFTER);
        if told.contains_key(cause) {
            return false;
        }
        told.insert(cause.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_read_as_offline() {
        let raw = "/p/a.jpg: cannot reach Dropbox: error sending request: client error (Connect): \
                   tcp connect error: Connection refused (os error 111)";
        assert_eq!(
            plain_cause(raw, "/p/a.jpg"),
            "offline: cannot connect to Dropbox (tcp connect error)"
        );
        assert_eq!(
            plain_cause("Dropbox is busy", "/p/a.jpg"),
            "Dropbox is busy"
        );
    }

    #[test]
    fn a_cause_is_told_once_per_quiet_period_whatever_the_files_and_attempts() {
        let outages = Outages::default();
        let start = Instant::now();
        let offline = "offline: cannot connect to Dropbox (tcp connect error)";
        assert!(outages.first_telling(offline, start));
        for attempt in 1..100u64 {
            let at = start + Duration::from_secs(attempt);
            assert!(!outages.first_telling(offline, at), "attempt {attempt}");
        }
        // Another cause at the same time is told at once.
        assert!(outages.first_telling("Dropbox is busy", start + Duration::from_secs(5)));
        // Still offline after the quiet period: said again, once.
        let later = start + REPEAT_AFTER + Duration::from_secs(1);
        assert!(outages.first_telling(offline, later));
        assert!(!outages.first_telling(offline, later + Duration::from_secs(1)));
    }
}
