//! Adaptive concurrency: how many jobs may send file data at once, learnt from Dropbox's answers
//! instead of fixed. `upload.transfers` is only the ceiling.
//!
//! A fixed number is wrong both ways: at real network distance (50–150 ms a request) a few
//! requests in flight cap throughput whatever the bandwidth, and against a server that
//! throttles, many are too many. So the limit moves, by AIMD (additive increase,
//! multiplicative decrease, as TCP's congestion window does) with a delay signal in the
//! manner of TCP Vegas:
//!
//! - It starts at [`START`] and grows by one per *window* of successes (as many successes as
//!   the limit: about one round of requests), only while the limit is actually used (a window
//!   in which a job found every slot taken). A limit nobody uses teaches nothing, and one that
//!   grew unused would let a burst out later (TCP's cwnd validation, RFC 7661).
//! - A throttle (429 `too_many_requests`, `too_many_write_operations` as a 429, a 409 tag or a
//!   batch entry) halves it at once. Requests that were already on the wire when it was cut
//!   answer with the same congestion, so their throttles do not cut it again (one cut per
//!   round, as TCP cuts once per window of losses).
//! - A window whose requests were mostly *slow* (latency more than [`TOLERANCE`] times the
//!   recent minimum for requests of that size) does not grow, and cuts the limit by a tenth
//!   (at least one): queues are building up somewhere (a saturated link, the client's own
//!   bandwidth limit, a server slowing down), so more requests at once would only wait
//!   longer. This is the Vegas idea (compare each round trip with the best one seen) without
//!   its need for a steady packet size: the minimum is kept per size class (powers of two),
//!   and a larger request in a class is allowed proportionally more time.
//! - Other failures (5xx, a lost connection) say nothing about how many requests Dropbox
//!   welcomes, and leave the limit alone.
//!
//! A request's latency is measured around the whole call, so a Retry-After wait and the
//! bandwidth limit's pacing count in it: both mean that more requests at once would only
//! wait longer, which is what the latency rule is for.
//!
//! Netflix's concurrency-limits "gradient" schemes would also fit; AIMD was kept because
//! Dropbox's own signal is a throttle (a loss, in TCP's terms), on which AIMD is the
//! well-understood fair and stable answer, and the latency rule only has to keep it from
//! overfilling a link that never throttles.
//!
//! [`Controller`] is the pure decision (state and its moves, table-tested below). [`Limiter`]
//! gives out [`Permit`]s as `Semaphore::acquire` did before: a job waits for one (in FIFO
//! order, woken by a tokio semaphore whose permits are added and forgotten as the limit
//! moves: no polling) and gives it back by dropping it. Outcomes are reported to the limiter
//! with [`Limiter::report`] by whoever made the request. The client's bandwidth limit still
//! holds below all of this (`dropbox::http::limit`), as does Retry-After (`dropbox::http::
//! retry_after`): this module only decides how many requests are in flight.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The limit at the start: low, so a throttling server sees little before it is listened to.
pub(super) const START: usize = 2;
/// A request is slow when it took more than this many times its baseline.
const TOLERANCE: f64 = 2.0;
/// A window of mostly slow requests keeps this share of the limit (rounded down, and at least
/// one less).
const SLOW_FACTOR: f64 = 0.9;
/// Requests up to this size share one baseline (their time is mostly round trip).
const SMALL: u64 = 64 * 1024;
/// Size classes: up to [`SMALL`], then one per power of two (148 MiB, the largest chunk,
/// is in class 12).
const CLASSES: usize = 16;
/// Samples in a class before its minimum starts a new generation; the baseline is the lower of
/// the last two generations' minima, so it follows a network that got slower for good.
const GENERATION: u32 = 64;

/// What became of a request, as far as the limit is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// Answered successfully.
    Success,
    /// Dropbox asked to slow down.
    Throttled,
    /// Failed in a way that says nothing about load (5xx, connection lost, a refusal, …).
    Failed,
}

/// Why the limit moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Grew,
    Throttled,
    Slow,
}

impl Change {
    fn why(self) -> &'static str {
        match self {
            Change::Grew => "a round of requests went well",
            Change::Throttled => "Dropbox asked to slow down",
            Change::Slow => "requests took longer than they did with fewer at once",
        }
    }
}

/// The adaptive limit's state and its moves (pure: time is given, nothing waits).
#[derive(Debug)]
pub(super) struct Controller {
    limit: usize,
    ceiling: usize,
    /// Permits held now.
    in_flight: usize,
    window: Window,
    baselines: [Baseline; CLASSES],
    /// When the limit was last halved by a throttle.
    last_cut: Option<Instant>,
}

/// The current round of successes.
#[derive(Debug, Default)]
struct Window {
    samples: usize,
    slow: usize,
    /// Every slot was taken at some point in the round.
    saturated: bool,
}

/// The best latency seen for one size class, over two generations.
#[derive(Debug, Default, Clone, Copy)]
struct Baseline {
    current: Option<Sample>,
    previous: Option<Sample>,
    count: u32,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Duration,
    bytes: u64,
}

impl Baseline {
    fn best(&self) -> Option<Sample> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(if a.latency <= b.latency { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Whether `sample` was slow against what this class has seen, then learns from it.
    fn observe(&mut self, sample: Sample) -> bool {
        let slow = self.best().is_some_and(|best| {
            // A larger request of the class may take proportionally longer.
            let scale = (sample.bytes.max(SMALL) as f64 / best.bytes.max(SMALL) as f64).max(1.0);
            sample.latency.as_secs_f64() > TOLERANCE * scale * best.latency.as_secs_f64()
        });
        if self.current.is_none_or(|c| sample.latency < c.latency) {
            self.current = Some(sample);
        }
        self.count += 1;
        if self.count >= GENERATION {
            self.previous = self.current.take();
            self.count = 0;
        }
        slow
    }
}

/// The size class of a request of `bytes` bytes.
fn class(bytes: u64) -> usize {
    if bytes <= SMALL {
        return 0;
    }
    let bits = 64 - (bytes - 1).leading_zeros() as usize; // 2^(bits-1) < bytes <= 2^bits
    (bits - SMALL.trailing_zeros() as usize).min(CLASSES - 1)
}

impl Controller {
    /// A limit between 1 and `ceiling` (at least 1), starting at [`START`].
    pub(super) fn new(ceiling: usize) -> Controller {
        let ceiling = ceiling.max(1);
        Controller {
            limit: START.min(ceiling),
            ceiling,
            in_flight: 0,
            window: Window::default(),
            baselines: [Baseline::default(); CLASSES],
            last_cut: None,
        }
    }

    /// Requests carrying file data allowed at once now.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// A permit was taken.
    pub(super) fn acquired(&mut self) {
        self.in_flight += 1;
        self.note_saturation();
    }

    /// A permit was given back.
    pub(super) fn released(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn note_saturation(&mut self) {
        if self.in_flight >= self.limit {
            self.window.saturated = true;
        }
    }

    /// A request of `bytes` bytes was answered after `latency`. At the end of a round: one
    /// more if the round used every slot and was mostly quick, a tenth less if it was mostly
    /// slow.
    pub(super) fn on_success(&mut self, latency: Duration, bytes: u64) -> Option<Change> {
        let slow = self.baselines[class(bytes)].observe(Sample { latency, bytes });
        self.window.samples += 1;
        self.window.slow += usize::from(slow);
        // The reporting request still holds its permit: all taken means all in use.
        self.note_saturation();
        if self.window.samples < self.limit {
            return None;
        }
        let round = std::mem::take(&mut self.window);
        if round.slow * 2 > round.samples {
            let cut = ((self.limit as f64 * SLOW_FACTOR) as usize)
                .min(self.limit - 1)
                .max(1);
            return self.set(cut, Change::Slow);
        }
        if round.saturated && self.limit < self.ceiling {
            return self.set(self.limit + 1, Change::Grew);
        }
        None
    }

    /// A request sent at `sent_at` was throttled, as seen at `now`: the limit halves, unless
    /// it was already cut since the request left (the same congestion, told again).
    pub(super) fn on_throttle(&mut self, sent_at: Instant, now: Instant) -> Option<Change> {
        if self.last_cut.is_some_and(|cut| sent_at < cut) {
            return None;
        }
        self.last_cut = Some(now);
        self.window = Window::default();
        self.set((self.limit / 2).max(1), Change::Throttled)
    }

    fn set(&mut self, limit: usize, change: Change) -> Option<Change> {
        let limit = limit.clamp(1, self.ceiling);
        if limit == self.limit {
            return None;
        }
        self.limit = limit;
        Some(change)
    }
}

/// The engine's network slots: [`Controller`]'s limit, given out as permits.
#[derive(Debug)]
pub(super) struct Limiter {
    state: Mutex<State>,
    /// Holds `limit + debt` permits in all (available plus held).
    slots: Semaphore,
}

#[derive(Debug)]
struct State {
    controller: Controller,
    /// Permits to forget as they come back: the limit went down while they were held.
    debt: usize,
}

/// A network slot, given back when dropped.
#[derive(Debug)]
pub(super) struct Permit<'a> {
    limiter: &'a Limiter,
    slot: Option<SemaphorePermit<'a>>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        state.controller.released();
        if let Some(slot) = self.slot.take()
            && state.debt > 0
        {
            state.debt -= 1;
            slot.forget();
        }
    }
}

impl Limiter {
    /// Slots between 1 and `ceiling` (`upload.transfers`), starting at [`START`].
    pub(super) fn new(ceiling: usize) -> Limiter {
        let controller = Controller::new(ceiling);
        Limiter {
            slots: Semaphore::new(controller.limit()),
            state: Mutex::new(State {
                controller,
                debt: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot (first come, first served).
    pub(super) async fn acquire(&self) -> Permit<'_> {
        let slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.state().controller.acquired();
        Permit {
            limiter: self,
            slot: Some(slot),
        }
    }

    /// Requests carrying file data allowed at once now.
    pub(super) fn limit(&self) -> usize {
        self.state().controller.limit()
    }

    /// What became of a request of `bytes` bytes sent at `sent_at`.
    pub(super) fn report(&self, sent_at: Instant, bytes: u64, signal: Signal) {
        let now = Instant::now();
        let mut state = self.state();
        let before = state.controller.limit();
        let change = match signal {
            Signal::Success => state
                .controller
                .on_success(now.saturating_duration_since(sent_at), bytes),
            Signal::Throttled => state.controller.on_throttle(sent_at, now),
            Signal::Failed => None,
        };
        let after = state.controller.limit();
        if after > before {
            let mut more = after - before;
            let forgiven = more.min(state.debt);
            state.debt -= forgiven;
            more -= forgiven;
            self.slots.add_permits(more);
        } else if after < before {
            let fewer = before - after;
            let gone = self.slots.forget_permits(fewer);
            state.debt += fewer - gone;
        }
        drop(state);
        if let Some(change) = change {
            tracing::debug!("requests at once: {before} → {after} ({})", change.why());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    const MS: Duration = Duration::from_millis(1);

    /// A controller with every slot taken, as under a queue of waiting jobs.
    fn busy(ceiling: usize) -> Controller {
        let mut c = Controller::new(ceiling);
        for _ in 0..ceiling {
            c.acquired();
        }
        c
    }

    /// Feeds `n` successes of `latency` and `bytes`; returns the limit after each.
    fn successes(c: &mut Controller, n: usize, latency: Duration, bytes: u64) -> Vec<usize> {
        (0..n)
            .map(|_| {
                c.on_success(latency, bytes);
                c.limit()
            })
            .collect()
    }

    #[test]
    fn grows_by_one_per_round_of_successes_up_to_the_ceiling() {
        let mut c = busy(8);
        assert_eq!(c.limit(), START);
        let limits = successes(&mut c, 27, 80 * MS, 300_000);
        // A round is as many successes as the limit: 2, 3, …, 7 (27 in all) to reach 8.
        assert_eq!(limits[..5], [2, 3, 3, 3, 4]);
        assert_eq!(c.limit(), 8);
        assert_eq!(limits[25], 7, "{limits:?}");
        // Never beyond the ceiling, however long it goes well.
        assert!(
            successes(&mut c, 500, 80 * MS, 300_000)
                .iter()
                .all(|l| *l == 8)
        );
    }

    #[test]
    fn does_not_grow_when_the_slots_are_not_all_used() {
        let mut c = Controller::new(8);
        c.acquired(); // one of two slots in use, never both
        successes(&mut c, 100, 80 * MS, 300_000);
        assert_eq!(c.limit(), START);
    }

    #[test]
    fn a_throttle_halves_once_per_round_never_below_one() {
        let t0 = Instant::now();
        let mut c = busy(16);
        successes(&mut c, 500, 80 * MS, 300_000);
        assert_eq!(c.limit(), 16);
        let table: [(&str, u64, u64, usize); 6] = [
            // (what, sent at ms, answered at ms, limit after)
            ("first throttle", 0, 100, 8),
            ("sent before that cut: same congestion", 50, 110, 8),
            ("sent after it", 120, 200, 4),
            ("again", 210, 300, 2),
            ("again", 310, 400, 1),
            ("at one it stays one", 410, 500, 1),
        ];
        for (what, sent, now, expected) in table {
            let at = |ms| t0 + Duration::from_millis(ms);
            c.on_throttle(at(sent), at(now));
            assert_eq!(c.limit(), expected, "{what}");
        }
    }

    #[test]
    fn recovers_after_the_throttling_stops() {
        let t0 = Instant::now();
        let mut c = busy(8);
        successes(&mut c, 27, 80 * MS, 300_000);
        assert_eq!(c.limit(), 8);
        c.on_throttle(t0, t0 + 100 * MS);
        c.on_throttle(t0 + 150 * MS, t0 + 250 * MS);
        assert_eq!(c.limit(), 2);
        // Rounds of 2, 3, …, 7 successes bring it back.
        successes(&mut c, 27, 80 * MS, 300_000);
        assert_eq!(c.limit(), 8);
    }

    #[test]
    fn rising_latency_stops_growth_and_cuts_by_a_tenth() {
        let mut c = busy(16);
        successes(&mut c, 9, 80 * MS, 300_000); // rounds of 2, 3, 4: limit 5
        assert_eq!(c.limit(), 5);
        // Latency well above the minimum for requests of this size: no growth, a cut.
        let limits = successes(&mut c, 5, 200 * MS, 300_000);
        assert_eq!(limits, [5, 5, 5, 5, 4]);
        let limits = successes(&mut c, 40, 400 * MS, 300_000);
        assert!(limits.windows(2).all(|w| w[1] <= w[0]), "{limits:?}");
        assert_eq!(c.limit(), 1, "never below one");
        // Somewhat slower (within the tolerance) is not slow.
        let mut c = busy(16);
        successes(&mut c, 9, 80 * MS, 300_000);
        successes(&mut c, 5, 150 * MS, 300_000);
        assert_eq!(c.limit(), 6);
    }

    #[test]
    fn latency_is_judged_against_requests_of_the_same_size() {
        // Small requests set a low minimum; 8 MiB chunks take far longer, and are compared
        // with other chunks, not with it.
        let mut c = busy(16);
        successes(&mut c, 2, 80 * MS, 50_000);
        assert_eq!(c.limit(), 3);
        successes(&mut c, 7, 700 * MS, 9 << 20);
        assert_eq!(c.limit(), 5);
        // A larger chunk of the same class (8 to 16 MiB) gets proportionally more time: 1.5 s
        // for 15 MiB is not slow against 0.7 s for 9 MiB.
        successes(&mut c, 5, 1_500 * MS, 15 << 20);
        assert_eq!(c.limit(), 6);
        // But chunks that take three times as long as chunks did are slow, however long a
        // small request would have taken for their bytes.
        successes(&mut c, 6, 2_100 * MS, 9 << 20);
        assert_eq!(c.limit(), 5);
    }

    #[test]
    fn size_classes() {
        let table = [
            (0, 0),
            (SMALL, 0),
            (SMALL + 1, 1),
            (2 * SMALL, 1),
            (300_000, 3),
            (8 << 20, 7),
            (148 << 20, 12),
            (u64::MAX, CLASSES - 1),
        ];
        for (bytes, expected) in table {
            assert_eq!(class(bytes), expected, "{bytes}");
        }
    }

    #[test]
    fn a_ceiling_of_one_stays_one() {
        let mut c = busy(1);
        assert_eq!(c.limit(), 1);
        successes(&mut c, 100, 80 * MS, 300_000);
        assert_eq!(c.limit(), 1);
    }

    /// Every slot the limiter gives without waiting.
    fn take_all(limiter: &Limiter) -> Vec<Permit<'_>> {
        let mut held = Vec::new();
        while let Some(permit) = limiter.acquire().now_or_never() {
            held.push(permit);
        }
        held
    }

    #[tokio::test]
    async fn permits_follow_the_limit_as_it_moves() {
        let limiter = std::sync::Arc::new(Limiter::new(4));
        let mut held = take_all(&limiter);
        assert_eq!(held.len(), START);
        // A job waiting for a slot is let in as soon as the limit grows: the semaphore wakes
        // it, nothing polls.
        let waiter = tokio::spawn({
            let limiter = limiter.clone();
            async move { drop(limiter.acquire().await) }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        for _ in 0..START {
            limiter.report(Instant::now(), 1000, Signal::Success);
        }
        assert_eq!(limiter.limit(), START + 1);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("let in when the limit grew")
            .unwrap();
        held.extend(take_all(&limiter));
        assert_eq!(held.len(), 3);
        // A throttle while every slot is held: slots given back are forgotten until the ones
        // still held fit the new limit.
        limiter.report(Instant::now(), 1000, Signal::Throttled);
        assert_eq!(limiter.limit(), 1);
        held.pop();
        assert!(take_all(&limiter).is_empty(), "two still held, limit one");
        held.pop();
        assert!(take_all(&limiter).is_empty(), "one still held, limit one");
        held.pop();
        assert_eq!(take_all(&limiter).len(), 1);
        // Other failures leave the limit alone.
        limiter.report(Instant::now(), 1000, Signal::Failed);
        assert_eq!(limiter.limit(), 1);
    }
}
