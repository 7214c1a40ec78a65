//! `/__emulator/*`: the emulator's own control routes, so a person or a client in another
//! process can drive a standalone emulator the way tests drive it in-process. No
//! authentication: the emulator only listens on 127.0.0.1. Never faulted.
//!
//! - `POST /__emulator/faults` `{"route", "fault": {"kind", …}, "times"}` arms a fault;
//!   `POST /__emulator/faults/clear` (or `DELETE /__emulator/faults`) disarms all.
//! - `GET /__emulator/files`: the stored files; `GET /__emulator/requests`: the request log.
//! - `POST /__emulator/space` `{"allocated": N}`: the space allocation.
//! - `POST /__emulator/expire_tokens`: every access token issued so far expires.
//! - `GET /__emulator/network`: `{"model", "stats"}`, the network model in force and what its
//!   throttles did; `POST /__emulator/network` with a model (`{"latency_ms", "jitter_ms",
//!   "seed", "bandwidth", "rate_limit", "commit_lock": {"base_ms", "per_entry_ms"}}`, each
//!   optional, absent = off) sets it.

use super::super::body::Counted;
use hyper::{Method, Request};
use serde_json::Value;

use super::super::Shared;
use super::super::body;
use super::super::faults::InjectRequest;
use super::super::network::NetworkModel;
use super::super::wire::{ApiError, Reply};
use super::Failure;

#[derive(serde::Deserialize)]
struct SpaceRequest {
    allocated: u64,
}

async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request<Counted>,
) -> Result<T, Failure> {
    let bytes = body::read_small(request.into_body(), 1024 * 1024)
        .await
        .map_err(|_| ApiError::BadRequest("unreadable request body".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("bad JSON: {e}")).into())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Reply, Failure> {
    serde_json::to_value(value)
        .map(Reply::Json)
        .map_err(|e| ApiError::Internal(e.to_string()).into())
}

pub(crate) async fn handle(shared: &Shared, request: Request<Counted>) -> Result<Reply, Failure> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::POST, "/__emulator/faults") => {
            let armed: InjectRequest = json_body(request).await?;
            shared.faults.inject(&armed.route, armed.fault, armed.times);
            Ok(Reply::Null)
        }
        (Method::POST, "/__emulator/faults/clear") | (Method::DELETE, "/__emulator/faults") => {
            shared.faults.clear();
            Ok(Reply::Null)
        }
        (Method::GET, "/__emulator/files") => to_json(&shared.store.files()),
        (Method::GET, "/__emulator/requests") => to_json(&shared.log.all()),
        (Method::POST, "/__emulator/space") => {
            let space: SpaceRequest = json_body(request).await?;
            shared.store.set_allocated(space.allocated);
            Ok(Reply::Json(Value::Null))
        }
        (Method::POST, "/__emulator/expire_tokens") => {
            shared.auth.expire_all();
            shared.auth.flush().await;
            Ok(Reply::Null)
        }
        (Method::GET, "/__emulator/network") => to_json(&serde_json::json!({
            "model": shared.network.model(),
            "stats": shared.throttle.stats(),
        })),
        (Method::POST, "/__emulator/network") => {
            let model: NetworkModel = json_body(request).await?;
            shared.network.set(model);
            Ok(Reply::Null)
        }
        _ => Err(ApiError::UnknownRoute(path.trim_start_matches('/').to_owned()).into()),
    }
}
