//! Upload throughput over the last few seconds, for `dbxportctl status` (rate and ETA).
//!
//! Bytes are counted as the connection takes them, in one-second buckets; the rate is the sum
//! of the full buckets in the window divided by its length, so it falls to zero when nothing
//! moves rather than keeping the last figure forever.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Meter {
    /// (start of a one-second bucket, bytes in it), oldest first.
    buckets: Mutex<VecDeque<(Instant, u64)>>,
}

impl Meter {
    pub fn add(&self, bytes: u64) {
        self.add_at(Instant::now(), bytes);
    }

    fn add_at(&self, now: Instant, bytes: u64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.back_mut() {
            Some((start, count)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *count += bytes
            }
            _ => buckets.push_back((now, bytes)),
        }
        while buckets
            .front()
            .is_some_and(|(start, _)| now.duration_since(*start) > WINDOW)
        {
            buckets.pop_front();
        }
    }

    /// Bytes per second over the last few seconds.
    pub fn rate(&self) -> u64 {
        self.rate_at(Instant::now())
    }

    fn rate_at(&self, now: Instant) -> u64 {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: u64 = buckets
            .iter()
            .filter(|(start, _)| now.duration_since(*start) <= WINDOW)
            .map(|(_, count)| count)
            .sum();
        (bytes as f64 / WINDOW.as_secs_f64()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window_and_back_to_zero() {
        let meter = Meter::default();
        let t0 = Instant::now();
        for second in 0..5 {
            meter.add_at(t0 + Duration::from_secs(second), 1_000_000);
        }
        assert_eq!(meter.rate_at(t0 + Duration::from_millis(4500)), 1_000_000);
        assert_eq!(meter.rate_at(t0 + Duration::from_secs(30)), 0);
    }
}
