//! `dbxportctl login`, `logout` and `account`.
//!
//! The default login opens the Dropbox page in a browser (`xdg-open`, when there is a
//! display) and waits for the daemon's `LoginFinished`; `--no-browser` prints the page and
//! reads the code Dropbox shows. Tokens handed over with `--*-token-stdin` are read from
//! stdin, never from the command line (where `ps` would show them), and never echoed.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use futures_util::StreamExt;
use serde::Serialize;
use zbus::zvariant::{OwnedValue, Value};

use super::jobs::human_bytes;
use super::term::{outln, say};
use super::{Exit, LoginArgs, describe, term};
use crate::service::AccountProxy;

pub async fn run(conn: &zbus::Connection, args: &LoginArgs) -> Result<Exit, String> {
    let account = AccountProxy::new(conn).await.map_err(|e| describe(&e))?;
    if args.access_token_stdin || args.refresh_token_stdin {
        return with_token(&account, args.refresh_token_stdin).await;
    }
    if args.no_browser {
        return with_pasted_code(&account).await;
    }
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !has_display {
        say!("No display here: showing the page to open elsewhere instead (as with --no-browser).");
        return with_pasted_code(&account).await;
    }
    // Subscribe before starting, so the outcome cannot be missed.
    let mut finished = account
        .receive_login_finished()
        .await
        .map_err(|e| describe(&e))?;
    let url = account
        .begin_login(HashMap::new())
        .await
        .map_err(|e| describe(&e))?;
    let opened = std::process::Command::new("xdg-open")
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if opened {
        say!("Opened the Dropbox login in your browser. If nothing appeared, open:\n  {url}");
    } else {
        say!("Open this page in a browser to link dbxport to Dropbox:\n  {url}");
    }
    say!("Waiting for the browser… (Ctrl-C to give up)");
    let signal = tokio::select! {
        signal = finished.next() => signal.ok_or("lost the connection to dbxportd")?,
        _ = tokio::signal::ctrl_c() => return Err("login abandoned".into()),
    };
    let args = signal.args().map_err(|e| e.to_string())?;
    if args.ok {
        outln!("Logged in to Dropbox as {}", args.account);
        Ok(Exit::Ok)
    } else {
        Err(format!("login failed: {}", args.error))
    }
}

async fn with_pasted_code(account: &AccountProxy<'_>) -> Result<Exit, String> {
    let options: HashMap<String, OwnedValue> = [(
        "no_redirect".to_string(),
        Value::from(true).try_to_owned().expect("plain value"),
    )]
    .into();
    let url = account
        .begin_login(options)
        .await
        .map_err(|e| describe(&e))?;
    say!("1. Open this page in a browser and allow dbxport:\n  {url}");
    say!("2. Paste the code Dropbox shows, then press Enter:");
    let mut code = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut code)
        .map_err(|e| format!("cannot read the code: {e}"))?;
    let name = account
        .finish_login(code.trim().to_string())
        .await
        .map_err(|e| describe(&e))?;
    outln!("Logged in to Dropbox as {name}");
    Ok(Exit::Ok)
}

async fn with_token(account: &AccountProxy<'_>, refresh: bool) -> Result<Exit, String> {
    let mut token = String::new();
    std::io::stdin()
        .read_to_string(&mut token)
        .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("no token on stdin".into());
    }
    let kind = if refresh { "refresh" } else { "access" };
    let name = account
        .login_with_token(kind.into(), token)
        .await
        .map_err(|e| describe(&e))?;
    outln!("Logged in to Dropbox as {name}");
    Ok(Exit::Ok)
}

pub async fn logout(conn: &zbus::Connection) -> Result<Exit, String> {
    let account = AccountProxy::new(conn).await.map_err(|e| describe(&e))?;
    let what = account.logout().await.map_err(|e| describe(&e))?;
    outln!("Logged out: {what}");
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct AccountView {
    logged_in: bool,
    account: String,
    email: String,
    used_bytes: u64,
    allocated_bytes: u64,
    status_message: String,
    credential_store: String,
}

pub async fn account(conn: &zbus::Connection, json: bool) -> Result<Exit, String> {
    let a = AccountProxy::new(conn).await.map_err(|e| describe(&e))?;
    let view = AccountView {
        logged_in: a.logged_in().await.map_err(|e| describe(&e))?,
        account: a.account_name().await.map_err(|e| describe(&e))?,
        email: a.email().await.map_err(|e| describe(&e))?,
        used_bytes: a.used_bytes().await.map_err(|e| describe(&e))?,
        allocated_bytes: a.allocated_bytes().await.map_err(|e| describe(&e))?,
        status_message: a.status_message().await.map_err(|e| describe(&e))?,
        credential_store: a.credential_store().await.map_err(|e| describe(&e))?,
    };
    if json {
        term::print_json(&view);
        return Ok(if view.logged_in {
            Exit::Ok
        } else {
            Exit::NotLoggedIn
        });
    }
    if !view.logged_in {
        outln!("Not logged in: {}", view.status_message);
        outln!("Login kept in: {}", view.credential_store);
        outln!("Log in with `dbxportctl login`.");
        return Ok(Exit::NotLoggedIn);
    }
    outln!("Account:  {} <{}>", view.account, view.email);
    if view.allocated_bytes > 0 {
        outln!(
            "Space:    {} used of {} ({} free)",
            human_bytes(view.used_bytes),
            human_bytes(view.allocated_bytes),
            human_bytes(view.allocated_bytes.saturating_sub(view.used_bytes))
        );
    }
    outln!("Login kept in: {}", view.credential_store);
    Ok(Exit::Ok)
}
