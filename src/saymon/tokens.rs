//! API tokens: `POST` and `DELETE /node/api/users/{id}/auth-token`.
//!
//! One token per user, 43 characters from the CSPRNG, stored only as its
//! hash (plus its last 4 characters as a hint); shown once, on creation. A
//! new one replaces the old. API tokens do not expire; they end when deleted,
//! replaced, or when the user is deactivated or deleted.

use super::auth::{credential_owner, ManageUsers};
use super::error::SaymonError;
use super::users::user_by_id;
use crate::core::ids::new_token;
use crate::core::model::ApiToken;
use crate::core::token::{hash_token, last_part};
use crate::core::{Core, CoreError, User};
use crate::http::ApiTags;
use poem_openapi::{param::Path, payload::Json, ApiResponse, OpenApi};
use std::sync::Arc;

/// Characters of the token kept as a hint.
pub const HINT_LEN: usize = 4;

/// `POST` and `DELETE /node/api/users/{id}/auth-token`.
pub struct TokensApi {
    pub core: Arc<Core>,
}

/// The active user holding this API token, with the stored token entry.
pub async fn api_token_user(
    core: &Core,
    token: &str,
) -> Result<Option<(User, ApiToken)>, CoreError> {
    let Some(entry) = core.store().find_api_token(&hash_token(token)).await? else {
        return Ok(None);
    };
    let owner = credential_owner(core, entry.user_id.clone()).await?;
    Ok(owner.map(|u| (u, entry)))
}

/// Issues a new API token for the user, replacing any previous one.
pub async fn issue_api_token(core: &Core, user_id: &str) -> Result<String, CoreError> {
    let token = new_token();
    let entry = ApiToken {
        user_id: user_id.to_string(),
        hashed_token: hash_token(&token),
        created_at: core.now(),
        last_part: last_part(&token, HINT_LEN),
    };
    core.store().set_api_token(&entry).await?;
    Ok(token)
}

/// A new API token.
#[derive(ApiResponse)]
pub enum TokenCreated {
    /// The token as a JSON string. It is shown only here; store it.
    #[oai(status = 200)]
    Ok(Json<String>),
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCreated(<redacted>)")
    }
}

/// The API token is gone.
#[derive(ApiResponse, Debug)]
pub enum TokenDeleted {
    /// Empty body.
    #[oai(status = 200)]
    Ok,
}

#[OpenApi(tag = "ApiTags::Saymon")]
impl TokensApi {
    /// Create the API token of a user (permission `manage-users`), replacing
    /// its previous one. Pass it as `?api-token=` on later requests, or trade
    /// it for a session. 404 `ResourceNotFound` for an unknown user.
    #[oai(
        path = "/node/api/users/:id/auth-token",
        method = "post",
        operation_id = "saymon.authToken.create"
    )]
    async fn create(
        &self,
        _auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
    ) -> Result<TokenCreated, SaymonError> {
        let user = user_by_id(&self.core, &id.0).await?;
        let token = issue_api_token(&self.core, &user.id).await?;
        Ok(TokenCreated::Ok(Json(token)))
    }

    /// Delete the API token of a user (permission `manage-users`). Empty body;
    /// the user's `authenticationToken` reads `null` afterwards and the old
    /// token is refused. Deleting when there is none succeeds too. 404
    /// `ResourceNotFound` for an unknown user.
    #[oai(
        path = "/node/api/users/:id/auth-token",
        method = "delete",
        operation_id = "saymon.authToken.delete"
    )]
    async fn delete(
        &self,
        _auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
    ) -> Result<TokenDeleted, SaymonError> {
        let user = user_by_id(&self.core, &id.0).await?;
        self.core.store().delete_api_token(&user.id).await?;
        Ok(TokenDeleted::Ok)
    }
}
