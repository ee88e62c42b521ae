//! Cookie sessions: `POST` and `DELETE /node/api/users/session`.
//!
//! A session id is a 43-character token; only its hash is stored. A session
//! ends `SAYMON_SESSION_IDLE_MINUTES` after its last use or
//! `SAYMON_SESSION_MAX_HOURS` after it was opened, whichever comes first;
//! both are checked (and the idle window moved) on every request through
//! the core (`Core::authenticate` with a session credential).

use super::auth::{password_credential, refused_error, SidAuth, SID_COOKIE};
use super::error::SaymonError;
use crate::core::service::OpenSession;
use crate::core::validate::nonblank;
use crate::core::{Core, Credential, Plaintext};
use crate::http::ApiTags;
use poem::Request;
use poem_openapi::{payload::Json, ApiResponse, Object, OpenApi};
use std::sync::Arc;

/// `POST` and `DELETE /node/api/users/session`.
pub struct SessionApi {
    pub core: Arc<Core>,
}

fn cookie_attributes(core: &Core, req: &Request) -> &'static str {
    if crate::http::cookie_secure(core, req) {
        "Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` value carrying a new session id.
pub fn set_sid_cookie(core: &Core, req: &Request, sid: &str) -> String {
    format!("{SID_COOKIE}={sid}; {}", cookie_attributes(core, req))
}

/// `Set-Cookie` value removing the session cookie.
pub fn clear_sid_cookie(core: &Core, req: &Request) -> String {
    format!("{SID_COOKIE}=; Max-Age=0; {}", cookie_attributes(core, req))
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

crate::redacted_debug!(SessionRequest, login);

/// A new session. `Debug` shows nothing of it.
#[derive(ApiResponse)]
pub enum SessionCreated {
    /// The session id as a JSON string; the same id is set as the `sid` cookie
    /// (`Path=/; HttpOnly; SameSite=Lax`, plus `Secure` when the request came
    /// over HTTPS, directly or via a trusted proxy's `X-Forwarded-Proto`, or
    /// with `COOKIE_SECURE`).
    #[oai(status = 200)]
    Ok(Json<String>, #[oai(header = "Set-Cookie")] String),
}

impl std::fmt::Debug for SessionCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCreated(<redacted>)")
    }
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
    /// too many failed logins, password logins or password checks at once: 429
    /// with `Retry-After`.
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
        let (credential, refused): (_, fn() -> SaymonError) =
            if let Some(token) = nonblank(body.auth_token.as_deref()) {
                let credential = Credential::ApiToken(Plaintext::new(token));
                (Some(credential), SaymonError::invalid_api_token)
            } else {
                let login =
                    nonblank(body.login.as_deref()).ok_or_else(|| SaymonError::missing("login"))?;
                let password = body
                    .password
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| SaymonError::missing("password"))?;
                let credential = password_credential(req, &self.core, login, password).await?;
                (credential, SaymonError::invalid_credentials)
            };
        let credential = credential.ok_or_else(refused)?;
        match self.core.open_session(credential).await? {
            OpenSession::Opened { sid, .. } => {
                let cookie = set_sid_cookie(&self.core, req, sid.expose());
                Ok(SessionCreated::Ok(Json(sid.into_exposed()), cookie))
            }
            OpenSession::Refused(why) => Err(refused_error(why, refused)),
        }
    }

    /// End the session of the `sid` cookie and clear the cookie. Empty body.
    /// Without the cookie: 401 "Not logged in."; with an unknown or expired
    /// one: 401 "Session expired.".
    #[oai(
        path = "/node/api/users/session",
        method = "delete",
        operation_id = "saymon.session.delete"
    )]
    async fn delete(&self, req: &Request, auth: SidAuth) -> Result<SessionEnded, SaymonError> {
        self.core.logout(&auth.0).await?;
        Ok(SessionEnded::Ok(clear_sid_cookie(&self.core, req)))
    }
}
