//! The accept loop: one task per connection, HTTP/1.1 with keep-alive, and a shutdown that
//! lets in-flight requests finish but does not wait forever for a client that stalls. Each
//! request is carried out in a task of its own ([`Work`]), tracked with the connections.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;

/// How long shutdown waits for in-flight requests before dropping their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let connections = TaskTracker::new();
    // Cancelled when the drain timeout passes, to cut connections that are still busy.
    let abort = CancellationToken::new();
    // Numbers the connections, so the throttle can tell a request sent after reading an answer
    // on the same connection from one already on the wire elsewhere (`throttle`, early requests).
    let mut connection = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Usually EMFILE or a connection reset before accept; the listener itself is fine.
                tracing::debug!(%error, "emulator: accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connection += 1;
        connections.spawn(serve(
            stream,
            Connection(connection),
            shared.clone(),
            connections.clone(),
            stop.clone(),
            abort.clone(),
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        abort.cancel();
        connections.wait().await;
    }
}

/// Where a request is carried out: a task tracked with the connections (shutdown waits for
/// it), cut when the drain timeout passes (`routes::handle`).
#[derive(Clone)]
pub(crate) struct Work {
    pub(crate) tasks: TaskTracker,
    pub(crate) abort: CancellationToken,
}

/// Which connection a request came on; in each request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Connection(pub(crate) u64);

async fn serve(
    stream: tokio::net::TcpStream,
    connection: Connection,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    stop: CancellationToken,
    abort: CancellationToken,
) {
    let work = Work {
        tasks,
        abort: abort.clone(),
    };
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(connection);
        super::routes::handle(shared.clone(), work.clone(), request)
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                _ = abort.cancelled() => return,
            }
        }
    };
    if let Err(error) = result {
        // Includes the deliberate drops of the ResetMidBody and LoseAnswer faults.
        tracing::debug!(%error, "emulator: connection ended");
    }
}
