//! The product's Dropbox client against the test kit's emulator: the client's types must decode
//! what a faithful server sends. Shared links (`shared_link_for` must reuse a link rather than
//! make a second one), and the batch session routes from `start_batch` to `finish_batch_v2`. (Once unit tests of `dbxport::dropbox`; here because the
//! product's own tests cannot use the test kit, which depends on the product.)

use std::time::Duration;

use bytes::Bytes;
use dbxport::dropbox::*;
use dbxport::secret::Secret;
use dbxport_testkit::emulator::{Emulator, EmulatorConfig};
use url::Url;

const CREATE: &str = "/2/sharing/create_shared_link_with_settings";
const LIST: &str = "/2/sharing/list_shared_links";

/// A started emulator (kept alive by the returned guard) and a client pointed at it.
async fn emulator() -> (Emulator, tempfile::TempDir, Client, Secret) {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(EmulatorConfig {
        root: dir.path().join("root"),
        port: 0,
        access_token: None,
        app_key: None,
    })
    .await
    .expect("start the emulator");
    let base = Url::parse(&emu.base_url()).unwrap();
    let client = client(base.clone(), base);
    let token = Secret::new(emu.access_token());
    (emu, dir, client, token)
}

async fn upload(client: &Client, token: &Secret, path: &str, data: &'static [u8]) -> FileMetadata {
    let arg = UploadArg {
        commit: CommitInfo::new(path),
        content_hash: None,
    };
    client
        .upload(token, &arg, Bytes::from_static(data), None)
        .await
        .expect("upload")
}

/// A client pointed at the emulator, as the product's unit tests build one.
fn client(api: Url, content: Url) -> Client {
    Client::new(ClientOptions {
        endpoints: Endpoints { api, content },
        ca_file: None,
        user_agent: "dbxport-test/1".into(),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// The routes of the requests after the first `skip`, in order.
fn routes_since(emu: &Emulator, skip: usize) -> Vec<(String, u16)> {
    emu.requests()
        .into_iter()
        .skip(skip)
        .map(|r| (r.route, r.status))
        .collect()
}

#[tokio::test]
async fn shared_link_for_creates_once_then_reuses() {
    let (emu, _dir, client, token) = emulator().await;
    upload(&client, &token, "/Album/a.jpg", b"photo").await;

    let created = client.shared_link_for(&token, "/Album").await.unwrap();
    assert!(
        matches!(&created, SharedLinkMetadata::Folder(info) if info.name == "Album"),
        "{created:?}"
    );
    assert!(created.url().starts_with("https://"), "{}", created.url());
    assert_eq!(created.path_lower(), Some("/album"));
    assert_eq!(
        created.info().link_permissions.resolved_visibility,
        Some(ResolvedVisibility::Public)
    );

    // Again, spelled in another case: the same link, found by listing, since Dropbox leaves
    // the existing link out of the error when settings were sent.
    let before = emu.requests().len();
    let again = client.shared_link_for(&token, "/ALBUM").await.unwrap();
    assert_eq!(again.url(), created.url());
    assert_eq!(
        routes_since(&emu, before),
        vec![(CREATE.to_owned(), 409), (LIST.to_owned(), 200)]
    );

    // Still one link in the whole account.
    let all = client
        .list_shared_links(&token, &ListSharedLinksArg::default())
        .await
        .unwrap();
    assert_eq!(all.links.len(), 1, "{all:?}");
    assert!(all.cursor.is_some());

    let direct = client
        .list_shared_links(
            &token,
            &ListSharedLinksArg {
                path: Some("/Album".into()),
                cursor: None,
                direct_only: Some(true),
            },
        )
        .await
        .unwrap();
    assert_eq!(direct.links.len(), 1);
    assert_eq!(direct.links[0].url(), created.url());
    assert!(!direct.has_more);
}

#[tokio::test]
async fn a_folder_link_is_not_reused_for_a_file_in_it() {
    let (_emu, _dir, client, token) = emulator().await;
    let uploaded = upload(&client, &token, "/Album/a.jpg", b"photo").await;
    let folder = client.shared_link_for(&token, "/Album").await.unwrap();

    let file = client
        .shared_link_for(&token, "/Album/a.jpg")
        .await
        .unwrap();
    assert_ne!(file.url(), folder.url());
    let SharedLinkMetadata::File(linked) = &file else {
        panic!("{file:?}")
    };
    assert_eq!(linked.rev, uploaded.rev);
    assert_eq!(linked.size, 5);
    assert_eq!(file.name(), "a.jpg");

    // Without direct_only, the folder's link is listed for the file too; shared_link_for's
    // listing asks for direct links only, and gets the file's.
    let with_parents = client
        .list_shared_links(
            &token,
            &ListSharedLinksArg {
                path: Some("/Album/a.jpg".into()),
                ..ListSharedLinksArg::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(with_parents.links.len(), 2);
    let again = client
        .shared_link_for(&token, "/Album/a.jpg")
        .await
        .unwrap();
    assert_eq!(again.url(), file.url());
}

#[tokio::test]
async fn without_settings_the_error_carries_the_link() {
    let (_emu, _dir, client, token) = emulator().await;
    upload(&client, &token, "/a.jpg", b"a").await;
    let created = client
        .create_shared_link(&token, "/a.jpg", None)
        .await
        .unwrap();
    assert!(
        matches!(created, SharedLinkMetadata::File(_)),
        "{created:?}"
    );
    let e = client
        .create_shared_link(&token, "/a.jpg", None)
        .await
        .unwrap_err();
    match e {
        Error::Route(CreateSharedLinkWithSettingsError::SharedLinkAlreadyExists(Some(link))) => {
            assert_eq!(*link, created);
        }
        other => panic!("{other:?}"),
    }
    // shared_link_for finds the same link (a link without settings is public here).
    let reused = client.shared_link_for(&token, "/a.jpg").await.unwrap();
    assert_eq!(reused.url(), created.url());
}

#[tokio::test]
async fn refusals_decode() {
    let (_emu, _dir, client, token) = emulator().await;
    upload(&client, &token, "/a.jpg", b"a").await;

    let e = client
        .shared_link_for(&token, "/missing.jpg")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(CreateSharedLinkWithSettingsError::Path(
                LookupError::NotFound
            ))
        ),
        "{e:?}"
    );
    let e = client
        .list_shared_links(
            &token,
            &ListSharedLinksArg {
                path: Some("/missing.jpg".into()),
                ..ListSharedLinksArg::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(ListSharedLinksError::Path(LookupError::NotFound))
        ),
        "{e:?}"
    );

    // The emulated account is a basic one: no expiry.
    let settings = SharedLinkSettings {
        expires: Some("2030-01-01T00:00:00Z".into()),
        ..SharedLinkSettings::public_viewer()
    };
    let e = client
        .create_shared_link(&token, "/a.jpg", Some(&settings))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(CreateSharedLinkWithSettingsError::SettingsError(
                SharedLinkSettingsError::NotAuthorized
            ))
        ),
        "{e:?}"
    );

    let e = client
        .list_shared_links(
            &token,
            &ListSharedLinksArg {
                cursor: Some("bogus".into()),
                ..ListSharedLinksArg::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Route(ListSharedLinksError::Reset)),
        "{e:?}"
    );
}

#[tokio::test]
async fn start_batch_append_batch_finish_batch_end_to_end() {
    let (emu, _dir, client, token) = emulator().await;
    let ids = client
        .upload_session_start_batch(&token, 3)
        .await
        .expect("start_batch");
    assert_eq!(ids.len(), 3);
    // Three files, one of them over a 4 MiB block, in one request; the third is sent in two
    // pieces, the second of them in a later request.
    let big: Vec<u8> = (0..(4 * 1024 * 1024 + 100))
        .map(|i| (i % 241) as u8)
        .collect();
    let files: [&[u8]; 3] = [b"a small photo", &big, b"first part|second part"];
    let split = 11;
    let piece = |session: &str, offset: usize, length: usize, close: bool| AppendBatchEntry {
        cursor: UploadSessionCursor {
            session_id: session.to_owned(),
            offset: offset as u64,
        },
        length: length as u64,
        close,
    };
    let entries = [
        piece(&ids[0], 0, files[0].len(), true),
        piece(&ids[1], 0, files[1].len(), true),
        piece(&ids[2], 0, split, false),
    ];
    let body = Bytes::from([files[0], files[1], &files[2][..split]].concat());
    let hash = content_hash::content_hash(&body);
    let results = client
        .upload_session_append_batch(&token, &entries, body, Some(hash), None)
        .await
        .expect("append_batch");
    assert_eq!(results, vec![AppendBatchResult::Success; 3]);
    // A stale cursor fails alone, with the session's real offset; the other entry lands.
    let rest = &files[2][split..];
    let entries = [
        piece(&ids[0], 0, 1, false),
        piece(&ids[2], split, rest.len(), true),
    ];
    let body = Bytes::from([b"x", rest].concat());
    let results = client
        .upload_session_append_batch(&token, &entries, body, None, None)
        .await
        .expect("append_batch");
    assert_eq!(
        results,
        [
            AppendBatchResult::Failure(AppendBatchEntryError::IncorrectOffset {
                correct_offset: files[0].len() as u64
            }),
            AppendBatchResult::Success,
        ]
    );
    // A whole-request error decodes as the route's own.
    let e = client
        .upload_session_append_batch(
            &token,
            &[piece(&ids[0], 0, 2, false)],
            Bytes::from_static(b"ab"),
            Some(content_hash::content_hash(b"not ab")),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(UploadSessionAppendBatchError::ContentHashMismatch)
        ),
        "{e:?}"
    );
    let commits: Vec<UploadSessionFinishArg> = ids
        .iter()
        .zip(files)
        .enumerate()
        .map(|(i, (id, data))| UploadSessionFinishArg {
            cursor: UploadSessionCursor {
                session_id: id.clone(),
                offset: data.len() as u64,
            },
            commit: CommitInfo::new(format!("/Batch/{i}.bin")),
            content_hash: None,
        })
        .collect();
    let committed = client
        .upload_session_finish_batch(&token, &commits)
        .await
        .expect("finish_batch_v2");
    for (i, (result, data)) in committed.iter().zip(files).enumerate() {
        let FinishBatchEntry::Success(metadata) = result else {
            panic!("entry {i}: {result:?}");
        };
        let want = content_hash::content_hash(data);
        assert_eq!(metadata.content_hash.as_deref(), Some(want.as_str()));
        let stored = emu
            .files()
            .into_iter()
            .find(|f| f.path_lower == format!("/batch/{i}.bin"))
            .expect("stored");
        assert_eq!(stored.content_hash, want);
    }
}

#[tokio::test]
async fn a_batch_at_the_client_limit_goes_in_one_request_each() {
    // MAX_APPEND_BATCH_ENTRIES entries make a Dropbox-API-Arg header of some 60 KB: the whole
    // way through, one request per route.
    let (emu, _dir, client, token) = emulator().await;
    let n = MAX_APPEND_BATCH_ENTRIES;
    let ids = client
        .upload_session_start_batch(&token, n)
        .await
        .expect("start_batch");
    let data: Vec<Vec<u8>> = (0..n).map(|i| format!("photo {i}").into_bytes()).collect();
    let entries: Vec<AppendBatchEntry> = ids
        .iter()
        .zip(&data)
        .map(|(id, d)| AppendBatchEntry {
            cursor: UploadSessionCursor {
                session_id: id.clone(),
                offset: 0,
            },
            length: d.len() as u64,
            close: true,
        })
        .collect();
    let body = Bytes::from(data.concat());
    let hash = content_hash::content_hash(&body);
    let results = client
        .upload_session_append_batch(&token, &entries, body, Some(hash), None)
        .await
        .expect("append_batch");
    assert!(results.iter().all(|r| *r == AppendBatchResult::Success));
    let commits: Vec<UploadSessionFinishArg> = ids
        .iter()
        .zip(&data)
        .enumerate()
        .map(|(i, (id, d))| UploadSessionFinishArg {
            cursor: UploadSessionCursor {
                session_id: id.clone(),
                offset: d.len() as u64,
            },
            commit: CommitInfo::new(format!("/Full/{i}.txt")),
            content_hash: None,
        })
        .collect();
    let committed = client
        .upload_session_finish_batch(&token, &commits)
        .await
        .expect("finish_batch_v2");
    assert!(
        committed
            .iter()
            .all(|r| matches!(r, FinishBatchEntry::Success(_)))
    );
    assert_eq!(emu.files().len(), n);
    let routes: Vec<String> = emu.requests().into_iter().map(|r| r.route).collect();
    assert_eq!(
        routes,
        [
            "/2/files/upload_session/start_batch",
            "/2/files/upload_session/append_batch",
            "/2/files/upload_session/finish_batch_v2"
        ]
    );
}
