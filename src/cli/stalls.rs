//! What keeps uploads from moving, each said at once with the command that fixes it: not
//! logged in, the keyring locked, the queue paused, watch uploads held, Dropbox unreachable,
//! or a daemon still running on a config file that has changed since it started.
//!
//! `status` lists them, and `upload` tells them as soon as the files are queued, so that a
//! wait is never silent. Everything comes from what the daemon already publishes (its
//! properties and its waiting jobs); nothing here asks Dropbox.

use std::collections::BTreeMap;

use super::describe;
use super::jobs::{JobView, clock, waiting_message};
pub use crate::engine::plain_cause;
use crate::service::{AccountProxy, UploaderProxy};

/// One reason uploads wait, in words, with the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.fix.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "{}: {}", self.what, self.fix)
        }
    }
}

/// Which stalls apply: watch uploads held by a policy do not hold back `upload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    Status,
    Upload,
}

/// The stalls as of now. `active` is the queue's unfinished jobs (for the waiting reasons).
pub async fn stalls(
    conn: &zbus::Connection,
    uploader: &UploaderProxy<'_>,
    active: &[JobView],
    purpose: For,
) -> Result<Vec<Stall>, String> {
    let account = AccountProxy::new(conn).await.map_err(|e| describe(&e))?;
    let mut out = Vec::new();
    let state = account.state().await.map_err(|e| describe(&e))?;
    if state != "logged_in" {
        let message = account.status_message().await.map_err(|e| describe(&e))?;
        if message.starts_with("waiting for the keyring") {
            out.push(Stall {
                what: message,
                fix: "unlock the keyring (log in to the desktop session), or keep the login in a \
                      file instead: `dbxportctl config set credentials.store file`, \
                      `dbxportctl restart`, then `dbxportctl login`"
                    .into(),
            });
        } else {
            out.push(Stall {
                what: if message.is_empty() {
                    "not logged in to Dropbox: uploads wait for a login".into()
                } else {
                    format!("not logged in to Dropbox ({message}): uploads wait for a login")
                },
                fix: "run `dbxportctl login`".into(),
            });
        }
    }
    if uploader.paused().await.map_err(|e| describe(&e))? {
        let since = uploader.paused_since_ms().await.map_err(|e| describe(&e))?;
        out.push(Stall {
            what: if since > 0 {
                format!("the queue is paused (since {})", when(since))
            } else {
                "the queue is paused".into()
            },
            fix: "run `dbxportctl resume`".into(),
        });
    }
    if purpose == For::Status {
        let held = uploader
            .auto_uploads_held()
            .await
            .map_err(|e| describe(&e))?;
        if !held.is_empty() {
            let key = if held.contains("battery") {
                "policy.pause_watch_on_battery"
            } else {
                "policy.pause_watch_on_metered"
            };
            out.push(Stall {
                what: format!("watch-folder uploads are held ({held}); `upload` still sends"),
                fix: format!("they go on by themselves when that ends, or `dbxportctl config set {key} false`"),
            });
        }
    }
    out.extend(waiting(active));
    let loaded = uploader
        .config_loaded_ms()
        .await
        .map_err(|e| describe(&e))?;
    if let Some(changed) = config_changed_after(loaded) {
        out.push(Stall {
            what: format!(
                "config.toml changed at {} after dbxportd read it at {}",
                clock(changed),
                clock(loaded)
            ),
            fix: "run `dbxportctl restart` to apply it (queued uploads resume)".into(),
        });
    }
    Ok(out)
}

/// The config file's change time, when it is later than `loaded_ms`.
fn config_changed_after(loaded_ms: u64) -> Option<u64> {
    let dirs = crate::config::Dirs::from_env().ok()?;
    let modified = std::fs::metadata(&dirs.config_file).ok()?.modified().ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    (loaded_ms > 0 && ms > loaded_ms).then_some(ms)
}

/// Waiting jobs, one line per cause (not per file and try): the cause in plain words, how
/// many files wait on it, and when the next try is.
fn waiting(active: &[JobView]) -> Vec<Stall> {
    let mut causes: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for job in active.iter().filter(|j| j.state == "waiting") {
        let cause = plain_cause(&job.message, &job.source);
        let entry = causes.entry(cause).or_insert((0, u64::MAX));
        entry.0 += 1;
        if let Some(at) = job.retry_at_ms {
            entry.1 = entry.1.min(at);
        }
    }
    causes
        .into_iter()
        .map(|(cause, (count, at))| {
            let files = if count == 1 {
                "1 file waits".to_string()
            } else {
                format!("{count} files wait")
            };
            let text = if at == u64::MAX {
                cause
            } else {
                waiting_message(&cause, at)
            };
            Stall {
                what: format!("{files}: {text}"),
                fix: String::new(),
            }
        })
        .collect()
}

/// A past time as the clock showed it, with how long ago.
fn when(ms: u64) -> String {
    let now = crate::queue::now_ms();
    let ago = std::time::Duration::from_secs(now.saturating_sub(ms) / 1000);
    format!("{}, {} ago", clock(ms), humantime::format_duration(ago))
}
