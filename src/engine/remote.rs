//! Remote resolution: what is already in Dropbox, by looking. Before a file is sent, whether
//! the same content is already at its name (skip-identical); after a commit whose answer was
//! lost, whether it landed and where (ARCHITECTURE.md, invariant 2); and after every commit,
//! whether Dropbox holds exactly the bytes sent (invariant 4).
//!
//! Asking per file (`get_metadata`) costs a request per photo: a thousand photos into one
//! folder would make a thousand, each counting against the account's rate limit. So once a
//! folder has been asked about a few times within a short window, its listing is read (a page
//! holds up to 2000 entries) and answers the rest; it is read again when older than [`FRESH`].
//! Folders too large to list in a few pages stay with per-file look-ups.
//!
//! Only "not there" answers come from the listing. A stale one is harmless: the commit uses
//! `add`, and Dropbox writes nothing for identical bytes already at the path, so the worst a
//! miss costs is sending bytes that were there. A "there with this content" answer makes a job
//! Done without sending, so it is confirmed with `get_metadata` first (ARCHITECTURE.md, invariant 4).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::replace::{Plan, plan, replaced_elsewhere};
use super::{Engine, Step, dropbox_step, session_step};
use crate::dropbox::{self, FileMetadata, ListFolderArg, Metadata};
use crate::folders::{self, ListingError};
use crate::queue::{FailureKind, Job, JobState};

/// How long a listing (or a count of look-ups) stays valid.
const FRESH: Duration = Duration::from_secs(30);
/// Look-ups in one folder within [`FRESH`] before its listing is read instead.
const LIST_AFTER: u32 = 4;
/// A folder needing more listing pages than this is looked up per file.
const MAX_PAGES: usize = 10;

enum FolderView {
    Counting {
        since: Instant,
        lookups: u32,
    },
    /// Files by lowercased name.
    Listed {
        at: Instant,
        files: HashMap<String, FileMetadata>,
    },
    TooLarge {
        at: Instant,
    },
}

impl FolderView {
    /// What a view that is no longer fresh becomes at `now`. A folder that was listed is
    /// listed again at its next look-up: it was busy, and a long export (photos resized a few
    /// a second) would otherwise pay the per-file look-ups again every [`FRESH`] before its
    /// listing is read. Any other starts counting again.
    fn renewed(&self, now: Instant) -> FolderView {
        let lookups = match self {
            FolderView::Listed { .. } => LIST_AFTER - 1,
            FolderView::Counting { .. } | FolderView::TooLarge { .. } => 0,
        };
        FolderView::Counting {
            since: now,
            lookups,
        }
    }

    fn fresh(&self, now: Instant) -> bool {
        let since = match self {
            FolderView::Counting { since, .. } => since,
            FolderView::Listed { at, .. } | FolderView::TooLarge { at } => at,
        };
        now.duration_since(*since) < FRESH
    }
}

/// Folder views by lowercased folder path.
#[derive(Default)]
pub(super) struct RemoteIndex {
    /// Held while a listing is read, so a folder is listed once however many jobs ask.
    folders: tokio::sync::Mutex<HashMap<String, FolderView>>,
}

/// What a commit whose answer was lost resolves to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Resolution {
    /// It landed: this file is the job's (its content hash still to be verified).
    Landed(Box<FileMetadata>),
    /// It did not land, and the closed session can be committed again (no data to send).
    CommitAgain,
    /// It did not land and there is no session to commit: the file is sent again.
    SendAgain,
}

/// Decides what a lost commit resolves to from what Dropbox holds (ARCHITECTURE.md, invariant
/// 2). `at_path`: the file at the job's path; `copies`: the folder's files under the job's
/// name or a renamed copy's (`name (N).ext`); only those holding `hash` count. `before`: the
/// copies recorded before a commit under `rename` (see `JobState::Committing`), which are not
/// its work: only a new one is. Without `before`, the file at the path is the job's, and under
/// a policy that lets Dropbox rename, so is a copy beside it ("photo (1).jpg").
pub(super) fn resolution(
    job: &Job,
    hash: &str,
    before: Option<&[String]>,
    at_path: Option<FileMetadata>,
    copies: Vec<FileMetadata>,
    session: bool,
) -> Resolution {
    let mut copies = copies
        .into_iter()
        .filter(|meta| is_copy_with_hash(&job.remote_path, hash, meta));
    let landed = match before {
        Some(before) => copies.find(|meta| !before.contains(&lower_path(meta))),
        None => at_path
            .filter(|meta| meta.content_hash.as_deref() == Some(hash))
            .or_else(|| {
                let (_, name) = split(&job.remote_path);
                copies
                    .filter(|_| job.options.conflict.renames())
                    .find(|meta| meta.name.to_lowercase() != name)
            }),
    };
    match landed {
        Some(meta) => Resolution::Landed(Box::new(meta)),
        None if session => Resolution::CommitAgain,
        None => Resolution::SendAgain,
    }
}

/// Whether `meta` holds exactly the content `hash` under the name of `remote_path` or a name
/// Dropbox gives renamed copies of it (`name (N).ext`, `name (conflicted copy…).ext`).
fn is_copy_with_hash(remote_path: &str, hash: &str, meta: &FileMetadata) -> bool {
    let (_, name) = remote_path.rsplit_once('/').unwrap_or(("", remote_path));
    let exact = name.to_lowercase();
    let stem = name
        .rsplit_once('.')
        .map_or(name, |(stem, _)| stem)
        .to_lowercase();
    let lower = meta.name.to_lowercase();
    meta.content_hash.as_deref() == Some(hash)
        && (lower == exact || lower.starts_with(&format!("{stem} (")))
}

/// A listing that stopped, as what happens to the job.
fn listing_step(job: &Job, error: ListingError) -> Step {
    match error {
        ListingError::Session(e) => session_step(e),
        ListingError::List(e) => dropbox_step(job, e),
        ListingError::Continue(e) => dropbox_step(job, e),
    }
}

/// The job's remote path as (folder, name), both lowercased as Dropbox compares them.
fn split(remote_path: &str) -> (String, String) {
    let lower = remote_path.to_lowercase();
    match lower.rsplit_once('/') {
        Some((folder, name)) => (folder.to_string(), name.to_string()),
        None => (String::new(), lower),
    }
}

impl Engine {
    /// The file now at the job's remote path, if any, as far as a recent listing knows; a
    /// file reported here is worth confirming before relying on it.
    pub(super) async fn remote_file(&self, job: &Job) -> Result<Option<FileMetadata>, Step> {
        let (folder, name) = split(&job.remote_path);
        // None: ask Dropbox about this one file.
        let answer: Option<Option<FileMetadata>> = {
            let mut folders = self.remote.folders.lock().await;
            let now = Instant::now();
            let view = folders
                .entry(folder.clone())
                .or_insert(FolderView::Counting {
                    since: now,
                    lookups: 0,
                });
            if !view.fresh(now) {
                *view = view.renewed(now);
            }
            match view {
                FolderView::Listed { files, .. } => Some(files.get(&name).cloned()),
                FolderView::TooLarge { .. } => None,
                FolderView::Counting { lookups, .. } if *lookups + 1 < LIST_AFTER => {
                    *lookups += 1;
                    None
                }
                FolderView::Counting { .. } => {
                    *view = match self.list_files(job, &folder).await? {
                        Some(files) => FolderView::Listed { at: now, files },
                        None => FolderView::TooLarge { at: now },
                    };
                    match view {
                        FolderView::Listed { files, .. } => Some(files.get(&name).cloned()),
                        _ => None,
                    }
                }
            }
        };
        match answer {
            Some(file) => Ok(file),
            None => self.get_file(job).await,
        }
    }

    /// A file this engine just committed, so a listing read before it knows it.
    pub(super) async fn note_remote(&self, meta: &FileMetadata) {
        let Some(path) = meta.path_lower.as_deref() else {
            return;
        };
        let (folder, name) = split(path);
        if let Some(FolderView::Listed { files, .. }) =
            self.remote.folders.lock().await.get_mut(&folder)
        {
            files.insert(name, meta.clone());
        }
    }

    /// `get_metadata` of the job's remote path: the file there, if it is a file.
    pub(super) async fn get_file(&self, job: &Job) -> Result<Option<FileMetadata>, Step> {
        let result = call!(self, |token| self
            .client
            .get_metadata(token, &job.remote_path));
        match result {
            Ok(Metadata::File(meta)) => Ok(Some(meta)),
            Ok(_)
            | Err(dropbox::Error::Route(dropbox::GetMetadataError::Path(
                dropbox::LookupError::NotFound,
            ))) => Ok(None),
            Err(e) => Err(dropbox_step(job, e)),
        }
    }

    /// The files in `folder` by lowercased name; None if it takes more than [`MAX_PAGES`].
    async fn list_files(
        &self,
        job: &Job,
        folder: &str,
    ) -> Result<Option<HashMap<String, FileMetadata>>, Step> {
        let arg = ListFolderArg {
            limit: Some(crate::config::MAX_LIST_PAGE_SIZE),
            ..ListFolderArg::new(folder)
        };
        let listing = folders::list_folder(
            &self.session,
            &self.client,
            &arg,
            Some(MAX_PAGES),
            |entry| matches!(entry, Metadata::File(_)),
        )
        .await;
        let listing = match listing {
            Ok(listing) if !listing.complete => return Ok(None),
            Ok(listing) => listing,
            // Not there yet: nothing in it.
            Err(ListingError::List(dropbox::Error::Route(dropbox::ListFolderError::Path(
                dropbox::LookupError::NotFound,
            )))) => return Ok(Some(HashMap::new())),
            Err(e) => return Err(listing_step(job, e)),
        };
        let files = listing
            .entries
            .into_iter()
            .filter_map(|entry| match entry {
                Metadata::File(meta) => Some((meta.name.to_lowercase(), meta)),
                _ => None,
            })
            .collect();
        Ok(Some(files))
    }
}

impl Engine {
    /// A commit was sent but its answer never recorded: did it land? Looks at the remote file
    /// before anything is sent again (ARCHITECTURE.md, invariant 2), holding the job's network
    /// slot `sending` for the look-ups. Returns true when the job is now Done. `before`: see
    /// `JobState::Committing`.
    pub(super) async fn resolve_commit(
        &self,
        job: &Job,
        hash: &str,
        session: Option<&str>,
        before: Option<&[String]>,
        sending: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<bool, Step> {
        // Look only where `resolution` will: the file at the path unless the commit was under
        // `rename` with the copies before it recorded; the folder's copies under a policy that
        // lets Dropbox rename, when the path does not hold it.
        let at_path = match before {
            None => self.remote_with_hash(job, hash).await?,
            Some(_) => None,
        };
        let copies = if before.is_some() || (at_path.is_none() && job.options.conflict.renames()) {
            self.copies_with_hash(job, hash).await?
        } else {
            Vec::new()
        };
        match resolution(job, hash, before, at_path, copies, session.is_some()) {
            Resolution::Landed(meta) => {
                tracing::info!(
                    job = job.id,
                    "an earlier commit landed as {:?}",
                    meta.path_display.as_deref().unwrap_or(&job.remote_path)
                );
                self.verified(job, *meta, hash, false).await?;
                Ok(true)
            }
            Resolution::CommitAgain => {
                drop(sending);
                // The session holds the bytes; only their size is wanted here.
                match (session, self.prepared(job, None, true).await?) {
                    (Some(session), Some(prepared)) => {
                        self.commit(job, session, prepared.stamp.size, hash).await?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Resolution::SendAgain => Ok(false),
        }
    }

    /// With `skip-identical` (or `replace`), a file of the same name and content already in
    /// Dropbox makes the job Done without sending anything. Returns true when that is so.
    pub(super) async fn already_there(&self, job: &Job, hash: &str) -> Result<bool, Step> {
        if !job.options.conflict.skips_identical() {
            return Ok(false);
        }
        let listed = self.remote_file(job).await?;
        if plan(job, listed.as_ref(), hash) != Plan::Skip {
            return Ok(false);
        }
        // The listing may be a few seconds old: confirm before sending nothing.
        let Some(meta) = self.remote_with_hash(job, hash).await? else {
            return Ok(false);
        };
        tracing::info!(
            job = job.id,
            "already in Dropbox with the same content: {}",
            job.remote_path
        );
        self.verified(job, meta, hash, true).await?;
        Ok(true)
    }

    /// The file at the job's remote path, if it holds exactly the content with `hash`.
    pub(super) async fn remote_with_hash(
        &self,
        job: &Job,
        hash: &str,
    ) -> Result<Option<dropbox::FileMetadata>, Step> {
        Ok(self
            .get_file(job)
            .await?
            .filter(|meta| meta.content_hash.as_deref() == Some(hash)))
    }

    /// The files in the job's target folder holding exactly this content under the job's
    /// name or a name Dropbox gives renamed copies of it (`name (N).ext`,
    /// `name (conflicted copy…).ext`). Read from a fresh listing, never a cached one: what it
    /// says decides whether a commit made a file.
    pub(super) async fn copies_with_hash(
        &self,
        job: &Job,
        hash: &str,
    ) -> Result<Vec<dropbox::FileMetadata>, Step> {
        let (parent, _) = job
            .remote_path
            .rsplit_once('/')
            .unwrap_or(("", &job.remote_path));
        let arg = dropbox::ListFolderArg::new(parent);
        let listing = folders::list_folder(&self.session, &self.client, &arg, None, |entry| {
            matches!(entry, Metadata::File(meta) if is_copy_with_hash(&job.remote_path, hash, meta))
        })
        .await;
        match listing {
            Ok(listing) => Ok(listing
                .entries
                .into_iter()
                .filter_map(|entry| match entry {
                    Metadata::File(meta) => Some(meta),
                    _ => None,
                })
                .collect()),
            // No folder (or it went mid-listing): nothing in it.
            Err(ListingError::List(dropbox::Error::Route(_)))
            | Err(ListingError::Continue(dropbox::Error::Route(_))) => Ok(Vec::new()),
            Err(e) => Err(listing_step(job, e)),
        }
    }

    /// Done only if Dropbox holds exactly the bytes sent (ARCHITECTURE.md, invariant 4).
    pub(super) async fn verified(
        &self,
        job: &Job,
        meta: dropbox::FileMetadata,
        hash: &str,
        skipped: bool,
    ) -> Result<(), Step> {
        if meta.content_hash.as_deref() != Some(hash) {
            return Err(Step::Failed {
                kind: FailureKind::Verification,
                message: format!(
                    "{}: Dropbox stored different content at {} than was sent (content hash {} instead of {hash})",
                    job.source.display(),
                    job.remote_path,
                    meta.content_hash.as_deref().unwrap_or("missing"),
                ),
            });
        }
        self.note_remote(&meta).await;
        // An update that met a changed copy landed beside it: the job says why.
        if let Some(why) = replaced_elsewhere(job, &meta) {
            tracing::info!(job = job.id, "{why}");
            self.queue.note_warnings(job.id, vec![why]).await?;
        }
        // The file is there; the batch's link (if asked for) before the job is Done.
        self.ensure_shared_link(job).await?;
        let remote_path = meta
            .path_display
            .clone()
            .unwrap_or_else(|| job.remote_path.clone());
        self.to(
            job.id,
            JobState::Done {
                content_hash: hash.to_string(),
                remote_path,
                rev: meta.rev,
                skipped,
            },
        )
        .await?;
        Ok(())
    }
}

/// A file's path as Dropbox compares it.
pub(super) fn lower_path(meta: &dropbox::FileMetadata) -> String {
    meta.path_lower
        .clone()
        .or_else(|| meta.path_display.as_deref().map(dropbox::path::path_key))
        .unwrap_or_else(|| meta.name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_lowercased_folder_and_name() {
        assert_eq!(
            split("/Photos/Trip/IMG_1.JPG"),
            ("/photos/trip".into(), "img_1.jpg".into())
        );
        assert_eq!(split("/a.jpg"), (String::new(), "a.jpg".into()));
    }

    #[test]
    fn a_stale_listing_is_read_again_at_the_next_look_up_anything_else_counts_again() {
        let then = Instant::now();
        let now = then + FRESH;
        let counting = |view: FolderView| match view {
            FolderView::Counting { since, lookups } => (since, lookups),
            _ => panic!("not counting"),
        };
        let listed = FolderView::Listed {
            at: then,
            files: HashMap::new(),
        };
        let busy = FolderView::Counting {
            since: then,
            lookups: LIST_AFTER - 1,
        };
        let table = [
            ("listed", listed, LIST_AFTER - 1),
            ("counting", busy, 0),
            ("too large", FolderView::TooLarge { at: then }, 0),
        ];
        for (what, view, lookups) in table {
            assert!(!view.fresh(now), "{what}");
            assert_eq!(counting(view.renewed(now)), (now, lookups), "{what}");
        }
    }
}

#[cfg(test)]
mod resolution_tests {
    use super::*;
    use crate::engine::test_support::{file, job};
    use crate::export::Conflict;

    fn committing() -> JobState {
        JobState::Committing {
            content_hash: "h".into(),
            session_id: None,
            before: None,
        }
    }

    /// What is looked at, and what it resolves to: (case, job, before, at the path, copies,
    /// a session?, resolution).
    type Row<'a> = (
        &'a str,
        &'a Job,
        Option<&'a [String]>,
        Option<FileMetadata>,
        Vec<FileMetadata>,
        bool,
        Resolution,
    );

    #[test]
    fn a_lost_commit_resolves_by_what_dropbox_holds() {
        use Resolution::*;
        let add = job(committing(), Conflict::SkipIdentical);
        let overwrite = job(committing(), Conflict::Overwrite);
        let rename = job(committing(), Conflict::Rename);
        // Under `replace` the job's path is the remembered copy's (`queue::sent`).
        let mut replace = job(committing(), Conflict::Replace);
        replace.replaces_rev = Some("0123456789".into());
        let conflicted = || file("a (conflicted copy).jpg", "h");
        let here = || file("a.jpg", "h");
        let other = || file("a.jpg", "x");
        let copy = || file("a (1).jpg", "h");
        let stranger = || file("b.jpg", "h");
        let before_path = vec!["/album/a.jpg".to_string()];
        let landed = |meta: FileMetadata| Landed(Box::new(meta));
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            ("at its path with its content", &add, None, Some(here()), vec![], false, landed(here())),
            ("at its path with other content, a session", &overwrite, None, Some(other()), vec![], true, CommitAgain),
            ("not there, a session: commit it again", &add, None, None, vec![], true, CommitAgain),
            ("not there, no session: send again", &add, None, None, vec![], false, SendAgain),
            ("renamed beside it (add may rename)", &add, None, None, vec![copy()], false, landed(copy())),
            ("a copy is not its file under overwrite", &overwrite, None, None, vec![copy()], false, SendAgain),
            ("another name with its content is not a copy", &add, None, None, vec![stranger()], false, SendAgain),
            ("a copy with other content", &add, None, None, vec![file("a (1).jpg", "x")], false, SendAgain),
            ("rename: only the old file there", &rename, Some(&before_path), None, vec![here()], true, CommitAgain),
            ("rename: a new copy beside the old", &rename, Some(&before_path), None, vec![here(), copy()], false, landed(copy())),
            ("rename: at its name, nothing there before", &rename, Some(&[]), None, vec![here()], false, landed(here())),
            ("replace: our content at the remembered path", &replace, None, Some(here()), vec![], true, landed(here())),
            ("replace: the earlier copy still there, a session", &replace, None, Some(other()), vec![], true, CommitAgain),
            ("replace: kept beside a changed copy", &replace, None, Some(other()), vec![conflicted()], false, landed(conflicted())),
            ("rename: a new copy in another letter case", &rename, Some(&before_path), None, vec![file("A (2).JPG", "h")], false, landed(file("A (2).JPG", "h"))),
        ];
        for (what, job, before, at_path, copies, session, expected) in table {
            assert_eq!(
                resolution(job, "h", before, at_path, copies, session),
                expected,
                "{what}"
            );
        }
    }
}
