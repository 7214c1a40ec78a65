//! Replacing an earlier export (the `replace` conflict policy, README "Conflicts"): what a
//! job does about the file at its Dropbox path, and what it tells the user when the copy it
//! was to replace had changed.
//!
//! The queue aims a `replace` job at the copy this daemon sent of the same file into the same
//! folder (`queue::sent`), with that copy's rev. Before anything is sent the rev is read again
//! ([`Engine::aim_replace`]): an earlier job for the same copy (they run one after another,
//! `queue::same_path`) may have replaced it since the job was queued. The commit is then an
//! `update` at that rev with autorename, one request: Dropbox replaces the copy if it is still
//! the one sent, and otherwise keeps both (`photo (conflicted copy).jpg`), which the job then
//! explains ([`replaced_elsewhere`]). Identical content is the existing skip (no new rev); with
//! nothing remembered the job is a `skip-identical` one.
//!
//! A lost commit answer is resolved as for every policy (`remote::resolution`, ARCHITECTURE.md,
//! invariant 2): the job's path is the remembered one, so "our content at the remembered path"
//! is the file at the job's path; a renamed copy beside it counts under `replace` too.

use super::transfer::commit_info;
use super::{Engine, Step};
use crate::dropbox::{FileMetadata, WriteMode};
use crate::export::Conflict;
use crate::queue::{Job, folder_of};

/// What a job does about the file now at its Dropbox path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// The same content is there: Done, nothing sent.
    Skip,
    /// Send and commit this way.
    Commit { mode: WriteMode, autorename: bool },
}

/// The plan for `job`, whose bytes hash to `hash`, with `at_path` at its Dropbox path.
pub(super) fn plan(job: &Job, at_path: Option<&FileMetadata>, hash: &str) -> Plan {
    if job.options.conflict.skips_identical()
        && at_path.is_some_and(|meta| meta.content_hash.as_deref() == Some(hash))
    {
        return Plan::Skip;
    }
    let info = commit_info(job);
    Plan::Commit {
        mode: info.mode,
        autorename: info.autorename,
    }
}

/// Why a job that was to replace an earlier upload (an `update` at its rev) landed beside it
/// instead, in words the user can act on; None when it replaced it (or was not to).
pub(super) fn replaced_elsewhere(job: &Job, landed: &FileMetadata) -> Option<String> {
    let rev = job.replaces_rev.as_deref()?;
    let landed_at = super::remote::lower_path(landed);
    if landed_at == crate::dropbox::path::path_key(&job.remote_path) {
        return None;
    }
    Some(format!(
        "{}: the copy in Dropbox at {} was changed since it was sent (rev {rev}); uploaded as {} \
         instead of replacing it. Keep the one you want and delete the other",
        job.source.display(),
        job.remote_path,
        landed.name,
    ))
}

impl Engine {
    /// A `replace` job about to be sent: the rev of the copy it replaces, read again from what
    /// was sent where (an earlier job for that copy may have replaced it since this one was
    /// queued) and recorded with the job before its commit (so a restart commits, and looks,
    /// the same way). Returns the job as it is to be sent.
    pub(super) async fn aim_replace(&self, job: Job) -> Result<Job, Step> {
        if job.options.conflict != Conflict::Replace || job.source_ino == 0 {
            return Ok(job);
        }
        let sent = self.queue.remembered(
            &job.source,
            job.source_dev,
            job.source_ino,
            folder_of(&job.remote_path),
        )?;
        match sent {
            Some(sent)
                if crate::dropbox::path::path_key(&sent.remote_path)
                    == crate::dropbox::path::path_key(&job.remote_path)
                    && job.replaces_rev.as_ref() != Some(&sent.rev) =>
            {
                Ok(self.queue.set_replaces_rev(job.id, sent.rev).await?)
            }
            _ => Ok(job),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::{file, job};
    use crate::queue::JobState;

    fn replacing(rev: Option<&str>) -> Job {
        let mut job = job(JobState::Queued, Conflict::Replace);
        job.replaces_rev = rev.map(str::to_string);
        job
    }

    #[test]
    fn replace_updates_the_copy_it_sent_skips_the_same_content_and_else_acts_as_skip_identical() {
        let commit = |mode, autorename| Plan::Commit { mode, autorename };
        let update = |rev: &str| WriteMode::Update(rev.into());
        let remembered = replacing(Some("0123456789"));
        let nothing_remembered = replacing(None);
        let ours = file("a.jpg", "old");
        let same = file("a.jpg", "h");
        let overwrite = job(JobState::Queued, Conflict::Overwrite);
        #[rustfmt::skip]
        let table: Vec<(&str, &Job, Option<&FileMetadata>, Plan)> = vec![
            ("remembered, the copy sent still there: update at its rev", &remembered, Some(&ours), commit(update("0123456789"), true)),
            ("remembered, the copy gone: update at its rev (Dropbox writes it anew)", &remembered, None, commit(update("0123456789"), true)),
            ("remembered, the same content there: skip, no new rev", &remembered, Some(&same), Plan::Skip),
            ("nothing remembered, another file there: add, renamed (the default)", &nothing_remembered, Some(&ours), commit(WriteMode::Add, true)),
            ("nothing remembered, the same content there: skip", &nothing_remembered, Some(&same), Plan::Skip),
            ("nothing remembered, nothing there: add", &nothing_remembered, None, commit(WriteMode::Add, true)),
            ("overwrite never skips", &overwrite, Some(&same), commit(WriteMode::Overwrite, false)),
        ];
        for (what, job, at_path, expected) in table {
            assert_eq!(plan(job, at_path, "h"), expected, "{what}");
        }
    }

    #[test]
    fn an_update_that_met_a_changed_copy_lands_beside_it_and_says_why() {
        let remembered = replacing(Some("0123456789"));
        // Replaced: landed at its path (in any letter case).
        assert_eq!(replaced_elsewhere(&remembered, &file("A.JPG", "h")), None);
        // The copy had changed: Dropbox kept both.
        let why = replaced_elsewhere(&remembered, &file("a (conflicted copy).jpg", "h"))
            .expect("a reason");
        assert_eq!(
            why,
            "/photos/a.jpg: the copy in Dropbox at /Album/a.jpg was changed since it was sent \
             (rev 0123456789); uploaded as a (conflicted copy).jpg instead of replacing it. Keep \
             the one you want and delete the other"
        );
        // Nothing was to be replaced: a renamed upload is the default's doing, told as such.
        assert_eq!(
            replaced_elsewhere(&replacing(None), &file("a (1).jpg", "h")),
            None
        );
    }
}
