//! Cookie sessions: `POST` and `DELETE /node/api/users/session`.
//!
//! A session id is a 43-character token; only its hash is stored. A session
//! ends `SAYMON_SESSION_IDLE_MINUTES` after its last use or
//! `SAYMON_SESSION_MAX_HOURS` after it was opened, whichever comes first;
//! both are checked (and the idle window moved) on every request through
//! [`crate::store::Store::touch_session`].

use super::auth::{credential_owner, password_user, SaymonCaller, SidAuth, Via, SID_COOKIE};
use super::error::SaymonError;
use super::tokens::api_token_user;
use crate::core::clock::Timestamp;
use crate::core::ids::new_token;
use crate::core::model::Session;
use crate::core::token::hash_token;
use crate::core::validate::nonblank;
use crate::core::{Core, CoreError, User};
use crate::http::ApiTags;
use poem::Request;
use poem_openapi::{payload::Json, ApiResponse, Object, OpenApi};
use std::sync::Arc;
use std::time::Duration;

/// `POST` and `DELETE /node/api/users/session`.
pub struct SessionApi {
    pub core: Arc<Core>,
}

/// `d` after `now`; `now` itself if that is past the representable range.
fn after(now: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

/// The caller owning the live session `sid`, moving its idle window forward.
/// `None` if the session is unknown, ended or expired, or its user is gone
/// or inactive.
pub async fn session_caller(core: &Core, sid: &str) -> Result<Option<SaymonCaller>, CoreError> {
    let hashed_id = hash_token(sid);
    let now = core.now();
    let idle_end = after(now, core.config.saymon_session_idle);
    let Some(session) = core
        .store()
        .touch_session(&hashed_id, now, idle_end)
        .await?
    else {
        return Ok(None);
    };
    let owner = credential_owner(core, session.user_id).await?;
    Ok(owner.map(|user| SaymonCaller {
        user,
        via: Via::Session { hashed_id },
    }))
}

/// Opens a session for `user`; returns its id (shown only in the response).
pub async fn open_session(core: &Core, user: &User) -> Result<String, CoreError> {
    let sid = new_token();
    let now = core.now();
    let session = Session {
        hashed_id: hash_token(&sid),
        user_id: user.id.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: after(now, core.config.saymon_session_idle),
        absolute_expires_at: after(now, core.config.saymon_session_max),
    };
    core.store().insert_session(&session).await?;
    Ok(sid)
}

fn cookie_attributes(core: &Core) -> &'static str {
    if core.config.cookie_secure {
        "Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` value carrying a new session id.
pub fn set_sid_cookie(core: &Core, sid: &str) -> String {
    format!("{SID_COOKIE}={sid}; {}", cookie_attributes(core))
}

/// `Set-Cookie` value removing the session cookie.
pub fn clear_sid_cookie(core: &Core) -> String {
    format!("{SID_COOKIE}=; Max-Age=0; {}", cookie_attributes(core))
}

/// Body of `POST /node/api/users/session`: `login` (or email) and `password`,
/// or `auth-token`.
#[derive(Object, Clone)]
#[oai(rename = "SaymonSessionRequest")]
pub struct SessionRequest {
    /// The login name or the email address.
    pub login: Option<String>,
    /// The password.
    #[oai(write_only)]
    pub password: Option<String>,
    /// An API token, instead of `login` and `password`.
    #[oai(rename = "auth-token", write_only)]
    pub auth_token: Option<String>,
}

redacted_debug!(SessionRequest, login);

/// A new session.
#[derive(ApiResponse)]
pub enum SessionCreated {
    /// The session id as a JSON string; the same id is set as the `sid` cookie
    /// (`Path=/; HttpOnly; SameSite=Lax`, plus `Secure` when `COOKIE_SECURE`).
    #[oai(status = 200)]
    Ok(Json<String>, #[oai(header = "Set-Cookie")] String),
}

/// The session has ended.
#[derive(ApiResponse, Debug)]
pub enum SessionEnded {
    /// Empty body; the `sid` cookie is cleared (`Max-Age=0`).
    #[oai(status = 200)]
    Ok(#[oai(header = "Set-Cookie")] String),
}

#[OpenApi(tag = "ApiTags::Saymon")]
impl SessionApi {
    /// Open a session with `{login, password}` (`login` may be the email
    /// address) or `{"auth-token": ...}`. Answers the session id as a JSON
    /// string and sets it as the `sid` cookie. Wrong login or password: 401
    /// `InvalidCredentials`; unknown API token: 401 "Invalid API token.";
    /// too many failed logins: 429.
    #[oai(
        path = "/node/api/users/session",
        method = "post",
        operation_id = "saymon.session.create"
    )]
    async fn create(
        &self,
        req: &Request,
        body: Json<SessionRequest>,
    ) -> Result<SessionCreated, SaymonError> {
        let body = body.0;
        let user = if let Some(token) = nonblank(body.auth_token.as_deref()) {
            api_token_user(&self.core, token)
                .await?
                .ok_or_else(SaymonError::invalid_api_token)?
                .0
        } else {
            let login =
                nonblank(body.login.as_deref()).ok_or_else(|| SaymonError::missing("login"))?;
            let password = body
                .password
                .as_deref()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| SaymonError::missing("password"))?;
            password_user(&self.core, req, login, password)
                .await?
                .ok_or_else(SaymonError::invalid_credentials)?
        };
        let sid = open_session(&self.core, &user).await?;
        let cookie = set_sid_cookie(&self.core, &sid);
        Ok(SessionCreated::Ok(Json(sid), cookie))
    }

    /// End the session of the `sid` cookie and clear the cookie. Empty body.
    /// Without the cookie: 401 "Not logged in."; with an unknown or expired
    /// one: 401 "Session expired.".
    #[oai(
        path = "/node/api/users/session",
        method = "delete",
        operation_id = "saymon.session.delete"
    )]
    async fn delete(&self, auth: SidAuth) -> Result<SessionEnded, SaymonError> {
        if let Via::Session { hashed_id } = &auth.0.via {
            self.core.store().delete_session(hashed_id).await?;
        }
        Ok(SessionEnded::Ok(clear_sid_cookie(&self.core)))
    }
}
