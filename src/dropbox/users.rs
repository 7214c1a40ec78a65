//! The `users` namespace: who the token belongs to (`users/get_current_account`) and how much
//! of their space is used (`users/get_space_usage`).

use serde::{Deserialize, Serialize};

use super::Client;
use super::error::{Error, VoidError};
use crate::secret::Secret;

/// The user's name parts; only `display_name` is needed for a status line, the rest may be
/// missing without failing the decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub surname: String,
    #[serde(default)]
    pub familiar_name: String,
    pub display_name: String,
    #[serde(default)]
    pub abbreviated_name: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum AccountType {
    Basic,
    Pro,
    Business,
    #[default]
    #[serde(other)]
    Other,
}

/// The linked account (`users/get_current_account`), reduced to what dbxport shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullAccount {
    pub account_id: String,
    pub name: Name,
    pub email: String,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default)]
    pub locale: String,
    #[serde(default)]
    pub account_type: AccountType,
}

/// What a team member may do once over the team's per-member quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum MemberSpaceLimitType {
    Off,
    AlertOnly,
    StopSync,
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum SpaceAllocation {
    /// A personal account: `allocated` bytes in total.
    Individual { allocated: u64 },
    /// A team account: the team's shared quota, and this member's share of it.
    Team {
        used: u64,
        allocated: u64,
        #[serde(default)]
        user_within_team_space_allocated: u64,
        #[serde(default)]
        user_within_team_space_limit_type: MemberSpaceLimitType,
        #[serde(default)]
        user_within_team_space_used_cached: u64,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceUsage {
    /// Bytes used by this user.
    pub used: u64,
    pub allocation: SpaceAllocation,
}

impl Client {
    /// `users/get_current_account`: who the token belongs to.
    pub async fn get_current_account(
        &self,
        token: &Secret,
    ) -> Result<FullAccount, Error<VoidError>> {
        self.rpc(token, "2/users/get_current_account", &()).await
    }

    /// `users/get_space_usage`: bytes used and allocated.
    pub async fn get_space_usage(&self, token: &Secret) -> Result<SpaceUsage, Error<VoidError>> {
        self.rpc(token, "2/users/get_space_usage", &()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_and_space_usage_from_reference() {
        // §3.13.
        let account: FullAccount = serde_json::from_str(
            r#"{"account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
 "name": {"given_name": "Franz", "surname": "Ferdinand", "familiar_name": "Franz", "display_name": "Franz Ferdinand", "abbreviated_name": "FF"},
 "email": "franz@example.com", "email_verified": true, "disabled": false, "country": "US", "locale": "en",
 "referral_link": "https://db.tt/ZITNuhtI", "is_paired": false, "account_type": {".tag": "basic"},
 "root_info": {".tag": "user", "root_namespace_id": "3235641", "home_namespace_id": "3235641"}}"#,
        )
        .unwrap();
        assert_eq!(
            account.account_id,
            "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
        );
        assert_eq!(account.name.display_name, "Franz Ferdinand");
        assert_eq!(account.email, "franz@example.com");
        assert_eq!(account.account_type, AccountType::Basic);
        assert_eq!(account.country.as_deref(), Some("US"));

        let usage: SpaceUsage = serde_json::from_str(
            r#"{"used": 314159265, "allocation": {".tag": "individual", "allocated": 2147483648}}"#,
        )
        .unwrap();
        assert_eq!(usage.used, 314159265);
        assert_eq!(
            usage.allocation,
            SpaceAllocation::Individual {
                allocated: 2147483648
            }
        );

        let team: SpaceUsage = serde_json::from_str(
            r#"{"used": 5, "allocation": {".tag": "team", "used": 10, "allocated": 100,
                "user_within_team_space_allocated": 0,
                "user_within_team_space_limit_type": {".tag": "alert_only"},
                "user_within_team_space_used_cached": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            team.allocation,
            SpaceAllocation::Team {
                used: 10,
                allocated: 100,
                user_within_team_space_allocated: 0,
                user_within_team_space_limit_type: MemberSpaceLimitType::AlertOnly,
                user_within_team_space_used_cached: 5,
            }
        );
        let future: SpaceUsage = serde_json::from_str(
            r#"{"used": 1, "allocation": {".tag": "galactic", "parsecs": 3}}"#,
        )
        .unwrap();
        assert_eq!(future.allocation, SpaceAllocation::Other);
    }
}
