//! Desktop notifications when a batch ends (`org.freedesktop.Notifications` on the session bus),
//! so a user who sent photos from a file manager learns how it went without a terminal.
//!
//! One notification per batch: how many photos went (and how many were already there), the
//! failures with their reasons, and the shared link when the batch asked for one; actions
//! "Open folder" (the folder on the Dropbox web site), "Copy link" and, when something failed,
//! "Retry failed" (the batch's failed jobs go back to the queue). Batches a watched folder
//! made notify only when something failed — auto-export should be quiet when it works. No
//! notification server (a headless session) is not an error: the summary is in the log and in
//! `BatchFinished` anyway.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use zbus::zvariant::Value;

use crate::engine::{BatchFinished, Engine};
use crate::queue::{BatchSummary, Queue};

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications",
    gen_blocking = false
)]
pub trait Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;
}

/// Failures listed in the body; the rest are counted.
const LISTED_FAILURES: usize = 3;

/// What one notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
    /// (key, label) pairs, as the specification lays actions out.
    pub actions: Vec<(&'static str, &'static str)>,
    pub urgent: bool,
}

/// "1 photo", "3 photos".
pub(crate) fn photos(n: u32) -> String {
    if n == 1 {
        "1 photo".into()
    } else {
        format!("{n} photos")
    }
}

/// The notice for a finished batch; None when it should stay quiet.
pub fn notice_for(folder: &str, summary: &BatchSummary, from_watch: bool) -> Option<Notice> {
    let total = summary.done + summary.failed + summary.cancelled;
    if from_watch && summary.failed == 0 {
        return None;
    }
    if total == 0 || (summary.failed == 0 && summary.done == 0) {
        return None;
    }
    let folder = if folder.is_empty() { "/" } else { folder };
    let sent = summary.done - summary.skipped.min(summary.done);
    let headline = if summary.failed > 0 {
        format!(
            "{} of {} could not be sent to Dropbox",
            summary.failed,
            photos(total)
        )
    } else {
        format!("{} sent to Dropbox", photos(summary.done))
    };
    let mut lines = vec![format!("{} in {folder}", photos(sent))];
    if summary.skipped > 0 {
        lines[0].push_str(&format!("; {} already there", summary.skipped));
    }
    for failure in summary.failures.iter().take(LISTED_FAILURES) {
        lines.push(failure.clone());
    }
    if summary.failures.len() > LISTED_FAILURES {
        lines.push(format!(
            "… and {} more (dbxportctl jobs --state failed)",
            summary.failures.len() - LISTED_FAILURES
        ));
    }
    if let Some(link) = &summary.link {
        lines.push(format!("Link: {link}"));
    } else if let Some(error) = &summary.link_error {
        lines.push(format!("No shared link: {error}"));
    }
    let mut actions = vec![("open-folder", "Open folder")];
    if summary.link.is_some() {
        actions.push(("copy-link", "Copy link"));
    }
    if summary.failed > 0 {
        actions.push(("retry-failed", "Retry failed"));
    }
    Some(Notice {
        summary: headline,
        body: lines.join("\n"),
        actions,
        urgent: summary.failed > 0,
    })
}

/// The folder's page on the Dropbox web site.
fn folder_url(folder: &str) -> String {
    let mut url = url::Url::parse("https://www.dropbox.com/home").expect("a valid URL");
    url.path_segments_mut()
        .expect("an http URL")
        .extend(folder.split('/').filter(|s| !s.is_empty()));
    url.to_string()
}

/// Runs `program` with `args`, feeding `input` on stdin; false if it is not there or fails.
async fn run_tool(program: &str, args: &[&str], input: Option<&str>) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let Ok(mut child) = command.spawn() else {
        return false;
    };
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes()).await;
    }
    child.wait().await.is_ok_and(|s| s.success())
}

/// Puts `text` on the clipboard with the first of `wl-copy` (Wayland), `xclip` or `xsel` (X11)
/// that works; false if none does. The one place dbxport touches the clipboard: the daemon's
/// "Copy link" action and `dbxportctl upload --copy-link` both come here.
pub async fn copy_to_clipboard(text: &str) -> bool {
    run_tool("wl-copy", &[], Some(text)).await
        || run_tool("xclip", &["-selection", "clipboard"], Some(text)).await
        || run_tool("xsel", &["--clipboard", "--input"], Some(text)).await
}

/// What a notification's actions need to know of its batch.
struct Shown {
    batch: u64,
    folder: String,
    link: Option<String>,
}

/// What an action of one of our notifications does.
async fn act(key: &str, shown: &Shown, queue: &Queue) {
    let done = match (key, shown.link.as_deref()) {
        ("open-folder", _) => run_tool("xdg-open", &[&folder_url(&shown.folder)], None).await,
        ("retry-failed", _) => {
            // The queue wakes the engine itself; a batch with nothing failed any more (retried
            // from the command line meanwhile) simply gives no job back.
            match queue.retry(shown.batch).await {
                Ok(jobs) => tracing::info!(
                    batch = shown.batch,
                    jobs = jobs.len(),
                    "retrying failed jobs from the notification"
                ),
                Err(e) => tracing::warn!(
                    batch = shown.batch,
                    "cannot retry from the notification: {e}"
                ),
            }
            true
        }
        ("copy-link", Some(link)) => copy_to_clipboard(link).await,
        _ => true,
    };
    if !done {
        tracing::info!("notification action {key}: no xdg-open, wl-copy, xclip or xsel worked");
    }
}

/// Shows a notification for every batch that ends, until `shutdown`.
pub async fn run(
    conn: zbus::Connection,
    queue: Queue,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
) {
    let mut batches = engine.subscribe_batches();
    // Our notifications' ids, with what their actions need.
    let mut shown: HashMap<u32, Shown> = HashMap::new();
    let mut actions = None;
    loop {
        if actions.is_none()
            && let Ok(proxy) = NotificationsProxy::new(&conn).await
        {
            actions = proxy.receive_action_invoked().await.ok();
        }
        let action = async {
            match actions.as_mut() {
                Some(stream) => futures_util::StreamExt::next(stream).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            finished = batches.recv() => match finished {
                Ok(finished) => {
                    if let Some((id, what)) = notify(&conn, &queue, &finished).await {
                        shown.insert(id, what);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            invoked = action => match invoked.and_then(|s| s.args().ok().map(|a| (a.id, a.action_key))) {
                Some((id, key)) => {
                    if let Some(what) = shown.get(&id) {
                        act(&key, what, &queue).await;
                    }
                }
                None => actions = None,
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// How a notice is shown, beyond what it says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Display {
    /// The id of an earlier notice of ours that this one replaces (0: a new one).
    pub replaces: u32,
    /// Gone after a few seconds and kept out of the notification history: for "on its way"
    /// notices that a later one completes.
    pub transient: bool,
}

/// Shows `notice` on the session bus's notification server; returns its id.
pub async fn show(conn: &zbus::Connection, notice: &Notice, display: Display) -> zbus::Result<u32> {
    let proxy = NotificationsProxy::new(conn).await?;
    let actions: Vec<&str> = notice
        .actions
        .iter()
        .flat_map(|(key, label)| [*key, *label])
        .collect();
    let mut hints = HashMap::new();
    hints.insert(
        "urgency",
        Value::from(if notice.urgent { 2u8 } else { 1u8 }),
    );
    hints.insert("desktop-entry", Value::from("dbxport"));
    if display.transient {
        hints.insert("transient", Value::from(true));
    }
    proxy
        .notify(
            "dbxport",
            display.replaces,
            "folder-remote",
            &notice.summary,
            &notice.body,
            &actions,
            hints,
            if display.transient { 5000 } else { -1 },
        )
        .await
}

/// Shows the notice for one batch; returns its id and what its actions need.
async fn notify(
    conn: &zbus::Connection,
    queue: &Queue,
    finished: &BatchFinished,
) -> Option<(u32, Shown)> {
    let batch = queue.batch(finished.batch).ok()??;
    let from_watch = batch
        .jobs
        .first()
        .and_then(|id| queue.get(*id).ok().flatten())
        .is_some_and(|job| job.origin.is_some());
    let notice = notice_for(&batch.remote_folder, &finished.summary, from_watch)?;
    match show(conn, &notice, Display::default()).await {
        Ok(id) => Some((
            id,
            Shown {
                batch: finished.batch,
                folder: batch.remote_folder.clone(),
                link: finished.summary.link.clone(),
            },
        )),
        Err(e) => {
            tracing::debug!("no desktop notification: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(done: u32, skipped: u32, failed: u32) -> BatchSummary {
        BatchSummary {
            done,
            skipped,
            failed,
            failures: (0..failed)
                .map(|i| format!("/p/{i}.jpg: permission denied"))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_batch_says_how_many_went_where() {
        let n = notice_for("/Photos/2024", &summary(12, 2, 0), false).unwrap();
        assert_eq!(n.summary, "12 photos sent to Dropbox");
        assert_eq!(n.body, "10 photos in /Photos/2024; 2 already there");
        assert_eq!(n.actions, [("open-folder", "Open folder")]);
        assert!(!n.urgent);
    }

    #[test]
    fn failures_are_listed_with_their_reasons() {
        let n = notice_for("/P", &summary(1, 0, 5), false).unwrap();
        assert_eq!(n.summary, "5 of 6 photos could not be sent to Dropbox");
        assert!(n.body.contains("/p/0.jpg: permission denied"));
        assert!(n.body.contains("… and 2 more"));
        assert!(n.urgent);
        assert!(n.actions.contains(&("retry-failed", "Retry failed")));
    }

    #[test]
    fn a_link_comes_with_a_copy_action() {
        let mut s = summary(1, 0, 0);
        s.link = Some("https://www.dropbox.com/scl/fo/x".into());
        let n = notice_for("/P", &s, false).unwrap();
        assert_eq!(n.summary, "1 photo sent to Dropbox");
        assert!(n.body.contains("Link: https://www.dropbox.com/scl/fo/x"));
        assert!(n.actions.contains(&("copy-link", "Copy link")));
    }

    #[test]
    fn watch_batches_are_quiet_unless_something_failed() {
        assert_eq!(notice_for("/C", &summary(3, 0, 0), true), None);
        assert!(notice_for("/C", &summary(3, 0, 1), true).is_some());
        // Cancelled only: nothing to tell.
        let cancelled = BatchSummary {
            cancelled: 2,
            ..Default::default()
        };
        assert_eq!(notice_for("/C", &cancelled, false), None);
    }

    #[test]
    fn folder_pages_are_escaped() {
        assert_eq!(
            folder_url("/Photos/Trip 2024"),
            "https://www.dropbox.com/home/Photos/Trip%202024"
        );
    }
}
