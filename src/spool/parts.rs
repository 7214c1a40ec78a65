//! A hand-over in parts. One D-Bus message carries at most [`super::MAX_FILES`] (16)
//! descriptors, and darktable hands a whole export over at once, so a caller with more files
//! sends them in several `UploadFds` calls, each but the last with the option `more`. The copies of the
//! parts wait here, still in flight (counted against `spool.max_bytes`, left alone by sweeps),
//! and the last part queues every file as one batch: one notice, one shared link, one batch
//! to `--wait` for. The parts are the caller's (keyed by its unique bus name); a caller that
//! goes away before its last part, or sends a part unlike the first, leaves nothing behind.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use super::{Handover, SpoolError};

/// The parts kept so far, per caller; `C` is what every part of one hand-over must repeat
/// (the folder and the options).
pub struct Parts<C> {
    pending: Mutex<HashMap<String, Pending<C>>>,
}

struct Pending<C> {
    call: C,
    handovers: Vec<Handover>,
    /// Cancelled when the parts are taken or forgotten: the watch on the caller ends.
    ended: CancellationToken,
}

impl<C> Pending<C> {
    fn end(self) -> Vec<Handover> {
        self.ended.cancel();
        self.handovers
    }
}

/// A part that does not belong with the parts before it.
#[derive(Debug, thiserror::Error)]
#[error(
    "this part of a hand-over names another folder or other options than its first part; \
     every part (each call with `more`, and the last without) must give the same ones. The \
     earlier parts are dropped: hand the files over again"
)]
pub struct Mismatch;

impl<C> Default for Parts<C> {
    fn default() -> Self {
        Parts {
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: PartialEq> Parts<C> {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending<C>>> {
        // Plain collections: a panic elsewhere leaves them usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `handover`, a part of `caller`'s hand-over made by `call`, for its last part.
    /// For the first part, returns a token cancelled when the parts are taken or forgotten:
    /// until then the caller's going away is to be watched ([`Parts::forget`]). A part unlike
    /// the first gives back every part, this one too, to be removed.
    pub fn keep(
        &self,
        caller: &str,
        call: C,
        handover: Handover,
    ) -> Result<Option<CancellationToken>, (Mismatch, Vec<Handover>)> {
        let mut pending = self.pending();
        match pending.get_mut(caller) {
            Some(kept) if kept.call == call => {
                kept.handovers.push(handover);
                Ok(None)
            }
            Some(_) => {
                let mut dropped = pending.remove(caller).map(Pending::end).unwrap_or_default();
                dropped.push(handover);
                Err((Mismatch, dropped))
            }
            None => {
                let ended = CancellationToken::new();
                pending.insert(
                    caller.to_string(),
                    Pending {
                        call,
                        handovers: vec![handover],
                        ended: ended.clone(),
                    },
                );
                Ok(Some(ended))
            }
        }
    }

    /// The parts `caller` kept before its last part, made by `call`, in order (none for a
    /// hand-over in one call). A last part unlike the first gives back the earlier parts, to
    /// be removed.
    pub fn take(&self, caller: &str, call: &C) -> Result<Vec<Handover>, (Mismatch, Vec<Handover>)> {
        match self.pending().remove(caller) {
            None => Ok(Vec::new()),
            Some(kept) if kept.call == *call => Ok(kept.end()),
            Some(kept) => Err((Mismatch, kept.end())),
        }
    }

    /// `caller` went away (or was refused) before its last part: its parts, to be removed.
    pub fn forget(&self, caller: &str) -> Vec<Handover> {
        self.pending()
            .remove(caller)
            .map(Pending::end)
            .unwrap_or_default()
    }
}

impl From<Mismatch> for SpoolError {
    fn from(mismatch: Mismatch) -> Self {
        SpoolError::Invalid(mismatch.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::spool::Spool;

    /// A hand-over of one file named `name`, copied into `spool`.
    fn one(spool: &Arc<Spool>, dir: &std::path::Path, name: &str) -> Handover {
        let path = dir.join(name);
        std::fs::write(&path, name).unwrap();
        let fd = std::os::fd::OwnedFd::from(std::fs::File::open(&path).unwrap());
        spool.take(vec![(name.to_string(), fd)]).unwrap()
    }

    fn names(parts: &[Handover]) -> Vec<&str> {
        parts
            .iter()
            .flat_map(|h| h.files.iter().map(|(_, n)| n.as_str()))
            .collect()
    }

    #[test]
    fn parts_wait_per_caller_and_come_back_in_order_or_whole_on_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"), u64::MAX);
        std::fs::create_dir(spool.dir()).unwrap();
        let parts = Parts::<&str>::default();
        // The first part hands back the token that ends the watch on the caller.
        let ended = parts
            .keep(":1.7", "/A", one(&spool, dir.path(), "a"))
            .unwrap();
        let ended = ended.expect("the first part starts a watch");
        assert!(
            parts
                .keep(":1.7", "/A", one(&spool, dir.path(), "b"))
                .unwrap()
                .is_none()
        );
        assert!(
            parts
                .keep(":1.8", "/B", one(&spool, dir.path(), "x"))
                .unwrap()
                .is_some()
        );
        // A caller with nothing kept hands over in one call.
        assert!(parts.take(":1.9", &"/A").unwrap().is_empty());
        let taken = parts.take(":1.7", &"/A").unwrap();
        assert_eq!(names(&taken), ["a", "b"]);
        assert!(ended.is_cancelled(), "taking the parts ends the watch");
        assert!(parts.take(":1.7", &"/A").unwrap().is_empty(), "taken once");
        // A part unlike the first gives everything back, itself too.
        let (_, dropped) = parts
            .keep(":1.8", "/Other", one(&spool, dir.path(), "y"))
            .unwrap_err();
        assert_eq!(names(&dropped), ["x", "y"]);
        assert!(
            parts.forget(":1.8").is_empty(),
            "nothing kept after a mismatch"
        );
        // So does a last part unlike the first (the call's own copy is the caller's to drop).
        parts
            .keep(":1.8", "/B", one(&spool, dir.path(), "z"))
            .unwrap();
        let (_, dropped) = parts.take(":1.8", &"/Other").unwrap_err();
        assert_eq!(names(&dropped), ["z"]);
        parts
            .keep(":1.8", "/B", one(&spool, dir.path(), "w"))
            .unwrap();
        assert_eq!(names(&parts.forget(":1.8")), ["w"]);
        assert!(parts.forget(":1.8").is_empty());
    }
}
