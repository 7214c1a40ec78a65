//! Reading callers' `a{sv}` options into the library's types: `Upload`'s and `AddWatch`'s
//! export choices ([`ExportOverrides`]). Variants stop here; the library never sees one.
//! Unknown keys and wrong types are errors that name the key and say, in words, what was sent.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use crate::export::{Conflict, ExportOverrides};

/// What a caller sent, in words: "a string (s)", so an error says what was wrong without
/// assuming the reader knows D-Bus signatures.
pub(crate) fn kind_of(value: &Value<'_>) -> String {
    let sig = value.value_signature().to_string();
    let words = match sig.as_str() {
        "s" | "o" | "g" => "a string",
        "b" => "a boolean",
        "y" | "n" | "q" | "i" | "u" | "x" | "t" => "a whole number",
        "d" => "a fractional number",
        "v" => "a variant",
        _ if sig.starts_with("a{") => "a dictionary",
        _ if sig.starts_with('a') => "a list",
        _ if sig.starts_with('(') => "a structure",
        _ => "a value",
    };
    format!("{words} ({sig})")
}

pub(crate) fn flag(key: &str, value: &Value<'_>) -> Result<bool, String> {
    bool::try_from(value)
        .map_err(|_| format!("option {key} must be a boolean, not {}", kind_of(value)))
}

/// Any unsigned or signed integer type a client library may pick for a number; negative is
/// refused, too large saturates (the range checks after it say so in the option's terms).
fn number(key: &str, value: &Value<'_>) -> Result<u32, String> {
    let n: Option<i128> = match value {
        Value::U8(v) => Some((*v).into()),
        Value::U16(v) => Some((*v).into()),
        Value::U32(v) => Some((*v).into()),
        Value::U64(v) => Some((*v).into()),
        Value::I16(v) => Some((*v).into()),
        Value::I32(v) => Some((*v).into()),
        Value::I64(v) => Some((*v).into()),
        _ => None,
    };
    match n {
        Some(n) if n >= 0 => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(n) => Err(format!("option {key} must be a positive number, not {n}")),
        None => Err(format!(
            "option {key} must be a number, not {}",
            kind_of(value)
        )),
    }
}

/// Takes the `profile` option (s) out of `options`: the named export profile, whose values
/// the other options go over.
pub(crate) fn take_profile(
    options: &mut HashMap<String, OwnedValue>,
) -> Result<Option<String>, String> {
    let Some(value) = options.remove("profile") else {
        return Ok(None);
    };
    let value: &Value<'_> = &value;
    <&str>::try_from(value)
        .map(|name| Some(name.to_string()))
        .map_err(|_| format!("option profile must be a string, not {}", kind_of(value)))
}

/// A list of strings (`as`) named `key`.
pub(crate) fn strings(key: &str, v: &OwnedValue) -> Result<Vec<String>, String> {
    let kind = || {
        format!(
            "option {key} must be a list of strings (as), not {}",
            kind_of(v)
        )
    };
    <Vec<String>>::try_from(v.try_clone().map_err(|_| kind())?).map_err(|_| kind())
}

/// Takes the `folders` option (as) out of `options`: for `UploadFds`, the name of the folder
/// each of the `files` came from (one per file; "" where there is none to tell), which a
/// folder template's `{folder}` uses. None given: every file's is unknown.
pub(crate) fn take_folders(
    options: &mut HashMap<String, OwnedValue>,
    files: usize,
) -> Result<Vec<Option<String>>, String> {
    let Some(value) = options.remove("folders") else {
        return Ok(vec![None; files]);
    };
    let folders = strings("folders", &value)?;
    if folders.len() != files {
        return Err(format!(
            "option folders has {} names for {files} files: give one per file (\"\" for none)",
            folders.len()
        ));
    }
    folders
        .into_iter()
        .map(|folder| match folder.as_str() {
            "" => Ok(None),
            name if name.contains('/') || name == "." || name == ".." => Err(format!(
                "option folders: {name:?} is not a folder's name; give the name only, e.g. \"Trip\""
            )),
            _ => Ok(Some(folder)),
        })
        .collect()
}

/// Takes the `more` option (b) out of `options`: `UploadFds` parts that more parts follow
/// (`crate::spool::parts`).
pub(crate) fn take_more(options: &mut HashMap<String, OwnedValue>) -> Result<bool, String> {
    match options.remove("more") {
        None => Ok(false),
        Some(value) => flag("more", &value),
    }
}

/// Reads the export choices among `options`; keys this reader does not know are errors.
pub(crate) fn export_overrides(
    options: &HashMap<String, OwnedValue>,
) -> Result<ExportOverrides, String> {
    let mut o = ExportOverrides::default();
    for (key, value) in options {
        let value: &Value<'_> = value;
        match key.as_str() {
            "original" => o.original = Some(flag(key, value)?),
            "resize" => o.resize = Some(flag(key, value)?),
            "max_dimension" => o.max_dimension = Some(number(key, value)?),
            "jpeg_quality" => o.jpeg_quality = Some(number(key, value)?),
            "strip_location" => o.strip_location = Some(flag(key, value)?),
            "conflict" => {
                let text = <&str>::try_from(value).map_err(|_| {
                    format!("option conflict must be a string, not {}", kind_of(value))
                })?;
                o.conflict = Some(Conflict::parse(text)?);
            }
            "share_link" => o.share_link = Some(flag(key, value)?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, Value<'_>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.try_to_owned().unwrap()))
            .collect()
    }

    #[test]
    fn options_become_overrides_and_bad_ones_are_named() {
        let o = export_overrides(&opts(&[
            ("conflict", Value::from("overwrite")),
            ("share_link", Value::from(true)),
            ("max_dimension", Value::from(2048i32)),
        ]))
        .unwrap();
        assert_eq!(o.conflict, Some(Conflict::Overwrite));
        assert_eq!(o.share_link, Some(true));
        assert_eq!(o.max_dimension, Some(2048));
        let mut with_profile = opts(&[
            ("profile", Value::from("web")),
            ("share_link", Value::from(true)),
        ]);
        assert_eq!(
            take_profile(&mut with_profile).unwrap().as_deref(),
            Some("web")
        );
        assert!(export_overrides(&with_profile).is_ok());
        let mut bad = opts(&[("profile", Value::from(3u32))]);
        assert!(
            take_profile(&mut bad)
                .unwrap_err()
                .contains("a whole number (u)")
        );
        for (options, named) in [
            (opts(&[("conflict", Value::from("merge"))]), "merge"),
            (opts(&[("share_link", Value::from("yes"))]), "share_link"),
            (opts(&[("colour", Value::from(1u32))]), "colour"),
            (opts(&[("max_dimension", Value::from(-5i32))]), "-5"),
            (
                opts(&[("jpeg_quality", Value::from("high"))]),
                "a string (s)",
            ),
        ] {
            let err = export_overrides(&options).unwrap_err();
            assert!(err.contains(named), "{err} should name {named}");
        }
    }

    #[test]
    fn folders_are_one_name_per_file_or_none() {
        let mut none = opts(&[]);
        assert_eq!(take_folders(&mut none, 2).unwrap(), [None, None]);
        let mut given = opts(&[("folders", Value::from(vec!["Trip", ""]))]);
        assert_eq!(
            take_folders(&mut given, 2).unwrap(),
            [Some("Trip".to_string()), None]
        );
        assert!(
            given.is_empty(),
            "taken out, so the export options do not see it"
        );
        for (bad, why) in [
            (Value::from(vec!["Trip"]), "1 names for 2 files"),
            (Value::from(vec!["a/b", "c"]), "not a folder's name"),
            (Value::from(vec!["..", "c"]), "not a folder's name"),
            (Value::from("Trip"), "must be a list of strings"),
        ] {
            let err = take_folders(&mut opts(&[("folders", bad)]), 2).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
