//! Reading route arguments the way Dropbox's Stone decoder does: from the `Dropbox-API-Arg`
//! header (header-safe JSON with `\uXXXX` escapes, or raw UTF-8, which Dropbox also accepts) or
//! from a JSON body; unions as `{".tag": …}` or, for void members, a bare string; absent and
//! `null` optional fields alike; unknown fields ignored, since SDKs send fields newer than ours.
//! Failures become the 400 text `Error in call to API function "<route>": <where>: <what>`.

use serde_json::{Map, Value};

use super::wire::ApiError;

/// Where an argument came from, as named in Dropbox's 400 texts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    Header,
    Body,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Header => "HTTP header \"Dropbox-API-Arg\"",
            Source::Body => "request body",
        }
    }
}

/// The 400 for a route: `Error in call to API function "files/upload": <detail>`.
pub(crate) fn bad_request(route: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!(
        "Error in call to API function \"{route}\": {detail}"
    ))
}

/// Decodes argument bytes as JSON. Raw UTF-8 and `\uXXXX` escapes (surrogate pairs included)
/// both work; invalid UTF-8 or a lone surrogate does not.
pub(crate) fn decode(route: &str, source: Source, bytes: &[u8]) -> Result<Value, ApiError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| {
            bad_request(
                route,
                format_args!("{}: could not decode input as JSON", source.describe()),
            )
        })
}

/// A problem with one field, before the route name and source are put in front of it.
#[derive(Debug)]
pub(crate) struct FieldError(pub(crate) String);

impl FieldError {
    pub(crate) fn into_api(self, route: &str, source: Source) -> ApiError {
        bad_request(route, format_args!("{}: {}", source.describe(), self.0))
    }
}

/// A JSON object being read field by field; `prefix` names where it sits for error texts.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

impl<'a> Fields<'a> {
    pub(crate) fn of(value: &'a Value) -> Result<Fields<'a>, FieldError> {
        Self::with_prefix(value, String::new())
    }

    fn with_prefix(value: &'a Value, prefix: String) -> Result<Fields<'a>, FieldError> {
        match value {
            Value::Object(map) => Ok(Fields { map, prefix }),
            other => Err(FieldError(format!(
                "{}expected object, got {}",
                if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", prefix.trim_end_matches('.'))
                },
                kind(other)
            ))),
        }
    }

    /// The dotted name of a field, for error texts.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> FieldError {
        if self.prefix.is_empty() {
            FieldError(format!("missing required field '{key}'"))
        } else {
            FieldError(format!(
                "{}: missing required field '{key}'",
                self.prefix.trim_end_matches('.')
            ))
        }
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> FieldError {
        FieldError(format!(
            "{}: expected {expected}, got {}",
            self.name(key),
            kind(got)
        ))
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str, FieldError> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(key, "string", other)),
        }
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "boolean", other)),
        }
    }

    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool, FieldError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong(key, "boolean", other)),
        }
    }

    pub(crate) fn u64(&self, key: &str) -> Result<u64, FieldError> {
        self.opt_u64(key)?.ok_or_else(|| self.missing(key))
    }

    pub(crate) fn opt_u64(&self, key: &str) -> Result<Option<u64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(value @ Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "unsigned integer", value)),
            Some(other) => Err(self.wrong(key, "unsigned integer", other)),
        }
    }

    pub(crate) fn object(&self, key: &str) -> Result<Fields<'a>, FieldError> {
        let value = self.get(key).ok_or_else(|| self.missing(key))?;
        Fields::with_prefix(value, format!("{}.", self.name(key)))
    }

    pub(crate) fn opt_object(&self, key: &str) -> Result<Option<Fields<'a>>, FieldError> {
        self.get(key)
            .map(|value| Fields::with_prefix(value, format!("{}.", self.name(key))))
            .transpose()
    }

    /// Whether the object has any field set (not absent, not null).
    pub(crate) fn is_empty(&self) -> bool {
        self.map.values().all(Value::is_null)
    }

    pub(crate) fn list(&self, key: &str) -> Result<&'a [Value], FieldError> {
        match self.get(key) {
            None => Err(self.missing(key)),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.wrong(key, "list", other)),
        }
    }

    /// A union field: `"tag"` (void members only) or `{".tag": "tag", …}`. Returns the tag and,
    /// for the object form, the object to read the member's value from.
    pub(crate) fn opt_union(&self, key: &str) -> Result<Option<Union<'a>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(tag)) => Ok(Some(Union {
                tag,
                value: None,
                name: self.name(key),
            })),
            Some(value @ Value::Object(map)) => match map.get(".tag") {
                Some(Value::String(tag)) => Ok(Some(Union {
                    tag,
                    value: Some(value),
                    name: self.name(key),
                })),
                _ => Err(FieldError(format!(
                    "{}: missing '.tag' key",
                    self.name(key)
                ))),
            },
            Some(other) => Err(self.wrong(key, "union", other)),
        }
    }

    /// A path-like string checked against a spec pattern; `check` returns whether it matches.
    pub(crate) fn pattern(
        &self,
        key: &str,
        pattern: &str,
        check: impl Fn(&str) -> bool,
    ) -> Result<&'a str, FieldError> {
        let value = self.str(key)?;
        if check(value) {
            Ok(value)
        } else {
            Err(FieldError(format!(
                "{}: '{value}' did not match pattern '{pattern}'",
                self.name(key)
            )))
        }
    }
}

/// A union value as read by [`Fields::opt_union`].
pub(crate) struct Union<'a> {
    pub(crate) tag: &'a str,
    value: Option<&'a Value>,
    name: String,
}

impl<'a> Union<'a> {
    /// The value of a member that carries a string (`{".tag": "update", "update": "…"}`).
    pub(crate) fn string_member(&self) -> Result<&'a str, FieldError> {
        match self
            .value
            .and_then(|v| v.get(self.tag))
            .and_then(Value::as_str)
        {
            Some(s) => Ok(s),
            None => Err(FieldError(format!(
                "{}: tag '{}' requires a string value",
                self.name, self.tag
            ))),
        }
    }

    pub(crate) fn unknown(&self) -> FieldError {
        FieldError(format!("{}: unknown tag '{}'", self.name, self.tag))
    }
}

/// A Dropbox timestamp: exactly `%Y-%m-%dT%H:%M:%SZ`.
pub(crate) fn timestamp(fields: &Fields<'_>, key: &str) -> Result<Option<String>, FieldError> {
    let Some(value) = fields.opt_str(key)? else {
        return Ok(None);
    };
    let shaped = value.len() == 20
        && value.ends_with('Z')
        && value.as_bytes()[10] == b'T'
        && humantime::parse_rfc3339(value).is_ok();
    if shaped {
        Ok(Some(value.to_owned()))
    } else {
        Err(FieldError(format!(
            "{}: time data '{value}' does not match format '%Y-%m-%dT%H:%M:%SZ'",
            fields.name(key)
        )))
    }
}

/// A content hash argument: 64 hex characters.
pub(crate) fn content_hash(fields: &Fields<'_>) -> Result<Option<String>, FieldError> {
    let Some(value) = fields.opt_str("content_hash")? else {
        return Ok(None);
    };
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(value.to_ascii_lowercase()))
    } else {
        Err(FieldError(format!(
            "{}: '{value}' did not match pattern '[0-9a-f]{{64}}'",
            fields.name("content_hash")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_and_raw_utf8_decode_alike() {
        let escaped = br#"{"path": "/Caf\u00e9 \ud83d\ude00.jpg"}"#;
        let raw = "{\"path\": \"/Café 😀.jpg\"}";
        let a = decode("files/upload", Source::Header, escaped).unwrap();
        let b = decode("files/upload", Source::Header, raw.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["path"], "/Café 😀.jpg");
    }

    #[test]
    fn latin1_and_lone_surrogates_are_refused() {
        for bytes in [&b"{\"path\": \"/caf\xe9\"}"[..], br#"{"path": "/\ud83d"}"#] {
            let Err(ApiError::BadRequest(text)) = decode("files/upload", Source::Header, bytes)
            else {
                panic!("accepted {bytes:?}");
            };
            assert_eq!(
                text,
                "Error in call to API function \"files/upload\": HTTP header \"Dropbox-API-Arg\": could not decode input as JSON"
            );
        }
    }

    #[test]
    fn unions_take_both_spellings_for_void_members() {
        let value = serde_json::json!({"a": "add", "b": {".tag": "add"},
                                       "c": {".tag": "update", "update": "0123456789"}, "d": "update"});
        let fields = Fields::of(&value).unwrap();
        assert_eq!(fields.opt_union("a").unwrap().unwrap().tag, "add");
        assert_eq!(fields.opt_union("b").unwrap().unwrap().tag, "add");
        let c = fields.opt_union("c").unwrap().unwrap();
        assert_eq!(c.string_member().unwrap(), "0123456789");
        assert!(
            fields
                .opt_union("d")
                .unwrap()
                .unwrap()
                .string_member()
                .is_err()
        );
    }

    #[test]
    fn timestamps_must_be_whole_seconds_utc() {
        let value = serde_json::json!({"ok": "2024-05-01T12:00:00Z", "frac": "2024-05-01T12:00:00.5Z",
                                       "offset": "2024-05-01T12:00:00+00:00"});
        let fields = Fields::of(&value).unwrap();
        assert!(timestamp(&fields, "ok").unwrap().is_some());
        assert!(timestamp(&fields, "frac").is_err());
        assert!(timestamp(&fields, "offset").is_err());
        assert!(timestamp(&fields, "absent").unwrap().is_none());
    }
}
