//! The wire protocol between KDE's Purpose framework (the Share menu of Dolphin, Gwenview,
//! Spectacle) and an external-process plugin, as Purpose's own code speaks it:
//!
//! - Purpose listens on a local socket and starts `contents/code/main.*` with
//!   `--server SOCKET --pluginType TYPE --pluginPath MAIN` (`ProcessJob::start`).
//! - Once the plugin connects, Purpose writes the job's data as ASCII decimal byte count, a
//!   `\n`, then that many bytes of CBOR: the JSON object turned into a CBOR map
//!   (`QCborValue::fromJsonValue(data).toCbor()` in `ProcessJob::writeSocket`). For the Export
//!   type it holds `urls` (an array of URL strings, `QUrl::toString()`: `file:///a b.jpg`) and
//!   `mimeType` (one type the files share, or `*/*`).
//! - The plugin writes back JSON objects, one per line (`ProcessJob::readSocket` reads
//!   `canReadLine()` lines): `percent` (an integer, `toInt()`), `output` (an object; the Export
//!   type's outbound argument is `url`), `error` (an integer, non-zero is a failure) and
//!   `errorText` (a string).
//! - The job ends when the process exits (`ProcessJob::processStateChanged`): the lines left
//!   on the socket are read, then the result is emitted. The exit code only adds a warning to
//!   Purpose's log; what failed is said by `error`/`errorText`.
//!
//! Everything here is pure (bytes in, lines out) so that it is tested without a socket.

use std::path::PathBuf;

use ciborium::Value;

/// The longest request read: a Share of thousands of photos is well under a megabyte.
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// The length line: digits and the newline, at most.
pub const MAX_LENGTH_LINE: usize = 24;

/// Errors the plugin reports to Purpose, each with its code (`error`) and its words
/// (`errorText`, shown by the host in a notification).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PurposeError {
    #[error("the Share menu sent a request dbxport cannot read: {0}")]
    BadRequest(String),
    #[error(
        "the Share menu started dbxport as a \"{0}\" plugin; it is an Export plugin (reinstall it with `dbxportctl install --only purpose`)"
    )]
    WrongType(String),
    #[error("not a file on this computer: {0} (dbxport uploads local files only)")]
    NotLocal(String),
    #[error("cannot reach dbxport: {0}")]
    Unreachable(String),
    #[error(
        "no Dropbox account is linked to dbxport{0}: run `dbxportctl login` (or open \"Send to Dropbox…\"), then share again"
    )]
    NotLoggedIn(String),
    #[error("dbxport refused the photos: {0}")]
    Refused(String),
    #[error("not every photo went to Dropbox: {0}")]
    Failed(String),
    #[error("the photos are in Dropbox, but no shared link was made: {0}")]
    NoLink(String),
}

impl PurposeError {
    /// The `error` code Purpose gets. KJob reserves 1 (`KilledJobError`, which hosts treat as
    /// the user's own cancel and do not show); codes from 100 (`KJob::UserDefinedError`) up
    /// are a plugin's own, and hosts show their `errorText`.
    pub fn code(&self) -> u32 {
        match self {
            PurposeError::Unreachable(_) => 100,
            PurposeError::NotLoggedIn(_) => 101,
            PurposeError::Refused(_) | PurposeError::NotLocal(_) => 102,
            PurposeError::Failed(_) => 103,
            PurposeError::NoLink(_) => 104,
            PurposeError::BadRequest(_) | PurposeError::WrongType(_) => 105,
        }
    }
}

/// The Export job's data, as far as dbxport reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub urls: Vec<String>,
    pub mime_type: Option<String>,
}

/// The byte count from the length line (without its `\n`).
pub fn parse_length(line: &[u8]) -> Result<usize, PurposeError> {
    let text = std::str::from_utf8(line)
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            PurposeError::BadRequest(format!(
                "expected a byte count line, got {:?}",
                String::from_utf8_lossy(line)
            ))
        })?;
    let length: usize = text
        .parse()
        .map_err(|_| PurposeError::BadRequest(format!("byte count {text} is too large")))?;
    if length > MAX_REQUEST {
        return Err(PurposeError::BadRequest(format!(
            "{length} bytes of data, more than the {MAX_REQUEST} dbxport reads"
        )));
    }
    Ok(length)
}

/// The CBOR map Purpose sends, read into a [`Request`].
pub fn decode(bytes: &[u8]) -> Result<Request, PurposeError> {
    let value: Value = ciborium::from_reader(bytes)
        .map_err(|e| PurposeError::BadRequest(format!("not CBOR: {e}")))?;
    let Value::Map(entries) = value else {
        return Err(PurposeError::BadRequest("the data is not a map".into()));
    };
    let field = |name: &str| {
        entries
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
    };
    let urls = match field("urls") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_text().map(str::to_owned).ok_or_else(|| {
                    PurposeError::BadRequest(format!("a URL that is not a string: {item:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(PurposeError::BadRequest(format!(
                "\"urls\" is not an array: {other:?}"
            )));
        }
        None => return Err(PurposeError::BadRequest("no \"urls\" in the data".into())),
    };
    if urls.is_empty() {
        return Err(PurposeError::BadRequest("no files to share".into()));
    }
    let mime_type = field("mimeType")
        .and_then(Value::as_text)
        .map(str::to_owned);
    Ok(Request { urls, mime_type })
}

/// The local paths of `urls`. Purpose hands `QUrl::toString()`, which leaves spaces as they
/// are and percent-encodes what a URL cannot hold (`%`, `#`); both parse here. Anything but
/// a `file:` URL (a KIO `sftp:` or `smb:` location) cannot be handed to the daemon.
pub fn local_paths(urls: &[String]) -> Result<Vec<PathBuf>, PurposeError> {
    urls.iter()
        .map(|text| {
            if text.starts_with('/') {
                return Ok(PathBuf::from(text));
            }
            url::Url::parse(text)
                .ok()
                .filter(|u| u.scheme() == "file")
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| PurposeError::NotLocal(text.clone()))
        })
        .collect()
}

/// One line written back to Purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Percent(u8),
    /// The Export type's outbound argument: the shared link, which hosts open or copy.
    Output {
        url: String,
    },
    Error(u32, String),
}

impl Reply {
    /// The JSON line, `\n` included.
    pub fn line(&self) -> String {
        let object = match self {
            Reply::Percent(p) => serde_json::json!({ "percent": p }),
            Reply::Output { url } => serde_json::json!({ "output": { "url": url } }),
            Reply::Error(code, text) => serde_json::json!({ "error": code, "errorText": text }),
        };
        format!("{object}\n")
    }
}

/// Percentages that only rise: the batch's bytes can go back (a file whose session expired is
/// sent again), the bar the user sees should not. 100 is said only at the very end, with the
/// link, since a batch whose bytes are all sent still has its commits and its link to make.
#[derive(Debug, Default)]
pub struct Rising {
    last: Option<u8>,
}

impl Rising {
    /// The percentage to write for `sent` of `total` bytes, if it is above the last one.
    pub fn next(&mut self, sent: u64, total: u64) -> Option<u8> {
        let percent = match total {
            0 => 0,
            total => (u128::from(sent.min(total)) * 100 / u128::from(total)).min(99) as u8,
        };
        self.to(percent)
    }

    /// `percent` if it is above the last one said.
    pub fn to(&mut self, percent: u8) -> Option<u8> {
        if self.last.is_some_and(|last| last >= percent) {
            return None;
        }
        self.last = Some(percent);
        Some(percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `QCborValue::fromJsonValue(QJsonObject).toCbor()` makes of the Export data: a
    /// map with text keys, an array of text URLs and a text MIME type.
    fn cbor(urls: &[&str], mime: &str) -> Vec<u8> {
        let value = Value::Map(vec![
            (
                Value::Text("mimeType".into()),
                Value::Text(mime.to_string()),
            ),
            (
                Value::Text("urls".into()),
                Value::Array(urls.iter().map(|u| Value::Text(u.to_string())).collect()),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&value, &mut out).unwrap();
        out
    }

    #[test]
    fn the_export_data_is_read_from_cbor() {
        let bytes = cbor(
            &["file:///home/u/My Photos/a b.jpg", "file:///tmp/c%25d.jpg"],
            "image/jpeg",
        );
        let request = decode(&bytes).unwrap();
        assert_eq!(
            request,
            Request {
                urls: vec![
                    "file:///home/u/My Photos/a b.jpg".into(),
                    "file:///tmp/c%25d.jpg".into()
                ],
                mime_type: Some("image/jpeg".into()),
            }
        );
        assert_eq!(
            local_paths(&request.urls).unwrap(),
            vec![
                PathBuf::from("/home/u/My Photos/a b.jpg"),
                PathBuf::from("/tmp/c%d.jpg")
            ]
        );
    }

    #[test]
    fn a_hand_made_cbor_map_as_qt_writes_it_is_read() {
        // Qt's encoder, byte for byte: map(2) "urls" array(1) "file:///x y.jpg" "mimeType"
        // "image/png" (definite lengths, text strings).
        let mut bytes = vec![0xa2, 0x64];
        bytes.extend(b"urls");
        bytes.extend([0x81, 0x6f]);
        bytes.extend(b"file:///x y.jpg");
        bytes.push(0x68);
        bytes.extend(b"mimeType");
        bytes.push(0x69);
        bytes.extend(b"image/png");
        let request = decode(&bytes).unwrap();
        assert_eq!(request.urls, vec!["file:///x y.jpg".to_string()]);
        assert_eq!(request.mime_type.as_deref(), Some("image/png"));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert!(matches!(
            decode(b"\xff\x00"),
            Err(PurposeError::BadRequest(_))
        ));
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Array(vec![]), &mut out).unwrap();
        assert_eq!(
            decode(&out),
            Err(PurposeError::BadRequest("the data is not a map".into()))
        );
        assert_eq!(
            decode(&cbor(&[], "image/jpeg")),
            Err(PurposeError::BadRequest("no files to share".into()))
        );
        let mut out = Vec::new();
        ciborium::into_writer(
            &Value::Map(vec![(
                Value::Text("mimeType".into()),
                Value::Text("x".into()),
            )]),
            &mut out,
        )
        .unwrap();
        assert!(
            decode(&out)
                .unwrap_err()
                .to_string()
                .contains("no \"urls\"")
        );
    }

    #[test]
    fn the_length_line_is_digits_within_bounds() {
        assert_eq!(parse_length(b"1234"), Ok(1234));
        assert_eq!(parse_length(b"0"), Ok(0));
        assert!(parse_length(b"").is_err());
        assert!(parse_length(b"12a").is_err());
        assert!(parse_length(b"-1").is_err());
        assert!(parse_length(b"99999999999999999999999").is_err());
        assert!(parse_length(format!("{}", MAX_REQUEST + 1).as_bytes()).is_err());
    }

    #[test]
    fn only_local_files_can_be_shared() {
        assert_eq!(
            local_paths(&["sftp://host/a.jpg".into()]),
            Err(PurposeError::NotLocal("sftp://host/a.jpg".into()))
        );
        assert_eq!(
            local_paths(&["/plain/path.jpg".into()]).unwrap(),
            vec![PathBuf::from("/plain/path.jpg")]
        );
    }

    #[test]
    fn replies_are_the_json_lines_purpose_reads() {
        assert_eq!(Reply::Percent(42).line(), "{\"percent\":42}\n");
        assert_eq!(
            Reply::Output {
                url: "https://x/s/a".into()
            }
            .line(),
            "{\"output\":{\"url\":\"https://x/s/a\"}}\n"
        );
        let line = Reply::Error(101, "no \"account\"".into()).line();
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["error"], 101);
        assert_eq!(parsed["errorText"], "no \"account\"");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }

    #[test]
    fn percentages_only_rise_and_stop_short_of_the_end() {
        let mut rising = Rising::default();
        assert_eq!(rising.next(0, 0), Some(0));
        assert_eq!(rising.next(0, 100), None);
        assert_eq!(rising.next(30, 100), Some(30));
        assert_eq!(
            rising.next(20, 100),
            None,
            "a resent file does not move it back"
        );
        assert_eq!(rising.next(30, 100), None);
        assert_eq!(rising.next(100, 100), Some(99));
        assert_eq!(rising.next(u64::MAX, u64::MAX), None);
        assert_eq!(rising.to(100), Some(100));
        assert_eq!(rising.to(100), None);
    }

    #[test]
    fn every_error_has_a_plugin_code_above_kjobs_own() {
        for e in [
            PurposeError::BadRequest(String::new()),
            PurposeError::WrongType(String::new()),
            PurposeError::NotLocal(String::new()),
            PurposeError::Unreachable(String::new()),
            PurposeError::NotLoggedIn(String::new()),
            PurposeError::Refused(String::new()),
            PurposeError::Failed(String::new()),
            PurposeError::NoLink(String::new()),
        ] {
            assert!(e.code() >= 100, "{e}");
        }
    }
}
