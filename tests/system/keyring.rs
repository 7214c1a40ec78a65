//! The login rests in the real Secret Service (gnome-keyring on the test's own bus): stored
//! there and nowhere else, read back after a restart; when no Secret Service answers, the
//! daemon says so and waits for one, or uses the 0600 file only when the config allows.

use std::os::unix::fs::PermissionsExt;

use dbxport::config::CredentialStoreKind;

use crate::helper::*;

fn keyring_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.credentials.store = CredentialStoreKind::Keyring;
    config
}

/// What the keyring holds under dbxport's attributes (via libsecret's `secret-tool`).
fn keyring_item(w: &World) -> Option<String> {
    let out = w
        .sandbox
        .command("secret-tool")
        .args([
            "lookup",
            "service",
            "io.github.dbxport1",
            "username",
            "dropbox",
        ])
        .output()
        .expect("secret-tool runs (libsecret-tools)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[system_test]
async fn the_login_lives_in_the_keyring_and_survives_a_restart() {
    let mut w = world_with(
        keyring_config(),
        Setup {
            keyring: true,
            ..Setup::default()
        },
    )
    .await;
    let account = w.account().await;
    let store = account.credential_store().await.unwrap();
    assert!(
        store.contains("Secret Service") && !store.contains("waiting"),
        "{store}"
    );
    let refresh = w.sandbox.emulator.mint_refresh_token();
    account
        .login_with_token("refresh".into(), refresh.clone())
        .await
        .expect("login");
    let stored = keyring_item(&w).expect("an item in the keyring");
    assert!(
        stored.contains(&refresh),
        "the refresh token is what is kept"
    );
    assert!(
        !w.dir.path().join("state/dbxport/credentials.json").exists(),
        "no file copy"
    );

    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let account = w.account().await;
    assert!(
        account.logged_in().await.unwrap(),
        "{}",
        account.status_message().await.unwrap()
    );
    let files = make_photos(&w.photo_dir(), 2);
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, &files, "/Keyring").await;

    // Logout deletes the item.
    account.logout().await.unwrap();
    assert!(
        keyring_item(&w).is_none(),
        "logout left the token in the keyring"
    );
}

#[system_test]
async fn without_a_secret_service_the_daemon_waits_for_one() {
    let mut w = world_with(keyring_config(), Setup::default()).await;
    let account = w.account().await;
    let message = account.status_message().await.unwrap();
    assert!(message.contains("waiting for the keyring"), "{message}");
    assert!(w.daemon_log().contains("waiting for the keyring"));
    // A login has nowhere to rest: refused with a reason, not stored in a file.
    let err = account
        .login_with_token("access".into(), w.sandbox.emulator.access_token())
        .await;
    assert!(format!("{err:?}").contains("keyring"), "{err:?}");
    assert!(!w.dir.path().join("state/dbxport/credentials.json").exists());

    // The keyring starts after the daemon (as at a desktop login): it is picked up.
    w.sandbox.start_keyring().await.unwrap();
    wait_for("the daemon to find the keyring", || async {
        let store = account.credential_store().await.unwrap();
        (store.contains("Secret Service") && !store.contains("waiting")).then_some(())
    })
    .await;
    account
        .login_with_token("access".into(), w.sandbox.emulator.access_token())
        .await
        .expect("login");
    assert!(keyring_item(&w).is_some());
}

#[system_test]
async fn the_file_fallback_is_used_only_when_allowed_and_said_loudly() {
    let mut config = keyring_config();
    config.credentials.file_fallback = true;
    let w = world_with(config, Setup::default()).await;
    let account = w.account().await;
    let store = account.credential_store().await.unwrap();
    assert!(store.contains("0600"), "{store}");
    assert!(
        w.daemon_log().contains("file_fallback is on"),
        "the fallback was not announced"
    );
    account
        .login_with_token("access".into(), w.sandbox.emulator.access_token())
        .await
        .expect("login");
    let file = w.dir.path().join("state/dbxport/credentials.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
