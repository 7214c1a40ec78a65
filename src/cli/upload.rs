//! `dbxportctl upload`: checks the files, hands them to the daemon, and with `--wait` follows
//! them to the end with a progress bar per file in flight and one for the batch.
//!
//! Files that cannot be uploaded (missing, a directory) are reported one by one and left out,
//! so the rest still go; the exit code then says some were refused. Waiting is `follow.rs`'s:
//! the daemon's signals, subscribed before `Upload` is called so nothing is missed, with
//! `ListJobs` as a resync.
//!
//! With `--spool`, or when the daemon says it cannot see paths this side can open (its own
//! `/tmp` under systemd's `PrivateTmp=`), the files go as open descriptors instead
//! (`handover`): the daemon copies them into its spool before the call returns.
//!
//! File-manager menus run it with `--notify`: there is no terminal to read, so what went wrong
//! before the daemon took the files, and (with `--wait`) how the batch ended, also goes out as
//! desktop notifications. `--copy-link` waits for the batch's shared link and puts it on the
//! clipboard.

use std::collections::HashMap;
use std::path::PathBuf;

use zbus::zvariant::{OwnedValue, Value};

use super::follow::{self, Followed, Subscription};
use super::handover::{daemon_cannot_see, hand_over};
use super::jobs::fetch;
use super::stalls;
use super::term::{outln, say, warnln};
use super::{Exit, UploadArgs, describe};
use crate::notifications::{Display, Notice, notice_for, photos};
use crate::prepare;
use crate::queue::BatchSummary;
use crate::service::UploaderProxy;

pub async fn run(conn: &zbus::Connection, args: UploadArgs) -> Result<Exit, String> {
    super::check_folder(args.to.as_deref(), args.export.profile.as_deref())?;
    let mut options = args.export.to_options();
    // A link to copy needs a link, and the batch's end to have it.
    if args.copy_link {
        options.insert("share_link".into(), OwnedValue::from(true));
    }
    let wait = args.wait || args.copy_link;
    let notices = args.notify.then(|| Notices::new(conn));
    let to = args.to.as_deref();
    let json = args.json;
    let how = Request {
        wait,
        json,
        spool: args.spool,
    };
    let sent = match send_batch_with(conn, &args.files, to, options, how, notices.as_ref()).await {
        Ok(sent) => sent,
        Err(message) => {
            if let Some(notices) = &notices {
                notices.failed(&message).await;
            }
            return Err(message);
        }
    };
    let (exit, copied) = finish(&sent, args.copy_link).await;
    if json {
        outln!("{}", sent.to_json(exit));
    }
    if let Some(notices) = &notices {
        notices.outcome(&sent, exit, copied).await;
    }
    Ok(exit)
}

/// What became of an upload request.
#[derive(Debug, Default)]
struct Sent {
    /// Files left out before asking the daemon, each with the reason.
    refused: Vec<String>,
    /// The batch and how many jobs it holds (None: nothing was queued).
    batch: Option<(u64, u32)>,
    /// The Dropbox folder the batch went to (the configured default when none was given);
    /// found out only for notices.
    folder: String,
    /// With `wait`: the batch's end, as the daemon summed it up.
    finished: Option<BatchSummary>,
    /// With `wait`: the user stopped following with Ctrl-C.
    interrupted: bool,
    /// The job ids, in the order of the files.
    jobs: Vec<u64>,
}

impl Sent {
    /// `upload --json`: the one object a script reads.
    fn to_json(&self, exit: Exit) -> serde_json::Value {
        let mut out = serde_json::json!({
            "batch": self.batch.map(|(b, _)| b),
            "jobs": self.jobs,
            "refused": self.refused,
            "exit": exit as u8,
        });
        if let Some(s) = &self.finished {
            out["outcome"] = serde_json::json!({
                "uploaded": s.done - s.skipped,
                "skipped": s.skipped,
                "failed": s.failed,
                "cancelled": s.cancelled,
                "failures": s.failures,
                "warnings": s.warnings,
                "link": s.link,
                "link_error": s.link_error,
            });
        }
        if self.interrupted {
            out["interrupted"] = serde_json::Value::Bool(true);
        }
        out
    }

    fn exit(&self) -> Exit {
        if self.interrupted {
            return Exit::Interrupted;
        }
        let outcome = match &self.finished {
            Some(s) if s.failed > 0 => Exit::JobsFailed,
            Some(s) if s.cancelled > 0 => Exit::Cancelled,
            _ => Exit::Ok,
        };
        if (!self.refused.is_empty() || self.batch.is_none()) && outcome == Exit::Ok {
            Exit::JobsFailed
        } else {
            outcome
        }
    }
}

/// How files are sent and followed.
#[derive(Debug, Clone, Copy)]
struct Request {
    /// Follow the batch to its end.
    wait: bool,
    /// One JSON object on stdout.
    json: bool,
    /// Hand the files over as open descriptors (`UploadFds`), not paths.
    spool: bool,
}

/// Checks `files`, queues what can go (telling `notices` once they are queued), and with
/// `wait` follows the batch to its end.
async fn send_batch_with(
    conn: &zbus::Connection,
    files: &[PathBuf],
    to: Option<&str>,
    options: HashMap<String, OwnedValue>,
    how: Request,
    notices: Option<&Notices<'_>>,
) -> Result<Sent, String> {
    let Request { wait, json, spool } = how;
    let mut sent = Sent::default();
    let mut paths = Vec::new();
    for file in files {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        match prepare::check_source(&absolute) {
            Ok(_) => paths.push(absolute),
            Err(e) => {
                warnln!("dbxportctl: {e}");
                sent.refused.push(e.to_string());
            }
        }
    }
    if paths.is_empty() {
        warnln!("dbxportctl: nothing to upload");
        return Ok(sent);
    }
    warn_not_media(&paths);
    let want_link = options
        .get("share_link")
        .and_then(|v| bool::try_from(&**v).ok())
        .unwrap_or(false);
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    // What holds uploads back now, told once the files are queued. Asked before subscribing:
    // with signals subscribed, every await must be one the drainer runs beside.
    let active = fetch(&proxy, &[("state", Value::from("active"))]).await?;
    let stalled = stalls::stalls(conn, &proxy, &active, stalls::For::Upload).await?;
    drop(active);
    let subscription = if wait {
        Some(Subscription::start(&proxy).await?)
    } else {
        None
    };
    let folder = to.unwrap_or("").to_string();
    let (batch, ids) = if spool {
        hand_over(&proxy, &paths, &folder, options)
            .await
            .map_err(|e| e.to_string())?
    } else {
        // Kept for the hand-over the daemon's refusal may call for.
        let again = options
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.try_clone()?)))
            .collect::<Result<HashMap<_, _>, zbus::zvariant::Error>>()
            .map_err(|e| e.to_string())?;
        match send_paths(&proxy, &paths, &folder, options).await {
            Ok(queued) => queued,
            // The daemon lives in another /tmp (systemd's PrivateTmp=) or cannot read what
            // this side can: the same call goes as open files, which it copies.
            Err(e) if daemon_cannot_see(&e, &paths) => {
                warnln!(
                    "dbxportctl: the daemon cannot see {} (a private /tmp or a sandbox): handing {} over as open files instead (as --spool does)",
                    if paths.len() == 1 {
                        "this file"
                    } else {
                        "these files"
                    },
                    if paths.len() == 1 { "it" } else { "them" }
                );
                hand_over(&proxy, &paths, &folder, again)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(describe(&e)),
        }
    };
    say!("queued {} file(s) as batch {batch}", ids.len());
    sent.jobs = ids.clone();
    if !json && !super::term::stdout_is_terminal() {
        // For scripts: `batch=$(dbxportctl upload …)`.
        outln!("{batch}");
    }
    sent.batch = Some((batch, ids.len() as u32));
    // A wait must never be silent: whatever holds the files back is said now, with its fix.
    let width = super::term::stderr_width();
    for stall in &stalled {
        let text = format!("the files wait: {stall}");
        warnln!("{}", super::term::hanging("dbxportctl: ", &text, width));
    }
    if let Some(notices) = notices {
        sent.folder = match to {
            Some(folder) => folder.to_string(),
            // The daemon chose the folder (its configured default): its jobs say which.
            None => fetch(&proxy, &[("batch", Value::from(batch))])
                .await?
                .first()
                .and_then(|job| job.remote_path.rsplit_once('/'))
                .map(|(folder, _)| folder.to_string())
                .unwrap_or_default(),
        };
        notices.queued(&sent).await;
    }
    if let Some(subscription) = subscription {
        match follow::follow(&proxy, batch, subscription, want_link, json).await? {
            Followed::Finished(summary) => sent.finished = Some(summary),
            Followed::Interrupted => sent.interrupted = true,
        }
    }
    Ok(sent)
}

/// `Upload` for `paths`, or `UploadPaths` when a name is not UTF-8 (a D-Bus string cannot
/// hold it).
async fn send_paths(
    proxy: &UploaderProxy<'_>,
    paths: &[PathBuf],
    folder: &str,
    options: HashMap<String, OwnedValue>,
) -> Result<(u64, Vec<u64>), crate::service::ServiceError> {
    let folder = folder.to_string();
    match paths.iter().map(|p| p.to_str()).collect::<Option<Vec<_>>>() {
        Some(texts) => {
            let texts = texts.into_iter().map(str::to_owned).collect();
            proxy.upload(texts, folder, options).await
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            let bytes = paths.iter().map(|p| p.as_os_str().as_bytes().to_vec());
            proxy.upload_paths(bytes.collect(), folder, options).await
        }
    }
}

/// Says, once for the batch, which files are neither photos nor videos (a `SOURCES.md` caught
/// by a glob): they are sent as they are, which may not be what was meant.
fn warn_not_media(paths: &[PathBuf]) {
    use std::io::Read;
    let others: Vec<String> = paths
        .iter()
        .filter(|path| {
            let mut head = [0u8; 16];
            let n = std::fs::File::open(path)
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            prepare::sniff(&head[..n], &name) == prepare::Format::Other
        })
        .map(|path| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    if others.is_empty() {
        return;
    }
    let shown: Vec<&str> = others.iter().take(5).map(String::as_str).collect();
    let more = match others.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    warnln!(
        "warning: {} not a photo or video, sent as it is: {}{more}",
        if others.len() == 1 {
            "1 file is"
        } else {
            "these files are"
        },
        shown.join(", ")
    );
}

/// With `copy_link`, puts the batch's link on the clipboard. The exit code, and with
/// `copy_link` whether the link is on the clipboard: a link that could not be made or copied
/// fails the run (1) when nothing else did, since the link is what was asked for.
async fn finish(sent: &Sent, copy_link: bool) -> (Exit, Option<bool>) {
    let exit = sent.exit();
    if !copy_link || sent.batch.is_none() {
        return (exit, None);
    }
    let copied = match sent.finished.as_ref().and_then(|s| s.link.as_deref()) {
        Some(link) => {
            let copied = crate::notifications::copy_to_clipboard(link).await;
            if copied {
                say!("link copied to the clipboard");
            } else {
                warnln!("dbxportctl: cannot copy the link: none of wl-copy, xclip or xsel worked");
            }
            copied
        }
        // `follow` has said why.
        None => false,
    };
    let exit = if !copied && exit == Exit::Ok {
        Exit::Error
    } else {
        exit
    };
    (exit, Some(copied))
}

/// `--notify`: what a file manager's user, who has no terminal, is told.
struct Notices<'a> {
    conn: &'a zbus::Connection,
    /// The "on its way" notice, which the outcome replaces.
    queued: std::sync::atomic::AtomicU32,
}

impl<'a> Notices<'a> {
    fn new(conn: &'a zbus::Connection) -> Notices<'a> {
        Notices {
            conn,
            queued: Default::default(),
        }
    }

    async fn show(&self, notice: Notice, display: Display) -> u32 {
        // No notification server (a headless session): stderr has said it all already.
        crate::notifications::show(self.conn, &notice, display)
            .await
            .unwrap_or(0)
    }

    /// The request failed as a whole: the daemon is unreachable or refused the call.
    async fn failed(&self, message: &str) {
        let notice = Notice {
            summary: "Photos not sent to Dropbox".into(),
            body: message.to_string(),
            actions: vec![],
            urgent: true,
        };
        self.show(notice, self.replacing()).await;
    }

    fn replacing(&self) -> Display {
        Display {
            replaces: self.queued.load(std::sync::atomic::Ordering::Relaxed),
            transient: false,
        }
    }

    /// The files are queued. Brief and transient when all went: the daemon's own notice tells
    /// how the batch ended, so this only confirms the click did something (a large batch can
    /// take minutes). Files refused here never reach the daemon, so they are told in full.
    async fn queued(&self, sent: &Sent) {
        let Some((_, count)) = sent.batch else { return };
        let mut notice = Notice {
            summary: format!("{} queued for {}", photos(count), folder_name(&sent.folder)),
            body: String::new(),
            actions: vec![],
            urgent: !sent.refused.is_empty(),
        };
        if !sent.refused.is_empty() {
            notice.body = refused_lines(&sent.refused);
        }
        let id = self
            .show(
                notice,
                Display {
                    replaces: 0,
                    transient: sent.refused.is_empty(),
                },
            )
            .await;
        self.queued.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// The end: nothing could go, or (with `--wait`) how the batch ended, in the daemon's own
    /// words, with the files refused here and what became of the link.
    async fn outcome(&self, sent: &Sent, exit: Exit, copied: Option<bool>) {
        if sent.batch.is_none() {
            let notice = Notice {
                summary: "Nothing sent to Dropbox".into(),
                body: refused_lines(&sent.refused),
                actions: vec![],
                urgent: true,
            };
            self.show(notice, Display::default()).await;
            return;
        }
        let Some(summary) = &sent.finished else {
            return;
        };
        let Some(mut notice) = notice_for(&sent.folder, summary, false).or_else(|| {
            (exit == Exit::Cancelled).then(|| Notice {
                summary: "Upload to Dropbox cancelled".into(),
                body: String::new(),
                actions: vec![],
                urgent: false,
            })
        }) else {
            return;
        };
        // The daemon's notice carries the actions; this one only tells.
        notice.actions.clear();
        if let Some(link) = &summary.link {
            match copied {
                Some(true) => {
                    notice.body = notice
                        .body
                        .replace(&format!("Link: {link}"), &format!("Link copied: {link}"));
                }
                Some(false) => {
                    notice
                        .body
                        .push_str("\nNot copied: none of wl-copy, xclip or xsel worked");
                    notice.urgent = true;
                }
                None => {}
            }
        } else if copied.is_some() {
            notice.urgent = true;
        }
        if !sent.refused.is_empty() {
            notice.body.push('\n');
            notice.body.push_str(&refused_lines(&sent.refused));
            notice.urgent = true;
        }
        self.show(notice, self.replacing()).await;
    }
}

fn folder_name(folder: &str) -> &str {
    if folder.is_empty() { "/" } else { folder }
}

fn refused_lines(refused: &[String]) -> String {
    format!("Not sent:\n{}", refused.join("\n"))
}
