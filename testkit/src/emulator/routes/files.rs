//! The metadata routes: `list_folder` (+ `continue`), `get_metadata`, `create_folder_v2`,
//! `delete_v2`. Each wraps LookupError or WriteError in its own union member (`path`,
//! `path_lookup`, `path_write`), and `.tag` appears on Metadata only where the route declares
//! the parent type.

use serde_json::json;

use super::super::args::FieldError;
use super::super::listing;
use super::super::paths::{self, PathProblem, Target};
use super::super::store::{CommitError, DeleteError, LookupError};
use super::super::wire::{ApiError, Reply, nested};
use super::{Call, Failure};

fn lookup_error(member: &str, error: LookupError) -> Failure {
    ApiError::Route(nested(member, error.json())).into()
}

/// A read path: a malformed one is the route's `<member>/malformed_path`.
fn read_target(path: &str, member: &str) -> Result<Target, Failure> {
    paths::parse(path, false).map_err(|_: PathProblem| lookup_error(member, LookupError::Malformed))
}

pub(crate) fn list_folder(call: Call<'_>) -> Result<Reply, Failure> {
    let fields = call.fields()?;
    let path = fields
        .pattern("path", paths::LIST_PATH, paths::matches_list_path)
        .map_err(|e| call.bad(e))?;
    if path == "/" {
        return Err(call
            .bad(FieldError(
                "path: Specify the root folder as an empty string rather than as \"/\".".into(),
            ))
            .into());
    }
    let recursive = fields
        .bool_or("recursive", false)
        .map_err(|e| call.bad(e))?;
    let include_deleted = fields
        .bool_or("include_deleted", false)
        .map_err(|e| call.bad(e))?;
    let limit = match fields.opt_u64("limit").map_err(|e| call.bad(e))? {
        None => listing::DEFAULT_LIMIT,
        Some(limit @ 1..=2000) => limit as u32,
        Some(other) => {
            return Err(call
                .bad(FieldError(format!(
                    "limit: {other} is not within the range [1, 2000]"
                )))
                .into());
        }
    };
    let target = read_target(path, "path")?;
    let store = &call.shared.store;
    let base = store
        .folder_key(&target)
        .map_err(|e| lookup_error("path", e))?;
    let page = store.read(|state| listing::start(state, base, recursive, include_deleted, limit));
    Ok(Reply::Json(page.json()))
}

pub(crate) fn list_folder_continue(call: Call<'_>) -> Result<Reply, Failure> {
    let fields = call.fields()?;
    let cursor = fields.str("cursor").map_err(|e| call.bad(e))?;
    if cursor.is_empty() {
        return Err(call
            .bad(FieldError("cursor: string is empty".into()))
            .into());
    }
    match call
        .shared
        .store
        .read(|state| listing::resume(state, cursor))
    {
        Some(page) => Ok(Reply::Json(page.json())),
        None => Err(ApiError::tag("reset").into()),
    }
}

pub(crate) fn get_metadata(call: Call<'_>) -> Result<Reply, Failure> {
    let fields = call.fields()?;
    if fields.str("path").is_ok_and(str::is_empty) {
        return Err(call
            .bad(FieldError("path: The root folder is unsupported.".into()))
            .into());
    }
    let path = fields
        .pattern("path", paths::READ_PATH, paths::matches_read_path)
        .map_err(|e| call.bad(e))?;
    let include_deleted = fields
        .bool_or("include_deleted", false)
        .map_err(|e| call.bad(e))?;
    let target = read_target(path, "path")?;
    let metadata = call
        .shared
        .store
        .metadata(&target, include_deleted)
        .map_err(|e| lookup_error("path", e))?;
    Ok(Reply::Json(metadata))
}

pub(crate) async fn create_folder(call: Call<'_>) -> Result<Reply, Failure> {
    let (path, autorename) = {
        let fields = call.fields()?;
        let path = fields
            .pattern("path", paths::WRITE_PATH, paths::matches_write_path)
            .map_err(|e| call.bad(e))?;
        let autorename = fields
            .bool_or("autorename", false)
            .map_err(|e| call.bad(e))?;
        (path.to_owned(), autorename)
    };
    match call.shared.store.create_folder(&path, autorename).await {
        Ok(item) => Ok(Reply::Json(json!({ "metadata": item.json(false) }))),
        Err(CommitError::Write(error)) => Err(ApiError::Route(nested("path", error.json())).into()),
        Err(CommitError::Io(e)) => Err(ApiError::io("creating a folder", e).into()),
    }
}

pub(crate) async fn delete(call: Call<'_>) -> Result<Reply, Failure> {
    let (target, parent_rev) = {
        let fields = call.fields()?;
        let path = fields
            .pattern(
                "path",
                paths::WRITE_PATH_OR_ID,
                paths::matches_write_path_or_id,
            )
            .map_err(|e| call.bad(e))?;
        let parent_rev = fields
            .opt_str("parent_rev")
            .map_err(|e| call.bad(e))?
            .map(str::to_owned);
        (read_target(path, "path_lookup")?, parent_rev)
    };
    match call
        .shared
        .store
        .delete(&target, parent_rev.as_deref())
        .await
    {
        Ok(item) => Ok(Reply::Json(json!({ "metadata": item.json(true) }))),
        Err(DeleteError::Lookup(error)) => Err(lookup_error("path_lookup", error)),
        Err(DeleteError::Write(error)) => {
            Err(ApiError::Route(nested("path_write", error.json())).into())
        }
        Err(DeleteError::Io(e)) => Err(ApiError::io("deleting", e).into()),
    }
}
