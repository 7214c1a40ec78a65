//! A typed async client for the Dropbox API v2 routes dbxport uses: uploads and upload
//! sessions, the batch commit, listing, metadata, folders, delete, the account, shared links,
//! and the OAuth token endpoint.
//!
//! One [`Client`] per daemon: it holds the connection pools and the base URLs (the real hosts or
//! the emulator on 127.0.0.1). Every call is a single HTTP request and is never retried here;
//! the engine owns the retry policy and asks [`Error::is_transient`] and [`Error::retry_after`].
//! One thing is kept here for every caller: after a 429 no request leaves before its
//! Retry-After has passed (`retry_after`), since Dropbox's limits are the account's.
//! Tokens are passed per call as [`Secret`]s and appear only in the `Authorization` header or
//! the token endpoint's form, never in an error or a log line.

pub mod arg;
pub mod content_hash;
mod error;
pub mod limit;
mod oauth;
pub mod path;
mod retry_after;
mod types;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use tokio::time::Instant;
use url::Url;

pub use arg::header_safe_json;
pub use error::{
    AuthError, CreateFolderError, CreateSharedLinkWithSettingsError, DeleteError, Error,
    GetMetadataError, ListFolderContinueError, ListFolderError, ListSharedLinksError, LookupError,
    RateLimitReason, RouteError, SharedLinkSettingsError, UploadError, UploadSessionAppendError,
    UploadSessionFinishError, UploadSessionLookupError, UploadSessionStartError, UploadWriteFailed,
    VoidError, WriteConflictError, WriteError,
};
pub use oauth::{OAuthError, TokenResponse};
pub use types::{
    AccountType, CommitInfo, DeletedMetadata, FileLinkMetadata, FileMetadata, FinishBatchEntry,
    FolderMetadata, FullAccount, LinkAudience, LinkPermissions, ListFolderArg, ListFolderResult,
    ListSharedLinksArg, ListSharedLinksResult, MemberSpaceLimitType, Metadata, Name,
    RequestedLinkAccessLevel, RequestedVisibility, ResolvedVisibility, SessionType, SharedLinkInfo,
    SharedLinkMetadata, SharedLinkSettings, SpaceAllocation, SpaceUsage, UploadArg,
    UploadSessionAppendArg, UploadSessionCursor, UploadSessionFinishArg, UploadSessionStartArg,
    UploadSessionStartResult, WriteMode, timestamp,
};

use crate::secret::Secret;
use error::{decode_error, describe_json_error};
use oauth::decode_token_response;

/// Called with the cumulative number of bytes of an upload body handed to the connection.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Upload bodies are streamed in slices of this size, so that progress moves smoothly and a
/// stalled connection is noticed.
const SLICE: usize = 256 * 1024;

/// The largest file an upload session takes (2^41 − 2^22 bytes, about 2 TiB).
pub const MAX_FILE_SIZE: u64 = (1 << 41) - (1 << 22);

/// Most entries `upload_session/finish_batch_v2` accepts.
pub const MAX_BATCH_ENTRIES: usize = 1000;

/// Base URLs (scheme, host, port, optional path prefix) of the two Dropbox hosts dbxport talks
/// to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// RPC routes and `/oauth2/token`.
    pub api: Url,
    /// Upload routes.
    pub content: Url,
}

impl Default for Endpoints {
    fn default() -> Endpoints {
        Endpoints {
            api: Url::parse("https://api.dropboxapi.com").expect("valid URL"),
            content: Url::parse("https://content.dropboxapi.com").expect("valid URL"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub endpoints: Endpoints,
    /// An extra PEM CA (bundle) to trust besides the system's, for test servers.
    pub ca_file: Option<PathBuf>,
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Longest wait for any progress. On RPC routes: for the reply, then for each read of its
    /// body. On uploads: for the connection to take the next slice of the body, then for the
    /// reply once the last slice is taken (the kernel may still be sending buffered bytes then,
    /// as with a socket timeout). Never a limit on the whole request, which for a 150 MiB
    /// upload on a slow line can take many minutes.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            endpoints: Endpoints::default(),
            ca_file: None,
            user_agent: concat!("dbxport/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum BuildError {
    #[error("cannot read the CA file {}: {source}", path.display())]
    CaFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {} is not usable: {message}", path.display())]
    CaFileInvalid { path: PathBuf, message: String },
    #[error("the Dropbox {which} URL {url} is not an http(s) base URL")]
    Endpoint { which: &'static str, url: String },
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
}

/// The Dropbox client. Cloning is cheap and clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// For the api host: RPC routes and the token endpoint. reqwest's read timeout fits here.
    rpc: reqwest::Client,
    /// For the content host. It has no reqwest read timeout, because reqwest starts that clock
    /// when the request starts and does not reset it while the body is being sent: a slow
    /// upload would be cut off. Uploads use their own progress watchdog instead.
    content: reqwest::Client,
    endpoints: Endpoints,
    read_timeout: Duration,
    /// Upload bandwidth limit, shared by every transfer.
    limit: Arc<limit::RateLimit>,
    /// The latest 429's Retry-After, which every request waits out.
    gate: retry_after::Gate,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.inner.endpoints.api.as_str())
            .field("content", &self.inner.endpoints.content.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the connection pools. Fails on an unusable CA file or base URL; nothing is
    /// sent yet.
    pub fn new(options: ClientOptions) -> Result<Client, BuildError> {
        check_endpoint("api", &options.endpoints.api)?;
        check_endpoint("content", &options.endpoints.content)?;
        let certs = match &options.ca_file {
            Some(path) => load_ca(path)?,
            None => Vec::new(),
        };
        let build = |base: &Url, read_timeout: Option<Duration>| {
            let mut builder = reqwest::Client::builder()
                .user_agent(options.user_agent.as_str())
                .connect_timeout(options.connect_timeout)
                // Dropbox never redirects; a redirect from the token endpoint would be an
                // attack (SSRF), and from an upload route would lose the body.
                .redirect(reqwest::redirect::Policy::none())
                // The engine decides what is retried; see the module doc.
                .retry(reqwest::retry::never())
                .tls_certs_merge(certs.clone());
            if let Some(timeout) = read_timeout {
                builder = builder.read_timeout(timeout);
            }
            if is_loopback(base) {
                // An emulator on 127.0.0.1 must not be reached through an HTTP(S)_PROXY.
                builder = builder.no_proxy();
            }
            builder.build().map_err(|e| {
                let mut message = error_chain(&e.without_url());
                if let Some(path) = &options.ca_file {
                    message.push_str(&format!(" (with the CA file {})", path.display()));
                }
                BuildError::Http(message)
            })
        };
        let rpc = build(&options.endpoints.api, Some(options.read_timeout))?;
        let content = build(&options.endpoints.content, None)?;
        Ok(Client {
            inner: Arc::new(Inner {
                rpc,
                content,
                endpoints: options.endpoints,
                read_timeout: options.read_timeout,
                limit: Arc::default(),
                gate: retry_after::Gate::default(),
            }),
        })
    }

    /// The base URLs in use.
    /// Limits upload bandwidth to `bytes_per_sec` across every transfer (0: no limit). Takes
    /// effect for the next slice of bodies already on their way.
    pub fn set_bandwidth_limit(&self, bytes_per_sec: u64) {
        self.inner.limit.set(bytes_per_sec);
    }

    pub fn bandwidth_limit(&self) -> u64 {
        self.inner.limit.get()
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// `files/upload`: one request, up to 150 MiB.
    pub async fn upload(
        &self,
        token: &Secret,
        arg: &UploadArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<FileMetadata, Error<UploadError>> {
        self.upload_route(token, "2/files/upload", arg, body, progress, parse_json)
            .await
    }

    /// `files/upload_session/start`; the body (possibly empty) is the first chunk.
    pub async fn upload_session_start(
        &self,
        token: &Secret,
        arg: &UploadSessionStartArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<UploadSessionStartResult, Error<UploadSessionStartError>> {
        self.upload_route(
            token,
            "2/files/upload_session/start",
            arg,
            body,
            progress,
            parse_json,
        )
        .await
    }

    /// `files/upload_session/append_v2`.
    pub async fn upload_session_append(
        &self,
        token: &Secret,
        arg: &UploadSessionAppendArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<(), Error<UploadSessionAppendError>> {
        self.upload_route(
            token,
            "2/files/upload_session/append_v2",
            arg,
            body,
            progress,
            parse_void,
        )
        .await
    }

    /// `files/upload_session/finish`; the body is the last chunk, or empty.
    pub async fn upload_session_finish(
        &self,
        token: &Secret,
        arg: &UploadSessionFinishArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<FileMetadata, Error<UploadSessionFinishError>> {
        self.upload_route(
            token,
            "2/files/upload_session/finish",
            arg,
            body,
            progress,
            parse_json,
        )
        .await
    }

    /// `files/upload_session/finish_batch_v2`: commits closed sessions under one namespace
    /// lock. HTTP 200 even when entries fail; the result has one entry per argument, in order.
    pub async fn upload_session_finish_batch(
        &self,
        token: &Secret,
        entries: &[UploadSessionFinishArg],
    ) -> Result<Vec<FinishBatchEntry>, Error<VoidError>> {
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(Error::BadInput(format!(
                "a batch commit takes at most {MAX_BATCH_ENTRIES} files, not {}",
                entries.len()
            )));
        }
        #[derive(Serialize)]
        struct Arg<'a> {
            entries: &'a [UploadSessionFinishArg],
        }
        #[derive(serde::Deserialize)]
        struct Result {
            entries: Vec<FinishBatchEntry>,
        }
        let result: Result = self
            .rpc(
                token,
                "2/files/upload_session/finish_batch_v2",
                &Arg { entries },
            )
            .await?;
        if result.entries.len() != entries.len() {
            return Err(Error::Decode {
                status: 200,
                message: format!(
                    "{} results for {} entries",
                    result.entries.len(),
                    entries.len()
                ),
            });
        }
        Ok(result.entries)
    }

    /// `files/list_folder`; continue with [`Client::list_folder_continue`] while `has_more`.
    pub async fn list_folder(
        &self,
        token: &Secret,
        arg: &ListFolderArg,
    ) -> Result<ListFolderResult, Error<ListFolderError>> {
        self.rpc(token, "2/files/list_folder", arg).await
    }

    /// `files/list_folder/continue`: the next page, or the changes since `cursor`.
    pub async fn list_folder_continue(
        &self,
        token: &Secret,
        cursor: &str,
    ) -> Result<ListFolderResult, Error<ListFolderContinueError>> {
        #[derive(Serialize)]
        struct Arg<'a> {
            cursor: &'a str,
        }
        self.rpc(token, "2/files/list_folder/continue", &Arg { cursor })
            .await
    }

    /// `files/create_folder_v2`. An existing folder is
    /// `Route(Path(Conflict(WriteConflictError::Folder)))`.
    pub async fn create_folder(
        &self,
        token: &Secret,
        path: &str,
        autorename: bool,
    ) -> Result<FolderMetadata, Error<CreateFolderError>> {
        #[derive(Serialize)]
        struct Arg<'a> {
            path: &'a str,
            autorename: bool,
        }
        #[derive(serde::Deserialize)]
        struct Result {
            metadata: FolderMetadata,
        }
        let result: Result = self
            .rpc(token, "2/files/create_folder_v2", &Arg { path, autorename })
            .await?;
        Ok(result.metadata)
    }

    /// `files/get_metadata` (not for the root, which Dropbox refuses).
    pub async fn get_metadata(
        &self,
        token: &Secret,
        path: &str,
    ) -> Result<Metadata, Error<GetMetadataError>> {
        self.rpc(token, "2/files/get_metadata", &PathArg { path })
            .await
    }

    /// `files/delete_v2`: the item as it was. Folders are deleted with their contents.
    pub async fn delete(&self, token: &Secret, path: &str) -> Result<Metadata, Error<DeleteError>> {
        #[derive(serde::Deserialize)]
        struct Result {
            metadata: Metadata,
        }
        let result: Result = self
            .rpc(token, "2/files/delete_v2", &PathArg { path })
            .await?;
        Ok(result.metadata)
    }

    /// `users/get_current_account`: who the token belongs to.
    pub async fn get_current_account(
        &self,
        token: &Secret,
    ) -> Result<FullAccount, Error<VoidError>> {
        self.rpc(token, "2/users/get_current_account", &()).await
    }

    /// `users/get_space_usage`: bytes used and allocated.
    pub async fn get_space_usage(&self, token: &Secret) -> Result<SpaceUsage, Error<VoidError>> {
        self.rpc(token, "2/users/get_space_usage", &()).await
    }

    /// `sharing/create_shared_link_with_settings`: a new link to the file or folder at `path`.
    /// Without settings Dropbox makes its default link (public, unless a team policy says
    /// otherwise). An item has one link per settings: asking again is
    /// `Route(SharedLinkAlreadyExists(..))`; see [`Client::shared_link_for`].
    pub async fn create_shared_link(
        &self,
        token: &Secret,
        path: &str,
        settings: Option<&SharedLinkSettings>,
    ) -> Result<SharedLinkMetadata, Error<CreateSharedLinkWithSettingsError>> {
        #[derive(Serialize)]
        struct Arg<'a> {
            path: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            settings: Option<&'a SharedLinkSettings>,
        }
        self.rpc(
            token,
            "2/sharing/create_shared_link_with_settings",
            &Arg { path, settings },
        )
        .await
    }

    /// `sharing/list_shared_links`: the links to an item (and its parent folders unless
    /// `direct_only`), or every link of the account page by page when no path is given.
    pub async fn list_shared_links(
        &self,
        token: &Secret,
        arg: &ListSharedLinksArg,
    ) -> Result<ListSharedLinksResult, Error<ListSharedLinksError>> {
        self.rpc(token, "2/sharing/list_shared_links", arg).await
    }

    /// A link to share the item at `path`: a new public viewer link, or the item's existing
    /// link (as it is, whatever its visibility: check its `link_permissions` if that matters).
    ///
    /// Because settings are sent, Dropbox usually leaves the existing link out of
    /// `shared_link_already_exists`; it is then looked up with `list_shared_links`
    /// (`direct_only`), as rclone does. If no listed link is to this very item, the
    /// `SharedLinkAlreadyExists(None)` error is returned. Two calls at most, neither retried.
    pub async fn shared_link_for(
        &self,
        token: &Secret,
        path: &str,
    ) -> Result<SharedLinkMetadata, Error<CreateSharedLinkWithSettingsError>> {
        use CreateSharedLinkWithSettingsError as Create;
        let settings = SharedLinkSettings::public_viewer();
        match self.create_shared_link(token, path, Some(&settings)).await {
            Err(Error::Route(Create::SharedLinkAlreadyExists(None))) => {}
            Err(Error::Route(Create::SharedLinkAlreadyExists(Some(existing)))) => {
                return Ok(*existing);
            }
            other => return other,
        }
        let arg = ListSharedLinksArg {
            path: Some(path.to_owned()),
            cursor: None,
            direct_only: Some(true),
        };
        let listed = self.list_shared_links(token, &arg).await.map_err(|e| {
            e.map_route(|e| match e {
                // The item went away between the two calls.
                ListSharedLinksError::Path(lookup) => Create::Path(lookup),
                ListSharedLinksError::Reset | ListSharedLinksError::Other => {
                    Create::SharedLinkAlreadyExists(None)
                }
            })
        })?;
        listed
            .links
            .into_iter()
            .find(|link| links_to(link, path))
            .ok_or(Error::Route(Create::SharedLinkAlreadyExists(None)))
    }

    /// `auth/token/revoke`: revokes this access token, and the refresh token it came from.
    pub async fn revoke(&self, token: &Secret) -> Result<(), Error<VoidError>> {
        self.rpc_with(token, "2/auth/token/revoke", &(), parse_void)
            .await
    }

    /// A new short-lived access token from a refresh token (PKCE app: no secret).
    pub async fn refresh_access_token(
        &self,
        app_key: &str,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, OAuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", app_key),
        ];
        self.token_request(&form, &[refresh_token.expose()]).await
    }

    /// Trades an authorization code for tokens (PKCE). `redirect_uri` must be the one given to
    /// the authorize page, if one was.
    pub async fn exchange_code(
        &self,
        app_key: &str,
        code: &Secret,
        code_verifier: &Secret,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("client_id", app_key),
            ("code_verifier", code_verifier.expose()),
        ];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri));
        }
        self.token_request(&form, &[code.expose(), code_verifier.expose()])
            .await
    }

    async fn token_request(
        &self,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<TokenResponse, OAuthError> {
        let url = route_url(&self.inner.endpoints.api, "oauth2/token");
        self.inner.gate.wait().await;
        let response = self
            .inner
            .rpc
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| OAuthError::Transport(transport(e)))?;
        let reply = self
            .read_whole(response)
            .await
            .map_err(OAuthError::Transport)?;
        tracing::debug!(
            route = "oauth2/token",
            status = reply.status,
            "Dropbox replied"
        );
        let result = decode_token_response(
            reply.status,
            reply.retry_after.as_deref(),
            &reply.body,
            secrets,
        );
        if let Err(OAuthError::RateLimited { retry_after }) = &result {
            self.inner.gate.defer(*retry_after);
        }
        result
    }

    async fn rpc<A, T, E>(
        &self,
        token: &Secret,
        route: &'static str,
        arg: &A,
    ) -> Result<T, Error<E>>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
        E: RouteError,
    {
        self.rpc_with(token, route, arg, parse_json).await
    }

    /// An RPC call: the argument as a JSON body (a Void argument is `null`, which Dropbox
    /// accepts with `application/json` as the SDKs send it).
    async fn rpc_with<A, T, E>(
        &self,
        token: &Secret,
        route: &'static str,
        arg: &A,
        parse: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T, Error<E>>
    where
        A: Serialize + ?Sized,
        E: RouteError,
    {
        let authorization = bearer(token)?;
        let body = serde_json::to_vec(arg).expect("Dropbox argument types always serialize");
        let request = self
            .inner
            .rpc
            .post(route_url(&self.inner.endpoints.api, route))
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.inner.gate.wait().await;
        let response = request
            .send()
            .await
            .map_err(|e| Error::Transport(transport(e)))?;
        let reply = self.read_whole(response).await.map_err(Error::Transport)?;
        self.noted(reply.into_result(route, token, parse))
    }

    /// A route's result, after a 429 in it has set the wait for every later request.
    fn noted<T, E: RouteError>(&self, result: Result<T, Error<E>>) -> Result<T, Error<E>> {
        if let Err(Error::RateLimited { retry_after, .. }) = &result {
            self.inner.gate.defer(*retry_after);
        }
        result
    }

    /// The answer of an RPC or token call, within `read_timeout` as a whole: reqwest's read
    /// timeout is per read, so a server trickling a byte now and then would hold the call
    /// (and its slot) forever.
    async fn read_whole(&self, response: reqwest::Response) -> Result<Reply, String> {
        let limit = self.inner.read_timeout;
        tokio::time::timeout(limit, read_reply(response))
            .await
            .map_err(|_| stalled_message(limit))?
    }

    /// An upload-style call: the argument in `Dropbox-API-Arg`, the bytes as the body.
    async fn upload_route<A, T, E>(
        &self,
        token: &Secret,
        route: &'static str,
        arg: &A,
        body: Bytes,
        progress: Option<Progress>,
        parse: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T, Error<E>>
    where
        A: Serialize,
        E: RouteError,
    {
        let authorization = bearer(token)?;
        // Printable ASCII by construction, so this cannot fail.
        let arg = HeaderValue::from_str(&header_safe_json(arg))
            .map_err(|_| Error::BadInput("the upload argument is not a valid header".into()))?;
        let request = self
            .inner
            .content
            .post(route_url(&self.inner.endpoints.content, route))
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("Dropbox-API-Arg", arg)
            .header(CONTENT_LENGTH, body.len());
        self.inner.gate.wait().await;
        let reply = self
            .send_upload(request, body, progress)
            .await
            .map_err(Error::Transport)?;
        self.noted(reply.into_result(route, token, parse))
    }

    /// Sends an upload and reads the reply, failing if nothing moves for `read_timeout`: no
    /// slice of the body taken by the connection, or no reply after the whole body.
    async fn send_upload(
        &self,
        request: reqwest::RequestBuilder,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<Reply, String> {
        let limit = self.inner.read_timeout;
        let activity = Arc::new(Activity::new());
        let request = request.body(upload_body(
            body,
            progress,
            activity.clone(),
            self.inner.limit.clone(),
        ));
        let response = tokio::select! {
            response = request.send() => response.map_err(transport)?,
            () = activity.stalled(limit) => return Err(stalled_message(limit)),
        };
        tokio::time::timeout(limit, read_reply(response))
            .await
            .map_err(|_| stalled_message(limit))?
    }
}

/// Whether `link`, listed for `path` with `direct_only`, is to that very item. `direct_only`
/// should make every listed link one, but a parent folder's link taken for a photo's would
/// share the whole folder, so a `/` path is checked against `path_lower`. `id:`, `rev:` and
/// `ns:` references carry no path to compare; there `direct_only` is trusted.
fn links_to(link: &SharedLinkMetadata, path: &str) -> bool {
    if !path.starts_with('/') {
        return true;
    }
    link.path_lower() == Some(path.to_lowercase().as_str())
}

#[derive(Serialize)]
struct PathArg<'a> {
    path: &'a str,
}

/// A response, read.
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Bytes,
}

impl Reply {
    fn into_result<T, E: RouteError>(
        self,
        route: &str,
        token: &Secret,
        parse: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T, Error<E>> {
        tracing::debug!(route, status = self.status, "Dropbox replied");
        if (200..300).contains(&self.status) {
            parse(&self.body).map_err(|e| Error::Decode {
                status: self.status,
                message: describe_json_error(&e),
            })
        } else {
            Err(decode_error(
                self.status,
                self.retry_after.as_deref(),
                &self.body,
                &[token.expose()],
            ))
        }
    }
}

async fn read_reply(response: reqwest::Response) -> Result<Reply, String> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = if body_is_read(status) {
        read_capped(response).await?
    } else {
        Bytes::new()
    };
    Ok(Reply {
        status,
        retry_after,
        body: neutralise_nul(body),
    })
}

/// A 5xx body is not used (it may be a proxy's HTML page), so it is not read.
fn body_is_read(status: u16) -> bool {
    !(500..600).contains(&status)
}

/// Decodes an HTTP answer of a Dropbox route as this client does, without the network: the
/// body (dropped for a 5xx, NULs neutralised, as `read_reply` keeps it) as the route's result
/// `T`, or its error union `E` for an error status; `retry_after` is the `Retry-After` header
/// and `token` the request's token, which no error text may show. For a caller with its own
/// transport or a recorded answer; the fuzz targets (`fuzz/`) feed it hostile answers.
pub fn decode_answer<T: DeserializeOwned, E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    token: &Secret,
) -> Result<T, Error<E>> {
    answer_as_read(status, retry_after, body).into_result("decoded", token, parse_json)
}

/// [`decode_answer`] for a route whose result is Void.
pub fn decode_void_answer<E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    token: &Secret,
) -> Result<(), Error<E>> {
    answer_as_read(status, retry_after, body).into_result("decoded", token, parse_void)
}

/// [`decode_answer`] for the OAuth token endpoint, with `secrets` as the values sent in its
/// form (none may show in an error text).
pub fn decode_token_answer(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    secrets: &[&str],
) -> Result<TokenResponse, OAuthError> {
    let reply = answer_as_read(status, retry_after, body);
    decode_token_response(
        reply.status,
        reply.retry_after.as_deref(),
        &reply.body,
        secrets,
    )
}

/// The answer as `read_reply` would have kept it off the wire.
fn answer_as_read(status: u16, retry_after: Option<&str>, body: &[u8]) -> Reply {
    let body = if body_is_read(status) {
        Bytes::copy_from_slice(body)
    } else {
        Bytes::new()
    };
    Reply {
        status,
        retry_after: retry_after.map(str::to_owned),
        body: neutralise_nul(body),
    }
}

/// The most of one answer that is read. The largest real ones are `list_folder` pages of 2000
/// entries (a few MB); anything past this is a broken or hostile server, and reading on would
/// let it take the daemon's memory.
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// The body, chunk by chunk, up to [`MAX_REPLY_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Bytes, String> {
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_REPLY_BYTES as u64 {
        return Err(format!(
            "Dropbox's answer would be {declared} bytes, more than the {MAX_REPLY_BYTES} read"
        ));
    }
    let mut body = bytes::BytesMut::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!(
                "Dropbox's answer is longer than the {MAX_REPLY_BYTES} bytes read; cut off"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// JSON may carry a NUL character as `\u0000`; a D-Bus string cannot, and the bus drops a
/// connection that sends one. Text from the network reaches callers (error messages, names),
/// so NULs become U+FFFD here, before anything is parsed.
fn neutralise_nul(body: Bytes) -> Bytes {
    const NUL: &[u8] = b"\\u0000";
    if !body.windows(NUL.len()).any(|w| w == NUL) {
        return body;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' && i + 1 < body.len() {
            // Every backslash in valid JSON starts a two-character escape (or \uXXXX).
            if body[i + 1..].starts_with(b"u0000") {
                out.extend_from_slice(b"\\ufffd");
                i += 6;
            } else {
                out.extend_from_slice(&body[i..i + 2]);
                i += 2;
            }
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    Bytes::from(out)
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(body)
}

/// A Void result is `null`; an empty body carries no less information, so it is accepted too.
fn parse_void(body: &[u8]) -> serde_json::Result<()> {
    if body.trim_ascii().is_empty() {
        return Ok(());
    }
    serde_json::from_slice::<IgnoredAny>(body).map(drop)
}

fn bearer<E>(token: &Secret) -> Result<HeaderValue, Error<E>> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        Error::BadInput("the access token contains characters not allowed in a header".into())
    })?;
    // Keeps it out of HTTP/2 header compression tables and out of `Debug` output.
    value.set_sensitive(true);
    Ok(value)
}

/// `base` + `route`, keeping any path prefix `base` has.
fn route_url(base: &Url, route: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}/{}", base.path().trim_end_matches('/'), route));
    url.set_query(None);
    url.set_fragment(None);
    url
}

fn check_endpoint(which: &'static str, url: &Url) -> Result<(), BuildError> {
    if matches!(url.scheme(), "http" | "https") && url.has_host() && !url.cannot_be_a_base() {
        Ok(())
    } else {
        Err(BuildError::Endpoint {
            which,
            url: url.to_string(),
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, BuildError> {
    let pem = std::fs::read(path).map_err(|source| BuildError::CaFileRead {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |message: String| BuildError::CaFileInvalid {
        path: path.to_owned(),
        message,
    };
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(error_chain(&e)))?;
    if certs.is_empty() {
        return Err(invalid("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// A transport failure in words: reqwest's message without the URL, and its causes (which
/// carry the useful part, e.g. "connection refused"). Request headers are never part of it.
fn transport(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error_chain(&error);
    if error.is_timeout() && !message.contains("timed out") {
        message.push_str(" (timed out)");
    }
    message
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and reqwest sometimes repeat their cause's text in their own.
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn stalled_message(limit: Duration) -> String {
    format!(
        "no progress for {} (timed out)",
        humantime::format_duration(limit)
    )
}

/// When an upload last moved, for the stall watchdog. A std mutex: held for an assignment only.
struct Activity {
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            last: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last.lock().expect("activity lock") = Instant::now();
    }

    /// Resolves once nothing has moved for `limit`.
    async fn stalled(&self, limit: Duration) {
        loop {
            let deadline = *self.last.lock().expect("activity lock") + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The upload body as a stream of slices of at most [`SLICE`] bytes. A slice counts as sent
/// when the connection takes it; the caller sets `Content-Length`, so the body is not chunked.
/// Under a bandwidth limit a slice waits its turn first; waiting counts as activity, so the
/// progress watchdog does not take throttling for a stall.
fn upload_body(
    body: Bytes,
    progress: Option<Progress>,
    activity: Arc<Activity>,
    limit: Arc<limit::RateLimit>,
) -> reqwest::Body {
    if body.is_empty() {
        return reqwest::Body::from(body);
    }
    let total = body.len();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slices = futures_util::stream::iter((0..total).step_by(SLICE)).then(move |start| {
        let slice = body.slice(start..(start + SLICE).min(total));
        let (activity, progress, limit, sent) = (
            activity.clone(),
            progress.clone(),
            limit.clone(),
            sent.clone(),
        );
        async move {
            if let Some(at) = limit.reserve(slice.len() as u64) {
                while tokio::time::Instant::now() < at {
                    activity.touch();
                    let step = at.min(tokio::time::Instant::now() + Duration::from_secs(1));
                    tokio::time::sleep_until(step).await;
                }
            }
            let sent = sent.fetch_add(slice.len() as u64, std::sync::atomic::Ordering::Relaxed)
                + slice.len() as u64;
            activity.touch();
            if let Some(progress) = &progress {
                progress(sent);
            }
            Ok::<Bytes, std::io::Error>(slice)
        }
    });
    reqwest::Body::wrap_stream(slices)
}

#[cfg(test)]
mod tests;
