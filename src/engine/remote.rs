//! What is already in Dropbox, for the skip-identical check made before a file is sent.
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

use super::{Engine, Step, session_step};
use crate::dropbox::{self, FileMetadata, ListFolderArg, Metadata};
use crate::queue::Job;

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
                *view = FolderView::Counting {
                    since: now,
                    lookups: 0,
                };
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
            Err(e) => Err(self.classify(job, e).await),
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
        let mut files = HashMap::new();
        let mut page = match call!(self, |token| self.client.list_folder(token, &arg)) {
            Ok(page) => page,
            // Not there yet: nothing in it.
            Err(dropbox::Error::Route(dropbox::ListFolderError::Path(
                dropbox::LookupError::NotFound,
            ))) => return Ok(Some(files)),
            Err(e) => return Err(self.classify(job, e).await),
        };
        for pages in 1.. {
            for entry in std::mem::take(&mut page.entries) {
                if let Metadata::File(meta) = entry {
                    files.insert(meta.name.to_lowercase(), meta);
                }
            }
            if !page.has_more {
                break;
            }
            if pages >= MAX_PAGES {
                return Ok(None);
            }
            let cursor = page.cursor.clone();
            page = match call!(self, |token| self
                .client
                .list_folder_continue(token, &cursor))
            {
                Ok(page) => page,
                Err(e) => return Err(self.classify(job, e).await),
            };
        }
        Ok(Some(files))
    }
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
}
