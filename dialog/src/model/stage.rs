//! Which face the window shows: choosing (photos, account, folder, options), starting (the
//! `Upload` call under way), sending (the batch's progress) and ended (counts, failures, the
//! link). [`Stage::next`] is the one place it changes.

use super::progress::BatchProgress;

#[derive(Debug, Clone)]
pub enum Stage {
    /// The choices; `error` is why the last Start did not go (shown above Start).
    Choosing {
        error: Option<String>,
    },
    /// `Upload` is under way.
    Starting,
    /// The batch runs; `wants_link`: its end waits for `BatchFinished`, which carries the link.
    Sending {
        batch: Box<BatchProgress>,
        wants_link: bool,
    },
    Ended {
        batch: Box<BatchProgress>,
    },
}

/// What moves the stage.
#[derive(Debug, Clone)]
pub enum StageEvent {
    /// Start was pressed.
    Start,
    /// `Upload` answered.
    Queued {
        batch: Box<BatchProgress>,
        wants_link: bool,
    },
    /// Start could not call, or `Upload` refused (nothing was queued).
    NotQueued(String),
    /// A signal was applied to the batch: is it over?
    Changed,
    /// "Retry failed" was pressed and the daemon queued the jobs again.
    Retried,
}

impl Stage {
    pub fn next(self, event: StageEvent) -> Stage {
        match (self, event) {
            (Stage::Choosing { .. }, StageEvent::Start) => Stage::Starting,
            (Stage::Starting, StageEvent::Queued { batch, wants_link }) => {
                Stage::Sending { batch, wants_link }
            }
            (Stage::Starting, StageEvent::NotQueued(error)) => {
                Stage::Choosing { error: Some(error) }
            }
            (Stage::Sending { batch, wants_link }, StageEvent::Changed) => {
                // BatchFinished ends it; without a link to wait for, every file final does
                // too (a missed signal must not leave the window waiting).
                let over = batch.summary().is_some() || (!wants_link && batch.all_final());
                if over {
                    Stage::Ended { batch }
                } else {
                    Stage::Sending { batch, wants_link }
                }
            }
            (Stage::Ended { batch }, StageEvent::Retried) => Stage::Sending {
                batch,
                wants_link: false,
            },
            (stage, _) => stage,
        }
    }

    /// The batch, while there is one.
    pub fn batch_mut(&mut self) -> Option<&mut BatchProgress> {
        match self {
            Stage::Sending { batch, .. } | Stage::Ended { batch } => Some(batch),
            _ => None,
        }
    }

    pub fn batch(&self) -> Option<&BatchProgress> {
        match self {
            Stage::Sending { batch, .. } | Stage::Ended { batch } => Some(batch),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbxport::queue::BatchSummary;

    fn queued(wants_link: bool) -> Stage {
        Stage::Choosing { error: None }
            .next(StageEvent::Start)
            .next(StageEvent::Queued {
                batch: Box::new(BatchProgress::new(1, &[10], &["a.jpg".into()])),
                wants_link,
            })
    }

    #[test]
    fn start_send_end_and_retry() {
        let refused = Stage::Choosing { error: None }
            .next(StageEvent::Start)
            .next(StageEvent::NotQueued("bad path".into()));
        assert!(matches!(refused, Stage::Choosing { error: Some(e) } if e == "bad path"));
        let mut s = queued(false);
        assert!(matches!(s, Stage::Sending { .. }));
        s = s.next(StageEvent::Changed);
        assert!(matches!(s, Stage::Sending { .. }));
        s.batch_mut().unwrap().state(10, 1, "failed", "no");
        s = s.next(StageEvent::Changed);
        assert!(matches!(s, Stage::Ended { .. }));
        // Start again while ended does nothing; Retry failed sends again.
        s = s.next(StageEvent::Start);
        assert!(matches!(s, Stage::Ended { .. }));
        s.batch_mut().unwrap().state(10, 1, "queued", "");
        assert!(matches!(s.next(StageEvent::Retried), Stage::Sending { .. }));
    }

    #[test]
    fn a_batch_with_a_link_ends_with_its_summary() {
        let mut s = queued(true);
        s.batch_mut().unwrap().state(10, 1, "done", "");
        s = s.next(StageEvent::Changed);
        assert!(matches!(s, Stage::Sending { .. }), "waits for the link");
        s.batch_mut().unwrap().finished(
            1,
            BatchSummary {
                link: Some("https://db.example/l".into()),
                ..Default::default()
            },
        );
        s = s.next(StageEvent::Changed);
        let Stage::Ended { batch } = s else {
            panic!("not ended")
        };
        assert_eq!(
            batch.summary().unwrap().link.as_deref(),
            Some("https://db.example/l")
        );
    }
}
