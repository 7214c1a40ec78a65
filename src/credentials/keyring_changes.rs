//! When to look for the keyring again, without polling: the Secret Service taking its name on
//! the session bus (it started, e.g. at a desktop login after the daemon), and its collections
//! changing (created, deleted, unlocked). A daemon waiting for the keyring tries again on each
//! of these, and sleeps otherwise.
//!
//! Without a session bus to listen on (a daemon started outside a desktop session), it falls
//! back to looking every [`FALLBACK`]: then nothing else could tell.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// The Secret Service's well-known name.
const SECRETS: &str = "org.freedesktop.secrets";
/// How often to look when no bus can tell.
const FALLBACK: Duration = Duration::from_secs(5);

pub(super) enum KeyringChanges {
    /// Signals from the bus; the connection is kept for as long as they are wanted.
    Bus {
        _conn: zbus::Connection,
        signals: BoxStream<'static, ()>,
    },
    Poll,
}

impl KeyringChanges {
    /// Listens on the session bus, or falls back to a timer (said in the log).
    pub async fn listen() -> KeyringChanges {
        match Self::subscribe().await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::info!(
                    "cannot follow the Secret Service on the session bus ({e}); looking for it \
                     every {}s",
                    FALLBACK.as_secs()
                );
                KeyringChanges::Poll
            }
        }
    }

    async fn subscribe() -> zbus::Result<KeyringChanges> {
        use zbus::message::Type;
        let conn = zbus::Connection::session().await?;
        let owner = zbus::MatchRule::builder()
            .msg_type(Type::Signal)
            .sender("org.freedesktop.DBus")?
            .interface("org.freedesktop.DBus")?
            .member("NameOwnerChanged")?
            .arg(0, SECRETS)?
            .build();
        let collections = zbus::MatchRule::builder()
            .msg_type(Type::Signal)
            .interface("org.freedesktop.Secret.Service")?
            .build();
        // Small queues are enough: the waiting loop drains them, and one signal or ten mean
        // the same (look again).
        let owner = zbus::MessageStream::for_match_rule(owner, &conn, Some(16)).await?;
        let collections = zbus::MessageStream::for_match_rule(collections, &conn, Some(16)).await?;
        let signals = futures_util::stream::select(owner, collections)
            .map(|_| ())
            .boxed();
        Ok(KeyringChanges::Bus {
            _conn: conn,
            signals,
        })
    }

    /// Resolves at the next reason to look again (never, if the bus went away).
    pub async fn next(&mut self) {
        match self {
            KeyringChanges::Bus { signals, .. } => {
                if signals.next().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            KeyringChanges::Poll => tokio::time::sleep(FALLBACK).await,
        }
    }
}
