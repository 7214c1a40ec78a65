//! The upload routes: `files/upload`, `upload_session/{start, append_v2, finish}` (upload
//! style) and `upload_session/finish_batch_v2` (RPC). Their error unions differ in shape in
//! ways clients trip over (reference §10 item 4), so each route builds its own: upload's
//! WriteError sits under `reason` beside `upload_session_id`, finish's under `path`; append's
//! `incorrect_offset` is top-level, finish's is under `lookup_failed`.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::super::args::{self, FieldError, Fields};
use super::super::paths;
use super::super::sessions::{Assembled, Assembly, FinishFailure, LookupFailure, Session};
use super::super::store::{CommitError, CommitInfo, Content, Mode, WriteError};
use super::super::wire::{ApiError, Reply, flat, nested, void};
use super::{Call, Failure};

/// At most this many entries in one finish_batch_v2.
const MAX_BATCH: usize = 1000;

/// Reads `CommitInfo`.
fn commit_info(fields: &Fields<'_>) -> Result<CommitInfo, FieldError> {
    let path = fields.pattern(
        "path",
        paths::WRITE_PATH_OR_ID,
        paths::matches_write_path_or_id,
    )?;
    let mode = match fields.opt_union("mode")? {
        None => Mode::Add,
        Some(union) => match union.tag {
            "add" => Mode::Add,
            "overwrite" => Mode::Overwrite,
            "update" => {
                let rev = union.string_member()?;
                let valid = rev.len() >= 9
                    && rev
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !valid {
                    return Err(FieldError(format!(
                        "{}: '{rev}' did not match pattern '[0-9a-f]+' of at least 9 characters",
                        fields.name("mode")
                    )));
                }
                Mode::Update(rev.to_owned())
            }
            _ => return Err(union.unknown()),
        },
    };
    fields.bool_or("mute", false)?;
    Ok(CommitInfo {
        path: path.to_owned(),
        mode,
        autorename: fields.bool_or("autorename", false)?,
        client_modified: args::timestamp(fields, "client_modified")?,
        strict_conflict: fields.bool_or("strict_conflict", false)?,
    })
}

/// `{"session_id", "offset"}`.
pub(super) fn cursor(fields: &Fields<'_>) -> Result<(String, u64), FieldError> {
    let cursor = fields.object("cursor")?;
    Ok((cursor.str("session_id")?.to_owned(), cursor.u64("offset")?))
}

pub(super) fn io(action: &str, error: std::io::Error) -> Failure {
    ApiError::io(action, error).into()
}

/// `files/upload`: one request, one file.
pub(crate) async fn upload(mut call: Call<'_>) -> Result<Reply, Failure> {
    let (info, expected) = {
        let fields = call.fields()?;
        let info = commit_info(&fields).map_err(|e| call.bad(e))?;
        (info, args::content_hash(&fields).map_err(|e| call.bad(e))?)
    };
    let body = call.spool().await?;
    if expected.is_some_and(|h| h != body.hash) {
        return Err(ApiError::tag("content_hash_mismatch").into());
    }
    let content = Content {
        path: body.file.path(),
        size: body.size,
        hash: &body.hash,
    };
    match call.shared.store.commit_file(&info, content).await {
        Ok(item) => Ok(Reply::Json(item.json(false))),
        Err(CommitError::Write(error)) => {
            // Dropbox keeps the bytes in a session, so the commit can be retried with
            // upload_session/finish without sending them again.
            let session_id = call
                .shared
                .sessions
                .create(false, false, Some(body))
                .await
                .map_err(|e| io("keeping the upload in a session", e))?;
            Err(ApiError::Route(json!({
                ".tag": "path",
                "reason": error.json(),
                "upload_session_id": session_id,
            }))
            .into())
        }
        Err(CommitError::Io(e)) => Err(io("committing the upload", e)),
    }
}

/// `upload_session/start`.
pub(crate) async fn start(mut call: Call<'_>) -> Result<Reply, Failure> {
    let (close, concurrent, expected) = {
        let fields = call.fields()?;
        let close = fields.bool_or("close", false).map_err(|e| call.bad(e))?;
        let concurrent = match fields.opt_union("session_type").map_err(|e| call.bad(e))? {
            None => false,
            Some(union) => match union.tag {
                "sequential" => false,
                "concurrent" => true,
                _ => return Err(call.bad(union.unknown()).into()),
            },
        };
        let expected = args::content_hash(&fields).map_err(|e| call.bad(e))?;
        (close, concurrent, expected)
    };
    let body = call.spool().await?;
    if expected.is_some_and(|h| h != body.hash) {
        return Err(ApiError::tag("content_hash_mismatch").into());
    }
    if concurrent && body.size > 0 {
        return Err(ApiError::tag("concurrent_session_data_not_allowed").into());
    }
    if concurrent && close {
        return Err(ApiError::tag("concurrent_session_close_not_allowed").into());
    }
    let first = (body.size > 0).then_some(body);
    let session_id = call
        .shared
        .sessions
        .create(concurrent, close, first)
        .await
        .map_err(|e| io("starting a session", e))?;
    if let Some(index) = call.log {
        call.shared.log.started(index.0, &session_id);
    }
    Ok(Reply::Json(json!({ "session_id": session_id })))
}

/// `upload_session/append_v2`: errors are UploadSessionAppendError, lookup members top-level.
pub(crate) async fn append(mut call: Call<'_>) -> Result<Reply, Failure> {
    let ((session_id, offset), close, expected) = {
        let fields = call.fields()?;
        let cursor = cursor(&fields).map_err(|e| call.bad(e))?;
        let close = fields.bool_or("close", false).map_err(|e| call.bad(e))?;
        let expected = args::content_hash(&fields).map_err(|e| call.bad(e))?;
        (cursor, close, expected)
    };
    let body = call.spool().await?;
    if expected.is_some_and(|h| h != body.hash) {
        return Err(ApiError::tag("content_hash_mismatch").into());
    }
    let Some(mut session) = call.shared.sessions.lock(&session_id).await else {
        return Err(ApiError::Route(LookupFailure::NotFound.json()).into());
    };
    session
        .check_append(offset, body.size, close)
        .map_err(|failure| ApiError::Route(failure.json()))?;
    session
        .add_part(offset, body, close)
        .await
        .map_err(|e| io("appending to the session", e))?;
    Ok(Reply::Null)
}

/// `upload_session/finish`: the last chunk (or none) and the commit.
pub(crate) async fn finish(mut call: Call<'_>) -> Result<Reply, Failure> {
    let ((session_id, offset), info, expected) = {
        let fields = call.fields()?;
        let cursor = cursor(&fields).map_err(|e| call.bad(e))?;
        let commit = fields.object("commit").map_err(|e| call.bad(e))?;
        let info = commit_info(&commit).map_err(|e| call.bad(e))?;
        let expected = args::content_hash(&fields).map_err(|e| call.bad(e))?;
        (cursor, info, expected)
    };
    let body = call.spool().await?;
    if expected.is_some_and(|h| h != body.hash) {
        return Err(ApiError::tag("content_hash_mismatch").into());
    }
    let Some(mut session) = call.shared.sessions.lock(&session_id).await else {
        return Err(finish_error(FinishFailure::Lookup(LookupFailure::NotFound)));
    };
    session
        .check_finish(offset, body.size)
        .map_err(finish_error)?;
    if body.size > 0 {
        // Kept even if the commit fails: the retry is a finish with an empty body.
        session
            .add_part(offset, body, false)
            .await
            .map_err(|e| io("appending to the session", e))?;
    }
    match commit_session(&call, &mut session, &info).await? {
        Ok(metadata) => Ok(Reply::Json(metadata)),
        Err(error) => Err(ApiError::Route(nested("path", error.json())).into()),
    }
}

fn finish_error(failure: FinishFailure) -> Failure {
    ApiError::Route(failure.json()).into()
}

/// Commits a session's bytes; on success the session is gone and the FileMetadata (no
/// `.tag`) is returned.
async fn commit_session(
    call: &Call<'_>,
    session: &mut Session,
    info: &CommitInfo,
) -> Result<Result<Value, WriteError>, Failure> {
    let shared = call.shared;
    let assembled = session
        .assemble()
        .await
        .map_err(|e| io("reading the session", e))?;
    let content = Content {
        path: &assembled.path,
        size: assembled.size,
        hash: &assembled.hash,
    };
    match shared.store.commit_file(info, content).await {
        Ok(item) => {
            shared.log.committed(&session.id, &item.key);
            shared.sessions.consume(session).await;
            Ok(Ok(item.json(false)))
        }
        Err(CommitError::Write(error)) => Ok(Err(error)),
        Err(CommitError::Io(e)) => Err(io("committing the session", e)),
    }
}

/// `upload_session/finish_batch_v2`: commits closed sessions; HTTP 200 with one `success`
/// or `failure` per entry, in order.
pub(crate) async fn finish_batch(call: Call<'_>) -> Result<Reply, Failure> {
    let entries = {
        let fields = call.fields()?;
        let list = fields.list("entries").map_err(|e| call.bad(e))?;
        if list.len() > MAX_BATCH {
            return Err(call
                .bad(FieldError(format!(
                    "entries: list has {} items, more than the maximum of {MAX_BATCH}",
                    list.len()
                )))
                .into());
        }
        let mut entries = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let parsed = Fields::of(entry).and_then(|fields| {
                let cursor = cursor(&fields)?;
                let info = commit_info(&fields.object("commit")?)?;
                Ok((cursor, info))
            });
            let parsed =
                parsed.map_err(|e| call.bad(FieldError(format!("entries[{i}]: {}", e.0))))?;
            entries.push(parsed);
        }
        entries
    };
    let shared = call.shared;
    // Injected write-lock contention refuses single entries: nothing of theirs is committed,
    // their sessions are not even looked at.
    let refused: Vec<bool> = entries
        .iter()
        .map(|_| {
            let refused = call.entry_contention > 0 && shared.faults.chance(call.entry_contention);
            if refused {
                shared.faults.note_entry_refused();
            }
            refused
        })
        .collect();
    // Every session of the batch is locked before the store's write lock (the order `finish`
    // takes them in), in the order of their ids so two batches naming the same sessions
    // cannot deadlock. A session named twice is locked once.
    let mut ids: Vec<&str> = entries
        .iter()
        .zip(&refused)
        .filter(|(_, refused)| !**refused)
        .map(|(((id, _), _), _)| id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut sessions = HashMap::with_capacity(ids.len());
    for id in ids {
        if let Some(guard) = shared.sessions.lock(id).await {
            sessions.insert(id.to_owned(), guard);
        }
    }
    // The checks and the assembly (no bytes read when the parts are block-aligned) do not
    // depend on the order of commits: done up front, in one blocking task.
    let checks: Vec<Option<Result<(), FinishFailure>>> = entries
        .iter()
        .zip(&refused)
        .map(|(((id, offset), _), refused)| {
            let session = sessions.get(id).filter(|_| !*refused)?;
            Some(session.check_batch(*offset))
        })
        .collect();
    let mut wanted: Vec<&str> = entries
        .iter()
        .zip(&checks)
        .filter(|(_, check)| matches!(check, Some(Ok(()))))
        .map(|(((id, _), _), _)| id.as_str())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let assemblies: Vec<(String, Assembly)> = wanted
        .into_iter()
        .map(|id| (id.to_owned(), sessions[id].assembly()))
        .collect();
    let assembled: HashMap<String, Assembled> = tokio::task::spawn_blocking(move || {
        assemblies
            .into_iter()
            .map(|(id, assembly)| Ok((id, assembly.run()?)))
            .collect::<std::io::Result<_>>()
    })
    .await
    .map_err(|e| io("reading the session", std::io::Error::other(e)))?
    .map_err(|e| io("reading the session", e))?;
    // The commits, in order, under one write lock and with one index write.
    let mut batch = shared.store.batch().await;
    let mut results = Vec::with_capacity(entries.len());
    let mut committed: Vec<(String, String)> = Vec::new();
    let mut committed_ids = HashSet::new();
    let mut failed = None;
    for ((((session_id, _), info), refused), check) in entries.iter().zip(&refused).zip(checks) {
        if *refused {
            results.push(nested("failure", void("too_many_write_operations")));
            continue;
        }
        let gone = committed_ids.contains(session_id.as_str());
        let result = match check {
            _ if gone => Err(FinishFailure::Lookup(LookupFailure::NotFound).json()),
            None => Err(FinishFailure::Lookup(LookupFailure::NotFound).json()),
            Some(Err(failure)) => Err(failure.json()),
            Some(Ok(())) => {
                let assembled = &assembled[session_id.as_str()];
                let content = Content {
                    path: &assembled.path,
                    size: assembled.size,
                    hash: &assembled.hash,
                };
                match batch.commit_file(info, content).await {
                    Ok(item) => {
                        committed_ids.insert(session_id.as_str());
                        committed.push((session_id.clone(), item.key.clone()));
                        Ok(item.json(false))
                    }
                    Err(CommitError::Write(error)) => Err(nested("path", error.json())),
                    Err(CommitError::Io(e)) => {
                        failed = Some(io("committing the session", e));
                        break;
                    }
                }
            }
        };
        results.push(match result {
            Ok(metadata) => flat("success", metadata),
            Err(failure) => nested("failure", failure),
        });
    }
    // The index is on disk before the answer.
    let flushed = batch.finish().await;
    for (session_id, path_lower) in &committed {
        shared.log.committed(session_id, path_lower);
    }
    let mut done: Vec<_> = committed
        .iter()
        .filter_map(|(id, _)| sessions.remove(id.as_str()))
        .collect();
    shared
        .sessions
        .consume_all(done.iter_mut().map(|guard| &mut **guard))
        .await;
    if let Some(failure) = failed {
        return Err(failure);
    }
    flushed.map_err(|e| io("committing the session", e))?;
    Ok(Reply::Json(json!({ "entries": results })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_info_defaults_and_modes() {
        let value = json!({"path": "/a.jpg"});
        let info = commit_info(&Fields::of(&value).unwrap()).unwrap();
        assert_eq!(info.mode, Mode::Add);
        assert!(!info.autorename && !info.strict_conflict && info.client_modified.is_none());
        let value =
            json!({"path": "/a.jpg", "mode": {".tag": "update", "update": "0123456789abcdef"}});
        let info = commit_info(&Fields::of(&value).unwrap()).unwrap();
        assert_eq!(info.mode, Mode::Update("0123456789abcdef".into()));
        for bad in [
            json!({"path": "a.jpg"}),
            json!({"path": "/a.jpg", "mode": "update"}),
            json!({"path": "/a.jpg", "mode": {".tag": "update", "update": "12"}}),
            json!({"path": "/a.jpg", "mode": "replace"}),
            json!({"path": "/a.jpg", "autorename": "yes"}),
            json!({"mode": "add"}),
        ] {
            assert!(commit_info(&Fields::of(&bad).unwrap()).is_err(), "{bad}");
        }
    }
}
