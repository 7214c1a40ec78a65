//! `io.github.dbxport1.Folders`: the Dropbox folders a user picks from ("albums"), and "New
//! Album".
//!
//! Nothing is cached: every `ListFolders` asks Dropbox, one level at a time, so a folder made
//! or removed in the Dropbox web UI or on another device shows on the very next call, and
//! "reload" is simply calling again. One level (never a walk of the whole account) keeps that
//! cheap enough to do each time a folder picker opens.
//!
//! Paths are checked against Dropbox's rules ([`crate::dropbox::path`]) before any request, so a
//! refused name is an `InvalidArgument` naming the part that is wrong. Errors are not retried
//! here: a caller is waiting on the other end of the bus, and the message says what to do. The
//! one exception is an expired access token, refreshed once and the request sent again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use zbus::interface;
use zbus::zvariant::OwnedValue;

use super::{ServiceError, value};
use crate::credentials::{AccountStatus, Session, SessionError};
use crate::dropbox::path::validate_folder;
use crate::dropbox::{
    self, AuthError, Client, CreateFolderError, FolderMetadata, ListFolderArg,
    ListFolderContinueError, ListFolderError, LookupError, Metadata, WriteConflictError,
    WriteError,
};
use crate::secret::Secret;

pub struct Folders {
    pub(super) session: Arc<Session>,
    pub(super) client: Client,
    /// `limit` for `list_folder` (config `dropbox.list_page_size`).
    pub(super) page_size: u32,
}

/// A listing restarts at most this often when Dropbox says its cursor went stale (`reset`).
const LISTING_ATTEMPTS: usize = 2;

#[interface(
    name = "io.github.dbxport1.Folders",
    proxy(
        default_service = "io.github.dbxport1",
        default_path = "/io/github/dbxport1",
        gen_blocking = false
    )
)]
impl Folders {
    /// The folders directly inside `path` (`""` or `"/"`: the top of the Dropbox), sorted by
    /// name; files are left out. Each is a dictionary: `name`, `path` (as Dropbox displays
    /// it), `path_lower`, `id`. Nothing is cached: every call asks Dropbox, so calling again is
    /// how to reload, and it shows changes made in the Dropbox web UI or elsewhere. Errors:
    /// `InvalidArgument` (a path Dropbox would refuse; nothing is sent), `NotFound`,
    /// `NotLoggedIn`, `Failed` (with the reason; transient ones say to try again).
    async fn list_folders(
        &self,
        path: String,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, ServiceError> {
        let folder = validate_folder(&path).map_err(|e| invalid(e.to_string()))?;
        self.logged_in()?;
        let folders = self.list(&folder).await?;
        Ok(folders.values().map(folder_to_dict).collect())
    }

    /// Creates the folder `path` (and any missing parents); returns its path as Dropbox
    /// displays it. A folder that already exists is success, and its stored path (in its own
    /// letter case) is returned. Errors as for `ListFolders`; a file in the way is `Failed`.
    async fn create_folder(&self, path: String) -> Result<String, ServiceError> {
        let folder = validate_folder(&path).map_err(|e| invalid(e.to_string()))?;
        if folder.is_empty() {
            return Err(invalid(
                "the top of the Dropbox always exists; name the folder to create (for example /Photos/2024)",
            ));
        }
        self.logged_in()?;
        let result = self
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
            Err(e) => Err(self.create_error(&folder, e).await),
        }
    }
}

impl Folders {
    /// Refuses early (and without a request) when no account is linked or Dropbox refused it.
    fn logged_in(&self) -> Result<(), ServiceError> {
        match &*self.session.status().borrow() {
            AccountStatus::LoggedIn { .. } => Ok(()),
            AccountStatus::LoggedOut { reason } => Err(not_logged_in(reason)),
        }
    }

    /// [`Session::with_token`], with a session failure in D-Bus terms.
    async fn with_token<T, E, F, Fut>(
        &self,
        request: F,
    ) -> Result<Result<T, dropbox::Error<E>>, ServiceError>
    where
        F: FnMut(Secret) -> Fut,
        Fut: Future<Output = Result<T, dropbox::Error<E>>>,
    {
        self.session.with_token(request).await.map_err(|e| match e {
            SessionError::NotLoggedIn(reason) | SessionError::Refused(reason) => {
                not_logged_in(&reason)
            }
            e => ServiceError::Failed(e.to_string()),
        })
    }

    /// Every folder directly in `folder`, by `path_lower` (which also drops the duplicates a
    /// listing may repeat across pages). Starts over if Dropbox resets the cursor mid-way.
    async fn list(&self, folder: &str) -> Result<BTreeMap<String, FolderMetadata>, ServiceError> {
        let mut attempt = 0;
        'listing: loop {
            attempt += 1;
            let mut arg = ListFolderArg::new(folder);
            arg.limit = Some(self.page_size);
            let arg = &arg;
            let first = self
                .with_token(|token| async move { self.client.list_folder(&token, arg).await })
                .await?;
            let mut page = match first {
                Ok(page) => page,
                Err(e) => return Err(self.list_error(folder, e).await),
            };
            let mut folders = BTreeMap::new();
            loop {
                for entry in page.entries {
                    if let Metadata::Folder(meta) = entry {
                        let key = meta
                            .path_lower
                            .clone()
                            .unwrap_or_else(|| format!("{folder}/{}", meta.name).to_lowercase());
                        folders.insert(key, meta);
                    }
                }
                if !page.has_more {
                    return Ok(folders);
                }
                let cursor = page.cursor;
                let next = self
                    .with_token(|token| async {
                        let token = token;
                        self.client.list_folder_continue(&token, &cursor).await
                    })
                    .await?;
                page = match next {
                    Ok(page) => page,
                    Err(dropbox::Error::Route(ListFolderContinueError::Reset))
                        if attempt < LISTING_ATTEMPTS =>
                    {
                        tracing::debug!(folder = %shown(folder), "listing cursor reset; starting over");
                        continue 'listing;
                    }
                    Err(e) => return Err(self.list_error(folder, e).await),
                };
            }
        }
    }

    /// An existing folder's path in its stored letter case; the requested path if Dropbox
    /// cannot say (it exists either way, which is what the caller asked for).
    async fn existing_path(&self, folder: &str) -> String {
        let found = self
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

    /// A failed `list_folder` or `list_folder/continue` in the caller's terms.
    async fn list_error<E: ListingError>(
        &self,
        folder: &str,
        error: dropbox::Error<E>,
    ) -> ServiceError {
        let at = shown(folder);
        match error {
            dropbox::Error::Route(e) => match e.lookup() {
                Some(LookupError::NotFound) => {
                    ServiceError::NotFound(format!("{at}: no such folder in Dropbox"))
                }
                Some(LookupError::NotFolder) => {
                    ServiceError::Failed(format!("{at}: this is a file in Dropbox, not a folder"))
                }
                Some(LookupError::MalformedPath(_)) => invalid(format!("{at}: {e}")),
                _ => ServiceError::Failed(format!("cannot list {at}: {e}")),
            },
            e => self.request_error(&format!("cannot list {at}"), e).await,
        }
    }

    /// A failed `create_folder_v2` (other than "it exists") in the caller's terms.
    async fn create_error(
        &self,
        folder: &str,
        error: dropbox::Error<CreateFolderError>,
    ) -> ServiceError {
        match error {
            dropbox::Error::Route(CreateFolderError::Path(WriteError::Conflict(
                WriteConflictError::File,
            ))) => ServiceError::Failed(format!(
                "cannot create {folder}: a file with this name already exists in Dropbox"
            )),
            dropbox::Error::Route(CreateFolderError::Path(
                e @ (WriteError::DisallowedName | WriteError::MalformedPath(_)),
            )) => invalid(format!("cannot create {folder}: {e}")),
            e => {
                self.request_error(&format!("cannot create {folder}"), e)
                    .await
            }
        }
    }

    /// What every route shares: a refused token logs the account out (as in the engine, so
    /// queued uploads wait for a new login); everything else is reported with its reason.
    async fn request_error<E: dropbox::RouteError>(
        &self,
        doing: &str,
        error: dropbox::Error<E>,
    ) -> ServiceError {
        match error {
            dropbox::Error::Auth(AuthError::ExpiredAccessToken) => ServiceError::Failed(format!(
                "{doing}: Dropbox refused the access token even after it was refreshed; try again"
            )),
            // `Session::with_token` has already logged the account out.
            dropbox::Error::Auth(why) => ServiceError::NotLoggedIn(format!(
                "{doing}: Dropbox refused the stored login: {why}"
            )),
            // Server errors and 429s already say when to try again.
            e @ dropbox::Error::Transport(_) => {
                ServiceError::Failed(format!("{doing}: {e}; try again later"))
            }
            dropbox::Error::Route(e) if e.is_transient() => ServiceError::Failed(format!(
                "{doing}: Dropbox is busy with other changes to this account; try again in a moment"
            )),
            e => ServiceError::Failed(format!("{doing}: {e}")),
        }
    }
}

/// The two listing routes' errors, which both carry a LookupError.
trait ListingError: dropbox::RouteError {
    fn lookup(&self) -> Option<&LookupError>;
}

impl ListingError for ListFolderError {
    fn lookup(&self) -> Option<&LookupError> {
        match self {
            ListFolderError::Path(e) => Some(e),
            _ => None,
        }
    }
}

impl ListingError for ListFolderContinueError {
    fn lookup(&self) -> Option<&LookupError> {
        match self {
            ListFolderContinueError::Path(e) => Some(e),
            _ => None,
        }
    }
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(message.into())
}

fn not_logged_in(reason: &str) -> ServiceError {
    ServiceError::NotLoggedIn(format!(
        "not logged in to Dropbox: {reason} (`dbxportctl login` links an account)"
    ))
}

/// A folder as the user would write it: the root is `/`, not Dropbox's `""`.
fn shown(folder: &str) -> &str {
    if folder.is_empty() { "/" } else { folder }
}

/// A folder as a D-Bus dictionary (`a{sv}`), so fields can be added without breaking callers.
fn folder_to_dict(meta: &FolderMetadata) -> HashMap<String, OwnedValue> {
    let path = meta
        .path_display
        .clone()
        .or_else(|| meta.path_lower.clone())
        .unwrap_or_else(|| meta.name.clone());
    let mut d = HashMap::new();
    d.insert("name".into(), value(meta.name.clone()));
    d.insert(
        "path_lower".into(),
        value(
            meta.path_lower
                .clone()
                .unwrap_or_else(|| path.to_lowercase()),
        ),
    );
    d.insert("path".into(), value(path));
    d.insert("id".into(), value(meta.id.clone()));
    d
}
