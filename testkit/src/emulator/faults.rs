//! Fault injection: what the network and Dropbox do to a client on a bad day (5xx, rate limits,
//! write-lock contention, connections reset mid-upload, answers lost after the work was done,
//! tokens expiring, slow answers). Tests arm a fault for the next N requests to a route (the
//! server consumes one per matching request), or for a share of the requests to a route
//! ([`Faults::inject_rate`], drawn from a seeded PRNG so a failing run can be replayed).
//!
//! Routes are matched exactly, or by prefix when the pattern ends in `*`: `*` is every route,
//! `/2/files/upload*` every upload route.

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
    /// `finish_batch_v2` only: each entry, with probability `per_mille`/1000, is not committed
    /// and answers `{".tag": "failure", "failure": {".tag": "too_many_write_operations"}}`
    /// (its session stays, so the entry can be retried); the other entries commit normally.
    /// On other routes the request is processed normally.
    EntryWriteContention { per_mille: u32 },
    /// `append_batch` only: each entry, with probability `per_mille`/1000, is not applied and
    /// answers `{".tag": "failure", "failure": {".tag": "incorrect_offset", "correct_offset":
    /// N}}` with N the bytes its session really holds (an unknown session still answers
    /// `not_found`); the other entries are applied normally. On other routes the request is
    /// processed normally.
    EntryIncorrectOffset { per_mille: u32 },
    // Hostile answers: a broken or malicious server, or a proxy in the way.
    /// Process normally; answer with only the first half of the body (Content-Length saying
    /// so): JSON that stops mid-way.
    TruncatedAnswer,
    /// Process normally; announce the whole body's length, send half of it, then close the
    /// connection (an HTTP/1.1 connection closed early).
    CutOffAnswer,
    /// Do not process; answer 200 with a chunked body of this many bytes of JSON whitespace
    /// (no Content-Length), then `{}`.
    HugeAnswer { bytes: u64 },
    /// Do not process; answer 200 and then send one space every `every_ms`, forever.
    EndlessAnswer { every_ms: u64 },
    /// Read the request, then never answer (until the client gives up).
    Stall,
    /// Process normally, but report a `content_hash` that is not the stored file's.
    WrongContentHash,
    /// Do not process; answer 409 with an error whose tag no client knows
    /// (`{".tag": "future_error"}`), as Dropbox may add to open unions.
    UnknownErrorTag,
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
            Fault::EntryWriteContention { .. } => "entry_write_contention",
            Fault::EntryIncorrectOffset { .. } => "entry_incorrect_offset",
            Fault::TruncatedAnswer => "truncated_answer",
            Fault::CutOffAnswer => "cut_off_answer",
            Fault::HugeAnswer { .. } => "huge_answer",
            Fault::EndlessAnswer { .. } => "endless_answer",
            Fault::Stall => "stall",
            Fault::WrongContentHash => "wrong_content_hash",
            Fault::UnknownErrorTag => "unknown_error_tag",
        }
    }
}

/// Armed faults, shared between the test (or `/__emulator/faults`) and the server.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Armed>>,
}

struct Armed {
    /// In the order they were armed; the first match wins.
    pending: Vec<Injection>,
    /// Faults armed by rate, in the order they were armed. Consulted only when no counted
    /// fault matched.
    rates: Vec<Rate>,
    /// Every rate draw comes from here (see [`Faults::seed`]).
    rng: StdRng,
    /// Counts 5xx answers, so their bodies vary (empty, HTML, text) deterministically.
    server_errors: u64,
    /// `finish_batch_v2` entries refused by [`Fault::EntryWriteContention`].
    entries_refused: u64,
    /// `append_batch` entries refused by [`Fault::EntryIncorrectOffset`].
    entries_misplaced: u64,
}

impl Default for Armed {
    fn default() -> Self {
        Armed {
            pending: Vec::new(),
            rates: Vec::new(),
            rng: StdRng::seed_from_u64(0),
            server_errors: 0,
            entries_refused: 0,
            entries_misplaced: 0,
        }
    }
}

struct Injection {
    route: String,
    fault: Fault,
    remaining: u32,
}

struct Rate {
    route: String,
    fault: Fault,
    per_mille: u32,
}

/// Whether `pattern` (exact, or a prefix ending in `*`) names `route`.
fn matches(pattern: &str, route: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => route.starts_with(prefix),
        None => pattern == route,
    }
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

    /// Each request to `route` gets `fault` with probability `per_mille`/1000, until
    /// [`Faults::clear`]. Several rates may be armed at once: one number in 0..1000 is drawn
    /// per request and the rates matching the route take consecutive ranges of it in the order
    /// they were armed, so they add up and exclude each other (10 % `ServerError` and 5 %
    /// `ResetMidBody` on the same route fault 15 % of its requests; rates past a total of 1000
    /// never fire). A fault armed with [`Faults::inject`] for the same request wins, and then
    /// nothing is drawn.
    pub fn inject_rate(&self, route: &str, fault: Fault, per_mille: u32) {
        lock(&self.inner).rates.push(Rate {
            route: route.to_owned(),
            fault,
            per_mille,
        });
    }

    /// Restarts the rate draws from `seed` (the default seed is 0), so that the same sequence
    /// of requests meets the same faults.
    pub fn seed(&self, seed: u64) {
        lock(&self.inner).rng = StdRng::seed_from_u64(seed);
    }

    /// Disarms every pending fault, counted or by rate.
    pub fn clear(&self) {
        let mut armed = lock(&self.inner);
        armed.pending.clear();
        armed.rates.clear();
    }

    /// Consumes one use of the first fault armed for `route`, else draws among the rates.
    pub(crate) fn take(&self, route: &str) -> Option<Fault> {
        let mut armed = lock(&self.inner);
        if let Some(index) = armed.pending.iter().position(|i| matches(&i.route, route)) {
            let injection = &mut armed.pending[index];
            injection.remaining -= 1;
            let fault = injection.fault.clone();
            if injection.remaining == 0 {
                armed.pending.remove(index);
            }
            return Some(fault);
        }
        if !armed.rates.iter().any(|r| matches(&r.route, route)) {
            return None;
        }
        let draw = armed.rng.random_range(0..1000u32);
        let mut upto = 0u32;
        for rate in armed.rates.iter().filter(|r| matches(&r.route, route)) {
            upto = upto.saturating_add(rate.per_mille);
            if draw < upto {
                return Some(rate.fault.clone());
            }
        }
        None
    }

    /// True with probability `per_mille`/1000, from the same seeded PRNG as the rates.
    pub(crate) fn chance(&self, per_mille: u32) -> bool {
        lock(&self.inner).rng.random_range(0..1000u32) < per_mille
    }

    /// Counts one batch entry refused with write contention.
    pub(crate) fn note_entry_refused(&self) {
        lock(&self.inner).entries_refused += 1;
    }

    /// How many `finish_batch_v2` entries [`Fault::EntryWriteContention`] has refused.
    pub fn entries_refused(&self) -> u64 {
        lock(&self.inner).entries_refused
    }

    /// Counts one `append_batch` entry refused with `incorrect_offset`.
    pub(crate) fn note_entry_misplaced(&self) {
        lock(&self.inner).entries_misplaced += 1;
    }

    /// How many `append_batch` entries [`Fault::EntryIncorrectOffset`] has refused.
    pub fn entries_misplaced(&self) -> u64 {
        lock(&self.inner).entries_misplaced
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
