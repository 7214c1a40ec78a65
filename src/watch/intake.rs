//! Intake: which settled files of a watch become jobs, and how.
//!
//! A file the uploaded-index knows in the same version (size, mtime and ctime; or the same
//! content after a touch) is not sent again. A file whose earlier version went up and that
//! only grew since (the upload took it while a writer we could not see still had it) replaces
//! that upload. Everything else becomes a job that opens the file beneath the watched folder
//! without following links (`prepare::Access::Beneath`). Blocking (it may hash files).

use std::path::{Path, PathBuf};

use super::ProfileSettings;
use super::store::{FileId, Outcome, Store, Uploaded, WatchSpec};
use crate::prepare::{self, Access, SourceFile, Stamp};
use crate::queue::{NewJob, Origin, QueueError};
use crate::template::Template;

/// The Dropbox path for `path` found by a watch in `folder` (the watch's folder, expanded for
/// this file): its place under the local folder, mirrored under the remote folder, named as
/// the export names it (`crate::intake`'s one rule).
fn remote_path(
    spec: &WatchSpec,
    folder: &str,
    path: &Path,
    prepare: &crate::prepare::PrepareOptions,
) -> Option<String> {
    let relative: Vec<String> = path
        .strip_prefix(&spec.local_dir)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    crate::intake::remote_path(folder, &relative, prepare)
}

/// The jobs for `files` (settled, as `Stamp`s) of watch `spec`, leaving out those whose
/// jobs are still running (`busy`).
pub(super) fn jobs_for(
    store: &Store,
    spec: &WatchSpec,
    settings: &ProfileSettings,
    files: Vec<(PathBuf, Stamp)>,
    busy: &[Origin],
) -> Result<Vec<NewJob>, QueueError> {
    let watch = spec.id;
    // The profile as the config has it now, and the folder template (checked when the watch
    // was added; a profile's folder when the config was loaded).
    let (folder, options, profile) = spec.current(&settings.defaults, &settings.profiles);
    let template = match Template::parse(&folder) {
        Ok(template) => template,
        Err(e) => {
            tracing::warn!(watch, "{e}");
            return Ok(Vec::new());
        }
    };
    let mut jobs = Vec::new();
    let access = Access::Beneath {
        root: spec.local_dir.clone(),
    };
    for (path, stamp) in files {
        let file = FileId {
            dev: stamp.dev,
            ino: stamp.ino,
        };
        let origin = Origin {
            watch,
            dev: file.dev,
            ino: file.ino,
        };
        if busy.contains(&origin) {
            continue;
        }
        let source = SourceFile {
            path: path.clone(),
            access: access.clone(),
            expect: Some(stamp),
        };
        let known = store.uploaded(watch, file)?;
        if let Some(known) = known.clone()
            && known.size == stamp.size
        {
            // ctime too: an edit in place can put size and mtime back, not ctime.
            let same = if known.mtime_ms == stamp.mtime_ms
                && known.ctime_ns.is_none_or(|c| c == stamp.ctime_ns)
            {
                true
            } else if let Some(hash) = &known.hash {
                // Touched: the same bytes need no upload; a failed file is tried again.
                prepare::hash_whole(&source).is_ok_and(|(_, h)| &h == hash)
            } else {
                false
            };
            if same {
                if known.path != path
                    || known.mtime_ms != stamp.mtime_ms
                    || known.ctime_ns != Some(stamp.ctime_ns)
                {
                    store.record(
                        watch,
                        file,
                        &Uploaded {
                            path: path.clone(),
                            mtime_ms: stamp.mtime_ms,
                            ctime_ns: Some(stamp.ctime_ns),
                            ..known
                        },
                    )?;
                }
                continue;
            }
        }
        let placed = match crate::intake::place(&template, &source, profile.as_deref()) {
            Ok(placed) => placed,
            Err(e) => {
                tracing::warn!(watch, "{}: not exported: {e}", path.display());
                continue;
            }
        };
        let Some(mut remote_path) = remote_path(spec, &placed.folder, &path, &options.prepare)
        else {
            continue;
        };
        // A file that only grew since it went up (it was taken while a writer we could
        // not see still had it) is that photo finished: it replaces the upload.
        let mut replaces_rev = None;
        if let Some(Uploaded {
            outcome: Outcome::Done,
            size,
            hash: Some(hash),
            remote_path: Some(earlier),
            rev: Some(rev),
            ..
        }) = known
            && stamp.size > size
            && prepare::hash_first(&source, size).is_ok_and(|(_, h)| h == hash)
        {
            tracing::info!(
                watch,
                "{}: grew since it went up half-written; replacing {earlier}",
                path.display()
            );
            remote_path = earlier;
            replaces_rev = Some(rev);
        }
        let warnings = placed
            .note
            .map(|note| format!("{}: {note}", path.display()))
            .into_iter()
            .collect();
        jobs.push(NewJob {
            replaces_rev,
            origin: Some(origin),
            warnings,
            ..crate::intake::job(path, stamp, access.clone(), remote_path, options.clone())
        });
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ExportOptions;

    fn spec(recursive: bool) -> WatchSpec {
        WatchSpec {
            id: 1,
            local_dir: "/home/u/Camera".into(),
            remote_folder: "/Camera".into(),
            recursive,
            include: vec![],
            exclude: vec![],
            options: ExportOptions::default(),
            created_ms: 0,
            profile: None,
            overrides: Default::default(),
            folder_from_profile: false,
        }
    }

    #[test]
    fn remote_paths_mirror_subfolders() {
        let s = spec(true);
        let o = crate::prepare::PrepareOptions::default();
        assert_eq!(
            remote_path(
                &s,
                "/Camera",
                Path::new("/home/u/Camera/2026/05/IMG_1.JPG"),
                &o
            )
            .as_deref(),
            Some("/Camera/2026/05/IMG_1.JPG")
        );
        assert_eq!(
            remote_path(&s, "/Camera", Path::new("/home/u/Camera/a.jpg"), &o).as_deref(),
            Some("/Camera/a.jpg")
        );
        assert_eq!(
            remote_path(&s, "/Camera", Path::new("/elsewhere/a.jpg"), &o),
            None
        );
    }

    #[test]
    fn a_watch_with_a_profile_makes_its_jobs_with_the_profile_as_it_is_now() {
        use crate::export::{Conflict, ExportOverrides};
        use crate::profile::{Profile, Profiles};
        let f = fixture();
        let spec = WatchSpec {
            remote_folder: "/Old".into(),
            profile: Some("web".into()),
            overrides: ExportOverrides {
                conflict: Some(Conflict::Rename),
                ..Default::default()
            },
            folder_from_profile: true,
            ..f.spec.clone()
        };
        // The profile as edited since the watch was added: another folder, another size.
        let settings = ProfileSettings {
            defaults: ExportOptions::default(),
            profiles: Profiles::new([Profile {
                name: "web".into(),
                folder: Some("/Web/{profile}/{folder}".into()),
                overrides: ExportOverrides {
                    max_dimension: Some(1024),
                    conflict: Some(Conflict::Overwrite),
                    ..Default::default()
                },
            }]),
        };
        let (path, stamp) = f.photo("a.png", b"png");
        let jobs = jobs_for(&f.store, &spec, &settings, vec![(path, stamp)], &[]).unwrap();
        assert_eq!(jobs[0].remote_path, "/Web/web/Camera/a.jpg");
        assert!(matches!(
            jobs[0].options.prepare.mode,
            crate::prepare::Mode::Resize {
                max_dimension: 1024,
                ..
            }
        ));
        assert_eq!(jobs[0].options.conflict, Conflict::Rename, "explicit wins");
        // The profile gone from the config: what the watch was added with.
        let jobs = jobs_for(
            &f.store,
            &spec,
            &ProfileSettings::default(),
            vec![f.photo("b.jpg", b"jpg")],
            &[],
        )
        .unwrap();
        assert_eq!(jobs[0].remote_path, "/Old/b.jpg");
    }

    /// A watch over a real folder, its index in a real (temporary) queue database.
    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        spec: WatchSpec,
        _queue: crate::queue::Queue,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let queue = crate::queue::Queue::open(&dir.path().join("q")).unwrap();
        let store = Store::open(&queue).unwrap();
        let camera = dir.path().join("Camera");
        std::fs::create_dir(&camera).unwrap();
        let spec = WatchSpec {
            local_dir: camera,
            ..spec(false)
        };
        Fixture {
            dir,
            store,
            spec,
            _queue: queue,
        }
    }

    impl Fixture {
        fn photo(&self, name: &str, bytes: &[u8]) -> (PathBuf, Stamp) {
            let path = self.spec.local_dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let stamp = prepare::stat_beneath(&self.spec.local_dir, &path).unwrap();
            (path, stamp)
        }

        fn jobs(&self, files: Vec<(PathBuf, Stamp)>, busy: &[Origin]) -> Vec<NewJob> {
            jobs_for(
                &self.store,
                &self.spec,
                &ProfileSettings::default(),
                files,
                busy,
            )
            .unwrap()
        }

        /// Records `file` as exported in the version `stamp` had, as a Done would.
        fn exported(&self, stamp: &Stamp, path: &Path, bytes: &[u8]) {
            self.store
                .record(
                    self.spec.id,
                    FileId {
                        dev: stamp.dev,
                        ino: stamp.ino,
                    },
                    &Uploaded {
                        path: path.to_path_buf(),
                        size: stamp.size,
                        mtime_ms: stamp.mtime_ms,
                        ctime_ns: Some(stamp.ctime_ns),
                        hash: Some(crate::dropbox::content_hash::content_hash(bytes)),
                        remote_path: Some("/Camera/a (1).jpg".into()),
                        rev: Some("0123456789abcdef".into()),
                        outcome: Outcome::Done,
                    },
                )
                .unwrap();
        }
    }

    #[test]
    fn a_new_file_becomes_a_job_opened_beneath_the_folder() {
        let f = fixture();
        let (path, stamp) = f.photo("a.jpg", b"one");
        let jobs = f.jobs(vec![(path.clone(), stamp)], &[]);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(job.remote_path, "/Camera/a.jpg");
        assert_eq!(job.stamp, stamp);
        assert_eq!(
            job.access,
            Access::Beneath {
                root: f.spec.local_dir.clone()
            }
        );
        assert_eq!(job.replaces_rev, None);
        let origin = job.origin.unwrap();
        assert_eq!((origin.dev, origin.ino), (stamp.dev, stamp.ino));
        // Its job still running: not queued twice.
        assert!(f.jobs(vec![(path, stamp)], &[origin]).is_empty());
        drop(f.dir);
    }

    #[test]
    fn the_index_decides_touched_edited_and_grown_files() {
        let f = fixture();
        let (path, stamp) = f.photo("a.jpg", b"first version");
        f.exported(&stamp, &path, b"first version");
        // The same version: nothing to send.
        assert!(f.jobs(vec![(path.clone(), stamp)], &[]).is_empty());

        // Touched (another mtime and ctime, the same bytes): nothing to send, and the index
        // learns the new times.
        let touched = Stamp {
            mtime_ms: stamp.mtime_ms.map(|m| m + 5000),
            ctime_ns: stamp.ctime_ns + 1,
            ..stamp
        };
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(touched.mtime_ms.unwrap()),
        )
        .unwrap();
        drop(file);
        let now = prepare::stat_beneath(&f.spec.local_dir, &path).unwrap();
        assert!(f.jobs(vec![(path.clone(), now)], &[]).is_empty());
        let id = FileId {
            dev: stamp.dev,
            ino: stamp.ino,
        };
        let known = f.store.uploaded(f.spec.id, id).unwrap().unwrap();
        assert_eq!(
            (known.mtime_ms, known.ctime_ns),
            (now.mtime_ms, Some(now.ctime_ns))
        );

        // Edited in place to the same size (ctime moves): sent, under the watch's policy.
        std::fs::write(&path, b"first VERSION").unwrap();
        let edited = prepare::stat_beneath(&f.spec.local_dir, &path).unwrap();
        let jobs = f.jobs(vec![(path.clone(), edited)], &[]);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].replaces_rev, None);
        assert_eq!(jobs[0].remote_path, "/Camera/a.jpg");

        // Grown from what went up: it replaces that upload, where it landed.
        std::fs::write(&path, b"first version, and the rest").unwrap();
        let grown = prepare::stat_beneath(&f.spec.local_dir, &path).unwrap();
        let jobs = f.jobs(vec![(path.clone(), grown)], &[]);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].replaces_rev.as_deref(), Some("0123456789abcdef"));
        assert_eq!(jobs[0].remote_path, "/Camera/a (1).jpg");
    }
}
