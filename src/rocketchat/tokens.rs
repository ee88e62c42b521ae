//! `users.createToken`.

use super::auth::RcAuth;
use super::body::RcBody;
use super::error::RcError;
use crate::core::service::CreateToken;
use crate::core::validate::nonblank;
use crate::core::{Core, UserKey};
use crate::http::ApiTags;
use poem_openapi::{payload::Json, Object, OpenApi};
use std::sync::Arc;

/// `users.createToken`.
pub struct TokensApi {
    pub core: Arc<Core>,
}

/// Body of `users.createToken`: the first non-blank of `userId`, `username`,
/// `user` names the user; `secret` when `CREATE_TOKENS_FOR_USERS_SECRET` is set.
#[derive(Object, Clone, Default)]
pub struct CreateTokenBody {
    #[oai(rename = "userId")]
    pub user_id: Option<String>,
    /// Username, any case.
    pub username: Option<String>,
    /// Username, any case.
    pub user: Option<String>,
    /// The shared secret of Rocket.Chat 8 (`CREATE_TOKENS_FOR_USERS_SECRET`).
    pub secret: Option<String>,
}

crate::redacted_debug!(CreateTokenBody, user_id, username, user);

/// The new token.
#[derive(Object)]
pub struct CreatedToken {
    #[oai(rename = "userId")]
    pub user_id: String,
    #[oai(rename = "authToken")]
    pub auth_token: String,
}

crate::redacted_debug!(CreatedToken, user_id);

/// `{"data":{"userId","authToken"},"success":true}`
#[derive(Object, Debug)]
pub struct CreateTokenOk {
    pub data: CreatedToken,
    pub success: bool,
}

/// Rocket.Chat's `getUserFromParams`: which user the body names.
pub fn user_param(
    user_id: Option<&str>,
    username: Option<&str>,
    user: Option<&str>,
) -> Result<UserKey, RcError> {
    if let Some(id) = nonblank(user_id) {
        return Ok(UserKey::Id(id.to_string()));
    }
    if let Some(name) = nonblank(username).or_else(|| nonblank(user)) {
        return Ok(UserKey::Username(name.to_string()));
    }
    Err(RcError::thrown(
        "error-user-param-not-provided",
        "The required \"userId\" or \"username\" param was not provided",
        None,
    ))
}

/// 400 `error-invalid-user`.
pub fn invalid_user() -> RcError {
    RcError::thrown(
        "error-invalid-user",
        "The required \"userId\" or \"username\" param provided does not match any users",
        None,
    )
}

fn not_authorized() -> RcError {
    RcError::thrown(
        "error-not-authorized",
        "Not authorized",
        Some(serde_json::json!({ "method": "createToken" })),
    )
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl TokensApi {
    /// Create a login token for a user: oneself, or anyone with permission
    /// `user-generate-access-token`. Switched on by `CREATE_TOKENS_FOR_USERS=yes|true`,
    /// or by `CREATE_TOKENS_FOR_USERS_SECRET`, whose value must then come as `secret`.
    /// A protected action: `X-2FA-Code` / `X-2FA-Method` (see `users.generatePersonalAccessToken`).
    #[oai(
        path = "/api/v1/users.createToken",
        method = "post",
        operation_id = "users.createToken"
    )]
    async fn create_token(
        &self,
        req: &poem::Request,
        auth: RcAuth,
        body: RcBody<CreateTokenBody>,
    ) -> Result<Json<CreateTokenOk>, RcError> {
        super::twofactor::require_second_factor(&self.core, req, &auth.0).await?;
        let body = body.0.unwrap_or_default();
        let target = user_param(
            body.user_id.as_deref(),
            body.username.as_deref(),
            body.user.as_deref(),
        )?;
        let minted = match self
            .core
            .create_token(&auth.0, &target, body.secret.as_deref())
            .await?
        {
            CreateToken::Minted(minted) => minted,
            CreateToken::NotAuthorized => return Err(not_authorized()),
            CreateToken::NoSuchUser => return Err(invalid_user()),
        };
        Ok(Json(CreateTokenOk {
            data: CreatedToken {
                user_id: minted.user_id,
                auth_token: minted.token.into_exposed(),
            },
            success: true,
        }))
    }
}
