//! `dbxportctl config get|set|unset|path`: the daemon's `config.toml`, one key at a time.
//!
//! The file is edited here, not by the daemon: it is the user's file (the unit keeps the daemon
//! from writing outside its state and cache), and a change must work while the daemon is
//! stopped. The daemon reads the file when it starts, so a change says whether it took effect
//! at once (the bandwidth limit, which the running daemon is also told) or at the next start.

use std::path::Path;

use crate::config::edit::{self, EditError, Key, Kind};
use crate::config::{Config, Dirs};
use crate::service::UploaderProxy;

use super::term::outln;
use super::{ConfigCommand, Exit, describe, term};

/// The well-known name, to ask whether the daemon runs without starting it.
const BUS_NAME: &str = "io.github.dbxport1";

pub async fn run(command: ConfigCommand) -> Result<Exit, String> {
    let dirs = Dirs::from_env().map_err(|e| e.to_string())?;
    let path = dirs.config_file;
    match command {
        ConfigCommand::Path => {
            outln!("{}", path.display());
            Ok(Exit::Ok)
        }
        ConfigCommand::Get { key, json } => get(&path, key.as_deref(), json),
        ConfigCommand::Set { key, value } => {
            let key = edit::key(&key).map_err(explain)?;
            let value = edit::parse_value(&key, &value).map_err(explain)?;
            let text = read(&path)?;
            let changed = edit::set(&text, &path, &key, value).map_err(explain)?;
            edit::write(&path, &changed).map_err(explain)?;
            let now = Config::parse(&changed, &path).map_err(|e| e.to_string())?;
            outln!(
                "{} = {} (in {})",
                key.name,
                shown(edit::get(&now, &key)),
                path.display()
            );
            apply(&key, &now).await;
            Ok(Exit::Ok)
        }
        ConfigCommand::Unset { key } => {
            let key = edit::key(&key).map_err(explain)?;
            let text = read(&path)?;
            let changed = edit::unset(&text, &path, &key).map_err(explain)?;
            if changed != text {
                edit::write(&path, &changed).map_err(explain)?;
            }
            let now = Config::parse(&changed, &path).map_err(|e| e.to_string())?;
            outln!(
                "{} = {} (the default)",
                key.name,
                shown(edit::get(&now, &key))
            );
            apply(&key, &now).await;
            Ok(Exit::Ok)
        }
    }
}

fn explain(e: EditError) -> String {
    e.to_string()
}

/// The file's text; none yet is an empty config.
fn read(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("cannot read config file {}: {e}", path.display())),
    }
}

fn get(path: &Path, key: Option<&str>, json: bool) -> Result<Exit, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let keys = match key {
        Some(name) => vec![edit::key(name).map_err(explain)?],
        // Every key, and those of the profiles the file declares.
        None => edit::keys()
            .into_iter()
            .chain(edit::profile_keys(&config))
            .collect(),
    };
    if json {
        let mut out = serde_json::Map::new();
        for key in &keys {
            let value = edit::get(&config, key)
                .map(|v| serde_json::to_value(v).expect("TOML values are JSON values"))
                .unwrap_or(serde_json::Value::Null);
            out.insert(key.name.clone(), value);
        }
        let out = match key {
            Some(_) => out.into_iter().next().map(|(_, v)| v).unwrap_or_default(),
            None => serde_json::Value::Object(out),
        };
        term::print_json(&out);
        return Ok(Exit::Ok);
    }
    if let (Some(_), [key]) = (key, &keys[..]) {
        // One key: the bare value, for scripts (`$(dbxportctl config get upload.remote_folder)`).
        match edit::get(&config, key) {
            Some(toml::Value::String(s)) => outln!("{s}"),
            value => outln!("{}", shown(value)),
        }
        return Ok(Exit::Ok);
    }
    let present = if path.exists() {
        ""
    } else {
        " (not there: all defaults)"
    };
    outln!("# {}{present}", path.display());
    for key in &keys {
        let value = edit::get(&config, key);
        if key.kind == Kind::Structured {
            let n = value
                .as_ref()
                .and_then(|v| v.as_array())
                .map_or(0, Vec::len);
            outln!("{} = [{n} declared in the file]", key.name);
            continue;
        }
        let note = if value == key.default {
            String::new()
        } else {
            format!("    # default: {}", shown(key.default.clone()))
        };
        outln!("{} = {}{note}", key.name, shown(value));
    }
    Ok(Exit::Ok)
}

fn shown(value: Option<toml::Value>) -> String {
    match value {
        Some(v) => v.to_string(),
        None => "(not set)".into(),
    }
}

/// Tells a running daemon what it can take at once, and says when the rest applies.
async fn apply(key: &Key, config: &Config) {
    let running = match zbus::Connection::session().await {
        Ok(conn) => running(&conn).await.then_some(conn),
        Err(_) => None,
    };
    let Some(conn) = running else {
        outln!("dbxportd reads it when it starts.");
        return;
    };
    if key.name == "upload.bandwidth_limit" {
        // A limit set over D-Bus outlives restarts and would hide the config's: set both.
        let limit = config.upload.bandwidth_limit;
        let told = match UploaderProxy::new(&conn).await {
            Ok(proxy) => proxy.set_bandwidth_limit(limit).await,
            Err(e) => Err(e),
        };
        match told {
            Ok(()) => outln!("dbxportd applies it now."),
            Err(e) => outln!("dbxportd did not take it now: {}", describe(&e)),
        }
        return;
    }
    outln!(
        "dbxportd is running and reads the config when it starts: \
         `dbxportctl restart` applies it now (queued uploads resume)."
    );
}

async fn running(conn: &zbus::Connection) -> bool {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    let Ok(name) = zbus::names::BusName::try_from(BUS_NAME) else {
        return false;
    };
    dbus.name_has_owner(name).await.unwrap_or(false)
}
