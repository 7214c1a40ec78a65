//! The Void-argument routes: `users/get_current_account`, `users/get_space_usage` and
//! `auth/token/revoke`.

use serde_json::json;

use super::super::wire::{Reply, void};
use super::{Call, Failure};

/// A plausible FullAccount for the emulated user (reference §3.13).
pub(crate) fn get_current_account(call: Call<'_>) -> Result<Reply, Failure> {
    let identity = call.shared.store.identity();
    Ok(Reply::Json(json!({
        "account_id": identity.account_id,
        "name": {
            "given_name": "Emma",
            "surname": "Ulator",
            "familiar_name": "Emma",
            "display_name": "Emma Ulator",
            "abbreviated_name": "EU",
        },
        "email": "emma.ulator@example.com",
        "email_verified": true,
        "disabled": false,
        "country": "US",
        "locale": "en",
        "referral_link": "https://www.dropbox.com/referrals/AAAemulator?src=global9",
        "is_paired": false,
        "account_type": void("basic"),
        "root_info": {
            ".tag": "user",
            "root_namespace_id": identity.namespace_id,
            "home_namespace_id": identity.namespace_id,
        },
    })))
}

pub(crate) fn get_space_usage(call: Call<'_>) -> Result<Reply, Failure> {
    let store = &call.shared.store;
    Ok(Reply::Json(json!({
        "used": store.used(),
        "allocation": { ".tag": "individual", "allocated": store.allocated() },
    })))
}

/// Revokes the presented token (and, if it came from a refresh token, that whole family).
pub(crate) async fn revoke(call: Call<'_>) -> Result<Reply, Failure> {
    call.shared.auth.revoke(&call.token);
    call.shared.auth.flush().await;
    Ok(Reply::Null)
}
