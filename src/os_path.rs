//! Local paths in the JSON records kept in the state database (jobs, watches, the uploaded
//! index), whatever bytes they hold.
//!
//! Linux file names are bytes, not text: a card from an old camera or a zip made elsewhere can
//! hold names that are not UTF-8, and serde_json refuses such a `PathBuf` outright. A path that
//! is valid UTF-8 is stored as a string (as records always were); any other as
//! `{"bytes": [..]}`. Either form loads.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored<'a> {
    Text(std::borrow::Cow<'a, str>),
    Bytes { bytes: Vec<u8> },
}

pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    match path.to_str() {
        Some(text) => Stored::Text(text.into()),
        None => Stored::Bytes {
            bytes: path.as_os_str().as_bytes().to_vec(),
        },
    }
    .serialize(serializer)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    Ok(match Stored::deserialize(deserializer)? {
        Stored::Text(text) => PathBuf::from(text.into_owned()),
        Stored::Bytes { bytes } => PathBuf::from(OsString::from_vec(bytes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "super")]
        path: PathBuf,
    }

    #[test]
    fn any_bytes_round_trip_and_text_stays_text() {
        let latin1 = PathBuf::from(OsString::from_vec(b"/card/caf\xe9 \n.jpg".to_vec()));
        let json = serde_json::to_string(&Record {
            path: latin1.clone(),
        })
        .unwrap();
        assert!(json.contains("bytes"), "{json}");
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back.path, latin1);
        let plain = Record {
            path: "/photos/a.jpg".into(),
        };
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(json, r#"{"path":"/photos/a.jpg"}"#);
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), plain);
    }
}
