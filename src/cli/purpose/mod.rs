//! `dbxportctl purpose`: dbxport as a plugin of KDE's Share menu (the Purpose framework, used
//! by Dolphin, Gwenview, Spectacle and KPhotoAlbum). `dbxportctl install` puts a kpackage under
//! `kpackage/Purpose/io.github.dbxport1/` whose `contents/code/main.sh` runs this command with
//! the arguments Purpose gives it (`protocol` says what Purpose sends and reads back).
//!
//! The shared photos go to the daemon as any caller's do (the configured default folder and
//! options) with a shared link asked for, those in a temporary folder as copies the daemon
//! spools before it answers (their host may delete them at once); the batch is followed as `upload --wait` follows it
//! (`follow`), its bytes becoming rising percentages, and the folder's link is the job's
//! output, which Gwenview and Spectacle put on the clipboard. Whatever keeps the photos from
//! going (no daemon, no login, files refused or failed) is Purpose's `error`/`errorText`, which
//! the host shows; nothing is left half said on the socket.

pub mod protocol;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use zbus::zvariant::OwnedValue;

use super::follow::{self, Followed, Subscription};
use super::handover;
use super::term::warnln;
use super::{Exit, describe};
use crate::service::{AccountProxy, UploaderProxy};
use protocol::{MAX_LENGTH_LINE, PurposeError, Reply, Request, Rising};

/// The arguments Purpose starts a plugin's executable with (`ProcessJob::start`), spelt as it
/// spells them.
#[derive(clap::Args)]
pub struct PurposeArgs {
    /// The local socket Purpose listens on (a full path).
    #[arg(long = "server", value_name = "SOCKET")]
    server: PathBuf,
    /// The plugin type asked for; dbxport is an Export plugin.
    #[arg(long = "pluginType", value_name = "TYPE", default_value = "Export")]
    plugin_type: String,
    /// The plugin's `contents/code/main.*`, as Purpose found it (not needed here).
    #[arg(long = "pluginPath", value_name = "PATH")]
    plugin_path: Option<PathBuf>,
}

/// Runs the plugin: reads Purpose's request, hands the photos over, follows them, answers.
pub async fn run(args: PurposeArgs) -> Exit {
    let stream = match UnixStream::connect(&args.server).await {
        Ok(stream) => stream,
        Err(e) => {
            warnln!(
                "dbxportctl purpose: cannot connect to the Share menu's socket {}: {e}; this \
                 command is run by KDE's Share menu, not by hand",
                args.server.display()
            );
            return Exit::Error;
        }
    };
    let (read, mut write) = stream.into_split();
    let outcome = async {
        if args.plugin_type != "Export" {
            return Err(PurposeError::WrongType(args.plugin_type.clone()));
        }
        let request = read_request(BufReader::new(read)).await?;
        share(&request, &mut write).await
    }
    .await;
    let (reply, exit) = match outcome {
        Ok(link) => (Reply::Output { url: link }, Exit::Ok),
        Err(e) => {
            warnln!("dbxportctl purpose: {e}");
            let exit = match e {
                PurposeError::NotLoggedIn(_) => Exit::NotLoggedIn,
                PurposeError::Refused(_) | PurposeError::NotLocal(_) | PurposeError::Failed(_) => {
                    Exit::JobsFailed
                }
                _ => Exit::Error,
            };
            (Reply::Error(e.code(), e.to_string()), exit)
        }
    };
    // Purpose reads what is left on the socket once the process has exited: the last line is
    // written and flushed before this returns.
    if let Err(e) = send(&mut write, &reply).await {
        warnln!("dbxportctl purpose: cannot answer the Share menu: {e}");
    }
    let _ = write.shutdown().await;
    exit
}

/// The length line and the CBOR map it announces.
async fn read_request(
    mut read: BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<Request, PurposeError> {
    let mut line = Vec::new();
    (&mut read)
        .take(MAX_LENGTH_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| PurposeError::BadRequest(format!("cannot read the socket: {e}")))?;
    if line.pop() != Some(b'\n') {
        return Err(PurposeError::BadRequest(format!(
            "the byte count line ended early: {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    let length = protocol::parse_length(&line)?;
    let mut data = vec![0; length];
    read.read_exact(&mut data)
        .await
        .map_err(|e| PurposeError::BadRequest(format!("{length} bytes announced: {e}")))?;
    protocol::decode(&data)
}

async fn send(write: &mut OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    write.write_all(reply.line().as_bytes()).await?;
    write.flush().await
}

/// A failed call, as Purpose is told it: the daemon or bus away, or a refusal.
fn call_error(e: &crate::service::ServiceError) -> PurposeError {
    use crate::service::ServiceError;
    match e {
        ServiceError::InvalidPath(m) | ServiceError::InvalidArgument(m) => {
            PurposeError::Refused(m.clone())
        }
        ServiceError::NotLoggedIn(m) => PurposeError::NotLoggedIn(format!(" ({m})")),
        e => PurposeError::Unreachable(describe(e)),
    }
}

/// Hands the request's photos to the daemon and follows them to the end; the shared link.
async fn share(request: &Request, write: &mut OwnedWriteHalf) -> Result<String, PurposeError> {
    let paths = protocol::local_paths(&request.urls)?;
    // Checked here, all or nothing: the user shared these photos together, and a link to a
    // folder missing some of them is not what was asked for.
    let refused: Vec<String> = paths
        .iter()
        .filter_map(|p| crate::prepare::check_source(p).err())
        .map(|e| e.to_string())
        .collect();
    if !refused.is_empty() {
        return Err(PurposeError::Refused(refused.join("; ")));
    }
    let conn = zbus::Connection::session().await.map_err(|e| {
        PurposeError::Unreachable(format!(
            "no D-Bus session bus ({}): is DBUS_SESSION_BUS_ADDRESS set?",
            describe(&e)
        ))
    })?;
    // Logged out, the daemon would queue the photos and wait for a login that nobody in the
    // Share dialog is asked for: say so now instead.
    let account = AccountProxy::new(&conn)
        .await
        .map_err(|e| PurposeError::Unreachable(describe(&e)))?;
    let state = account
        .state()
        .await
        .map_err(|e| PurposeError::Unreachable(describe(&e)))?;
    if state != "logged_in" {
        let why = account.status_message().await.unwrap_or_default();
        return Err(PurposeError::NotLoggedIn(if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        }));
    }
    let proxy = UploaderProxy::new(&conn)
        .await
        .map_err(|e| PurposeError::Unreachable(describe(&e)))?;
    let subscription = Subscription::start(&proxy)
        .await
        .map_err(PurposeError::Unreachable)?;
    let (sent_tx, mut sent_rx) = tokio::sync::watch::channel((0u64, 0u64));
    subscription.on_progress(Box::new(move |sent, total| {
        sent_tx.send_replace((sent, total));
    }));
    let options: HashMap<String, OwnedValue> =
        [("share_link".to_string(), OwnedValue::from(true))].into();
    let (batch, _) = upload(&proxy, &paths, options).await?;
    let mut rising = Rising::default();
    // The host's bar starts as soon as the photos are queued. A host that went away (the user
    // closed it) no longer reads: the batch goes on in the daemon all the same.
    if let Some(p) = rising.to(0) {
        let _ = send(write, &Reply::Percent(p)).await;
    }
    let followed = follow::follow(&proxy, batch, subscription, true, true);
    tokio::pin!(followed);
    let followed = loop {
        tokio::select! {
            ended = &mut followed => break ended,
            Ok(()) = sent_rx.changed() => {
                let (sent, total) = *sent_rx.borrow_and_update();
                if let Some(p) = rising.next(sent, total) {
                    let _ = send(write, &Reply::Percent(p)).await;
                }
            }
        }
    };
    let summary = match followed.map_err(PurposeError::Unreachable)? {
        Followed::Finished(summary) => summary,
        Followed::Interrupted => {
            return Err(PurposeError::Unreachable(format!(
                "stopped following batch {batch}; it goes on in dbxportd (`dbxportctl jobs --batch {batch}`)"
            )));
        }
    };
    if summary.failed > 0 || summary.cancelled > 0 {
        let mut reasons = summary.failures.clone();
        if summary.cancelled > 0 {
            reasons.push(format!("{} cancelled", summary.cancelled));
        }
        return Err(PurposeError::Failed(reasons.join("; ")));
    }
    match (summary.link, summary.link_error) {
        (Some(link), _) => {
            if let Some(p) = rising.to(100) {
                let _ = send(write, &Reply::Percent(p)).await;
            }
            Ok(link)
        }
        (None, Some(error)) => Err(PurposeError::NoLink(error)),
        (None, None) => Err(PurposeError::NoLink(
            "the daemon's summary of the batch never came".into(),
        )),
    }
}

/// Whether `path` lies in a temporary folder: Spectacle and other hosts share a screenshot or
/// an export from there and may delete it once the Share dialog closes.
fn is_temporary(path: &Path) -> bool {
    let temp = std::env::temp_dir();
    [temp.as_path(), Path::new("/tmp"), Path::new("/var/tmp")]
        .iter()
        .any(|dir| path.starts_with(dir))
}

/// Queues `paths` in the daemon's default folder; the batch and its jobs. Temporary files go
/// as open files the daemon copies into its spool before it answers (`handover`), so their
/// host may delete them at once; the user's own files go by path, and as open files too when
/// the daemon says it cannot see them (a sandbox, a private `/tmp`).
async fn upload(
    proxy: &UploaderProxy<'_>,
    paths: &[PathBuf],
    options: HashMap<String, OwnedValue>,
) -> Result<(u64, Vec<u64>), PurposeError> {
    let spooled = |options| async move {
        handover::hand_over(proxy, paths, "", options)
            .await
            .map_err(|e| match e {
                handover::HandOverError::Refused(e) => call_error(&e),
                e => PurposeError::Refused(e.to_string()),
            })
    };
    if paths.iter().any(|p| is_temporary(p)) {
        return spooled(options).await;
    }
    // Kept for the hand-over the daemon's refusal may call for.
    let again = options
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.try_clone()?)))
        .collect::<Result<HashMap<_, _>, zbus::zvariant::Error>>()
        .map_err(|e| PurposeError::BadRequest(e.to_string()))?;
    // A D-Bus string cannot hold a name that is not UTF-8: such a batch goes as bytes.
    let queued = match paths.iter().map(|p| p.to_str()).collect::<Option<Vec<_>>>() {
        Some(texts) => {
            let texts = texts.into_iter().map(str::to_owned).collect();
            proxy.upload(texts, String::new(), options).await
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            let bytes = paths.iter().map(|p| p.as_os_str().as_bytes().to_vec());
            proxy
                .upload_paths(bytes.collect(), String::new(), options)
                .await
        }
    };
    match queued {
        Ok(queued) => Ok(queued),
        Err(e) if handover::daemon_cannot_see(&e, paths) => spooled(again).await,
        Err(e) => Err(call_error(&e)),
    }
}
