//! `sharing/create_shared_link_with_settings` and `sharing/list_shared_links`. The nesting is
//! where clients and mocks go wrong: SharedLinkMetadata has subtypes, so in
//! `shared_link_already_exists` it sits under `metadata` with its own `.tag`, never flattened.

use base64::Engine;
use serde_json::json;

use super::super::args::{FieldError, Fields};
use super::super::paths::{self, Target};
use super::super::store::{CreateLinkError, LinkSettings, LookupError};
use super::super::wire::{ApiError, Reply, nested};
use super::{Call, Failure};

/// Reads `SharedLinkSettings` as far as deciding what a basic account may have.
fn settings(fields: &Fields<'_>) -> Result<LinkSettings, FieldError> {
    let Some(settings) = fields.opt_object("settings")? else {
        return Ok(LinkSettings::default());
    };
    let mut out = LinkSettings {
        given: !settings.is_empty(),
        ..LinkSettings::default()
    };
    let tag = |key: &str, allowed: &[&str], paid: &[&str]| -> Result<bool, FieldError> {
        match settings.opt_union(key)? {
            None => Ok(false),
            Some(union) if allowed.contains(&union.tag) => Ok(false),
            Some(union) if paid.contains(&union.tag) => Ok(true),
            Some(union) => Err(union.unknown()),
        }
    };
    out.needs_paid_plan |= tag(
        "audience",
        &["public"],
        &["team", "no_one", "password", "members"],
    )?;
    out.needs_paid_plan |= tag(
        "requested_visibility",
        &["public"],
        &["team_only", "password"],
    )?;
    out.needs_paid_plan |= settings.bool_or("require_password", false)?;
    out.needs_paid_plan |= settings.opt_str("link_password")?.is_some();
    out.needs_paid_plan |= super::super::args::timestamp(&settings, "expires")?.is_some();
    out.needs_paid_plan |= settings.opt_bool("allow_download")? == Some(false);
    out.invalid |= tag("access", &["viewer", "default", "max"], &["editor"])?;
    Ok(out)
}

fn read_target(path: &str) -> Result<Target, Failure> {
    paths::parse(path, false)
        .map_err(|_| ApiError::Route(nested("path", LookupError::Malformed.json())).into())
}

pub(crate) async fn create_shared_link(call: Call<'_>) -> Result<Reply, Failure> {
    let (target, settings) = {
        let fields = call.fields()?;
        let path = fields
            .pattern("path", paths::READ_PATH, paths::matches_read_path)
            .map_err(|e| call.bad(e))?;
        (
            read_target(path)?,
            settings(&fields).map_err(|e| call.bad(e))?,
        )
    };
    match call.shared.store.create_link(&target, &settings).await {
        Ok(metadata) => Ok(Reply::Json(metadata)),
        Err(CreateLinkError::Lookup(error)) => {
            Err(ApiError::Route(nested("path", error.json())).into())
        }
        Err(CreateLinkError::Refused(refusal)) => Err(refusal.into_api().into()),
        Err(CreateLinkError::Io(e)) => Err(ApiError::io("creating a shared link", e).into()),
    }
}

/// The one cursor `list_shared_links` hands out (all links fit in one page).
fn links_cursor(call: &Call<'_>) -> String {
    let epoch = call.shared.store.identity().epoch;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("links:{epoch}"))
}

pub(crate) fn list_shared_links(call: Call<'_>) -> Result<Reply, Failure> {
    let fields = call.fields()?;
    let path = match fields.opt_str("path").map_err(|e| call.bad(e))? {
        None => None,
        Some(_) => Some(
            fields
                .pattern("path", paths::READ_PATH, paths::matches_read_path)
                .map_err(|e| call.bad(e))?,
        ),
    };
    let cursor = fields.opt_str("cursor").map_err(|e| call.bad(e))?;
    let direct_only = fields
        .bool_or("direct_only", false)
        .map_err(|e| call.bad(e))?;
    if cursor.is_some_and(|c| c != links_cursor(&call)) {
        return Err(ApiError::tag("reset").into());
    }
    let store = &call.shared.store;
    match path {
        Some(path) => {
            let target = read_target(path)?;
            let links = store
                .links(Some(&target), direct_only)
                .map_err(|e| ApiError::Route(nested("path", e.json())))?;
            Ok(Reply::Json(json!({ "links": links, "has_more": false })))
        }
        None => {
            let links = store.links(None, direct_only).unwrap_or_default();
            Ok(Reply::Json(
                json!({ "links": links, "has_more": false, "cursor": links_cursor(&call) }),
            ))
        }
    }
}
