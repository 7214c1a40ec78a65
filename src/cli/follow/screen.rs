//! What `--wait` shows: a bar for the batch and for each file in flight on stderr (when it is
//! a terminal), a result line per file on stdout, cut to the terminal's width.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::tally::{Phase, Tracked};
use crate::cli::term::{self, outln, say};

/// At most this many files get a bar of their own (the daemon sends a few at a time anyway).
pub(super) const MAX_BARS: usize = 8;

/// Bars on stderr (when it is a terminal) and result lines on stdout.
pub(super) struct Screen {
    pub(super) multi: MultiProgress,
    pub(super) overall: ProgressBar,
    pub(super) bars: HashMap<u64, ProgressBar>,
    /// Columns for result lines (None: not a terminal, lines are not cut).
    pub(super) width: Option<usize>,
    /// Result lines on stdout (not with `--json`, whose one object says it all).
    pub(super) lines: bool,
}

impl Screen {
    pub(super) fn new() -> Screen {
        let multi = MultiProgress::new();
        if term::verbosity() == term::Verbosity::Quiet {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {left}",
            )
            .expect("valid template")
            // indicatif's {eta} says "0s" while nothing moves (waiting for a login, paused):
            // the time left is only said once there is a rate to say it from.
            .with_key(
                "left",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = if state.per_sec() >= 1.0 {
                        write!(w, "{:#}", indicatif::HumanDuration(state.eta()))
                    } else {
                        w.write_str("--")
                    };
                },
            )
            .progress_chars("=> "),
        );
        Screen {
            multi,
            overall,
            bars: HashMap::new(),
            width: term::width(),
            lines: true,
        }
    }

    /// Prints a result line above the bars.
    pub(super) fn line(&self, line: String) {
        if self.lines {
            self.multi.suspend(|| outln!("{line}"));
        }
    }

    /// Tells something along the way (stderr) above the bars.
    pub(super) fn tell(&self, line: String) {
        self.multi.suspend(|| say!("{line}"));
    }

    /// A name cut to fit a line that spends `used` columns on other things.
    pub(super) fn fit<'a>(&self, name: &'a str, used: usize) -> std::borrow::Cow<'a, str> {
        match self.width {
            Some(width) => term::shorten(name, width.saturating_sub(used).max(12)),
            None => std::borrow::Cow::Borrowed(name),
        }
    }
    /// A bar for a job while it is sent (at most [`MAX_BARS`]); gone once it is not.
    pub(super) fn show_bar(&mut self, id: u64, job: &Tracked) {
        let phase = job.phase;
        let in_flight = matches!(phase, Phase::Uploading | Phase::Committing);
        if !in_flight && let Some(bar) = self.bars.remove(&id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if in_flight && !self.bars.contains_key(&id) && self.bars.len() < MAX_BARS {
            let bar = self
                .multi
                .insert_after(&self.overall, ProgressBar::new(job.size));
            bar.set_style(
                ProgressStyle::with_template("  {wide_msg} [{bar:20}] {bytes}/{total_bytes}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(job.name.to_string());
            bar.set_position(job.sent);
            self.bars.insert(id, bar);
        }
    }
}

/// The daemon's message about a job, with its long local path cut to the file's name.
pub(super) fn short_message(job: &Tracked) -> String {
    let text = if job.source.is_empty() {
        job.message.to_string()
    } else {
        job.message.replace(&*job.source, &job.name)
    };
    term::clean(&text).into_owned()
}

pub(super) fn result_line(job: &Tracked, screen: &Screen) -> String {
    match job.phase {
        Phase::Done if job.skipped => format!(
            "exists    {} (already in Dropbox)",
            screen.fit(&job.name, 31)
        ),
        Phase::Done => match &job.stored_as {
            Some(stored) => format!(
                "done      {} → {}",
                screen.fit(&job.name, 14 + stored.chars().count().min(30)),
                term::clean(stored)
            ),
            None => format!("done      {}", screen.fit(&job.name, 10)),
        },
        Phase::Failed => {
            let message = short_message(job);
            if message.starts_with(&*job.name) {
                format!("failed    {message}")
            } else {
                format!("failed    {}: {message}", job.name)
            }
        }
        _ => format!("cancelled {}", screen.fit(&job.name, 10)),
    }
}
