//! The checks of the fuzz targets (`fuzz_targets/`, cargo-fuzz, nightly only; see FUZZING.md),
//! shared with the regression tests that replay their seeds and findings on stable in the
//! product's `cargo test` (`tests/fuzz_inputs.rs` includes this file).
//!
//! Each function takes the fuzzer's bytes, runs them through dbxport's public API (the same
//! functions the daemon calls: the client's answer decoders, the path checks, config parsing,
//! prepare) and asserts the invariants its target stands for, so that a fuzz target is one line
//! and a regression test checks exactly what the fuzzer checked.

use std::fmt::Debug;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use dbxport::config::Config;
use dbxport::dropbox::path::{validate_folder, validate_name};
use dbxport::dropbox::{
    self, CommitInfo, CreateFolderError, CreateSharedLinkWithSettingsError, DeleteError, Error,
    FileMetadata, FinishBatchEntry, FolderMetadata, FullAccount, GetMetadataError, ListFolderArg,
    ListFolderContinueError, ListFolderError, ListFolderResult, ListSharedLinksArg,
    ListSharedLinksError, ListSharedLinksResult, Metadata, RouteError, SessionType,
    SharedLinkMetadata, SpaceUsage, UploadArg, UploadError, UploadSessionAppendArg,
    UploadSessionAppendError, UploadSessionCursor, UploadSessionFinishArg,
    UploadSessionFinishError, UploadSessionStartArg, UploadSessionStartError,
    UploadSessionStartResult, VoidError, WriteMode, header_safe_json,
};
use dbxport::prepare::{self, Mode, PrepareOptions, remote_name};
use dbxport::secret::Secret;

/// The long edge `prepare` resizes to: small, so that every photo is resized and the encoder's
/// work stays small next to the decoder's.
pub const PREPARE_MAX_DIMENSION: u32 = 64;

/// `data` as a source file, prepared for a resize to [`PREPARE_MAX_DIMENSION`] without its
/// location, then as an original without its location. Errors are expected; what must hold is
/// that nothing panics and that a prepared (re-encoded) file is a JPEG within the size asked.
pub fn prepare(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The name only matters for RAW and video, which are never decoded; `.jpg` keeps the
    // remote name (and so the cache file name) fixed.
    let source = dir.path().join("photo.jpg");
    std::fs::write(&source, data).expect("the source file is written");
    let cache = dir.path().join("cache");
    let resize = PrepareOptions {
        mode: Mode::Resize {
            max_dimension: PREPARE_MAX_DIMENSION,
            jpeg_quality: 80,
        },
        strip_location: true,
    };
    if let Ok(prepared) = prepare::prepare(&source, &resize, &cache, 1)
        && prepared.temporary
    {
        // A re-encoded file, or (for a JPEG already within the size) the source without its
        // location: either way an image as readable as the source, within the size asked.
        match image_size(&prepared.path) {
            Ok((width, height)) => assert!(
                width.max(height) <= PREPARE_MAX_DIMENSION,
                "prepared at {width}x{height}"
            ),
            Err(e) => assert!(
                image_size(&source).is_err(),
                "the source is an image, what was prepared of it is not: {e}"
            ),
        }
    }
    let original = PrepareOptions {
        mode: Mode::Original,
        strip_location: true,
    };
    let _ = prepare::prepare(&source, &original, &cache, 2);
}

fn image_size(path: &Path) -> image::ImageResult<(u32, u32)> {
    image::ImageReader::open(path)?
        .with_guessed_format()?
        .into_dimensions()
}

/// The request's token, as it must never show in an error text.
const TOKEN: &str = "sl.FUZZ-TOKEN-7Qx";

/// `data` as the body of every answer the client decodes: a 2xx result of each route, each
/// route's 409 error union, the other error statuses, and the token endpoint. Then, with `data`
/// as a tag Dropbox might add one day, each union must decode to its `Other` member.
pub fn dropbox_responses(data: &[u8]) {
    let token = Secret::new(TOKEN);
    let retry_after = std::str::from_utf8(data.split(|b| *b == b'\n').next().unwrap_or(b""))
        .ok()
        .filter(|line| line.len() <= 40);

    // What read_reply makes of the body: no NUL survives into a parsed string.
    if let Ok(value) = dropbox::decode_answer::<Value, VoidError>(200, None, data, &token) {
        assert!(!has_nul(&value), "a NUL survived: {value:?}");
    }

    // The 2xx results of the routes the daemon calls (batch, create_folder and delete wrap
    // these in a one-field object).
    result::<FileMetadata>(data, &token);
    result::<UploadSessionStartResult>(data, &token);
    result::<Vec<FinishBatchEntry>>(data, &token);
    result::<ListFolderResult>(data, &token);
    result::<FolderMetadata>(data, &token);
    result::<Metadata>(data, &token);
    result::<FullAccount>(data, &token);
    result::<SpaceUsage>(data, &token);
    result::<SharedLinkMetadata>(data, &token);
    result::<ListSharedLinksResult>(data, &token);
    let _ = dropbox::decode_void_answer::<UploadSessionAppendError>(200, None, data, &token);

    // Every status Dropbox documents, and one it does not.
    for status in [400, 401, 403, 429, 500, 503, 418] {
        let e = failure::<VoidError>(status, retry_after, data, &token);
        // A 401's `missing_scope` names a scope from the body, not a text to scrub.
        if status != 401 {
            assert!(!e.contains(TOKEN), "the token in an error text: {e}");
        }
    }
    // The 409 unions.
    failure::<UploadError>(409, None, data, &token);
    failure::<UploadSessionStartError>(409, None, data, &token);
    failure::<UploadSessionAppendError>(409, None, data, &token);
    failure::<UploadSessionFinishError>(409, None, data, &token);
    failure::<ListFolderError>(409, None, data, &token);
    failure::<ListFolderContinueError>(409, None, data, &token);
    failure::<CreateFolderError>(409, None, data, &token);
    failure::<GetMetadataError>(409, None, data, &token);
    failure::<DeleteError>(409, None, data, &token);
    failure::<CreateSharedLinkWithSettingsError>(409, None, data, &token);
    failure::<ListSharedLinksError>(409, None, data, &token);

    for status in [200, 400, 401, 429, 500] {
        if let Err(e) = dropbox::decode_token_answer(status, retry_after, data, &[TOKEN]) {
            let text = e.to_string();
            assert!(!text.contains(TOKEN), "the token in an error text: {text}");
        }
    }

    unknown_tags(&format!("x_unknown_{}", String::from_utf8_lossy(data)));
}

/// A 2xx answer parsed as `T`.
fn result<T: DeserializeOwned + Debug>(data: &[u8], token: &Secret) {
    if let Err(e) = dropbox::decode_answer::<T, VoidError>(200, None, data, token) {
        let _ = e.to_string();
    }
}

/// An error answer as the route with union `E` decodes it; its text.
fn failure<E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    data: &[u8],
    token: &Secret,
) -> String {
    match dropbox::decode_answer::<Value, E>(status, retry_after, data, token) {
        Ok(value) => panic!("HTTP {status} decoded as a result: {value:?}"),
        Err(e) => {
            let _ = (e.is_transient(), e.retry_after());
            e.to_string()
        }
    }
}

/// Each union given `tag`, which no version of the spec has, decodes to `Other`: at the top,
/// and nested under the members that carry another union.
fn unknown_tags(tag: &str) {
    let token = Secret::new(TOKEN);
    let body = serde_json::to_vec(&json!({"error": {".tag": tag}})).expect("JSON");
    match dropbox::decode_answer::<Value, VoidError>(401, None, &body, &token) {
        Err(Error::Auth(dropbox::AuthError::Other)) => {}
        other => panic!("401 with tag {tag:?}: {other:?}"),
    }
    let body = serde_json::to_vec(&json!({"error": {"reason": {".tag": tag}}})).expect("JSON");
    match dropbox::decode_answer::<Value, VoidError>(429, None, &body, &token) {
        Err(Error::RateLimited {
            reason: dropbox::RateLimitReason::Other,
            ..
        }) => {}
        other => panic!("429 with reason {tag:?}: {other:?}"),
    }
    unknown_tag::<UploadError>(tag, &[]);
    unknown_tag::<UploadSessionStartError>(tag, &[]);
    unknown_tag::<UploadSessionAppendError>(tag, &[]);
    unknown_tag::<UploadSessionFinishError>(tag, &["lookup_failed", "path"]);
    unknown_tag::<ListFolderError>(tag, &["path"]);
    unknown_tag::<ListFolderContinueError>(tag, &["path"]);
    unknown_tag::<CreateFolderError>(tag, &["path"]);
    unknown_tag::<GetMetadataError>(tag, &["path"]);
    unknown_tag::<DeleteError>(tag, &["path_lookup", "path_write"]);
    unknown_tag::<CreateSharedLinkWithSettingsError>(tag, &["path", "settings_error"]);
    unknown_tag::<ListSharedLinksError>(tag, &["path"]);
}

/// `E` decodes `tag` as `Other`, and each member in `nested` with `tag` inside as
/// `Member(Other)`. Checked on `Debug`, the one view every union shares.
fn unknown_tag<E: RouteError>(tag: &str, nested: &[&str]) {
    let token = Secret::new(TOKEN);
    let decode = |error: Value| {
        let body =
            serde_json::to_vec(&json!({"error": error, "error_summary": "x"})).expect("JSON");
        match dropbox::decode_answer::<Value, E>(409, None, &body, &token) {
            Err(Error::Route(e)) => format!("{e:?}"),
            other => panic!("409 with {error}: {other:?}"),
        }
    };
    let top = decode(json!({".tag": tag}));
    assert_eq!(top, "Other", "tag {tag:?}");
    for member in nested {
        let inner = decode(json!({".tag": member, *member: {".tag": tag}}));
        assert!(
            inner.ends_with("(Other)"),
            "{member} with tag {tag:?}: {inner}"
        );
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// `data` (as text, split at newlines into a path and other strings) in every argument an upload
/// route sends in `Dropbox-API-Arg`: the header value is printable ASCII, is a valid header,
/// and decodes as JSON to the very argument.
pub fn api_arg(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let path = parts.next().unwrap_or("").to_string();
    let other = parts.next().unwrap_or("").to_string();
    let third = parts.next().map(str::to_string);
    let flags = data.first().copied().unwrap_or(0);
    let flag = |bit: u8| flags & (1 << bit) != 0;

    let commit = CommitInfo {
        path: path.clone(),
        mode: match flags % 3 {
            0 => WriteMode::Add,
            1 => WriteMode::Overwrite,
            _ => WriteMode::Update(other.clone()),
        },
        autorename: flag(2),
        client_modified: third.clone(),
        mute: flag(3),
        strict_conflict: flag(4),
    };
    let cursor = UploadSessionCursor {
        session_id: other.clone(),
        offset: data.len() as u64 * 0x0101_0101_0101,
    };
    round_trip(&UploadArg {
        commit: commit.clone(),
        content_hash: third.clone(),
    });
    round_trip(&UploadSessionStartArg {
        close: flag(5),
        session_type: flag(6).then_some(SessionType::Concurrent),
        content_hash: third.clone(),
    });
    round_trip(&UploadSessionAppendArg {
        cursor: cursor.clone(),
        close: flag(7),
        content_hash: third.clone(),
    });
    round_trip(&UploadSessionFinishArg {
        cursor,
        commit,
        content_hash: third,
    });
    // The RPC arguments go as a JSON body, but they are JSON-able all the same.
    round_trip(&ListFolderArg::new(path.clone()));
    round_trip(&ListSharedLinksArg {
        path: Some(path.clone()),
        cursor: Some(other),
        direct_only: Some(flag(0)),
    });
    round_trip(&path);
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let header = header_safe_json(value);
    assert!(
        header.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "not printable ASCII: {header:?}"
    );
    assert!(
        http::HeaderValue::from_str(&header).is_ok(),
        "not a header value: {header:?}"
    );
    let back: T = serde_json::from_str(&header).expect("the header value is JSON");
    assert_eq!(&back, value, "{header}");
    assert_eq!(
        serde_json::from_str::<Value>(&header).expect("JSON"),
        serde_json::to_value(value).expect("JSON"),
        "{header}"
    );
}

/// `data` (as text) as a Dropbox folder, a name, and a folder and name (split at the last
/// `/`) joined as the uploader joins them. Validation is stable (a validated folder validates to
/// itself), a folder's names are valid names, and a valid name stays valid as a remote name.
pub fn paths(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match validate_folder(&text) {
        Ok(folder) => {
            assert_eq!(validate_folder(&folder).as_ref(), Ok(&folder), "{text:?}");
            if let Some(rest) = folder.strip_prefix('/') {
                for name in rest.split('/') {
                    assert_eq!(validate_name(name), Ok(()), "{name:?} in {folder:?}");
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let name_ok = validate_name(&text);
    if let Err(e) = &name_ok {
        let _ = e.to_string();
    }
    if !text.is_empty() && !text.contains('/') {
        assert_eq!(
            name_ok.is_ok(),
            validate_folder(&format!("/{text}")).is_ok(),
            "{text:?}"
        );
    }

    let (folder, name) = text.rsplit_once('/').unwrap_or(("", &text));
    let (Ok(folder), Ok(())) = (validate_folder(folder), validate_name(name)) else {
        return;
    };
    for options in [
        PrepareOptions::default(),
        PrepareOptions {
            mode: Mode::Resize {
                max_dimension: 1600,
                jpeg_quality: 85,
            },
            strip_location: false,
        },
    ] {
        let remote = remote_name(name, &options);
        assert_eq!(validate_name(&remote), Ok(()), "{name:?} became {remote:?}");
        let path = format!("{folder}/{remote}");
        assert_eq!(validate_folder(&path).as_ref(), Ok(&path), "{path:?}");
    }
}

/// `data` (as UTF-8) as `config.toml`: whatever parses writes back as TOML that parses to the
/// same config.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("config.toml");
    match Config::parse(text, path) {
        Ok(config) => {
            let written = config.to_toml();
            let again = Config::parse(&written, path)
                .unwrap_or_else(|e| panic!("the written config does not parse: {e}\n{written}"));
            assert_eq!(again, config, "{written}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
