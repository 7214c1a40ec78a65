//! `dbxportctl login`: hands a token read from stdin to the daemon, which checks it with
//! Dropbox and stores it. The token is never echoed or passed on a command line (where `ps`
//! would show it).

use std::io::Read;

use super::{Exit, describe};
use crate::service::AccountProxy;

pub async fn run(conn: &zbus::Connection, refresh: bool) -> Result<Exit, String> {
    let mut token = String::new();
    std::io::stdin()
        .read_to_string(&mut token)
        .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("no token on stdin".into());
    }
    let account = AccountProxy::new(conn).await.map_err(|e| describe(&e))?;
    let kind = if refresh { "refresh" } else { "access" };
    let name = account
        .login_with_token(kind.into(), token)
        .await
        .map_err(|e| describe(&e))?;
    println!("Logged in to Dropbox as {name}");
    Ok(Exit::Ok)
}
