//! The settle debouncer: when a file in a watched folder counts as finished.
//!
//! A file becomes a *candidate* on any event. It is ready when two looks at it, a settle time
//! apart, find the same [`Stamp`] (size, mtime, ctime, identity), the first look made when its
//! writer closed it (or renamed it in) or when a scan found it. Every new write resets the
//! clock, so a slow copy settles once, after its last write. A file opened for writing and
//! never closed is looked at after the writer-idle time; a file that settles while a program
//! still has it open for writing goes back to waiting (the caller asks, see `writers`).
//!
//! Pure: no clock and no file system. Callers pass `now` and what a look found, so the tests
//! below drive it with made-up instants and stamps.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::prepare::Stamp;

/// A candidate is known by its watch and path: one folder may be watched for several Dropbox
/// folders.
pub(super) type Key = (u64, PathBuf);

/// What an event says about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Touch {
    /// Created or written: its writer may not be done.
    Writing,
    /// Closed after writing, or renamed into the folder: look now, then settle.
    Closed,
    /// Deleted or moved away.
    Gone,
}

/// What a look at a due candidate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Unchanged for the settle time: hand it over.
    Settled(Stamp),
    /// Changed since the last look (or first looked at now): another settle time.
    Waiting,
    /// Gone, or not a file any more: forgotten.
    Dropped,
}

#[derive(Debug)]
struct Candidate {
    /// Opened for writing and not yet closed or renamed in.
    writing: bool,
    last_event: Instant,
    /// The file at the last look.
    stamp: Option<Stamp>,
}

#[derive(Debug)]
pub(super) struct Settle {
    settle: Duration,
    writer_idle: Duration,
    candidates: HashMap<Key, Candidate>,
}

impl Settle {
    pub fn new(settle: Duration, writer_idle: Duration) -> Settle {
        Settle {
            settle,
            writer_idle,
            candidates: HashMap::new(),
        }
    }

    /// An event on a file. True when the file wants a look now (it was closed or renamed in:
    /// that look starts its settle time).
    pub fn touched(&mut self, key: Key, touch: Touch, now: Instant) -> bool {
        let writing = match touch {
            Touch::Gone => {
                self.candidates.remove(&key);
                return false;
            }
            Touch::Writing => true,
            Touch::Closed => false,
        };
        let candidate = self.candidates.entry(key).or_insert(Candidate {
            writing,
            last_event: now,
            stamp: None,
        });
        candidate.writing = writing;
        candidate.last_event = now;
        candidate.stamp = None;
        !writing
    }

    /// The look made when a file was closed; ignored if it was written again since.
    pub fn looked(&mut self, key: &Key, stamp: Option<Stamp>) {
        if let Some(candidate) = self.candidates.get_mut(key)
            && !candidate.writing
        {
            candidate.stamp = stamp;
        }
    }

    /// Found by a scan, as `stamp`: settles like a file just closed. A file already a
    /// candidate keeps its own clock.
    pub fn found(&mut self, key: Key, stamp: Stamp, now: Instant) {
        self.candidates.entry(key).or_insert(Candidate {
            writing: false,
            last_event: now,
            stamp: Some(stamp),
        });
    }

    /// To be looked at again for a reason other than an event (its job ended).
    pub fn again(&mut self, key: Key, now: Instant) {
        self.candidates.entry(key).or_insert(Candidate {
            writing: false,
            last_event: now,
            stamp: None,
        });
    }

    /// Settled, but some program still has it open for writing: it waits for the close (whose
    /// event brings it back), or for the writer-idle time.
    pub fn still_written(&mut self, key: Key, now: Instant) {
        self.candidates.insert(
            key,
            Candidate {
                writing: true,
                last_event: now,
                stamp: None,
            },
        );
    }

    fn due_at(&self, candidate: &Candidate) -> Instant {
        candidate.last_event
            + if candidate.writing {
                self.writer_idle
            } else {
                self.settle
            }
    }

    /// When the next candidate is due; None when there is none (nothing to wake for).
    pub fn next_due(&self) -> Option<Instant> {
        self.candidates.values().map(|c| self.due_at(c)).min()
    }

    /// The candidates due for a look at `now`.
    pub fn due(&self, now: Instant) -> Vec<Key> {
        self.candidates
            .iter()
            .filter(|(_, c)| now >= self.due_at(c))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// What a look at a due candidate found (None: gone, or not a file to take).
    pub fn judge(&mut self, key: &Key, look: Option<Stamp>, now: Instant) -> Verdict {
        let Some(stamp) = look else {
            self.candidates.remove(key);
            return Verdict::Dropped;
        };
        let Some(candidate) = self.candidates.get_mut(key) else {
            return Verdict::Dropped;
        };
        if candidate.stamp == Some(stamp) {
            self.candidates.remove(key);
            return Verdict::Settled(stamp);
        }
        candidate.stamp = Some(stamp);
        candidate.writing = false;
        candidate.last_event = now;
        Verdict::Waiting
    }

    /// A watch went (removed, or its folder lost): its candidates too.
    pub fn forget_watch(&mut self, id: u64) {
        self.candidates.retain(|(watch, _), _| *watch != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(2000);
    const IDLE: Duration = Duration::from_secs(60);

    fn key(name: &str) -> Key {
        (1, PathBuf::from(format!("/w/{name}")))
    }

    fn stamp(size: u64) -> Stamp {
        Stamp {
            size,
            mtime_ms: Some(size),
            ctime_ns: size,
            dev: 1,
            ino: 7,
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_closed_file_settles_after_two_equal_looks_a_settle_time_apart() {
        let t0 = Instant::now();
        let mut s = Settle::new(SETTLE, IDLE);
        assert!(s.touched(key("a.jpg"), Touch::Closed, t0));
        s.looked(&key("a.jpg"), Some(stamp(10)));
        assert_eq!(s.next_due(), Some(ms(t0, 2000)));
        assert!(s.due(ms(t0, 1999)).is_empty());
        assert_eq!(s.due(ms(t0, 2000)), [key("a.jpg")]);
        assert_eq!(
            s.judge(&key("a.jpg"), Some(stamp(10)), ms(t0, 2000)),
            Verdict::Settled(stamp(10))
        );
        assert_eq!(s.next_due(), None, "nothing left to wake for");
    }

    #[test]
    fn every_write_resets_the_clock_and_a_change_means_another_settle_time() {
        let t0 = Instant::now();
        let mut s = Settle::new(SETTLE, IDLE);
        s.touched(key("a.jpg"), Touch::Closed, t0);
        s.looked(&key("a.jpg"), Some(stamp(10)));
        // Written again at 1.5 s: now a writer holds it; due only after the idle time.
        assert!(!s.touched(key("a.jpg"), Touch::Writing, ms(t0, 1500)));
        assert!(s.due(ms(t0, 2000)).is_empty());
        assert_eq!(s.next_due(), Some(ms(t0, 61_500)));
        // Closed at 3 s, but the look finds it grown again by the time it is due.
        s.touched(key("a.jpg"), Touch::Closed, ms(t0, 3000));
        s.looked(&key("a.jpg"), Some(stamp(20)));
        assert_eq!(
            s.judge(&key("a.jpg"), Some(stamp(30)), ms(t0, 5000)),
            Verdict::Waiting
        );
        assert_eq!(s.next_due(), Some(ms(t0, 7000)));
        assert_eq!(
            s.judge(&key("a.jpg"), Some(stamp(30)), ms(t0, 7000)),
            Verdict::Settled(stamp(30))
        );
    }

    #[test]
    fn a_writer_that_never_closes_is_looked_at_after_the_idle_time() {
        let t0 = Instant::now();
        let mut s = Settle::new(SETTLE, IDLE);
        s.touched(key("slow.jpg"), Touch::Writing, t0);
        assert_eq!(s.due(ms(t0, 60_000)), [key("slow.jpg")]);
        // First look: no stamp yet to compare with.
        assert_eq!(
            s.judge(&key("slow.jpg"), Some(stamp(5)), ms(t0, 60_000)),
            Verdict::Waiting
        );
        assert_eq!(
            s.judge(&key("slow.jpg"), Some(stamp(5)), ms(t0, 62_000)),
            Verdict::Settled(stamp(5))
        );
        // Still open for writing: back to waiting, for the close or another idle time.
        s.still_written(key("slow.jpg"), ms(t0, 62_000));
        assert_eq!(s.next_due(), Some(ms(t0, 122_000)));
        assert!(s.touched(key("slow.jpg"), Touch::Closed, ms(t0, 70_000)));
        assert_eq!(s.next_due(), Some(ms(t0, 72_000)));
    }

    #[test]
    fn gone_files_and_removed_watches_are_forgotten() {
        let t0 = Instant::now();
        let mut s = Settle::new(SETTLE, IDLE);
        s.found(key("a.jpg"), stamp(1), t0);
        s.found((2, PathBuf::from("/v/b.jpg")), stamp(2), t0);
        // A scan does not reset a file already waiting.
        s.found(key("a.jpg"), stamp(9), ms(t0, 1000));
        assert_eq!(s.next_due(), Some(ms(t0, 2000)));
        assert!(!s.touched(key("a.jpg"), Touch::Gone, ms(t0, 500)));
        assert_eq!(s.judge(&key("a.jpg"), None, ms(t0, 2000)), Verdict::Dropped);
        s.forget_watch(2);
        assert_eq!(s.next_due(), None);
        // A look that finds nothing drops the candidate.
        s.again(key("c.jpg"), t0);
        assert_eq!(s.judge(&key("c.jpg"), None, ms(t0, 2000)), Verdict::Dropped);
        assert_eq!(s.next_due(), None);
    }
}
