//! Personal access tokens: `users.generatePersonalAccessToken`,
//! `users.regeneratePersonalAccessToken`, `users.getPersonalAccessTokens`,
//! `users.removePersonalAccessToken`.
//!
//! A PAT is stored in the caller's `services.resume.loginTokens` as Rocket.Chat
//! stores it (hash, last six characters, name, creation time, 2FA choice) and
//! works as `X-Auth-Token`. tokend adds an optional expiry (`expiresAt` or
//! `expiresInDays`, bounded by `PAT_MAX_LIFETIME_DAYS`; expired PATs are
//! refused and listed as expired) and its last use (`lastUsedAt`). The
//! login-token cap never evicts it; `users.removePersonalAccessToken`,
//! `users.logout`, an admin's `tokend.revokePersonalAccessToken`,
//! deactivation and deletion end it.
//!
//! The write routes are protected actions (Rocket.Chat's `twoFactorRequired`):
//! a user with a second factor sends `X-2FA-Code` (and `X-2FA-Method`), one
//! without sends the password (`X-2FA-Method: password`, the code its SHA-256
//! hex or the password itself) unless `TWO_FACTOR_PASSWORD_FALLBACK=false`.

use super::auth::RcAuth;
use super::body::RcBody;
use super::error::RcError;
use super::twofactor::require_second_factor;
use crate::core::clock::iso;
use crate::core::service::{CreatePat, PatExpiry};
use crate::core::{perm, Caller, Core, Granted};
use crate::http::ApiTags;
use poem::Request;
use poem_openapi::{payload::Json, Object, OpenApi};
use std::sync::Arc;

/// The personal-access-token routes.
pub struct PatApi {
    pub core: Arc<Core>,
}

/// Body of `users.generatePersonalAccessToken`. Other fields (such as
/// `loginToken`) are ignored.
#[derive(Object, Debug, Clone, Default)]
pub struct GeneratePatBody {
    /// Name of the token, unique per user.
    #[oai(rename = "tokenName")]
    pub token_name: Option<String>,
    /// Whether the token skips the two-factor check of protected actions.
    #[oai(rename = "bypassTwoFactor")]
    pub bypass_two_factor: Option<bool>,
    /// tokend: when the token stops working (ISO 8601). At most
    /// `PAT_MAX_LIFETIME_DAYS` ahead when that is set, which is then also
    /// the default; otherwise the default is never.
    #[oai(rename = "expiresAt")]
    pub expires_at: Option<String>,
    /// tokend: the token stops working this many days from now (instead
    /// of `expiresAt`).
    #[oai(rename = "expiresInDays")]
    pub expires_in_days: Option<u32>,
}

/// Body naming one of the caller's tokens.
#[derive(Object, Debug, Clone, Default)]
pub struct TokenNameBody {
    /// Name of the token.
    #[oai(rename = "tokenName")]
    pub token_name: Option<String>,
}

/// `{"token": "...", "success": true}`: the new token, shown only this once.
#[derive(Object)]
pub struct PatOk {
    pub token: String,
    pub success: bool,
}

crate::redacted_debug!(PatOk, success);

/// One personal access token, as listed (never the token itself).
#[derive(Object, Debug)]
pub struct PatInfo {
    pub name: String,
    /// ISO 8601.
    #[oai(rename = "createdAt")]
    pub created_at: String,
    /// The last six characters of the token.
    #[oai(rename = "lastTokenPart")]
    pub last_token_part: String,
    #[oai(rename = "bypassTwoFactor")]
    pub bypass_two_factor: bool,
    /// tokend: its last use, to `LAST_USED_RESOLUTION_SECONDS` (ISO 8601;
    /// absent: never used).
    #[oai(rename = "lastUsedAt", skip_serializing_if_is_none)]
    pub last_used_at: Option<String>,
    /// tokend: when it stops working (ISO 8601; absent: never).
    #[oai(rename = "expiresAt", skip_serializing_if_is_none)]
    pub expires_at: Option<String>,
    /// tokend: whether it has expired (and is refused).
    pub expired: bool,
}

impl PatInfo {
    /// The listing of a stored PAT at `now`.
    pub fn of(p: crate::core::PersonalAccessToken, now: crate::core::Timestamp) -> Self {
        Self {
            expired: p.expired(now),
            name: p.name,
            created_at: iso(&p.created_at),
            last_token_part: p.last_token_part,
            bypass_two_factor: p.bypass_two_factor,
            last_used_at: p.last_used_at.as_ref().map(iso),
            expires_at: p.expires_at.as_ref().map(iso),
        }
    }
}

/// `{"tokens": [...], "success": true}`
#[derive(Object, Debug)]
pub struct PatListOk {
    pub tokens: Vec<PatInfo>,
    pub success: bool,
}

/// `{"success": true}`
#[derive(Object, Debug)]
pub struct PatRemoved {
    pub success: bool,
}

/// The Meteor method behind each route, named in error details.
const GENERATE: &str = "personalAccessTokens:generateToken";
const REGENERATE: &str = "personalAccessTokens:regenerateToken";
const REMOVE: &str = "personalAccessTokens:removeToken";

fn details(method: &str) -> Option<serde_json::Value> {
    Some(serde_json::json!({ "method": method }))
}

fn not_authorized(method: &str) -> RcError {
    RcError::thrown("not-authorized", "Not Authorized", details(method))
}

fn does_not_exist(method: &str) -> RcError {
    RcError::thrown(
        "error-token-does-not-exists",
        "Token does not exist",
        details(method),
    )
}

/// The `tokenName` as sent; Rocket.Chat's 400 when it is missing or blank.
fn token_name(name: Option<String>) -> Result<String, RcError> {
    name.filter(|n| !n.trim().is_empty())
        .ok_or_else(|| RcError::failure("The 'tokenName' param is required"))
}

/// The PAT capability; `refused` is the route's answer without it.
type PatGrant = Granted<perm::CreatePersonalAccessTokens>;

impl PatApi {
    async fn grant(&self, caller: &Caller, refused: RcError) -> Result<PatGrant, RcError> {
        self.core.authorize(caller).await?.ok_or(refused)
    }
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl PatApi {
    /// Create a named personal access token for the caller (permission
    /// `create-personal-access-tokens`). The token is in the answer only.
    /// A protected action: `X-2FA-Code` + `X-2FA-Method` (`totp`, `email`, or
    /// `password` for a user without a second factor), else 400 `totp-required`.
    #[oai(
        path = "/api/v1/users.generatePersonalAccessToken",
        method = "post",
        operation_id = "users.generatePersonalAccessToken"
    )]
    async fn generate(
        &self,
        req: &Request,
        auth: RcAuth,
        body: RcBody<GeneratePatBody>,
    ) -> Result<Json<PatOk>, RcError> {
        require_second_factor(&self.core, req, &auth.0).await?;
        let grant = self.grant(&auth.0, not_authorized(GENERATE)).await?;
        let body = body.0.unwrap_or_default();
        let name = token_name(body.token_name)?;
        let bypass = body.bypass_two_factor.unwrap_or(false);
        let expiry = match (body.expires_at, body.expires_in_days) {
            (Some(_), Some(_)) => {
                return Err(RcError::failure(
                    "Send either 'expiresAt' or 'expiresInDays', not both",
                ))
            }
            (Some(at), None) => match chrono::DateTime::parse_from_rfc3339(at.trim()) {
                Ok(at) => PatExpiry::At(at.with_timezone(&chrono::Utc)),
                Err(_) => {
                    return Err(RcError::failure(
                        "The 'expiresAt' param must be an ISO 8601 date",
                    ))
                }
            },
            (None, Some(days)) => PatExpiry::InDays(days),
            (None, None) => PatExpiry::Unset,
        };
        match self.core.create_pat(&grant, &name, bypass, expiry).await? {
            CreatePat::Created(token) => Ok(Json(PatOk {
                token: token.into_exposed(),
                success: true,
            })),
            CreatePat::NameTaken => Err(RcError::thrown(
                "error-token-already-exists",
                "A token with this name already exists",
                details(GENERATE),
            )),
            CreatePat::NameTooLong { max } => Err(RcError::thrown(
                "error-token-name-too-long",
                &format!("The token name may have at most {max} characters"),
                details(GENERATE),
            )),
            CreatePat::TooMany { max } => Err(RcError::thrown(
                "error-too-many-tokens",
                &format!("A user may have at most {max} personal access tokens"),
                details(GENERATE),
            )),
            // The caller was deleted while the request ran.
            CreatePat::NoSuchUser => Err(RcError::not_logged_in()),
            CreatePat::ExpiryInPast => Err(RcError::failure("The expiry must be in the future")),
            CreatePat::ExpiryTooLate { max_days } => Err(RcError::failure(&format!(
                "Personal access tokens may live at most {max_days} days"
            ))),
        }
    }

    /// Replace one of the caller's personal access tokens by a new one with the
    /// same name and two-factor choice; the old token stops working.
    /// A protected action: `X-2FA-Code` + `X-2FA-Method` (`totp`, `email`, or
    /// `password` for a user without a second factor), else 400 `totp-required`.
    #[oai(
        path = "/api/v1/users.regeneratePersonalAccessToken",
        method = "post",
        operation_id = "users.regeneratePersonalAccessToken"
    )]
    async fn regenerate(
        &self,
        req: &Request,
        auth: RcAuth,
        body: RcBody<TokenNameBody>,
    ) -> Result<Json<PatOk>, RcError> {
        require_second_factor(&self.core, req, &auth.0).await?;
        let grant = self.grant(&auth.0, not_authorized(REGENERATE)).await?;
        let name = token_name(body.0.unwrap_or_default().token_name)?;
        match self.core.regenerate_pat(&grant, &name).await? {
            Some(token) => Ok(Json(PatOk {
                token: token.into_exposed(),
                success: true,
            })),
            None => Err(does_not_exist(REGENERATE)),
        }
    }

    /// The caller's personal access tokens: name, creation time, last six
    /// characters and two-factor choice (never the tokens); tokend adds
    /// `lastUsedAt`, `expiresAt` and `expired`.
    #[oai(
        path = "/api/v1/users.getPersonalAccessTokens",
        method = "get",
        operation_id = "users.getPersonalAccessTokens"
    )]
    async fn list(&self, auth: RcAuth) -> Result<Json<PatListOk>, RcError> {
        // Rocket.Chat 7.x and later: a route-level permission, so 403.
        let grant = self.grant(&auth.0, RcError::forbidden()).await?;
        let now = self.core.now();
        let tokens = self
            .core
            .personal_access_tokens(&grant)
            .await?
            .into_iter()
            .map(|p| PatInfo::of(p, now))
            .collect();
        Ok(Json(PatListOk {
            tokens,
            success: true,
        }))
    }

    /// Remove one of the caller's personal access tokens.
    /// A protected action: `X-2FA-Code` + `X-2FA-Method` (`totp`, `email`, or
    /// `password` for a user without a second factor), else 400 `totp-required`.
    #[oai(
        path = "/api/v1/users.removePersonalAccessToken",
        method = "post",
        operation_id = "users.removePersonalAccessToken"
    )]
    async fn remove(
        &self,
        req: &Request,
        auth: RcAuth,
        body: RcBody<TokenNameBody>,
    ) -> Result<Json<PatRemoved>, RcError> {
        require_second_factor(&self.core, req, &auth.0).await?;
        let grant = self.grant(&auth.0, not_authorized(REMOVE)).await?;
        let name = token_name(body.0.unwrap_or_default().token_name)?;
        if !self.core.remove_pat(&grant, &name).await? {
            return Err(does_not_exist(REMOVE));
        }
        Ok(Json(PatRemoved { success: true }))
    }
}
