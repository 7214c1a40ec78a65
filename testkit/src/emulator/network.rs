//! The network model, part one: what the distance to Dropbox costs (per-request latency) and
//! what the uplink allows (an upload bandwidth cap). Part two, what Dropbox itself refuses
//! (the per-token rate limit and the namespace lock), is `throttle`. Off by default: a test
//! or `dbxportctl emulator` turns each knob on ([`NetworkModel`]), and can change them while
//! the emulator runs ([`super::Emulator::set_network`], `POST /__emulator/network`).
//!
//! The knobs and where their values come from:
//!
//! - **Latency** (`latency`, `jitter`): every API request's answer is held back by `latency`
//!   plus a uniform draw in `0..=jitter`, from a PRNG seeded with `seed` (as `faults` does),
//!   so a run can be replayed. Real Dropbox sits 50–150 ms away from a client (issue 16; its
//!   benchmark used 80 ms): the round trip every request pays, however small. The emulator
//!   takes any value. The delay is added **after** the request is processed, before the answer is
//!   written: the request is handled the moment it arrives, so a commit lands before its
//!   answer can reach the client, as on the real service (where an answer lost on its way
//!   back leaves the commit done), and the rate limit, the namespace lock and the count of
//!   early requests see the times the client actually sent at. A commit's answer waits for the
//!   namespace lock's hold first (`throttle`), then the latency.
//! - **Upload bandwidth** (`bandwidth`, bytes/s): request bodies are read no faster than
//!   this, all connections together, like one uplink. The bucket has no depth (a virtual
//!   clock: each frame of a body is released when the link would have finished carrying it
//!   after the frames before it), so a body of B bytes takes at least B / bandwidth, and an idle
//!   link saves up no burst. Holding a frame stops reading the socket, so the client's TCP
//!   window closes and it slows down, as on a slow uplink.
//!
//! Nothing polls: a delay is one timer whose deadline is the moment the answer (or the frame)
//! goes out.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::lock;

/// The network between a client and the emulated Dropbox. Every knob at its default (zero,
/// `None`) is today's loopback: no delay, no cap, no limit, no lock.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkModel {
    /// Added to every API request before its answer is written (`latency_ms` in JSON).
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Up to this much more, drawn uniformly per request (`jitter_ms` in JSON).
    #[serde(rename = "jitter_ms", with = "millis")]
    pub jitter: Duration,
    /// The jitter's PRNG starts from this seed whenever a model is set.
    pub seed: u64,
    /// Upload bandwidth in bytes per second, shared by all connections; `None`: no cap.
    pub bandwidth: Option<u64>,
    /// At most this many requests per second per access token (`throttle`); `None`: no limit.
    pub rate_limit: Option<u32>,
    /// The namespace lock every commit takes (`throttle`); `None`: commits never collide.
    pub commit_lock: Option<CommitLock>,
}

/// How long a commit holds the namespace lock: `base` plus `per_entry` for each file it
/// writes (each entry of a `finish_batch_v2`; one for every other commit route).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitLock {
    #[serde(rename = "base_ms", with = "millis")]
    pub base: Duration,
    #[serde(rename = "per_entry_ms", with = "millis")]
    pub per_entry: Duration,
}

/// Durations as whole milliseconds in the control route's JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

impl CommitLock {
    /// The hold of a commit writing `entries` files.
    pub fn hold(&self, entries: u32) -> Duration {
        self.base + self.per_entry.saturating_mul(entries)
    }
}

/// The model in force and the state its knobs need: the jitter's PRNG and the uplink.
pub(crate) struct Network {
    inner: Mutex<State>,
}

struct State {
    model: NetworkModel,
    rng: StdRng,
    /// When the uplink has carried everything released so far.
    link_free: Instant,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            inner: Mutex::new(State {
                model: NetworkModel::default(),
                rng: StdRng::seed_from_u64(0),
                link_free: Instant::now(),
            }),
        }
    }
}

impl Network {
    pub(crate) fn set(&self, model: NetworkModel) {
        let mut state = lock(&self.inner);
        state.rng = StdRng::seed_from_u64(model.seed);
        state.model = model;
    }

    pub(crate) fn model(&self) -> NetworkModel {
        lock(&self.inner).model.clone()
    }

    /// This request's latency: the fixed part plus a fresh jitter draw.
    pub(crate) fn latency(&self) -> Duration {
        let mut state = lock(&self.inner);
        let jitter = state.model.jitter;
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(state.rng.random_range(0..=nanos))
        };
        state.model.latency + extra
    }

    /// Books `bytes` on the uplink: the instant the link has carried them, after everything
    /// booked before; `None` when there is no cap (or nothing to carry).
    pub(crate) fn carry(&self, bytes: usize) -> Option<Instant> {
        let mut state = lock(&self.inner);
        let rate = state.model.bandwidth.filter(|&rate| rate > 0)?;
        if bytes == 0 {
            return None;
        }
        let start = state.link_free.max(Instant::now());
        let done = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
        state.link_free = done;
        Some(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_fixed_plus_jitter_in_range_and_replays_from_the_seed() {
        let network = Network::default();
        assert_eq!(network.latency(), Duration::ZERO, "off by default");
        let model = NetworkModel {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            seed: 7,
            ..NetworkModel::default()
        };
        network.set(model.clone());
        let first: Vec<Duration> = (0..100).map(|_| network.latency()).collect();
        assert!(
            first
                .iter()
                .all(|d| (Duration::from_millis(50)..=Duration::from_millis(70)).contains(d))
        );
        assert!(first.iter().any(|d| *d != first[0]), "the jitter varies");
        network.set(model);
        let again: Vec<Duration> = (0..100).map(|_| network.latency()).collect();
        assert_eq!(first, again, "the same seed draws the same delays");
    }

    #[tokio::test]
    async fn the_uplink_carries_bookings_one_after_another_at_the_rate() {
        let network = Network::default();
        assert_eq!(network.carry(1000), None, "no cap by default");
        network.set(NetworkModel {
            bandwidth: Some(1000),
            ..NetworkModel::default()
        });
        let start = Instant::now();
        let first = network.carry(500).unwrap();
        let second = network.carry(500).unwrap();
        assert!(first >= start + Duration::from_millis(500));
        assert!(second >= first + Duration::from_millis(500));
    }
}
