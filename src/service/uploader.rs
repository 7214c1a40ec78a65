//! `io.github.dbxport1.Uploader`: queueing files, following and steering jobs.

use std::collections::HashMap;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

use super::options::{export_overrides, take_folders, take_more, take_profile};
use super::{ServiceError, job_to_dict};
use crate::queue::{Filter, JobState, Queue};

/// The `state` values `ListJobs` filters on.
const JOB_STATES: [&str; 10] = [
    "all",
    "active",
    "queued",
    "preparing",
    "uploading",
    "committing",
    "waiting",
    "done",
    "failed",
    "cancelled",
];

fn state_matches(filter: &str, state: &JobState) -> bool {
    match filter {
        "active" => !state.is_terminal(),
        "all" => true,
        name => state.name() == name,
    }
}

pub struct Uploader {
    /// Turns `Upload`'s files into jobs (the library's one intake).
    pub(super) intake: crate::intake::Intake,
    pub(super) queue: Queue,
    /// Where `UploadFds` copies the files it is handed (`crate::spool`).
    pub(super) spool: std::sync::Arc<crate::spool::Spool>,
    /// For the bandwidth limit, which lives in the client's transfers.
    pub(super) client: crate::dropbox::Client,
    /// For the throughput.
    pub(super) engine: std::sync::Arc<crate::engine::Engine>,
    /// Whether watch-folder uploads wait (metered connection, battery).
    pub(super) policy: std::sync::Arc<crate::policy::Policy>,
    /// When this daemon read its config file (ms since the epoch).
    pub(super) config_loaded_ms: u64,
    /// `UploadFds` parts waiting for their last part: per caller, with the folder, profile
    /// and options every part repeats.
    pub(super) parts: std::sync::Arc<crate::spool::parts::Parts<PartCall>>,
}

/// What every part of one hand-over gives: the folder, the profile and the options.
pub(super) type PartCall = (String, Option<String>, crate::export::ExportOverrides);

impl Uploader {
    /// What `Upload` and `UploadPaths` do once the paths are paths.
    async fn enqueue_paths(
        &self,
        paths: Vec<PathBuf>,
        remote_folder: String,
        mut options: HashMap<String, OwnedValue>,
    ) -> Result<(u64, Vec<u64>), ServiceError> {
        let profile = take_profile(&mut options).map_err(ServiceError::InvalidArgument)?;
        let overrides = export_overrides(&options).map_err(ServiceError::InvalidArgument)?;
        let queued = self
            .intake
            .upload(paths, &remote_folder, &overrides, profile.as_deref())
            .await?;
        Ok((queued.batch, queued.jobs))
    }

    /// What `UploadFds` does: checks the call, copies the files into the spool (fsynced), and
    /// queues the copies, with the parts `caller` handed over before (`more`) as one batch; a
    /// part that more parts follow is kept (answered with batch 0). A refusal removes the
    /// copies of this call and of the caller's earlier parts: a hand-over is all or nothing.
    async fn enqueue_fds(
        &self,
        caller: &str,
        connection: &zbus::Connection,
        names: Vec<String>,
        fds: Vec<zbus::zvariant::OwnedFd>,
        remote_folder: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(u64, Vec<u64>), ServiceError> {
        let result = self
            .enqueue_part(caller, connection, names, fds, remote_folder, options)
            .await;
        if result.is_err() {
            crate::spool::finish_all(self.parts.forget(caller), false).await;
        }
        result
    }

    async fn enqueue_part(
        &self,
        caller: &str,
        connection: &zbus::Connection,
        names: Vec<String>,
        fds: Vec<zbus::zvariant::OwnedFd>,
        remote_folder: String,
        mut options: HashMap<String, OwnedValue>,
    ) -> Result<(u64, Vec<u64>), ServiceError> {
        if names.len() != fds.len() {
            return Err(ServiceError::InvalidArgument(format!(
                "{} names for {} file descriptors: give one name per file",
                names.len(),
                fds.len()
            )));
        }
        let more = take_more(&mut options).map_err(ServiceError::InvalidArgument)?;
        let folders =
            take_folders(&mut options, names.len()).map_err(ServiceError::InvalidArgument)?;
        let profile = take_profile(&mut options).map_err(ServiceError::InvalidArgument)?;
        let overrides = export_overrides(&options).map_err(ServiceError::InvalidArgument)?;
        // A wrong folder, profile or option refuses the call before a byte is copied.
        self.intake
            .check_call(&remote_folder, &overrides, profile.as_deref())?;
        let files: Vec<(String, std::os::fd::OwnedFd)> = names
            .into_iter()
            .zip(fds.into_iter().map(std::os::fd::OwnedFd::from))
            .collect();
        let spool = self.spool.clone();
        let mut handover = tokio::task::spawn_blocking(move || spool.take(files))
            .await
            .map_err(|e| ServiceError::Failed(format!("copying the files failed: {e}")))??;
        handover.folders = folders;
        let call = (remote_folder, profile, overrides);
        if more {
            return match self.parts.keep(caller, call, handover) {
                Ok(first) => {
                    if let Some(ended) = first {
                        self.forget_when_gone(connection, caller, ended).await;
                    }
                    Ok((0, Vec::new()))
                }
                Err((mismatch, dropped)) => {
                    crate::spool::finish_all(dropped, false).await;
                    Err(ServiceError::InvalidArgument(mismatch.to_string()))
                }
            };
        }
        let mut handovers = match self.parts.take(caller, &call) {
            Ok(earlier) => earlier,
            Err((mismatch, mut dropped)) => {
                dropped.push(handover);
                crate::spool::finish_all(dropped, false).await;
                return Err(ServiceError::InvalidArgument(mismatch.to_string()));
            }
        };
        handovers.push(handover);
        let (remote_folder, profile, overrides) = call;
        let handed = handovers
            .iter()
            .flat_map(|h| h.files.iter().zip(&h.folders))
            .map(|((path, name), folder)| crate::intake::Handed {
                path: path.clone(),
                access: crate::prepare::Access::Spooled {
                    name: name.clone(),
                    folder: folder.clone(),
                },
            })
            .collect();
        let queued = self
            .intake
            .upload_handed(handed, &remote_folder, &overrides, profile.as_deref())
            .await;
        crate::spool::finish_all(handovers, queued.is_ok()).await;
        let queued = queued?;
        Ok((queued.batch, queued.jobs))
    }

    /// Forgets `caller`'s parts (removing their copies) if it leaves the bus before its last
    /// part; the watch ends with the parts (`ended`).
    async fn forget_when_gone(
        &self,
        connection: &zbus::Connection,
        caller: &str,
        ended: tokio_util::sync::CancellationToken,
    ) {
        let Ok(name) = zbus::names::BusName::try_from(caller.to_string()) else {
            return;
        };
        let Ok(bus) = zbus::fdo::DBusProxy::new(connection).await else {
            return;
        };
        // Listening before looking: a caller gone in between is seen either way.
        let Ok(mut changes) = bus
            .receive_name_owner_changed_with_args(&[(0, caller)])
            .await
        else {
            return;
        };
        let parts = self.parts.clone();
        let spool_owner = caller.to_string();
        let gone_already = !bus.name_has_owner(name).await.unwrap_or(true);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            if !gone_already {
                loop {
                    tokio::select! {
                        _ = ended.cancelled() => return,
                        change = changes.next() => match change {
                            Some(change) => {
                                let gone = change
                                    .args()
                                    .is_ok_and(|a| a.new_owner().is_none());
                                if !gone {
                                    continue;
                                }
                            }
                            None => return,
                        },
                    }
                    break;
                }
            }
            let dropped = parts.forget(&spool_owner);
            if !dropped.is_empty() {
                tracing::info!(
                    "{spool_owner} left the bus before the last part of its hand-over: its \
                     {} part(s) are dropped",
                    dropped.len()
                );
                crate::spool::finish_all(dropped, false).await;
            }
        });
    }
}

#[interface(
    name = "io.github.dbxport1.Uploader",
    proxy(
        default_service = "io.github.dbxport1",
        default_path = "/io/github/dbxport1",
        gen_blocking = false
    )
)]
impl Uploader {
    /// Queues files for upload into `remote_folder` (`""`: the profile's folder, else the
    /// configured default). The folder may be a template (`/Photos/{year}/{date}`: see the
    /// README, "Folder templates"), expanded per file now, so each job's `remote_path` is
    /// final; a bad template refuses the call before anything is queued. Returns the batch id
    /// and the job ids once the jobs are on disk. Options (`a{sv}`, each overriding the
    /// config's `[export]` for this batch): `profile` (s, a named export profile whose values
    /// the other options go over), `original` (b), `max_dimension` (u, resize so the long
    /// edge fits), `jpeg_quality` (u, 1–100), `strip_location` (b), `conflict` (s:
    /// `skip-identical`, `rename`, `overwrite`, `replace`), `share_link` (b). Every path
    /// must be absolute and name an existing regular file; otherwise nothing is queued and the
    /// error names each bad path. Dropbox does not tell letter case apart: two files for one
    /// Dropbox path (`a/IMG_1.JPG` and `b/img_1.jpg`) under `overwrite` refuse the call,
    /// naming both; under the other policies, and across calls, a job for a path that an
    /// unfinished job also writes runs after it (`overwrite`: the last handed over wins).
    async fn upload(
        &self,
        paths: Vec<String>,
        remote_folder: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(u64, Vec<u64>), ServiceError> {
        let paths = paths.into_iter().map(PathBuf::from).collect();
        self.enqueue_paths(paths, remote_folder, options).await
    }

    /// `Upload` for paths given as bytes (`aay`), so that file names that are not UTF-8 (an
    /// old camera's card, an archive from another system) can be handed over: a D-Bus string
    /// cannot hold them. A trailing NUL (GLib's bytestring convention) is allowed.
    async fn upload_paths(
        &self,
        paths: Vec<Vec<u8>>,
        remote_folder: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(u64, Vec<u64>), ServiceError> {
        let mut decoded = Vec::with_capacity(paths.len());
        for mut bytes in paths {
            if bytes.last() == Some(&0) {
                bytes.pop();
            }
            if bytes.contains(&0) {
                // Quoted: the text itself must not carry the NUL onto the bus.
                return Err(ServiceError::InvalidPath(format!(
                    "{:?}: a path cannot hold a NUL byte",
                    String::from_utf8_lossy(&bytes)
                )));
            }
            decoded.push(PathBuf::from(std::ffi::OsString::from_vec(bytes)));
        }
        self.enqueue_paths(decoded, remote_folder, options).await
    }

    /// `Upload` for files handed over as open file descriptors (`ah`), each with its name
    /// (`names`, the file's name only: no `/`), for callers whose files the daemon cannot see
    /// (a private `/tmp`, a sandboxed app) or may not keep (temporary exports). Before it
    /// returns, each file's content (from its first byte) is copied into the daemon's spool
    /// and fsynced, then queued: the caller may delete its files at once. The name is the
    /// file's name in Dropbox and in `ListJobs`. Folder and options as for `Upload`. A name
    /// with `/` or empty, a descriptor that is not a readable regular file, or a hand-over
    /// that would pass `spool.max_bytes` or fill the state disk refuses the whole call before
    /// anything is queued. At most 16 files go in one call (dbus-daemon passes no more
    /// descriptors in a message, and drops a caller that sends more): more go in parts, each call but the last with the option `more` (b,
    /// true), all with the same folder and options; such a part is copied and answered with
    /// batch 0 and no jobs, and the last part queues every part's files as one batch. Parts
    /// are the calling connection's: if it closes first, or a part is refused, the earlier
    /// parts are dropped. Option `folders` (as, one per file, "" for none): the name of the
    /// folder each file came from, which a folder template's `{folder}` uses (without it,
    /// "Unknown folder").
    async fn upload_fds(
        &self,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
        names: Vec<String>,
        fds: Vec<zbus::zvariant::OwnedFd>,
        remote_folder: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(u64, Vec<u64>), ServiceError> {
        // A peer-to-peer caller has no bus name; there is one such connection.
        let caller = header
            .sender()
            .map_or_else(String::new, |sender| sender.to_string());
        self.enqueue_fds(&caller, connection, names, fds, remote_folder, options)
            .await
    }

    /// The named export profiles (`[profiles.NAME]` in the config), by name: each with its
    /// settings as they apply (the config's defaults filled in): `folder` (s), `mode` (s:
    /// `original` or `resize`), `max_dimension` and `jpeg_quality` (u, when resizing),
    /// `strip_location` (b), `conflict` (s), `share_link` (b).
    async fn list_profiles(
        &self,
    ) -> Result<Vec<(String, HashMap<String, OwnedValue>)>, ServiceError> {
        let mut out = Vec::new();
        for profile in self.intake.profiles.iter() {
            let options = profile
                .options(
                    self.intake.defaults.clone(),
                    &crate::export::ExportOverrides::default(),
                )
                .map_err(ServiceError::Failed)?;
            let folder = crate::profile::folder("", Some(profile), &self.intake.default_folder);
            let mut d = super::options_to_dict(&options);
            d.insert("folder".into(), super::value(folder.to_string()));
            out.push((profile.name.clone(), d));
        }
        Ok(out)
    }

    /// Sends again: failed and cancelled jobs are queued again and waiting ones try now; a
    /// job, or every such job of a batch (e.g. after freeing space in Dropbox or fixing a
    /// file's permissions). Returns the ids queued or woken.
    async fn retry(&self, id: u64) -> Result<Vec<u64>, ServiceError> {
        Ok(self.queue.retry(id).await?)
    }

    /// Cancels a job, or every unfinished job of a batch. Returns the ids cancelled.
    async fn cancel(&self, id: u64) -> Result<Vec<u64>, ServiceError> {
        Ok(self.queue.cancel(id).await?)
    }

    /// Jobs as dictionaries, oldest first. Filter keys, which combine: `state` (s: `all`,
    /// `active`, or one state: `queued`, `preparing`, `uploading`, `committing`, `waiting`,
    /// `done`, `failed`, `cancelled`), `batch` (t) and `since_ms` (t:
    /// only unfinished jobs and jobs created at or after this time, in ms since the epoch).
    async fn list_jobs(
        &self,
        filter: HashMap<String, OwnedValue>,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, ServiceError> {
        let mut state = "all".to_string();
        let mut batch = None;
        let mut since_ms = None;
        for (key, v) in &filter {
            match key.as_str() {
                "state" => {
                    let s = <&str>::try_from(&**v).map_err(|_| {
                        ServiceError::InvalidArgument("filter state must be a string".into())
                    })?;
                    if !JOB_STATES.contains(&s) {
                        return Err(ServiceError::InvalidArgument(format!(
                            "filter state {s:?}: expected one of {}",
                            JOB_STATES.join(", ")
                        )));
                    }
                    state = s.to_string();
                }
                "batch" => {
                    batch = Some(u64::try_from(&**v).map_err(|_| {
                        ServiceError::InvalidArgument("filter batch must be a uint64".into())
                    })?);
                }
                "since_ms" => {
                    since_ms = Some(u64::try_from(&**v).map_err(|_| {
                        ServiceError::InvalidArgument("filter since_ms must be a uint64".into())
                    })?);
                }
                other => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "unknown filter {other:?}"
                    )));
                }
            }
        }
        let base = match (batch, state.as_str()) {
            (Some(id), _) => Filter::Batch(id),
            (None, "done") => Filter::Done,
            (None, "failed") => Filter::Failed,
            (None, "all" | "cancelled") => Filter::All,
            (None, _) => Filter::Active,
        };
        let jobs = self.queue.list(base)?;
        Ok(jobs
            .iter()
            .filter(|job| state_matches(&state, &job.state))
            .filter(|job| {
                since_ms.is_none_or(|since| !job.state.is_terminal() || job.created_ms >= since)
            })
            .map(job_to_dict)
            .collect())
    }

    /// Forgets finished jobs (done, failed, cancelled) that ended more than `older_than_secs`
    /// seconds ago (0: every finished job), and batches left empty, and the spool copies kept
    /// for failed jobs that went. A watch's record of the files it sent is kept. Returns how
    /// many jobs were removed.
    async fn clean_jobs(&self, older_than_secs: u64) -> Result<u32, ServiceError> {
        let before = crate::queue::now_ms().saturating_sub(older_than_secs.saturating_mul(1000));
        // `before` is exclusive: a job that ended this very millisecond goes with 0 too.
        let removed = self.queue.prune(before.saturating_add(1)).await?;
        tracing::info!("removed {removed} finished job(s) on request");
        // A failed hand-over's copy was kept for Retry; with its job gone, it goes too.
        let (spool, queue) = (self.spool.clone(), self.queue.clone());
        let _ = tokio::task::spawn_blocking(move || spool.sweep_against(&queue)).await;
        Ok(removed as u32)
    }

    /// Stops starting new transfers (running ones finish their current step). Persisted.
    /// `Paused` announces the change (`forward_signals` follows the queue's switch, whoever
    /// flips it: this method, the job tray).
    async fn pause(&self) -> Result<(), ServiceError> {
        Ok(self.queue.set_paused(true).await?)
    }

    async fn resume(&self) -> Result<(), ServiceError> {
        Ok(self.queue.set_paused(false).await?)
    }

    /// Unfinished jobs.
    #[zbus(property)]
    async fn queue_length(&self) -> u32 {
        self.queue.active_len() as u32
    }

    #[zbus(property)]
    async fn paused(&self) -> bool {
        self.queue.paused()
    }

    /// When the queue was paused, in ms since the epoch; 0 when it is not paused.
    #[zbus(property)]
    async fn paused_since_ms(&self) -> u64 {
        self.queue.paused_since().unwrap_or(0)
    }

    /// When the daemon read its config file, in ms since the epoch (it reads it once, as it
    /// starts): a file changed later takes effect at the next start.
    #[zbus(property)]
    async fn config_loaded_ms(&self) -> u64 {
        self.config_loaded_ms
    }

    /// Why uploads from watched folders wait: `""` when they do not, otherwise the reason
    /// (`metered connection`, `on battery`; see the `[policy]` config). Uploads asked for with
    /// `Upload` are never held.
    #[zbus(property)]
    async fn auto_uploads_held(&self) -> String {
        self.policy.hold().reason().into()
    }

    /// Bytes per second sent over the last few seconds (read it when needed: it changes all
    /// the time, so it emits no change signal).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn throughput(&self) -> u64 {
        self.engine.throughput()
    }

    /// Requests carrying file data allowed at once now: adaptive, between 1 and
    /// `upload.transfers`; it grows while requests go well and shrinks when Dropbox asks to
    /// slow down or answers more slowly (read it when needed: it emits no change signal).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn concurrency(&self) -> u32 {
        u32::try_from(self.engine.concurrency()).unwrap_or(u32::MAX)
    }

    /// Upload bandwidth in bytes per second across all transfers; 0 = no limit. Settable;
    /// takes effect at once (for transfers under way too) and outlives restarts.
    #[zbus(property)]
    async fn bandwidth_limit(&self) -> u64 {
        self.client.bandwidth_limit()
    }

    #[zbus(property)]
    async fn set_bandwidth_limit(&mut self, bytes_per_sec: u64) -> Result<(), zbus::fdo::Error> {
        self.queue
            .set_bandwidth_limit(bytes_per_sec)
            .await
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        self.client.set_bandwidth_limit(bytes_per_sec);
        tracing::info!("bandwidth limit: {bytes_per_sec} bytes/s (0 = none)");
        Ok(())
    }

    /// A job moved to `state` (see ListJobs); `message` says why for failed and waiting jobs.
    #[zbus(signal)]
    pub async fn job_state_changed(
        emitter: &SignalEmitter<'_>,
        job: u64,
        batch: u64,
        state: &str,
        message: &str,
    ) -> zbus::Result<()>;

    /// A batch ended: every job is final. `summary` (`a{sv}`): `done`, `skipped`, `failed`,
    /// `cancelled` (u), `failures` (as: each failed job's reason, naming its file), `warnings`
    /// (as: e.g. a HEIC that could not be resized went up as the original), and when
    /// the batch asked for one, `link` (s, the folder's shared link) or `link_error` (s).
    #[zbus(signal)]
    pub async fn batch_finished(
        emitter: &SignalEmitter<'_>,
        batch: u64,
        summary: HashMap<String, OwnedValue>,
    ) -> zbus::Result<()>;

    /// Bytes of a job confirmed sent, out of `total`; a few per second per job at most.
    #[zbus(signal)]
    pub async fn job_progress(
        emitter: &SignalEmitter<'_>,
        job: u64,
        sent: u64,
        total: u64,
    ) -> zbus::Result<()>;
}
