//! The account's details as `dbxportctl account` shows them: its email and quota, read from
//! Dropbox on login and after batches.

use super::Session;
use crate::dropbox::SpaceAllocation;

/// Account details shown by `dbxportctl account`, refreshed on login and after batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountInfo {
    pub email: String,
    pub used_bytes: u64,
    pub allocated_bytes: u64,
}

impl AccountInfo {
    /// Bytes still free, when the allocation is known.
    pub fn free_bytes(&self) -> Option<u64> {
        (self.allocated_bytes > 0).then(|| self.allocated_bytes.saturating_sub(self.used_bytes))
    }
}

impl Session {
    /// Reads the account's email and quota from Dropbox (on login and after batches).
    pub async fn refresh_info(&self) {
        let Ok(token) = self.access_token().await else {
            return;
        };
        let account = self.client.get_current_account(&token).await;
        let usage = self.client.get_space_usage(&token).await;
        self.info.send_modify(|info| {
            if let Ok(account) = &account {
                info.email = account.email.clone();
            }
            if let Ok(usage) = &usage {
                info.used_bytes = usage.used;
                info.allocated_bytes = match &usage.allocation {
                    SpaceAllocation::Individual { allocated } => *allocated,
                    SpaceAllocation::Team { allocated, .. } => *allocated,
                    _ => 0,
                };
            }
        });
    }
}
