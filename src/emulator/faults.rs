//! Fault injection: what the network and Dropbox do to a client on a bad day (5xx, rate limits,
//! write-lock contention, connections reset mid-upload, answers lost after the work was done,
//! tokens expiring, slow answers). Tests arm a fault for the next N requests to a route; the
//! server consumes one per matching request.

use std::sync::{Arc, Mutex};

use super::lock;

/// What to do to a request instead of (or on top of) answering it normally.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer this 5xx status without processing the request; the body is sometimes empty,
    /// sometimes HTML or text, as on real Dropbox.
    ServerError { status: u16 },
    /// 429 `too_many_requests` with `retry_after` in the body and the `Retry-After` header.
    TooManyRequests { retry_after: u32 },
    /// 429 `too_many_write_operations` (no `retry_after` in the body), `Retry-After` header.
    TooManyWriteOperations { retry_after: u32 },
    /// Read part of the request body, then drop the connection without answering; the request
    /// is not processed.
    ResetMidBody,
    /// Process the request fully (a commit writes the file), then drop the connection without
    /// answering.
    LoseAnswer,
    /// Answer 401 `expired_access_token` and expire the token that was presented.
    ExpireToken,
    /// Process normally, but wait this long before answering.
    Delay { millis: u64 },
}

impl Fault {
    /// The snake_case name used in [`super::RequestRecord::fault`].
    pub fn name(&self) -> &'static str {
        match self {
            Fault::ServerError { .. } => "server_error",
            Fault::TooManyRequests { .. } => "too_many_requests",
            Fault::TooManyWriteOperations { .. } => "too_many_write_operations",
            Fault::ResetMidBody => "reset_mid_body",
            Fault::LoseAnswer => "lose_answer",
            Fault::ExpireToken => "expire_token",
            Fault::Delay { .. } => "delay",
        }
    }
}

/// Armed faults, shared between the test (or `/__emulator/faults`) and the server.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Armed>>,
}

#[derive(Default)]
struct Armed {
    /// In the order they were armed; the first match wins.
    pending: Vec<Injection>,
    /// Counts 5xx answers, so their bodies vary (empty, HTML, text) deterministically.
    server_errors: u64,
}

struct Injection {
    route: String,
    fault: Fault,
    remaining: u32,
}

impl Faults {
    /// The next `times` requests to `route` (a URL path like
    /// `/2/files/upload_session/append_v2`, or `*` for any route) get `fault`.
    pub fn inject(&self, route: &str, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        lock(&self.inner).pending.push(Injection {
            route: route.to_owned(),
            fault,
            remaining: times,
        });
    }

    /// Disarms every pending fault.
    pub fn clear(&self) {
        lock(&self.inner).pending.clear();
    }

    /// Consumes one use of the first fault armed for `route`.
    pub(crate) fn take(&self, route: &str) -> Option<Fault> {
        let mut armed = lock(&self.inner);
        let index = armed
            .pending
            .iter()
            .position(|i| i.route == "*" || i.route == route)?;
        let injection = &mut armed.pending[index];
        injection.remaining -= 1;
        let fault = injection.fault.clone();
        if injection.remaining == 0 {
            armed.pending.remove(index);
        }
        Some(fault)
    }

    /// A running count of injected 5xx answers.
    pub(crate) fn next_server_error(&self) -> u64 {
        let mut armed = lock(&self.inner);
        armed.server_errors += 1;
        armed.server_errors
    }
}

/// The JSON accepted by `POST /__emulator/faults`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct InjectRequest {
    pub(crate) route: String,
    pub(crate) fault: Fault,
    #[serde(default = "one")]
    pub(crate) times: u32,
}

fn one() -> u32 {
    1
}
