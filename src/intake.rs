//! Intake: how files handed to dbxport become jobs. Every caller goes through here — `Upload`
//! over D-Bus, a watched folder (`watch::intake` decides *which* files, then names them here),
//! and whatever comes next — so the rules are one:
//! - what a source must be (an absolute path to a regular file: `prepare::check_source`), and
//!   how it is opened later (`Access`);
//! - which Dropbox path it gets: the folder, then the name the export gives it (a resized PNG
//!   goes up as `.jpg`), fixed now so that a restart, a conflict check and the user all see
//!   the same one;
//! - which options apply: the config's defaults, or the last choice when the config says so,
//!   then the caller's overrides;
//! - what refuses a call as a whole: bad paths (each named) and two files for one Dropbox path
//!   under `overwrite`. Nothing is queued then: a half-queued batch is worse than a clear no.

use std::path::PathBuf;

use crate::export::{ExportOptions, ExportOverrides};
use crate::prepare::{self, Access, PrepareOptions, SourceFile, Stamp};
use crate::profile::{Profile, Profiles};
use crate::queue::{BatchId, JobId, NewJob, Queue, QueueError};
use crate::template::{Expanded, Facts, Template, TemplateError};

/// Why a shared link of the top of the Dropbox is refused (by `Upload` and `AddWatch`), and
/// the fix: Dropbox has no link for its root.
pub const TOP_LINK: &str = "a shared link needs a folder, and these files' folder is the top of \
     your Dropbox, which Dropbox cannot share: send them to a folder (for example --to \
     /Photos, or a template that starts with one, such as /Photos/{year}) or leave out the \
     shared link";

/// At most this many bad paths are listed in one error; the count says how many more.
pub const MAX_LISTED_ERRORS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// An option, folder or argument the caller can fix; the message says which and how.
    #[error("{0}")]
    Invalid(String),
    /// Files that cannot be queued, one line each naming the file and why (and what to do).
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A Dropbox folder given by a caller, as a checked template (`crate::template`); `""` means
/// `default`. `{profile}` is refused unless `profile` names the profile in use.
pub fn checked_template(
    requested: &str,
    default: &str,
    profile: Option<&str>,
) -> Result<Template, IntakeError> {
    let folder = if requested.is_empty() {
        default
    } else {
        requested
    };
    let template = Template::parse(folder).map_err(|e| IntakeError::Invalid(e.to_string()))?;
    template
        .check_profile(profile)
        .map_err(|e| IntakeError::Invalid(e.to_string()))?;
    Ok(template)
}

/// The Dropbox folder of one source under `template`, and the note its job carries (the date
/// came from the file's modification time). A plain folder reads nothing; a template reads
/// what it needs of the source (its EXIF only for a date or the camera). Blocking.
pub fn place(
    template: &Template,
    source: &SourceFile,
    profile: Option<&str>,
) -> Result<Expanded, TemplateError> {
    if template.is_plain() {
        return template.expand(&Facts::default());
    }
    template.expand(&crate::template::facts(template, source, profile))
}

/// The longest folder holding every one of `folders` (`""`: the root): the batch's folder, the
/// one its shared link points to.
pub fn common_folder<'a>(folders: impl IntoIterator<Item = &'a str>) -> String {
    let mut common: Option<Vec<&str>> = None;
    for folder in folders {
        let names: Vec<&str> = folder.split('/').filter(|n| !n.is_empty()).collect();
        common = Some(match common {
            None => names,
            Some(mut c) => {
                let same = c
                    .iter()
                    .zip(&names)
                    .take_while(|(a, b)| {
                        crate::dropbox::path::path_key(a) == crate::dropbox::path::path_key(b)
                    })
                    .count();
                c.truncate(same);
                c
            }
        });
    }
    match common {
        Some(names) if !names.is_empty() => format!("/{}", names.join("/")),
        _ => String::new(),
    }
}

/// The Dropbox path of a source: `folder`, then `relative`'s folders (a watch mirrors its
/// subfolders), then its file name as the export names it.
pub fn remote_path(folder: &str, relative: &[String], prepare: &PrepareOptions) -> Option<String> {
    let (name, dirs) = relative.split_last()?;
    let mut parts: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let name = prepare::remote_name(name, prepare);
    parts.push(&name);
    Some(format!(
        "{}/{}",
        folder.trim_end_matches('/'),
        parts.join("/")
    ))
}

/// One job for `source`, found as `stamp`, to go to `remote_path`.
pub fn job(
    source: PathBuf,
    stamp: Stamp,
    access: Access,
    remote_path: String,
    options: ExportOptions,
) -> NewJob {
    NewJob {
        source,
        remote_path,
        stamp,
        access,
        replaces_rev: None,
        options,
        origin: None,
        warnings: Vec::new(),
    }
}

/// What a caller's files became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub batch: BatchId,
    pub jobs: Vec<JobId>,
}

/// Hands callers' files to the queue under the config's defaults.
pub struct Intake {
    pub queue: Queue,
    /// Where files go when the caller names no folder (config `upload.remote_folder`).
    pub default_folder: String,
    /// Export options for batches that do not say otherwise (config `[export]`).
    pub defaults: ExportOptions,
    /// Whether a batch's explicit options become the next batches' defaults.
    pub remember_last_choice: bool,
    /// The config's named profiles (`[profiles.NAME]`).
    pub profiles: Profiles,
}

impl Intake {
    /// The options a batch with these overrides runs with: the defaults (or the last choice),
    /// then `profile`'s values, then the caller's.
    pub fn options(
        &self,
        overrides: &ExportOverrides,
        profile: Option<&Profile>,
    ) -> Result<ExportOptions, IntakeError> {
        let defaults = match self.remember_last_choice {
            true => self
                .queue
                .last_export_options()
                .unwrap_or_else(|| self.defaults.clone()),
            false => self.defaults.clone(),
        };
        match profile {
            Some(profile) => profile.options(defaults, overrides),
            None => defaults.with_overrides(overrides),
        }
        .map_err(IntakeError::Invalid)
    }

    /// The profile `name`, or an error listing the known ones.
    pub fn profile(&self, name: Option<&str>) -> Result<Option<&Profile>, IntakeError> {
        name.map(|n| self.profiles.get(n))
            .transpose()
            .map_err(|e| IntakeError::Invalid(e.to_string()))
    }

    /// The call's folder, profile and options, checked: what refuses a call before any file
    /// is looked at (an unknown profile, a bad option or folder template). Returns the
    /// template, the profile's name and the options.
    fn plan(
        &self,
        folder: &str,
        overrides: &ExportOverrides,
        profile: Option<&str>,
    ) -> Result<(Template, Option<String>, ExportOptions, bool), IntakeError> {
        let profile = self.profile(profile)?;
        let export = self.options(overrides, profile)?;
        let name = profile.map(|p| p.name.clone());
        let template = checked_template(
            crate::profile::folder(folder, profile, &self.default_folder),
            &self.default_folder,
            name.as_deref(),
        )?;
        Ok((template, name, export, profile.is_some()))
    }

    /// Refuses a call whose folder, profile or options are wrong, as [`Intake::upload`]
    /// would, without looking at any file: `UploadFds` asks before it copies anything.
    pub fn check_call(
        &self,
        folder: &str,
        overrides: &ExportOverrides,
        profile: Option<&str>,
    ) -> Result<(), IntakeError> {
        self.plan(folder, overrides, profile).map(|_| ())
    }

    /// Queues `paths` (absolute, each a regular file) into `folder` (`""`: the profile's, else
    /// the default; it may be a template, expanded per file here, so the jobs' paths are final)
    /// as one batch, under `profile` if one is named; returns once the jobs are on disk. All
    /// or nothing.
    pub async fn upload(
        &self,
        paths: Vec<PathBuf>,
        folder: &str,
        overrides: &ExportOverrides,
        profile: Option<&str>,
    ) -> Result<Queued, IntakeError> {
        let handed = paths.into_iter().map(Handed::given).collect();
        self.upload_handed(handed, folder, overrides, profile).await
    }

    /// [`Intake::upload`] for files as they were handed over: paths, or spooled copies that
    /// carry the caller's name (`crate::spool`), which Dropbox gets.
    pub async fn upload_handed(
        &self,
        handed: Vec<Handed>,
        folder: &str,
        overrides: &ExportOverrides,
        profile: Option<&str>,
    ) -> Result<Queued, IntakeError> {
        let (template, name, export, from_profile) = self.plan(folder, overrides, profile)?;
        if handed.is_empty() {
            return Err(IntakeError::Invalid("no files given".into()));
        }
        // Stat every path off the runtime: 10,000 stats are fast but still blocking calls,
        // and a template may read each photo's EXIF.
        let checked = tokio::task::spawn_blocking(move || {
            handed
                .into_iter()
                .map(|file| {
                    let path = &file.path;
                    let stamp = prepare::check_source(path).map_err(|e| e.to_string())?;
                    let source = SourceFile::given(path).expecting(stamp);
                    let placed = place_handed(&template, &source, &file.access, name.as_deref())
                        .map_err(|e| format!("{}: {e}", file.shown()))?;
                    Ok((file, stamp, placed))
                })
                .collect::<Vec<Result<_, String>>>()
        })
        .await
        .map_err(|e| IntakeError::Invalid(format!("checking the files failed: {e}")))?;
        let mut bad = Vec::new();
        let mut jobs = Vec::with_capacity(checked.len());
        for result in checked {
            match result {
                Ok((file, stamp, placed)) => {
                    let shown = file.shown();
                    let Some(remote) = remote_path(&placed.folder, &[file.name()], &export.prepare)
                    else {
                        continue;
                    };
                    let mut job = job(file.path, stamp, file.access, remote, export.clone());
                    if let Some(note) = placed.note {
                        job.warnings.push(format!("{shown}: {note}"));
                    }
                    jobs.push(job);
                }
                Err(e) => bad.push(e),
            }
        }
        if !bad.is_empty() {
            return Err(IntakeError::Refused(listed(bad)));
        }
        refuse_collisions(&jobs)?;
        // A profile's values are not a choice to remember; the caller's own are.
        if self.remember_last_choice && !overrides.is_empty() && !from_profile {
            self.queue.set_last_export_options(&export).await?;
        }
        let batch_folder = common_folder(jobs.iter().map(|j| {
            j.remote_path
                .rsplit_once('/')
                .map_or("", |(folder, _)| folder)
        }));
        // The link is to the batch's folder; Dropbox has no link for the top of a Dropbox
        // (`sharing/create_shared_link_with_settings` refuses the root), so asking for one
        // there is refused now rather than reported as a failure after the photos went.
        if export.share_link && batch_folder.is_empty() {
            return Err(IntakeError::Invalid(TOP_LINK.into()));
        }
        let (batch, jobs) = self
            .queue
            .enqueue(
                if batch_folder.is_empty() {
                    "/"
                } else {
                    &batch_folder
                },
                jobs,
            )
            .await?;
        Ok(Queued {
            batch,
            jobs: jobs.iter().map(|j| j.id).collect(),
        })
    }
}

/// A file handed over by a caller: where it is read, and under which rule (`Access::Given`
/// for a path, `Access::Spooled` for a copy in the spool, with the caller's name).
#[derive(Debug, Clone)]
pub struct Handed {
    pub path: PathBuf,
    pub access: Access,
}

impl Handed {
    /// A path a caller gave.
    pub fn given(path: PathBuf) -> Handed {
        Handed {
            path,
            access: Access::Given,
        }
    }

    /// The name in Dropbox: the caller's for a spooled copy, else the file's own.
    fn name(&self) -> String {
        match self.access.spooled_name() {
            Some(name) => name.to_string(),
            None => self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// The file as messages name it: the caller's name for a spooled copy (its path in the
    /// spool means nothing to the user), else the path.
    fn shown(&self) -> String {
        self.access.shown(&self.path)
    }
}

/// [`place`] for a handed-over file: a spooled copy's folder in the spool is not the user's,
/// so `{folder}` is the one its caller named (`UploadFds`'s `folders`), or unknown.
fn place_handed(
    template: &Template,
    source: &SourceFile,
    access: &Access,
    profile: Option<&str>,
) -> Result<Expanded, TemplateError> {
    if template.is_plain() || access.spooled_name().is_none() {
        return place(template, source, profile);
    }
    let mut facts = crate::template::facts(template, source, profile);
    facts.folder = access.spooled_folder().map(str::to_string);
    template.expand(&facts)
}

/// The first [`MAX_LISTED_ERRORS`] lines, and how many more there were.
fn listed(mut lines: Vec<String>) -> Vec<String> {
    let count = lines.len();
    if count > MAX_LISTED_ERRORS {
        lines.truncate(MAX_LISTED_ERRORS);
        lines.push(format!("… and {} more", count - MAX_LISTED_ERRORS));
    }
    lines
}

/// Two files of one call that would be written to one Dropbox file under `overwrite` (the
/// later replacing the earlier) refuse the whole call, naming both: one photo of a batch
/// replacing another is never what was meant, and the fix (another folder, or `rename`) is
/// the caller's to choose. Under the other policies both are kept (see `queue::same_path`).
fn refuse_collisions(jobs: &[NewJob]) -> Result<(), IntakeError> {
    let pairs = crate::queue::collisions(jobs);
    if pairs.is_empty() {
        return Ok(());
    }
    let lines = pairs
        .into_iter()
        .map(|(first, second)| {
            format!(
                "{} and {} would both be written to Dropbox as {} (Dropbox does not tell letter \
                 case apart), and under conflict = overwrite one would replace the other",
                jobs[first].access.shown(&jobs[first].source),
                jobs[second].access.shown(&jobs[second].source),
                jobs[second].remote_path
            )
        })
        .collect();
    let mut lines = listed(lines);
    lines.push(
        "Nothing was queued. Upload them into different folders, or choose conflict = rename \
         to keep both"
            .into(),
    );
    Err(IntakeError::Refused(lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::Mode;

    #[test]
    fn remote_paths_put_the_folder_then_the_exported_name() {
        let original = PrepareOptions::default();
        let resized = PrepareOptions {
            mode: Mode::Resize {
                max_dimension: 1600,
                jpeg_quality: 85,
            },
            ..Default::default()
        };
        let rel = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(
            remote_path("", &rel(&["a.png"]), &original).as_deref(),
            Some("/a.png")
        );
        assert_eq!(
            remote_path("/Photos/", &rel(&["2026", "a.png"]), &resized).as_deref(),
            Some("/Photos/2026/a.jpg")
        );
        assert_eq!(remote_path("/Photos", &[], &original), None);
    }

    #[test]
    fn folders_default_and_bad_ones_are_refused() {
        let text = |r: &str, d: &str| checked_template(r, d, None).map(|t| t.text().to_string());
        assert_eq!(text("", "/Photos").unwrap(), "/Photos");
        assert_eq!(text("/", "/Photos").unwrap(), "/");
        assert_eq!(text("/A/B", "/Photos").unwrap(), "/A/B");
        for bad in [
            "A",
            "/A/",
            "/A ",
            "/a/../b",
            "/x/Thumbs.db",
            "/a/{when}",
            "/{profile}",
        ] {
            assert!(
                matches!(
                    checked_template(bad, "/P", None),
                    Err(IntakeError::Invalid(m)) if m.starts_with("folder template")
                ),
                "{bad}"
            );
        }
        assert!(checked_template("/{profile}", "/P", Some("web")).is_ok());
    }

    #[test]
    fn a_batch_s_folder_is_the_one_holding_all_its_files() {
        assert_eq!(
            common_folder(["/Photos/2020/2020-06-08", "/photos/2020/2020-09-12"]),
            "/Photos/2020"
        );
        assert_eq!(common_folder(["/A/B", "/A/B"]), "/A/B");
        assert_eq!(common_folder(["/A", "/B"]), "");
        assert_eq!(common_folder(["", "/B"]), "");
    }

    #[test]
    fn long_lists_of_refusals_are_cut_with_a_count() {
        let lines = listed((0..25).map(|i| format!("bad {i}")).collect());
        assert_eq!(lines.len(), MAX_LISTED_ERRORS + 1);
        assert_eq!(lines.last().unwrap(), "… and 5 more");
    }
}
