//! API tokens: `POST` and `DELETE /node/api/users/{id}/auth-token`.
//!
//! One token per user, 43 characters from the CSPRNG, stored only as its
//! hash (plus its last 4 characters as a hint); shown once, on creation. A
//! new one replaces the old. API tokens do not expire; they end when deleted,
//! replaced, or when the user is deactivated or deleted.

use super::auth::ManageUsers;
use super::error::SaymonError;
use crate::core::service::IssueApiToken;
use crate::core::Core;
use crate::http::ApiTags;
use poem_openapi::{param::Path, payload::Json, ApiResponse, OpenApi};
use std::sync::Arc;

/// `POST` and `DELETE /node/api/users/{id}/auth-token`.
pub struct TokensApi {
    pub core: Arc<Core>,
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
    /// it for a session. 404 `ResourceNotFound` for an unknown user; 403 for
    /// a user holding permissions the caller lacks.
    #[oai(
        path = "/node/api/users/:id/auth-token",
        method = "post",
        operation_id = "saymon.authToken.create"
    )]
    async fn create(
        &self,
        auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
    ) -> Result<TokenCreated, SaymonError> {
        match self.core.issue_api_token(&auth.0, &id.0).await? {
            IssueApiToken::Issued(token) => Ok(TokenCreated::Ok(Json(token.into_exposed()))),
            IssueApiToken::NoSuchUser => Err(SaymonError::user_not_found(&id.0)),
            IssueApiToken::Outranked => Err(SaymonError::beyond_own_permissions()),
        }
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
        auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
    ) -> Result<TokenDeleted, SaymonError> {
        if self.core.delete_api_token(&auth.0, &id.0).await? {
            Ok(TokenDeleted::Ok)
        } else {
            Err(SaymonError::user_not_found(&id.0))
        }
    }
}
