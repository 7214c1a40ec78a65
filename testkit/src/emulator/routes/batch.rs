//! The batch forms of the session routes, as the official spec (`files.stone`) defines them:
//! `upload_session/start_batch` (RPC: `num_sessions` empty sessions) and
//! `upload_session/append_batch` (upload style: the body is the entries' pieces concatenated
//! in order). append_batch fails in two layers. The whole request is refused with a 409
//! `UploadSessionAppendBatchError` when the body is too large (`payload_too_large`), does not
//! match the argument's `content_hash` (`content_hash_mismatch`, of the whole body) or is not
//! as long as the entries' lengths together (`length_mismatch`); then nothing is applied.
//! Otherwise the answer is a 200 with one result per entry, in order, and each entry is applied
//! or not on its own by `append_v2`'s rules (`Session::check_append`): a failed entry leaves
//! its session as it was, the others land.

use serde_json::json;

use super::super::args::{self, FieldError, Fields};
use super::super::body;
use super::super::sessions::LookupFailure;
use super::super::wire::{ApiError, Reply, nested, void};
use super::upload::{cursor, io};
use super::{Call, Failure};

/// The spec's `max_items` for `UploadSessionAppendBatchArg.entries`.
const MAX_ENTRIES: usize = 1000;

/// The spec's range of `UploadSessionStartBatchArg.num_sessions`.
const MAX_SESSIONS: u64 = 1000;

/// `upload_session/start_batch`: `num_sessions` empty sessions of `session_type`.
pub(crate) async fn start_batch(call: Call<'_>) -> Result<Reply, Failure> {
    let (count, concurrent) = {
        let fields = call.fields()?;
        let count = fields.u64("num_sessions").map_err(|e| call.bad(e))?;
        if !(1..=MAX_SESSIONS).contains(&count) {
            return Err(call
                .bad(FieldError(format!(
                    "num_sessions: {count} is not within the range [1, {MAX_SESSIONS}]"
                )))
                .into());
        }
        let concurrent = match fields.opt_union("session_type").map_err(|e| call.bad(e))? {
            None => false,
            Some(union) => match union.tag {
                "sequential" => false,
                "concurrent" => true,
                _ => return Err(call.bad(union.unknown()).into()),
            },
        };
        (count, concurrent)
    };
    let mut ids = Vec::new();
    for _ in 0..count {
        let id = call
            .shared
            .sessions
            .create(concurrent, false, None)
            .await
            .map_err(|e| io("starting a session", e))?;
        ids.push(id);
    }
    if let Some(index) = call.log {
        call.shared.log.started_batch(index.0, &ids);
    }
    Ok(Reply::Json(json!({ "session_ids": ids })))
}

/// One entry of `UploadSessionAppendBatchArg`.
struct Entry {
    session_id: String,
    offset: u64,
    length: u64,
    close: bool,
}

/// `upload_session/append_batch`.
pub(crate) async fn append_batch(mut call: Call<'_>) -> Result<Reply, Failure> {
    let (entries, expected) = {
        let fields = call.fields()?;
        let list = fields.list("entries").map_err(|e| call.bad(e))?;
        if list.len() > MAX_ENTRIES {
            return Err(call
                .bad(FieldError(format!(
                    "entries: list has {} items, more than the maximum of {MAX_ENTRIES}",
                    list.len()
                )))
                .into());
        }
        let mut entries = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let parsed = Fields::of(entry).and_then(|fields| {
                let (session_id, offset) = cursor(&fields)?;
                Ok(Entry {
                    session_id,
                    offset,
                    length: fields.u64("length")?,
                    close: fields.bool_or("close", false)?,
                })
            });
            let parsed =
                parsed.map_err(|e| call.bad(FieldError(format!("entries[{i}]: {}", e.0))))?;
            entries.push(parsed);
        }
        let expected = args::content_hash(&fields).map_err(|e| call.bad(e))?;
        (entries, expected)
    };
    // The whole request first: nothing is applied unless the body is what the argument says.
    let body = call.spool().await?;
    if expected.is_some_and(|h| h != body.hash) {
        return Err(ApiError::tag("content_hash_mismatch").into());
    }
    let total = entries
        .iter()
        .try_fold(0u64, |sum, entry| sum.checked_add(entry.length));
    if total != Some(body.size) {
        return Err(ApiError::tag("length_mismatch").into());
    }
    let lengths = entries.iter().map(|entry| entry.length).collect();
    let pieces = body::split(&body, lengths, call.shared.store.tmp_dir())
        .await
        .map_err(|e| io("splitting the batch", e))?;
    drop(body);
    // Then each entry on its own, in order (an entry may continue a session an earlier entry
    // of the same request appended to).
    let shared = call.shared;
    let mut results = Vec::with_capacity(entries.len());
    for (i, (entry, piece)) in entries.into_iter().zip(pieces).enumerate() {
        let misplaced =
            call.entry_incorrect_offset > 0 && shared.faults.chance(call.entry_incorrect_offset);
        let Some(mut session) = shared.sessions.lock(&entry.session_id).await else {
            results.push(failure(LookupFailure::NotFound));
            continue;
        };
        if misplaced {
            // Injected: refused with the session's real offset, whatever the cursor said.
            shared.faults.note_entry_misplaced();
            results.push(failure(LookupFailure::IncorrectOffset(session.len())));
            continue;
        }
        if let Err(refused) = session.check_append(entry.offset, piece.size, entry.close) {
            results.push(failure(refused));
            continue;
        }
        session
            .add_part(entry.offset, piece, entry.close)
            .await
            .map_err(|e| io("appending to the session", e))?;
        if let Some(index) = call.log {
            shared.log.applied(index.0, i);
        }
        results.push(void("success"));
    }
    Ok(Reply::Json(json!({ "entries": results })))
}

/// `{".tag": "failure", "failure": <UploadSessionAppendBatchEntryError>}`: the lookup members
/// `check_append` returns are the entry union's, under the same tags.
fn failure(refused: LookupFailure) -> serde_json::Value {
    nested("failure", refused.json())
}
