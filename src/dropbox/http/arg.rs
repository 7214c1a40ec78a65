//! JSON for the `Dropbox-API-Arg` request header.
//!
//! Upload routes carry their argument in a header, and header values must be ASCII. Dropbox's
//! rule is ordinary JSON with U+007F and every non-ASCII character written as a `\uXXXX` escape,
//! characters outside the BMP as a UTF-16 surrogate pair. Sending raw UTF-8 happens to work with
//! the real service, but some HTTP stacks re-encode header bytes, so dbxport always escapes
//! (Dropbox's HTTP documentation, "Request and response formats").

use std::fmt::Write as _;

use serde::Serialize;

/// `value` as JSON that is safe in an HTTP header: printable ASCII only.
///
/// # Panics
///
/// If `value`'s `Serialize` implementation fails (a map with non-string keys, say). The argument
/// types in [`super::types`] never do.
pub fn header_safe_json<T: Serialize + ?Sized>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("Dropbox argument types always serialize");
    escape_non_ascii(&json)
}

/// Rewrites every character that is not printable-safe ASCII as `\uXXXX` escapes. serde_json has
/// already escaped quotes, backslashes and C0 controls, and any other character can only occur
/// inside a JSON string, where an escape means the same thing.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            // One escape per UTF-16 code unit: a 5-digit `\u1f600` would not be JSON.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(out, "\\u{unit:04x}").expect("writing to a String cannot fail");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Compacts the reference's `json.dumps` output (`", "` and `": "` separators) to
    /// serde_json's spacing. Only valid for the examples here, whose strings contain no `, ` or
    /// `: `.
    fn compact(python: &str) -> String {
        python.replace(", ", ",").replace(": ", ":")
    }

    fn assert_header_safe(s: &str) {
        assert!(
            s.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "not printable ASCII: {s:?}"
        );
    }

    #[test]
    fn reference_example_1_latin_and_del() {
        #[derive(Serialize)]
        struct Arg {
            field: String,
        }
        let input = Arg {
            field: "some_üñîcødé_and_\u{7f}".into(),
        };
        let out = header_safe_json(&input);
        assert_header_safe(&out);
        let expected = compact(r#"{"field": "some_\u00fc\u00f1\u00eec\u00f8d\u00e9_and_\u007f"}"#);
        assert_eq!(out, expected);
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["field"], "some_üñîcødé_and_\u{7f}");
    }

    #[test]
    fn reference_example_2_astral_as_surrogate_pair() {
        #[derive(Serialize)]
        struct Arg {
            path: &'static str,
            mode: &'static str,
            autorename: bool,
            mute: bool,
            strict_conflict: bool,
        }
        let input = Arg {
            path: "/Photos/2024/Café 😀.jpg",
            mode: "add",
            autorename: true,
            mute: false,
            strict_conflict: false,
        };
        let out = header_safe_json(&input);
        assert_header_safe(&out);
        let expected = compact(
            r#"{"path": "/Photos/2024/Caf\u00e9 \ud83d\ude00.jpg", "mode": "add", "autorename": true, "mute": false, "strict_conflict": false}"#,
        );
        assert_eq!(out, expected);
        assert!(!out.contains("\\u1f600"), "5-digit escape: {out}");
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["path"], "/Photos/2024/Café 😀.jpg");
        assert_eq!(back, serde_json::from_str::<Value>(&expected).unwrap());
    }

    #[test]
    fn ascii_controls_stay_json_escapes() {
        let out = header_safe_json("a\"b\\c\nd\re\u{1}");
        assert_header_safe(&out);
        assert_eq!(
            serde_json::from_str::<String>(&out).unwrap(),
            "a\"b\\c\nd\re\u{1}"
        );
    }
}
