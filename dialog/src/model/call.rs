//! The exact `Upload` call the window makes: the photos' paths, the folder chosen and the
//! options, or `UploadPaths` (bytes) when a name is not UTF-8 and a D-Bus string cannot hold
//! it (the README, "D-Bus API").

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;

use zbus::zvariant::OwnedValue;

use super::options::Options;
use super::photos::Photos;

/// The paths, as text when every one is, else as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paths {
    Text(Vec<String>),
    Bytes(Vec<Vec<u8>>),
}

/// One `Upload` (or `UploadPaths`) call.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadCall {
    pub paths: Paths,
    pub remote_folder: String,
    pub options: HashMap<String, OwnedValue>,
}

/// The call the photos, the folder and the options make; why Start cannot call, in words.
pub fn upload_call(photos: &Photos, folder: &str, options: &Options) -> Result<UploadCall, String> {
    if photos.count() == 0 {
        return Err(crate::i18n::tr("No photos to send: add some first."));
    }
    options.prepare()?;
    // Dropbox shares folders, never the top of a Dropbox (its API has no path for it): said
    // here, before any call, rather than as a refusal after the photos went.
    if options.share_link && (folder.is_empty() || folder == "/") {
        return Err(crate::i18n::tr(
            "A shared link needs a folder: Dropbox cannot share the top of your Dropbox. Choose or make a folder, or turn the link off.",
        ));
    }
    let items = photos.items();
    let paths = match items
        .iter()
        .map(|p| p.path.to_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
    {
        Some(text) => Paths::Text(text),
        None => Paths::Bytes(
            items
                .iter()
                .map(|p| p.path.as_os_str().as_bytes().to_vec())
                .collect(),
        ),
    };
    Ok(UploadCall {
        paths,
        // The folder shown, always said: "" would mean the config's default, not the top.
        remote_folder: if folder.is_empty() {
            "/".into()
        } else {
            folder.into()
        },
        options: options.to_dbus(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbxport::export::Conflict;
    use std::os::unix::ffi::OsStringExt;
    use zbus::zvariant::Value;

    fn get<'a, T: TryFrom<&'a Value<'a>>>(call: &'a UploadCall, key: &str) -> Option<T> {
        call.options.get(key).and_then(|v| T::try_from(&**v).ok())
    }

    #[test]
    fn the_options_make_exactly_this_upload_call() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jpg");
        let b = dir.path().join("b.png");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let photos = Photos::from_paths([a.clone(), b.clone()]);
        let mut o = Options::default();
        o.set_max_dimension(1600);
        o.conflict = Conflict::Overwrite;
        o.share_link = true;
        let call = upload_call(&photos, "/Photos/New", &o).unwrap();
        assert_eq!(
            call.paths,
            Paths::Text(vec![a.to_str().unwrap().into(), b.to_str().unwrap().into()])
        );
        assert_eq!(call.remote_folder, "/Photos/New");
        let mut keys: Vec<&str> = call.options.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "conflict",
                "jpeg_quality",
                "max_dimension",
                "original",
                "share_link",
                "strip_location"
            ]
        );
        assert_eq!(get::<bool>(&call, "original"), Some(false));
        assert_eq!(get::<u32>(&call, "max_dimension"), Some(1600));
        assert_eq!(get::<u32>(&call, "jpeg_quality"), Some(85));
        assert_eq!(get::<&str>(&call, "conflict"), Some("overwrite"));
        assert_eq!(get::<bool>(&call, "share_link"), Some(true));
        assert_eq!(get::<bool>(&call, "strip_location"), Some(false));

        // Original: no resize keys at all; the top of the Dropbox is said as "/".
        let call = upload_call(&photos, "", &Options::default()).unwrap();
        assert_eq!(call.remote_folder, "/");
        assert_eq!(get::<bool>(&call, "original"), Some(true));
        assert!(!call.options.contains_key("max_dimension"));
        assert_eq!(get::<&str>(&call, "conflict"), Some("skip-identical"));
        assert!(!call.options.contains_key("profile"));

        // A profile chosen: named in the call, every option still said over it, and the
        // folder its own (a template the daemon expands).
        let mut choice = crate::model::profiles::ProfileChoice::default();
        let mut o = Options::default();
        let web = crate::model::profiles::Profile {
            name: "web".into(),
            folder: "/Web/{year}".into(),
            options: Options {
                profile: Some("web".into()),
                strip_location: true,
                ..Options::default()
            },
        };
        choice.set_profiles(vec![web], &mut o);
        choice.choose(1, &mut o);
        let call = upload_call(&photos, choice.target("/Photos/New"), &o).unwrap();
        assert_eq!(call.remote_folder, "/Web/{year}");
        assert_eq!(get::<&str>(&call, "profile"), Some("web"));
        assert_eq!(get::<bool>(&call, "strip_location"), Some(true));
        assert_eq!(get::<bool>(&call, "original"), Some(true));
    }

    #[test]
    fn each_conflict_choice_reaches_the_call_replace_included() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jpg");
        std::fs::write(&a, b"a").unwrap();
        let photos = Photos::from_paths([a]);
        for (index, expected) in ["skip-identical", "rename", "overwrite", "replace"]
            .into_iter()
            .enumerate()
        {
            // As the drop-down sets it: by its position.
            let o = Options {
                conflict: crate::model::options::conflict_at(index as u32),
                ..Options::default()
            };
            let call = upload_call(&photos, "/P", &o).unwrap();
            assert_eq!(get::<&str>(&call, "conflict"), Some(expected));
            // The daemon's own parser takes what the dialog sends.
            assert_eq!(Conflict::parse(expected).unwrap(), o.conflict);
        }
    }

    #[test]
    fn names_that_are_not_utf8_go_as_bytes_and_nothing_to_send_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir
            .path()
            .join(std::ffi::OsString::from_vec(b"caf\xe9.jpg".to_vec()));
        std::fs::write(&odd, b"x").unwrap();
        let photos = Photos::from_paths([odd.clone()]);
        let call = upload_call(&photos, "/P", &Options::default()).unwrap();
        assert_eq!(
            call.paths,
            Paths::Bytes(vec![odd.as_os_str().as_bytes().to_vec()])
        );
        let err = upload_call(&Photos::default(), "/P", &Options::default()).unwrap_err();
        assert!(err.contains("No photos"), "{err}");
    }

    #[test]
    fn a_shared_link_of_the_top_of_the_dropbox_is_refused_before_any_call() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jpg");
        std::fs::write(&a, b"a").unwrap();
        let photos = Photos::from_paths([a]);
        let linked = Options {
            share_link: true,
            ..Options::default()
        };
        for top in ["", "/"] {
            let err = upload_call(&photos, top, &linked).unwrap_err();
            assert!(err.contains("shared link needs a folder"), "{err}");
        }
        // A folder can be shared; the top without a link can be sent to.
        assert!(upload_call(&photos, "/Albums", &linked).is_ok());
        assert!(upload_call(&photos, "/", &Options::default()).is_ok());
    }
}
