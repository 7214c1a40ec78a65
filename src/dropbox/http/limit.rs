//! The upload bandwidth limit, shared by every transfer of a client and changeable while they
//! run.
//!
//! Each slice of a body reserves its share of time on one schedule ("virtual scheduling"): a
//! slice of `n` bytes may leave at the schedule's next free instant, and moves that instant on
//! by `n / rate`. Concurrent transfers thus share the rate instead of each getting it, and a
//! transfer that was idle does not bank credit for a burst later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct RateLimit {
    /// Bytes per second; 0 = no limit.
    bytes_per_sec: AtomicU64,
    next_free: std::sync::Mutex<Option<Instant>>,
}

impl RateLimit {
    pub fn set(&self, bytes_per_sec: u64) {
        self.bytes_per_sec.store(bytes_per_sec, Ordering::Relaxed);
        // A new rate starts a new schedule.
        *self.next_free.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn get(&self) -> u64 {
        self.bytes_per_sec.load(Ordering::Relaxed)
    }

    /// When `n` bytes may be sent: now, or later under the limit.
    pub fn reserve(&self, n: u64) -> Option<Instant> {
        self.reserve_at(Instant::now(), n)
    }

    fn reserve_at(&self, now: Instant, n: u64) -> Option<Instant> {
        let rate = self.get();
        if rate == 0 {
            return None;
        }
        let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let start = next.map_or(now, |t| t.max(now));
        *next = Some(start + Duration::from_secs_f64(n as f64 / rate as f64));
        (start > now).then_some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_spaced_to_the_rate_and_shared() {
        let limit = RateLimit::default();
        let t0 = Instant::now();
        assert!(
            limit.reserve_at(t0, 1_000_000).is_none(),
            "no limit: no wait"
        );
        limit.set(1_000);
        assert!(
            limit.reserve_at(t0, 500).is_none(),
            "the first slice goes at once"
        );
        // The next 500 bytes (from any transfer) wait half a second, the next a second.
        assert_eq!(
            limit.reserve_at(t0, 500).unwrap() - t0,
            Duration::from_millis(500)
        );
        assert_eq!(
            limit.reserve_at(t0, 500).unwrap() - t0,
            Duration::from_millis(1000)
        );
        // Idle time earns no burst: after a pause, the schedule restarts from now.
        let later = t0 + Duration::from_secs(10);
        assert!(limit.reserve_at(later, 500).is_none());
        assert_eq!(
            limit.reserve_at(later, 500).unwrap() - later,
            Duration::from_millis(500)
        );
        limit.set(0);
        assert!(limit.reserve_at(later, 500).is_none());
    }
}
