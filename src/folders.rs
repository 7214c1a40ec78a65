//! Dropbox folders as the library sees them: the one `list_folder` pager every caller uses
//! (the engine's look-ups and the folder picker alike), and the folder picker's listing and
//! "New Album" in the user's terms.
//!
//! The pager follows `has_more` from page to page and starts over when Dropbox says the
//! cursor went stale (`reset`), so no caller writes a page loop of its own. Requests go
//! through [`Session::with_token`]: a fresh token, and on `expired_access_token` one shared
//! refresh and one more try. Nothing else is retried here; the engine decides about its own
//! errors (`engine::classify`), and the picker's caller is waiting on the other end of the
//! bus, so its errors say what to do instead.
//!
//! The picker's listing is never cached: every call asks Dropbox, one level at a time, so a
//! folder made or removed elsewhere shows on the very next call. Paths are checked against
//! Dropbox's rules ([`crate::dropbox::path`]) before any request.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::credentials::{AccountStatus, Session, SessionError};
use crate::dropbox::path::validate_folder;
use crate::dropbox::{
    self, AuthError, Client, CreateFolderError, FolderMetadata, ListFolderArg,
    ListFolderContinueError, ListFolderError, LookupError, Metadata, WriteConflictError,
    WriteError,
};

/// A listing starts at most this often when Dropbox says its cursor went stale (`reset`).
pub const LISTING_ATTEMPTS: usize = 2;

/// Why a listing stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// No token to send (logged out, or the refresh failed).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The first page (`files/list_folder`) was refused.
    #[error(transparent)]
    List(dropbox::Error<ListFolderError>),
    /// A later page (`files/list_folder/continue`) was refused.
    #[error(transparent)]
    Continue(dropbox::Error<ListFolderContinueError>),
}

/// What a listing found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The entries `keep` kept, in Dropbox's order.
    pub entries: Vec<Metadata>,
    /// False when the listing stopped at `max_pages` with more to come.
    pub complete: bool,
}

/// Lists the folder `arg` names, page by page, keeping the entries `keep` accepts. Stops
/// after `max_pages` pages (`complete` is then false). A cursor Dropbox resets mid-way starts
/// the listing over, at most [`LISTING_ATTEMPTS`] times in all, with what was kept so far
/// dropped (the folder may have changed).
pub async fn list_folder(
    session: &Session,
    client: &Client,
    arg: &ListFolderArg,
    max_pages: Option<usize>,
    mut keep: impl FnMut(&Metadata) -> bool,
) -> Result<Listing, ListingError> {
    let mut attempt = 0;
    'listing: loop {
        attempt += 1;
        let mut page = session
            .with_token(|token| async move { client.list_folder(&token, arg).await })
            .await?
            .map_err(ListingError::List)?;
        let mut listing = Listing::default();
        for pages in 1.. {
            listing.entries.extend(
                std::mem::take(&mut page.entries)
                    .into_iter()
                    .filter(&mut keep),
            );
            if !page.has_more {
                listing.complete = true;
                return Ok(listing);
            }
            if max_pages.is_some_and(|max| pages >= max) {
                return Ok(listing);
            }
            let cursor = &page.cursor;
            let next = session
                .with_token(
                    |token| async move { client.list_folder_continue(&token, cursor).await },
                )
                .await?;
            page = match next {
                Ok(page) => page,
                Err(dropbox::Error::Route(ListFolderContinueError::Reset))
                    if attempt < LISTING_ATTEMPTS =>
                {
                    tracing::debug!(folder = %shown(&arg.path), "listing cursor reset; starting over");
                    continue 'listing;
                }
                Err(e) => return Err(ListingError::Continue(e)),
            };
        }
        unreachable!("the page loop only ends by returning");
    }
}

/// Why the folder picker's request failed, in words for the user (each names the folder and,
/// where there is one, the way out).
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// A path or name Dropbox would refuse; nothing was sent.
    #[error("{0}")]
    Invalid(String),
    /// No account is linked, or Dropbox refused it.
    #[error("not logged in to Dropbox: {reason} (`dbxportctl login` links an account)")]
    NotLoggedIn { reason: String },
    /// Dropbox refused the stored login during the request; the account is now logged out.
    #[error("{doing}: Dropbox refused the stored login: {why}")]
    LoginRefused { doing: String, why: AuthError },
    #[error("{}: no such folder in Dropbox", shown(.folder))]
    NotFound { folder: String },
    #[error("{}: this is a file in Dropbox, not a folder", shown(.folder))]
    NotAFolder { folder: String },
    #[error("cannot create {folder}: a file with this name already exists in Dropbox")]
    FileInTheWay { folder: String },
    #[error("{doing}: Dropbox refused the access token even after it was refreshed; try again")]
    TokenRefused { doing: String },
    #[error("{doing}: {why}; try again later")]
    Unreachable { doing: String, why: String },
    #[error("{doing}: Dropbox is busy with other changes to this account; try again in a moment")]
    Busy { doing: String },
    #[error("{doing}: {why}")]
    Failed { doing: String, why: String },
    /// The session could not give a token for another reason (its text says which).
    #[error(transparent)]
    Session(SessionError),
}

impl From<SessionError> for FolderError {
    fn from(e: SessionError) -> FolderError {
        match e {
            SessionError::NotLoggedIn(reason) | SessionError::Refused(reason) => {
                FolderError::NotLoggedIn { reason }
            }
            e => FolderError::Session(e),
        }
    }
}

/// The Dropbox folders a user picks from ("albums"), and "New Album".
pub struct Folders {
    session: Arc<Session>,
    client: Client,
    /// `limit` for `list_folder` (config `dropbox.list_page_size`).
    page_size: u32,
}

impl Folders {
    pub fn new(session: Arc<Session>, client: Client, page_size: u32) -> Folders {
        Folders {
            session,
            client,
            page_size,
        }
    }

    /// The folders directly inside `path` (`""` or `"/"`: the top of the Dropbox), sorted by
    /// their lowercased path (which also drops the duplicates a listing may repeat across
    /// pages); files are left out.
    pub async fn list(&self, path: &str) -> Result<Vec<FolderMetadata>, FolderError> {
        let folder = validate_folder(path).map_err(|e| FolderError::Invalid(e.to_string()))?;
        self.logged_in()?;
        let arg = ListFolderArg {
            limit: Some(self.page_size),
            ..ListFolderArg::new(folder.as_str())
        };
        let listing = list_folder(&self.session, &self.client, &arg, None, |entry| {
            matches!(entry, Metadata::Folder(_))
        })
        .await
        .map_err(|e| listing_error(&folder, e))?;
        let mut folders = BTreeMap::new();
        for entry in listing.entries {
            if let Metadata::Folder(meta) = entry {
                let key = meta
                    .path_lower
                    .clone()
                    .unwrap_or_else(|| format!("{folder}/{}", meta.name).to_lowercase());
                folders.insert(key, meta);
            }
        }
        Ok(folders.into_values().collect())
    }

    /// Creates the folder `path` (and any missing parents); returns its path as Dropbox
    /// displays it. A folder that already exists is success, and its stored path (in its own
    /// letter case) is returned.
    pub async fn create(&self, path: &str) -> Result<String, FolderError> {
        let folder = validate_folder(path).map_err(|e| FolderError::Invalid(e.to_string()))?;
        if folder.is_empty() {
            return Err(FolderError::Invalid(
                "the top of the Dropbox always exists; name the folder to create (for example /Photos/2024)".into(),
            ));
        }
        self.logged_in()?;
        let result = self
            .session
            .with_token(|token| async {
                let token = token;
                self.client.create_folder(&token, &folder, false).await
            })
            .await?;
        match result {
            Ok(created) => {
                let shown = created.path_display.unwrap_or_else(|| folder.clone());
                tracing::info!(folder = %shown, "created a Dropbox folder");
                Ok(shown)
            }
            Err(dropbox::Error::Route(CreateFolderError::Path(WriteError::Conflict(
                WriteConflictError::Folder,
            )))) => Ok(self.existing_path(&folder).await),
            Err(e) => Err(create_error(&folder, e)),
        }
    }

    /// Refuses early (and without a request) when no account is linked or Dropbox refused it.
    fn logged_in(&self) -> Result<(), FolderError> {
        match &*self.session.status().borrow() {
            AccountStatus::LoggedIn { .. } => Ok(()),
            AccountStatus::LoggedOut { reason } => Err(FolderError::NotLoggedIn {
                reason: reason.clone(),
            }),
        }
    }

    /// An existing folder's path in its stored letter case; the requested path if Dropbox
    /// cannot say (it exists either way, which is what the caller asked for).
    async fn existing_path(&self, folder: &str) -> String {
        let found = self
            .session
            .with_token(|token| async {
                let token = token;
                self.client.get_metadata(&token, folder).await
            })
            .await;
        match found {
            Ok(Ok(Metadata::Folder(meta))) => meta.path_display.unwrap_or_else(|| folder.into()),
            _ => folder.into(),
        }
    }
}

/// A failed listing in the caller's terms.
fn listing_error(folder: &str, error: ListingError) -> FolderError {
    match error {
        ListingError::Session(e) => e.into(),
        ListingError::List(e) => list_error(folder, e),
        ListingError::Continue(e) => list_error(folder, e),
    }
}

/// A failed `list_folder` or `list_folder/continue` in the caller's terms.
fn list_error<E: LookupRouteError>(folder: &str, error: dropbox::Error<E>) -> FolderError {
    let at = shown(folder);
    match error {
        dropbox::Error::Route(e) => match e.lookup() {
            Some(LookupError::NotFound) => FolderError::NotFound {
                folder: folder.into(),
            },
            Some(LookupError::NotFolder) => FolderError::NotAFolder {
                folder: folder.into(),
            },
            Some(LookupError::MalformedPath(_)) => FolderError::Invalid(format!("{at}: {e}")),
            _ => FolderError::Failed {
                doing: format!("cannot list {at}"),
                why: e.to_string(),
            },
        },
        e => request_error(format!("cannot list {at}"), e),
    }
}

/// A failed `create_folder_v2` (other than "it exists") in the caller's terms.
fn create_error(folder: &str, error: dropbox::Error<CreateFolderError>) -> FolderError {
    match error {
        dropbox::Error::Route(CreateFolderError::Path(WriteError::Conflict(
            WriteConflictError::File,
        ))) => FolderError::FileInTheWay {
            folder: folder.into(),
        },
        dropbox::Error::Route(CreateFolderError::Path(
            e @ (WriteError::DisallowedName | WriteError::MalformedPath(_)),
        )) => FolderError::Invalid(format!("cannot create {folder}: {e}")),
        e => request_error(format!("cannot create {folder}"), e),
    }
}

/// What every route shares: a refused token has logged the account out (as in the engine, so
/// queued uploads wait for a new login); everything else is reported with its reason.
fn request_error<E: dropbox::RouteError>(doing: String, error: dropbox::Error<E>) -> FolderError {
    match error {
        dropbox::Error::Auth(AuthError::ExpiredAccessToken) => FolderError::TokenRefused { doing },
        // `Session::with_token` has already logged the account out.
        dropbox::Error::Auth(why) => FolderError::LoginRefused { doing, why },
        // Server errors and 429s already say when to try again.
        e @ dropbox::Error::Transport(_) => FolderError::Unreachable {
            doing,
            why: e.to_string(),
        },
        dropbox::Error::Route(e) if e.is_transient() => FolderError::Busy { doing },
        e => FolderError::Failed {
            doing,
            why: e.to_string(),
        },
    }
}

/// The two listing routes' errors, which both carry a LookupError.
trait LookupRouteError: dropbox::RouteError {
    fn lookup(&self) -> Option<&LookupError>;
}

impl LookupRouteError for ListFolderError {
    fn lookup(&self) -> Option<&LookupError> {
        match self {
            ListFolderError::Path(e) => Some(e),
            _ => None,
        }
    }
}

impl LookupRouteError for ListFolderContinueError {
    fn lookup(&self) -> Option<&LookupError> {
        match self {
            ListFolderContinueError::Path(e) => Some(e),
            _ => None,
        }
    }
}

/// A folder as the user would write it: the root is `/`, not Dropbox's `""`.
fn shown(folder: &str) -> &str {
    if folder.is_empty() { "/" } else { folder }
}
