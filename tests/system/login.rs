//! The browser login (PKCE, state, one-shot loopback listener), the pasted-code flow, logout,
//! and the account properties — the test plays the browser.

use std::collections::HashMap;

use futures_util::StreamExt;
use zbus::zvariant::Value;

use crate::helper::*;

/// A browser that does not follow redirects, so the test sees each hop.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Opens the authorize page as a browser would and returns where Dropbox sends it back.
async fn approve(url: &str) -> url::Url {
    let answer = browser().get(url).send().await.expect("authorize page");
    assert_eq!(answer.status(), 302, "the emulator approves and redirects");
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    url::Url::parse(&location).unwrap()
}

fn with_query(url: &url::Url, key: &str, value: &str) -> String {
    let mut url = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            if k == key {
                (k.into_owned(), value.to_string())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

fn login_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.dropbox.redirect_port = free_port();
    config
}

#[system_test]
async fn browser_login_links_the_account_and_uploads_work() {
    let config = login_config();
    let port = config.dropbox.redirect_port;
    let w = world_with(config, Setup::default()).await;
    let account = w.account().await;
    assert!(!account.logged_in().await.unwrap());
    let mut finished = account.receive_login_finished().await.unwrap();

    let url = account.begin_login(HashMap::new()).await.unwrap();
    let query: HashMap<String, String> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query["redirect_uri"], format!("http://127.0.0.1:{port}/"));
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["token_access_type"], "offline");
    // The redirect listener is bound to loopback only: no other host can hand it a code.
    let listening = listening_on(port);
    assert!(
        !listening.is_empty() && listening.iter().all(|a| a == "0100007F"),
        "the listener on port {port} is bound to {listening:?} (hex, as /proc/net/tcp shows)"
    );

    let back = approve(&url).await;
    assert_eq!(back.port(), Some(port));
    let page = browser()
        .get(back.as_str())
        .send()
        .await
        .expect("the daemon's listener answers");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("linked"));

    let signal = finished.next().await.unwrap();
    let args = signal.args().unwrap();
    assert!(args.ok, "{}", args.error);
    assert!(!args.account.is_empty());
    wait_for("LoggedIn to turn true", || async {
        account.logged_in().await.unwrap().then_some(())
    })
    .await;
    wait_for("the email to be read", || async {
        account.email().await.unwrap().contains('@').then_some(())
    })
    .await;
    assert_eq!(account.account_name().await.unwrap(), args.account);
    wait_for("the quota to be read", || async {
        (account.allocated_bytes().await.unwrap() > 0).then_some(())
    })
    .await;

    // The listener answered once and is gone.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // The login works for uploads, and survives a restart (it was stored).
    let files = make_photos(&w.photo_dir(), 3);
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, &files, "/Login").await;
    // The quota is read again after the batch.
    wait_for("the used space to be read after the batch", || async {
        (account.used_bytes().await.unwrap() > 0).then_some(())
    })
    .await;
    let out = w.ctl(&["account", "--json"]);
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["logged_in"], true);
    assert!(view["used_bytes"].as_u64().unwrap() > 0);
}

#[system_test]
async fn a_wrong_state_or_a_code_for_another_verifier_is_refused() {
    let config = login_config();
    let w = world_with(config, Setup::default()).await;
    let account = w.account().await;
    let mut finished = account.receive_login_finished().await.unwrap();

    // Wrong state: the listener refuses it, and closes.
    let url = account.begin_login(HashMap::new()).await.unwrap();
    let back = approve(&url).await;
    let forged = with_query(&back, "state", "not-the-state");
    let page = browser().get(&forged).send().await.unwrap();
    assert_eq!(page.status(), 400);
    let args = finished.next().await.unwrap();
    let args = args.args().unwrap();
    assert!(!args.ok);
    assert!(args.error.contains("state"), "{}", args.error);
    assert!(
        browser().get(back.as_str()).send().await.is_err(),
        "the listener answers one request only"
    );
    assert!(!account.logged_in().await.unwrap());

    // A code issued for one login's challenge, delivered to a newer login: the newer login's
    // verifier does not match, Dropbox (the emulator) refuses the exchange.
    let first = account.begin_login(HashMap::new()).await.unwrap();
    let first_back = approve(&first).await;
    let second = account.begin_login(HashMap::new()).await.unwrap();
    let second_back = approve(&second).await;
    let second_state = second_back
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mixed = with_query(&first_back, "state", &second_state);
    let page = browser().get(&mixed).send().await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "the state matched; the exchange happens after"
    );
    let args = finished.next().await.unwrap();
    let args = args.args().unwrap();
    assert!(!args.ok, "a code for another verifier was accepted");
    assert!(!account.logged_in().await.unwrap());
}

#[system_test]
async fn the_pasted_code_flow_and_logout() {
    let w = world_with(login_config(), Setup::default()).await;
    let account = w.account().await;
    let url = account
        .begin_login(dict(&[("no_redirect", Value::from(true))]))
        .await
        .unwrap();
    assert!(!url.contains("redirect_uri"), "{url}");
    let page = browser().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    // The emulator shows the code the way Dropbox does: on a page, for the user to copy.
    let code = text
        .split_whitespace()
        .rfind(|w| {
            w.len() >= 20
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .unwrap_or_else(|| panic!("no code on the page: {text}"))
        .to_string();
    let name = account
        .finish_login(code.clone())
        .await
        .expect("FinishLogin");
    assert!(!name.is_empty());
    wait_for("LoggedIn to turn true", || async {
        account.logged_in().await.unwrap().then_some(())
    })
    .await;
    // The code is single use.
    assert!(account.finish_login(code).await.is_err());

    let out = w.ctl(&["logout"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    // The property follows through PropertiesChanged.
    wait_for("LoggedIn to turn false", || async {
        (!account.logged_in().await.unwrap()).then_some(())
    })
    .await;
    assert!(!w.dir.path().join("state/dbxport/credentials.json").exists());
    // Revoked at Dropbox: the emulator no longer knows the token the daemon had.
    let revokes = w
        .sandbox
        .emulator
        .requests()
        .iter()
        .filter(|r| r.route == "/2/auth/token/revoke")
        .count();
    assert_eq!(revokes, 1);
}

/// The local addresses (hex, as the kernel lists them) of the sockets listening on `port`, over
/// IPv4 and IPv6.
fn listening_on(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st …; st 0A is LISTEN.
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((address, hex_port)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(hex_port, 16) == Ok(port) {
                found.push(address.to_string());
            }
        }
    }
    found
}
