//! The [`Client`] itself: its options, its two connection pools (the api host and the content
//! host, set up differently) and the state every call shares (the bandwidth limit and the
//! pending Retry-After). The routes' methods live with their routes (`files::*`, `sharing`,
//! `users`, `auth`, `oauth`); what every call does over HTTP is `http`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::http::{error_chain, limit, retry_after};

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
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// For the api host: RPC routes and the token endpoint. reqwest's read timeout fits here.
    pub(super) rpc: reqwest::Client,
    /// For the content host. It has no reqwest read timeout, because reqwest starts that clock
    /// when the request starts and does not reset it while the body is being sent: a slow
    /// upload would be cut off. Uploads use their own progress watchdog instead.
    pub(super) content: reqwest::Client,
    pub(super) endpoints: Endpoints,
    pub(super) read_timeout: Duration,
    /// Upload bandwidth limit, shared by every transfer.
    pub(super) limit: Arc<limit::RateLimit>,
    /// The latest 429's Retry-After, which every request waits out.
    pub(super) gate: retry_after::Gate,
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

    /// Limits upload bandwidth to `bytes_per_sec` across every transfer (0: no limit). Takes
    /// effect for the next slice of bodies already on their way.
    pub fn set_bandwidth_limit(&self, bytes_per_sec: u64) {
        self.inner.limit.set(bytes_per_sec);
    }

    pub fn bandwidth_limit(&self) -> u64 {
        self.inner.limit.get()
    }

    /// The base URLs in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }
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
