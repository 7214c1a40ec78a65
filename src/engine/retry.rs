//! The retry policy, in one place: how long a job waits after a transient failure.
//!
//! Exponential backoff with jitter, capped, and never sooner than the server's Retry-After
//! (ARCHITECTURE.md, invariant 6). Retries go on for as long as it takes; only the wait grows.

use std::time::Duration;

use rand::Rng;

/// First wait.
const BASE: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const CAP: Duration = Duration::from_secs(300);

/// The wait before attempt `attempt` (1 = the first retry). Jitter spreads the waits over the
/// upper half of the exponential step ("equal jitter"), so many jobs failing together do not
/// come back together, while the wait still grows with each failure.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    backoff_with(attempt, retry_after, rand::rng().random::<f64>())
}

/// `backoff` with the random draw (0..1) given, for tests.
pub fn backoff_with(attempt: u32, retry_after: Option<Duration>, draw: f64) -> Duration {
    let exp = BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(CAP);
    let jittered = exp.mul_f64(0.5 + 0.5 * draw.clamp(0.0, 1.0));
    match retry_after {
        Some(after) => jittered.max(after),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        assert_eq!(backoff_with(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_with(2, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_with(4, None, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_with(40, None, 1.0), CAP);
        assert_eq!(backoff_with(3, None, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn never_sooner_than_retry_after() {
        for draw in [0.0, 0.5, 1.0] {
            assert!(
                backoff_with(1, Some(Duration::from_secs(15)), draw) >= Duration::from_secs(15)
            );
        }
        // A longer own backoff wins over a short Retry-After.
        assert_eq!(
            backoff_with(5, Some(Duration::from_secs(1)), 1.0),
            Duration::from_secs(16)
        );
    }
}
