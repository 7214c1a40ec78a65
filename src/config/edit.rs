//! Reading and changing single keys of `config.toml` (`dbxportctl config get|set|unset`).
//!
//! The file belongs to the user: a change keeps their comments, order and layout (toml_edit),
//! is checked as a whole config before anything is written, and replaces the file atomically,
//! so a typo or a crash never leaves a config the daemon refuses at its next start.
//!
//! Keys are dotted (`upload.chunk_size`). The list of keys comes from the config types
//! themselves (the serialized defaults), plus the few optional keys that have no default; a
//! unit test holds that list to what serde accepts, so a new field cannot be forgotten here
//! or in the README's reference.

use std::io::Write;
use std::path::Path;

use super::{Config, ConfigError};

/// Keys that are absent by default (`Option`s), with what they hold.
const OPTIONAL_KEYS: [(&str, Kind); 2] = [
    ("dropbox.app_key", Kind::Text),
    ("dropbox.ca_file", Kind::Text),
];

/// Integer keys counted in bytes: `set` takes `8MiB`, `2M`.
const BYTE_KEYS: [&str; 4] = [
    "upload.session_threshold",
    "upload.chunk_size",
    "upload.bandwidth_limit",
    "spool.max_bytes",
];

/// Keys `set` leaves to other ways of changing them, and why.
const NOT_SETTABLE: [(&str, &str); 1] = [(
    "watch.folders",
    "a list of folders: use `dbxportctl watch add` (kept by the daemon) or edit the file",
)];

/// What a key holds, which decides how `set` reads the value it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Integer,
    /// An integer in bytes; units allowed.
    Bytes,
    Text,
    /// Lists and tables: shown by `get`, changed in the file.
    Structured,
}

/// One key of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Dotted name, e.g. `upload.chunk_size`.
    pub name: String,
    pub kind: Kind,
    /// The default as TOML, or None when the key is unset by default.
    pub default: Option<toml::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("there is no config key {key:?}{}", hint(.suggestion))]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    #[error("{key} cannot be set this way: {why}")]
    NotSettable { key: String, why: &'static str },
    #[error("{key} = {value:?}: {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    /// The changed config as a whole is refused (a value out of range, say); nothing written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot write config file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

fn hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => " (`dbxportctl config get` lists them)".into(),
    }
}

/// Every key, in the order of the config's sections.
pub fn keys() -> Vec<Key> {
    let defaults = toml::Value::try_from(Config::default()).expect("the config serializes");
    let mut keys = Vec::new();
    if let toml::Value::Table(sections) = defaults {
        for (section, table) in sections {
            let toml::Value::Table(table) = table else {
                continue;
            };
            for (field, value) in table {
                let name = format!("{section}.{field}");
                let kind = match &value {
                    toml::Value::Boolean(_) => Kind::Bool,
                    toml::Value::Integer(_) if BYTE_KEYS.contains(&name.as_str()) => Kind::Bytes,
                    toml::Value::Integer(_) => Kind::Integer,
                    toml::Value::String(_) => Kind::Text,
                    _ => Kind::Structured,
                };
                keys.push(Key {
                    name,
                    kind,
                    default: Some(value),
                });
            }
        }
    }
    for (name, kind) in OPTIONAL_KEYS {
        let at = keys
            .iter()
            .rposition(|k| k.name.split('.').next() == name.split('.').next())
            .map_or(keys.len(), |i| i + 1);
        keys.insert(
            at,
            Key {
                name: name.into(),
                kind,
                default: None,
            },
        );
    }
    keys
}

/// What a `[profiles.NAME]` key holds.
fn profile_kind(field: &str) -> Option<Kind> {
    match field {
        "folder" | "conflict" => Some(Kind::Text),
        "original" | "strip_location" | "share_link" => Some(Kind::Bool),
        "max_dimension" | "jpeg_quality" => Some(Kind::Integer),
        _ => None,
    }
}

/// `profiles.NAME.FIELD`: a key of a named export profile, or why it is none.
fn profile_key(name: &str) -> Result<Key, EditError> {
    let unknown = |suggestion: Option<String>| EditError::UnknownKey {
        key: name.into(),
        suggestion,
    };
    let parts: Vec<&str> = name.split('.').collect();
    let [_, profile, field] = parts[..] else {
        return Err(unknown(Some(
            "profiles.NAME.FIELD, e.g. profiles.web.max_dimension".into(),
        )));
    };
    if crate::profile::check_name(profile).is_err() {
        return Err(unknown(Some(
            "a profile name of letters, digits, '-' or '_', e.g. profiles.web.max_dimension".into(),
        )));
    }
    let Some(kind) = profile_kind(field) else {
        let near = super::PROFILE_KEYS
            .iter()
            .find(|k| near(k, field))
            .map(|k| format!("profiles.{profile}.{k}"))
            .unwrap_or_else(|| {
                format!(
                    "one of profiles.{profile}.{{{}}}",
                    super::PROFILE_KEYS.join(",")
                )
            });
        return Err(unknown(Some(near)));
    };
    Ok(Key {
        name: name.into(),
        kind,
        default: None,
    })
}

/// The keys of the profiles `config` declares, `profiles.NAME.FIELD` for every field.
pub fn profile_keys(config: &Config) -> Vec<Key> {
    config
        .profiles
        .keys()
        .flat_map(|profile| {
            super::PROFILE_KEYS
                .iter()
                .filter_map(move |field| profile_key(&format!("profiles.{profile}.{field}")).ok())
        })
        .collect()
}

/// The key named `name`, or an error that suggests a near one.
pub fn key(name: &str) -> Result<Key, EditError> {
    if name.starts_with("profiles.") {
        return profile_key(name);
    }
    let all = keys();
    if let Some(key) = all.iter().find(|k| k.name == name) {
        return Ok(key.clone());
    }
    // `chunk_size` for `upload.chunk_size`, or a one-letter slip.
    let suggestion = all
        .iter()
        .find(|k| k.name.rsplit('.').next() == Some(name))
        .or_else(|| all.iter().find(|k| near(&k.name, name)))
        .map(|k| k.name.clone());
    Err(EditError::UnknownKey {
        key: name.into(),
        suggestion,
    })
}

/// Within two edits (a slip, a missing underscore, two letters swapped).
fn near(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Levenshtein distance, one row at a time.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()] <= 2
}

/// The value `config` holds for `key` (defaults filled in); None for an unset optional key.
pub fn get(config: &Config, key: &Key) -> Option<toml::Value> {
    let all = toml::Value::try_from(config).expect("the config serializes");
    key.name
        .split('.')
        .try_fold(&all, |value, name| value.get(name))
        .cloned()
}

/// Reads the text a user typed for `key` into a TOML value of the key's kind.
pub fn parse_value(key: &Key, text: &str) -> Result<toml_edit::Value, EditError> {
    let bad = |expected: &str| EditError::BadValue {
        key: key.name.clone(),
        value: text.into(),
        expected: expected.into(),
    };
    let t = text.trim();
    Ok(match key.kind {
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => true.into(),
            "false" | "no" | "off" | "0" => false.into(),
            _ => return Err(bad("expected true or false")),
        },
        Kind::Integer => t
            .parse::<i64>()
            .map_err(|_| bad("expected a whole number"))?
            .into(),
        Kind::Bytes => i64::try_from(parse_bytes(t).ok_or_else(|| {
            bad("expected a number of bytes, e.g. 8388608, 8MiB or 2M (0 or off where allowed)")
        })?)
        .map_err(|_| bad("too large"))?
        .into(),
        Kind::Text => text.into(),
        Kind::Structured => {
            return Err(EditError::NotSettable {
                key: key.name.clone(),
                why: not_settable_reason(&key.name),
            });
        }
    })
}

fn not_settable_reason(name: &str) -> &'static str {
    NOT_SETTABLE
        .iter()
        .find(|(k, _)| *k == name)
        .map_or("not a single value: edit the file", |(_, why)| *why)
}

/// `8388608`, `8MiB`, `8 MiB`, `2M`, `500k`, `1.5G`, `off` → bytes. K, M, G count in 1000s;
/// KiB, MiB, GiB in 1024s (as `dbxportctl limit` reads them).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Some(0);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().trim_end_matches("/s");
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let factor = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (number * factor).round();
    // A fraction of a byte is a slip, not "off".
    let slip = number > 0.0 && bytes < 1.0;
    ((0.0..1e15).contains(&bytes) && !slip).then_some(bytes as u64)
}

/// `text` (the file's content; empty when there is none) with `key` set to `value`; comments
/// and layout of everything else are kept. The result is checked as a whole config.
pub fn set(
    text: &str,
    path: &Path,
    key: &Key,
    value: toml_edit::Value,
) -> Result<String, EditError> {
    let mut doc = document(text, path)?;
    let (tables, field) = key.name.rsplit_once('.').expect("keys are dotted");
    let table = table_at(&mut doc, tables, path)?;
    match table.get_mut(field) {
        // Keep the comment that precedes or follows the old value.
        Some(toml_edit::Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = value.clone();
            *old.decor_mut() = decor;
        }
        _ => {
            table.insert(field, toml_edit::Item::Value(value.clone()));
        }
    }
    let changed = doc.to_string();
    // A value of the right kind the config still refuses (an unknown choice, say): said for
    // the key, in the config's own words, not as a TOML error pointing into a file the user
    // never wrote. Only when the file was fine before, so the value is the cause.
    if let Err(e) = toml::from_str::<Config>(&changed)
        && toml::from_str::<Config>(text).is_ok()
    {
        return Err(EditError::BadValue {
            key: key.name.clone(),
            value: value
                .as_str()
                .map_or_else(|| value.to_string().trim().to_string(), str::to_string),
            expected: e.message().trim().replace('`', ""),
        });
    }
    checked(changed, path)
}

/// `text` without `key`, which goes back to its default.
pub fn unset(text: &str, path: &Path, key: &Key) -> Result<String, EditError> {
    let mut doc = document(text, path)?;
    let (tables, field) = key.name.rsplit_once('.').expect("keys are dotted");
    let mut table = Some(doc.as_table_mut() as &mut dyn toml_edit::TableLike);
    for name in tables.split('.') {
        table = table
            .and_then(|t| t.get_mut(name))
            .and_then(|item| item.as_table_like_mut());
    }
    if let Some(table) = table {
        table.remove(field);
    }
    checked(doc.to_string(), path)
}

/// The table at the dotted path `tables` (`upload`, `profiles.web`), made if missing; the
/// tables only on the way (`profiles`) are implicit, so no empty header is written for them.
fn table_at<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    tables: &str,
    path: &Path,
) -> Result<&'a mut dyn toml_edit::TableLike, EditError> {
    let names: Vec<&str> = tables.split('.').collect();
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let item = table.entry(name).or_insert_with(|| {
            let mut new = toml_edit::Table::new();
            new.set_implicit(!last);
            toml_edit::Item::Table(new)
        });
        table = item.as_table_like_mut().ok_or_else(|| EditError::Syntax {
            path: path.display().to_string(),
            message: format!("`{}` is not a table", names[..=i].join(".")),
        })?;
    }
    Ok(table)
}

fn document(text: &str, path: &Path) -> Result<toml_edit::DocumentMut, EditError> {
    text.parse()
        .map_err(|e: toml_edit::TomlError| EditError::Syntax {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// The daemon must accept what is written: the same check as at its start.
fn checked(text: String, path: &Path) -> Result<String, EditError> {
    Config::parse(&text, path)?;
    Ok(text)
}

/// Replaces the file at `path` with `text` atomically (a temporary file beside it, synced, then
/// renamed over it), creating its folder if needed; an existing file's permissions are kept.
pub fn write(path: &Path, text: &str) -> Result<(), EditError> {
    let fail = |source| EditError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    let permissions = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions(),
        Err(_) => std::os::unix::fs::PermissionsExt::from_mode(0o644),
    };
    tmp.as_file().set_permissions(permissions).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    // The rename itself must reach the disk too.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("c.toml")
    }

    /// The fields serde accepts in `[section]`, read from its unknown-field error.
    fn accepted_fields(section: &str) -> Vec<String> {
        let err = Config::parse(&format!("[{section}]\nzz_not_a_key = 1\n"), p()).unwrap_err();
        let text = err.to_string();
        let list = text
            .split("expected one of ")
            .nth(1)
            .or_else(|| text.split("expected ").nth(1))
            .unwrap_or_else(|| panic!("no field list in {text}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(|f| format!("{section}.{f}"))
            .collect()
    }

    #[test]
    fn every_field_serde_accepts_is_a_key_and_no_other() {
        let names: Vec<String> = keys().into_iter().map(|k| k.name).collect();
        let mut accepted = Vec::new();
        // Every section of the config, as its defaults serialize (no profiles: their keys
        // are `profiles.NAME.FIELD`, checked below).
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        for section in defaults.as_table().unwrap().keys() {
            accepted.extend(accepted_fields(section));
        }
        let mut a = accepted.clone();
        a.sort();
        let mut n = names.clone();
        n.sort();
        assert_eq!(n, a);
        assert_eq!(
            keys()
                .iter()
                .find(|k| k.name == "upload.chunk_size")
                .unwrap()
                .kind,
            Kind::Bytes
        );
        // A profile's fields are what serde accepts in [profiles.NAME].
        let mut fields: Vec<String> = accepted_fields("profiles.x")
            .into_iter()
            .map(|f| f.trim_start_matches("profiles.x.").to_string())
            .collect();
        fields.sort();
        let mut declared = super::super::PROFILE_KEYS.map(String::from).to_vec();
        declared.sort();
        assert_eq!(fields, declared);
        // Optional keys sit in their section.
        let i = names.iter().position(|n| n == "dropbox.app_key").unwrap();
        assert!(names[i - 1].starts_with("dropbox."), "{names:?}");
    }

    #[test]
    fn set_keeps_comments_and_layout_and_checks_the_whole() {
        let text = "# mine\n[upload]\n# how many at once\ntransfers = 4 # was 2\n\n[export]\nmode = \"resize\"\n";
        let transfers = key("upload.transfers").unwrap();
        let out = set(text, p(), &transfers, parse_value(&transfers, "6").unwrap()).unwrap();
        assert_eq!(
            out,
            "# mine\n[upload]\n# how many at once\ntransfers = 6 # was 2\n\n[export]\nmode = \"resize\"\n"
        );
        // A new key in a new section.
        let store = key("credentials.store").unwrap();
        let out = set(&out, p(), &store, parse_value(&store, "file").unwrap()).unwrap();
        assert_eq!(
            Config::parse(&out, p()).unwrap().credentials.store,
            super::super::CredentialStoreKind::File
        );
        // Out of range for the daemon: refused, naming the key.
        let err = set(&out, p(), &transfers, parse_value(&transfers, "0").unwrap()).unwrap_err();
        assert!(err.to_string().contains("upload.transfers"), "{err}");
        let err = set(&out, p(), &store, parse_value(&store, "floppy").unwrap()).unwrap_err();
        assert!(err.to_string().contains("floppy"), "{err}");
        // Back to the default.
        let out = unset(&out, p(), &transfers).unwrap();
        assert_eq!(Config::parse(&out, p()).unwrap().upload.transfers, 16);
        assert!(out.contains("# mine"));
    }

    #[test]
    fn values_are_read_by_the_key_s_kind() {
        let chunk = key("upload.chunk_size").unwrap();
        assert_eq!(
            parse_value(&chunk, "16MiB").unwrap().as_integer(),
            Some(16 << 20)
        );
        assert_eq!(
            parse_value(&chunk, "16777216").unwrap().as_integer(),
            Some(16 << 20)
        );
        let limit = key("upload.bandwidth_limit").unwrap();
        assert_eq!(
            parse_value(&limit, "2M").unwrap().as_integer(),
            Some(2_000_000)
        );
        assert_eq!(parse_value(&limit, "off").unwrap().as_integer(), Some(0));
        let enabled = key("notifications.enabled").unwrap();
        assert_eq!(parse_value(&enabled, "no").unwrap().as_bool(), Some(false));
        assert!(parse_value(&enabled, "maybe").is_err());
        let transfers = key("upload.transfers").unwrap();
        assert!(parse_value(&transfers, "4.5").is_err());
        let folders = key("watch.folders").unwrap();
        let err = parse_value(&folders, "x").unwrap_err();
        assert!(err.to_string().contains("watch add"), "{err}");
    }

    #[test]
    fn unknown_keys_suggest_a_near_one() {
        let err = key("chunk_size").unwrap_err();
        assert!(err.to_string().contains("upload.chunk_size"), "{err}");
        let err = key("upload.trasnfers").unwrap_err();
        assert!(err.to_string().contains("upload.transfers"), "{err}");
        let err = key("upload.chunksize").unwrap_err();
        assert!(err.to_string().contains("upload.chunk_size"), "{err}");
        let err = key("nothing.like.it").unwrap_err();
        assert!(err.to_string().contains("config get"), "{err}");
    }

    #[test]
    fn the_readme_documents_every_key() {
        let readme = include_str!("../../README.md");
        let reference = readme
            .split("### Every key")
            .nth(1)
            .expect("README has a config reference");
        for key in keys() {
            assert!(
                reference.contains(&format!("| `{}` |", key.name)),
                "README's config reference lacks {}",
                key.name
            );
        }
        for field in super::super::PROFILE_KEYS {
            assert!(
                reference.contains(&format!("| `profiles.NAME.{field}` |")),
                "README's config reference lacks profiles.NAME.{field}"
            );
        }
    }

    #[test]
    fn profiles_are_edited_like_any_other_key() {
        let text = "# mine\n[export]\nmode = \"resize\"\n";
        let size = key("profiles.web.max_dimension").unwrap();
        assert_eq!(size.kind, Kind::Integer);
        let out = set(text, p(), &size, parse_value(&size, "2048").unwrap()).unwrap();
        assert!(out.starts_with("# mine\n"), "{out}");
        assert!(!out.contains("[profiles]\n"), "no empty header: {out}");
        let config = Config::parse(&out, p()).unwrap();
        assert_eq!(config.profiles["web"].max_dimension, Some(2048));
        assert_eq!(get(&config, &size), Some(toml::Value::Integer(2048)));
        let folder = key("profiles.web.folder").unwrap();
        let out = set(
            &out,
            p(),
            &folder,
            parse_value(&folder, "/Web/{year}").unwrap(),
        )
        .unwrap();
        assert_eq!(
            Config::parse(&out, p()).unwrap().profiles["web"]
                .folder
                .as_deref(),
            Some("/Web/{year}")
        );
        assert_eq!(
            profile_keys(&Config::parse(&out, p()).unwrap()).len(),
            super::super::PROFILE_KEYS.len()
        );
        // Checked as the daemon checks it, naming the key.
        let err = set(&out, p(), &size, parse_value(&size, "3").unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("profiles.web.max_dimension"),
            "{err}"
        );
        let err = set(&out, p(), &folder, parse_value(&folder, "/W/{yr}").unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("unknown placeholder {yr}"),
            "{err}"
        );
        let out = unset(&out, p(), &size).unwrap();
        assert_eq!(
            Config::parse(&out, p()).unwrap().profiles["web"].max_dimension,
            None
        );
        // Names and fields that are none.
        let err = key("profiles.web.max_dimenson").unwrap_err().to_string();
        assert!(err.contains("profiles.web.max_dimension"), "{err}");
        assert!(key("profiles.web").is_err());
        assert!(key("profiles.a b.folder").is_err());
    }

    #[test]
    fn get_fills_in_defaults() {
        let config = Config::parse("[upload]\ntransfers = 2\n", p()).unwrap();
        let transfers = key("upload.transfers").unwrap();
        assert_eq!(get(&config, &transfers), Some(toml::Value::Integer(2)));
        let chunk = key("upload.chunk_size").unwrap();
        assert_eq!(get(&config, &chunk), Some(toml::Value::Integer(8 << 20)));
        assert_eq!(get(&config, &key("dropbox.app_key").unwrap()), None);
    }

    #[test]
    fn write_replaces_atomically_and_keeps_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        write(&path, "a").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write(&path, "b").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_refused_choice_is_told_for_the_key_not_as_a_toml_error() {
        let key = key("export.conflict").unwrap();
        let value = parse_value(&key, "merge").unwrap();
        let err = set("", p(), &key, value).unwrap_err().to_string();
        assert!(err.starts_with("export.conflict = \"merge\": "), "{err}");
        assert!(err.contains("skip-identical, rename, overwrite"), "{err}");
        assert!(!err.contains("line"), "{err}");
    }
}
