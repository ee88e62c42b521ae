//! tokend's own admin routes, in Rocket.Chat's shapes (neither Rocket.Chat
//! nor SAYMON has them): the audit trail (`view-audit-log`) and any user's
//! personal access tokens (`manage-personal-access-tokens`), both seeded
//! for `admin`.

use super::auth::RcAuth;
use super::body::RcBody;
use super::error::RcError;
use super::pat::PatInfo;
use crate::core::audit::{AuditEvent, AuditKind, AuditQuery};
use crate::core::clock::iso;
use crate::core::service::UserPats;
use crate::core::validate::{self, nonblank};
use crate::core::{Core, Perm};
use crate::http::ApiTags;
use poem_openapi::param::Query;
use poem_openapi::{payload::Json, Object, OpenApi};
use std::sync::Arc;

/// tokend's admin routes.
pub struct AdminApi {
    pub core: Arc<Core>,
}

/// One credential event. Never holds a token, password, code or hash.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditEventView {
    #[oai(rename = "_id")]
    pub id: String,
    /// ISO 8601.
    pub ts: String,
    /// `login.succeeded`, `login.failed`, `login.blocked`, `token.minted`,
    /// `pat.created`, `pat.regenerated`, `pat.removed`, `api_token.created`,
    /// `api_token.deleted`, `session.opened`, `session.closed`, `logout`,
    /// `password.changed`, `user.deactivated`, `user.deleted`,
    /// `2fa.enabled`, `2fa.disabled`.
    pub kind: String,
    /// Who did it: a user id, `cli` (the operator tool), or absent.
    #[oai(rename = "actorId", skip_serializing_if_is_none)]
    pub actor_id: Option<String>,
    /// Whose credential it concerns.
    #[oai(rename = "userId", skip_serializing_if_is_none)]
    pub user_id: Option<String>,
    /// The OpenAPI operation id of the route (`cli.<command>` for the CLI).
    #[oai(skip_serializing_if_is_none)]
    pub route: Option<String>,
    #[oai(rename = "clientAddress", skip_serializing_if_is_none)]
    pub client_address: Option<String>,
    #[oai(rename = "requestId", skip_serializing_if_is_none)]
    pub request_id: Option<String>,
    /// `succeeded` or `refused`.
    pub outcome: String,
    /// A non-secret detail: a token's name, `password` or `resume`, a
    /// block's scope (`user`, `ip`), the second factor switched (`totp`,
    /// `email`) or `second factor` for a login refused by a wrong code.
    /// Optional fields are absent rather than null (as documented).
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            ts: iso(&e.at),
            kind: e.kind.as_str().to_string(),
            actor_id: e.actor,
            user_id: e.target,
            route: e.route,
            client_address: e.address,
            request_id: e.request_id,
            outcome: e.outcome,
            detail: e.detail,
        }
    }
}

/// A page of events, newest first, as Rocket.Chat pages lists.
#[derive(Object, Debug)]
pub struct AuditEventsOk {
    pub events: Vec<AuditEventView>,
    pub count: u64,
    pub offset: u64,
    pub total: u64,
    pub success: bool,
}

/// `{"tokens": [...], "success": true}`: another user's PATs.
#[derive(Object, Debug)]
pub struct UserPatsOk {
    pub tokens: Vec<PatInfo>,
    pub success: bool,
}

/// Body of `tokend.revokePersonalAccessToken`.
#[derive(Object, Debug, Clone, Default)]
pub struct RevokePatBody {
    #[oai(rename = "userId")]
    pub user_id: Option<String>,
    #[oai(rename = "tokenName")]
    pub token_name: Option<String>,
}

/// `{"success": true}`
#[derive(Object, Debug)]
pub struct AdminOk {
    pub success: bool,
}

const DEFAULT_COUNT: u64 = 50;
const MAX_COUNT: u64 = 500;

fn date_param(name: &str, v: Option<String>) -> Result<Option<crate::core::Timestamp>, RcError> {
    match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                RcError::invalid_params(&format!(
                    "The parameter \"{name}\" must be an ISO 8601 date"
                ))
            }),
    }
}

impl AdminApi {
    async fn grant<P: Perm>(&self, auth: &RcAuth) -> Result<crate::core::Granted<P>, RcError> {
        self.core
            .authorize(&auth.0)
            .await?
            .ok_or_else(RcError::forbidden)
    }
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl AdminApi {
    /// tokend: the audit trail of credential events, newest first
    /// (permission `view-audit-log`). Filters: `userId` (as actor or
    /// target), `kind`, `since` (inclusive) and `until` (exclusive), ISO
    /// 8601; `count` defaults to 50, at most 500.
    #[oai(
        path = "/api/v1/tokend.auditEvents",
        method = "get",
        operation_id = "tokend.auditEvents"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit_events(
        &self,
        auth: RcAuth,
        #[oai(name = "userId")] user_id: Query<Option<String>>,
        kind: Query<Option<String>>,
        since: Query<Option<String>>,
        until: Query<Option<String>>,
        count: Query<Option<u64>>,
        offset: Query<Option<u64>>,
    ) -> Result<Json<AuditEventsOk>, RcError> {
        let grant = self.grant(&auth).await?;
        let kind = match nonblank(kind.0.as_deref()) {
            None => None,
            Some(k) => Some(AuditKind::parse(k).ok_or_else(|| {
                RcError::invalid_params("The parameter \"kind\" is not an event kind")
            })?),
        };
        let (count, offset) = (count.0.unwrap_or(DEFAULT_COUNT), offset.0.unwrap_or(0));
        if !validate::is_page_number(offset) {
            return Err(RcError::invalid_params(
                "The parameter \"offset\" is too large",
            ));
        }
        let query = AuditQuery {
            user: nonblank(user_id.0.as_deref()).map(str::to_string),
            kind,
            since: date_param("since", since.0)?,
            until: date_param("until", until.0)?,
            offset,
            count: count.clamp(1, MAX_COUNT),
        };
        let page = self.core.audit_events(&grant, &query).await?;
        let events: Vec<AuditEventView> = page.events.into_iter().map(Into::into).collect();
        Ok(Json(AuditEventsOk {
            count: events.len() as u64,
            events,
            offset,
            total: page.total,
            success: true,
        }))
    }

    /// tokend: any user's personal access tokens: name, creation time,
    /// last use, expiry, last six characters, two-factor choice (permission
    /// `manage-personal-access-tokens`).
    #[oai(
        path = "/api/v1/tokend.personalAccessTokens",
        method = "get",
        operation_id = "tokend.personalAccessTokens"
    )]
    async fn user_pats(
        &self,
        auth: RcAuth,
        #[oai(name = "userId")] user_id: Query<Option<String>>,
    ) -> Result<Json<UserPatsOk>, RcError> {
        let grant = self.grant(&auth).await?;
        let user_id = nonblank(user_id.0.as_deref())
            .ok_or_else(|| RcError::failure("The 'userId' param is required"))?;
        let now = self.core.now();
        match self.core.user_pats(&grant, user_id).await? {
            UserPats::Tokens(tokens) => Ok(Json(UserPatsOk {
                tokens: tokens.into_iter().map(|p| PatInfo::of(p, now)).collect(),
                success: true,
            })),
            UserPats::NoSuchUser => {
                Err(RcError::thrown("error-invalid-user", "Invalid user", None))
            }
        }
    }

    /// tokend: revoke any user's personal access token by name (permission
    /// `manage-personal-access-tokens`); it stops working at once.
    #[oai(
        path = "/api/v1/tokend.revokePersonalAccessToken",
        method = "post",
        operation_id = "tokend.revokePersonalAccessToken"
    )]
    async fn revoke_pat(
        &self,
        auth: RcAuth,
        body: RcBody<RevokePatBody>,
    ) -> Result<Json<AdminOk>, RcError> {
        let grant = self.grant(&auth).await?;
        let body = body.0.unwrap_or_default();
        let user_id = nonblank(body.user_id.as_deref())
            .ok_or_else(|| RcError::failure("The 'userId' param is required"))?;
        let name = nonblank(body.token_name.as_deref())
            .ok_or_else(|| RcError::failure("The 'tokenName' param is required"))?;
        if !self.core.revoke_user_pat(&grant, user_id, name).await? {
            return Err(RcError::thrown(
                "error-token-does-not-exists",
                "Token does not exist",
                None,
            ));
        }
        Ok(Json(AdminOk { success: true }))
    }
}
