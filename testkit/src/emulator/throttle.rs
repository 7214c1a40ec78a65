//! The network model, part two: what Dropbox refuses when a client asks too much (part one,
//! latency and bandwidth, is `network`). Off until a [`super::NetworkModel`] sets a knob.
//!
//! - **Per-token request rate** (`rate_limit`, requests per second): Dropbox applies its rate
//!   limits per access token and does not publish them (Dropbox's performance guide and
//!   data-ingress guide; issue 16 puts the limit around a dozen requests per second per
//!   token). The emulator counts each authenticated request in a **sliding window** of one
//!   second per token (exact: never more than N in any second, where a token bucket would let
//!   a full bucket burst past it). A request that would make more than N gets 429
//!   `too_many_requests`, a `Retry-After` header in whole seconds (at least 1) and the same
//!   number as `retry_after` in the JSON `RateLimitError` body, and is not processed.
//!   Throttled requests count against the limit, as the guides say: a client that retries
//!   without waiting keeps itself throttled. (The Retry-After values seen in real answers are
//!   1 s for lock contention, and 15 s and 300 s for rate limits, as rclone's documentation
//!   reports; with a one-second window the emulator's is 1 s.) A request an injected fault
//!   answers never reaches the limiter.
//! - **Namespace lock** (`commit_lock`): every write to the account's namespace takes one lock
//!   (Dropbox's performance guide on `too_many_write_operations`, and Dropbox staff on the
//!   forum); the emulator has one account, so one lock. The commit routes are
//!   [`COMMIT_ROUTES`]. A commit holds the lock from the moment its request has arrived whole
//!   (an upload body read to its end) for `base + per_entry × files written` (each
//!   `finish_batch_v2` entry counts), and its answer waits for the hold to end, then for the
//!   latency. A commit arriving while the lock is held gets 429 `too_many_write_operations`
//!   with `Retry-After: 1` and no `retry_after` in the body, as captured from the real service
//!   (the answer quoted in the Go SDK's issue 33), and is not processed. The 409 flavour (a
//!   route error, or a `finish_batch_v2` entry tagged `too_many_write_operations`) stays the
//!   fault injector's (`Fault::EntryWriteContention`). Data transport
//!   (`upload_session/start`, `append_v2`, `start_batch`, `append_batch`) never takes the
//!   lock: Dropbox recommends sending data in parallel and committing many files at once.
//!
//! **Early requests.** Every 429 (these, or an injected fault) tells its token when to come
//! back. A request with that token arriving sooner is counted ([`NetworkStats`]): after
//! `too_many_requests`, any request (the limit is the token's); after
//! `too_many_write_operations`, a commit (the lock is the namespace's; appends are welcome
//! meanwhile). A request on another connection arriving within [`IN_FLIGHT`] of the 429 being
//! written was very likely sent before the client could read it, and is not counted; one on
//! the same connection is (HTTP/1.1 sends the next request only after the answer).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::lock;
use super::network::CommitLock;

/// The routes that write to the namespace, and so take its lock. The others (reads, listings,
/// shared links, the account, and data transport) never do.
pub const COMMIT_ROUTES: &[&str] = &[
    "files/upload",
    "files/upload_session/finish",
    "files/upload_session/finish_batch_v2",
    "files/create_folder_v2",
    "files/delete_v2",
];

/// How long after a 429 was written a request on another connection is taken to have been on
/// the wire already (sent before the client read the 429), rather than sent too soon.
pub const IN_FLIGHT: Duration = Duration::from_millis(100);

/// The window the rate limit counts requests in.
const WINDOW: Duration = Duration::from_secs(1);

/// What the throttles have done so far (and what clients did about it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetworkStats {
    /// 429 `too_many_requests` answers, from the rate limit or an injected fault.
    pub too_many_requests: u64,
    /// 429 `too_many_write_operations` answers, from the namespace lock or an injected fault.
    pub too_many_write_operations: u64,
    /// Requests that arrived sooner than a Retry-After told to their token allowed.
    pub early_requests: u64,
}

/// Which kind of 429 an answer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    TooManyRequests,
    TooManyWriteOperations,
}

/// The rate windows, what each token was told, and the namespace lock.
#[derive(Default)]
pub(crate) struct Throttle {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, PerToken>,
    lock: NamespaceLock,
    stats: NetworkStats,
}

#[derive(Default)]
struct PerToken {
    /// Arrival times of the token's requests in the last [`WINDOW`], oldest first.
    window: VecDeque<Instant>,
    /// The latest `too_many_requests` told to the token.
    slow_down: Option<Told>,
    /// The latest `too_many_write_operations` told to the token.
    lock_busy: Option<Told>,
}

#[derive(Clone, Copy)]
struct Told {
    /// When the 429 was written.
    written: Instant,
    /// When its Retry-After ends.
    until: Instant,
    /// The connection it went out on.
    connection: u64,
}

impl Told {
    /// How early a request arriving `now` on `connection` is, if it is.
    fn early(&self, now: Instant, connection: u64) -> Option<Duration> {
        let sent_after_reading = connection == self.connection || now >= self.written + IN_FLIGHT;
        (now < self.until && sent_after_reading).then(|| self.until - now)
    }
}

/// The one lock of the emulator's one account.
#[derive(Default)]
struct NamespaceLock {
    /// A commit is being processed.
    busy: bool,
    /// The hold of the last commit ends here.
    until: Option<Instant>,
}

/// A commit's hold on the namespace lock; the lock is free again once it is dropped (the
/// commit was processed) and `until` has passed.
pub(crate) struct CommitPermit<'a> {
    throttle: &'a Throttle,
    pub(crate) until: Instant,
}

impl Drop for CommitPermit<'_> {
    fn drop(&mut self) {
        lock(&self.throttle.inner).lock.busy = false;
    }
}

impl Throttle {
    /// Notes a request with `token` arriving on `connection`: how early it is, if a
    /// Retry-After told to the token has not passed (`commit`: the route takes the lock).
    pub(crate) fn arrive(&self, token: &str, commit: bool, connection: u64) -> Option<Duration> {
        let now = Instant::now();
        let mut state = lock(&self.inner);
        let told = state.tokens.get(token)?;
        let lock_busy = told.lock_busy.filter(|_| commit);
        let early = [told.slow_down, lock_busy]
            .into_iter()
            .flatten()
            .filter_map(|told| told.early(now, connection))
            .max()?;
        state.stats.early_requests += 1;
        Some(early)
    }

    /// Counts a request against the token's rate; `Err(retry_after)` in whole seconds when it
    /// goes over `limit` per second.
    pub(crate) fn admit(&self, token: &str, limit: u32) -> Result<(), u32> {
        let now = Instant::now();
        let mut state = lock(&self.inner);
        let window = &mut state.tokens.entry(token.to_owned()).or_default().window;
        while window.front().is_some_and(|&t| t + WINDOW <= now) {
            window.pop_front();
        }
        // Throttled requests count too.
        window.push_back(now);
        let limit = limit as usize;
        if window.len() <= limit {
            return Ok(());
        }
        // A request is admitted once fewer than `limit` of these are in its window: when the
        // oldest `len - limit + 1` have left it.
        let frees = window[window.len() - limit] + WINDOW;
        let wait = frees.saturating_duration_since(now);
        Err(u32::try_from(wait.as_secs_f64().ceil() as u64)
            .unwrap_or(u32::MAX)
            .max(1))
    }

    /// Takes the namespace lock for a commit writing `entries` files, or refuses (it is held).
    pub(crate) fn commit(&self, config: CommitLock, entries: u32) -> Option<CommitPermit<'_>> {
        let now = Instant::now();
        let mut state = lock(&self.inner);
        let held = state.lock.busy || state.lock.until.is_some_and(|until| now < until);
        if held {
            return None;
        }
        let until = now + config.hold(entries);
        state.lock = NamespaceLock {
            busy: true,
            until: Some(until),
        };
        Some(CommitPermit {
            throttle: self,
            until,
        })
    }

    /// A 429 of this kind, saying `retry_after` seconds, was just written to `token` on
    /// `connection`.
    pub(crate) fn told(&self, token: &str, refusal: Refusal, retry_after: u32, connection: u64) {
        let now = Instant::now();
        let told = Told {
            written: now,
            until: now + Duration::from_secs(u64::from(retry_after)),
            connection,
        };
        let mut state = lock(&self.inner);
        match refusal {
            Refusal::TooManyRequests => state.stats.too_many_requests += 1,
            Refusal::TooManyWriteOperations => state.stats.too_many_write_operations += 1,
        }
        let per = state.tokens.entry(token.to_owned()).or_default();
        let slot = match refusal {
            Refusal::TooManyRequests => &mut per.slow_down,
            Refusal::TooManyWriteOperations => &mut per.lock_busy,
        };
        // The latest end wins: a shorter Retry-After does not shorten an earlier one.
        if slot.is_none_or(|old| old.until <= told.until) {
            *slot = Some(told);
        }
    }

    pub(crate) fn stats(&self) -> NetworkStats {
        lock(&self.inner).stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_the_limit_then_refuses_with_a_whole_second() {
        let throttle = Throttle::default();
        for _ in 0..3 {
            assert_eq!(throttle.admit("t", 3), Ok(()));
        }
        assert_eq!(throttle.admit("t", 3), Err(1));
        assert_eq!(throttle.admit("other", 3), Ok(()), "per token");
    }

    #[test]
    fn the_lock_refuses_while_a_commit_is_processed_or_held() {
        let throttle = Throttle::default();
        let config = CommitLock {
            base: Duration::from_secs(60),
            per_entry: Duration::ZERO,
        };
        let permit = throttle.commit(config, 1).expect("free");
        assert!(throttle.commit(config, 1).is_none(), "processing");
        drop(permit);
        assert!(throttle.commit(config, 1).is_none(), "still held");
        let quick = CommitLock::default();
        let other = Throttle::default();
        let permit = other.commit(quick, 1).expect("free");
        assert!(other.commit(quick, 1).is_none(), "processing");
        drop(permit);
        assert!(other.commit(quick, 1).is_some(), "free again");
    }

    #[test]
    fn early_means_sooner_than_told_unless_plausibly_already_on_the_wire() {
        let throttle = Throttle::default();
        throttle.told("t", Refusal::TooManyRequests, 60, 1);
        assert!(throttle.arrive("t", false, 1).is_some(), "same connection");
        assert!(
            throttle.arrive("t", false, 2).is_none(),
            "in flight elsewhere"
        );
        assert!(throttle.arrive("u", false, 1).is_none(), "another token");
        throttle.told("u", Refusal::TooManyWriteOperations, 60, 1);
        assert!(throttle.arrive("u", false, 1).is_none(), "not a commit");
        assert!(throttle.arrive("u", true, 1).is_some(), "a commit");
        assert_eq!(throttle.stats().early_requests, 2);
    }
}
