//! Reference bodies, as Dropbox's documentation and the official spec (`dropbox/dropbox-api-spec`) give them, that tests in several modules decode, kept once.

/// The link inside §3.14's `shared_link_already_exists` example, byte for byte (a macro so that
/// [`ALREADY_EXISTS`] can be built from it at compile time).
macro_rules! file_link {
    () => {
        r#"{".tag": "file", "url": "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0",
                           "id": "id:a4ayc_80_OEAAAAAAAAAXw", "name": "a.jpg", "path_lower": "/photos/a.jpg",
                           "link_permissions": {"resolved_visibility": {".tag": "public"}, "can_revoke": true, "visibility_policies": [],
                                                "can_set_expiry": false, "can_remove_expiry": false, "allow_download": true,
                                                "can_allow_download": true, "can_disallow_download": false,
                                                "allow_comments": true, "team_restricts_comments": false},
                           "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z",
                           "rev": "015f1a2b3c4d5e600000001a2b3c4d0", "size": 7212}"#
    };
}

pub(crate) const FILE_LINK: &str = file_link!();

/// §3.14's `shared_link_already_exists` example, with the link.
pub(crate) const ALREADY_EXISTS: &str = concat!(
    r#"{"error_summary": "shared_link_already_exists/metadata/..",
 "error": {".tag": "shared_link_already_exists",
           "shared_link_already_exists": {".tag": "metadata",
              "metadata": "#,
    file_link!(),
    "}}}"
);

/// `files/upload`'s FileMetadata example from the reference (§3.1).
pub(crate) const FILE_METADATA: &str = r#"{"name": "IMG_0001.jpg", "path_lower": "/photos/2024/img_0001.jpg", "path_display": "/Photos/2024/IMG_0001.jpg",
 "id": "id:a4ayc_80_OEAAAAAAAAAXw", "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z",
 "rev": "015f1a2b3c4d5e600000001a2b3c4d0", "size": 7212, "is_downloadable": true,
 "content_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#;
