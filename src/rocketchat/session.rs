//! `login`, `logout`, `me`.

use super::auth::RcAuth;
use super::error::RcError;
use super::view::MeView;
use crate::core::credential::PasswordAttempt;
use crate::core::password::PasswordInput;
use crate::core::service::{Blocked, Login};
use crate::core::throttle::BlockScope;
use crate::core::validate::nonblank;
use crate::core::{Core, Credential, Plaintext, UserKey};
use crate::http::{client_ip, ApiTags};
use poem::Request;
use poem_openapi::{payload::Json, Object, OpenApi, Union};
use std::sync::Arc;

/// `login`, `logout`, `me`.
pub struct SessionApi {
    pub core: Arc<Core>,
}

/// `{username}`, `{email}` or `{id}`: the object form of `user`.
#[derive(Object, Debug, Clone)]
pub struct LoginUserObject {
    pub username: Option<String>,
    pub email: Option<String>,
    pub id: Option<String>,
}

/// `user`: a username or email address, or an object.
#[derive(Union, Debug, Clone)]
pub enum LoginUser {
    Name(String),
    Object(LoginUserObject),
}

/// A password digest computed by the client.
#[derive(Object, Clone)]
pub struct PasswordDigest {
    /// SHA-256 hex of the password.
    pub digest: String,
    /// Must be `sha-256`.
    pub algorithm: String,
}

/// `password`: the password, or its SHA-256 digest.
#[derive(Union, Clone)]
pub enum LoginPassword {
    Plain(String),
    Digest(PasswordDigest),
}

/// Body of `POST /api/v1/login`: `{user, password}`, `{username, password}`,
/// `{email, password}`, `{user: {username|email}, password}` or `{resume}`.
#[derive(Object, Clone)]
pub struct LoginBody {
    pub user: Option<LoginUser>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<LoginPassword>,
    /// An existing login token, to log in with again.
    pub resume: Option<String>,
}

crate::redacted_debug!(LoginBody, user, username, email);

/// `data` of a successful login.
#[derive(Object)]
pub struct LoginData {
    #[oai(rename = "userId")]
    pub user_id: String,
    #[oai(rename = "authToken")]
    pub auth_token: String,
    pub me: MeView,
}

crate::redacted_debug!(LoginData, user_id, me);

/// A successful login.
#[derive(Object, Debug)]
pub struct LoginOk {
    pub status: String,
    pub data: LoginData,
    pub success: bool,
}

/// `data` of a logout.
#[derive(Object, Debug)]
pub struct LogoutData {
    pub message: String,
}

/// A successful logout.
#[derive(Object, Debug)]
pub struct LogoutOk {
    pub status: String,
    pub data: LogoutData,
}

/// `GET /api/v1/me`: the caller, flat, plus `success`.
#[derive(Object, Debug)]
pub struct MeOk {
    #[oai(flatten)]
    pub me: MeView,
    pub success: bool,
}

fn unauthorized() -> RcError {
    RcError::login_failed("Unauthorized", "Unauthorized", None)
}

fn blocked(b: Blocked) -> RcError {
    let (code, message) = match b.scope {
        BlockScope::ForUser => (
            "error-login-blocked-for-user",
            "Login has been temporarily blocked For User",
        ),
        BlockScope::ForIp => (
            "error-login-blocked-for-ip",
            "Login has been temporarily blocked For IP",
        ),
    };
    RcError::login_failed(
        code,
        message,
        Some(serde_json::json!({ "function": "Accounts.validateLoginAttempt" })),
    )
}

/// Which user a password login names: the first non-blank of `user` (a name
/// or email address, or the object's `username`, `email`, `id`), `username`,
/// `email`.
fn login_target(body: &LoginBody) -> Option<UserKey> {
    let (name, object) = match &body.user {
        Some(LoginUser::Name(s)) => (Some(s.as_str()), None),
        Some(LoginUser::Object(o)) => (None, Some(o)),
        None => (None, None),
    };
    let by_name: fn(String) -> UserKey = |s| {
        if s.contains('@') {
            UserKey::Email(s)
        } else {
            UserKey::Username(s)
        }
    };
    let candidates = [
        (name, by_name),
        (
            object.and_then(|o| o.username.as_deref()),
            UserKey::Username,
        ),
        (object.and_then(|o| o.email.as_deref()), UserKey::Email),
        (object.and_then(|o| o.id.as_deref()), UserKey::Id),
        (body.username.as_deref(), UserKey::Username),
        (body.email.as_deref(), UserKey::Email),
    ];
    candidates
        .into_iter()
        .find_map(|(value, key)| nonblank(value).map(|s| key(s.to_string())))
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl SessionApi {
    /// Log in with a password (plain or SHA-256 digest) or an existing token
    /// (`resume`). Any failure answers the same 401.
    #[oai(path = "/api/v1/login", method = "post", operation_id = "login")]
    async fn login(&self, req: &Request, body: Json<LoginBody>) -> Result<Json<LoginOk>, RcError> {
        // `login` has no user yet, so it is always limited (Rocket.Chat does the same).
        super::auth::enforce_rate_limit(&self.core, req, None).await?;
        let body = body.0;
        let credential = if let Some(resume) = body.resume.as_deref() {
            // `resume` hands back the same token.
            Credential::Resume(Plaintext::new(resume.trim()))
        } else {
            let password = match &body.password {
                Some(LoginPassword::Plain(p)) => PasswordInput::Plain(p.clone()),
                Some(LoginPassword::Digest(d)) if d.algorithm == "sha-256" => {
                    PasswordInput::Sha256Digest(d.digest.clone())
                }
                _ => return Err(unauthorized()),
            };
            Credential::Password(PasswordAttempt {
                user: login_target(&body).ok_or_else(unauthorized)?,
                password,
                ip: client_ip(&self.core, req),
            })
        };
        let (caller, token) = match self.core.login(credential).await? {
            Login::Ok { caller, token } => (caller, token),
            Login::Rejected => return Err(unauthorized()),
            Login::Blocked(b) => return Err(blocked(b)),
            Login::Busy(b) => return Err(RcError::too_busy(b.retry_after)),
        };
        let user = &caller.user;
        Ok(Json(LoginOk {
            status: "success".into(),
            data: LoginData {
                user_id: user.id.clone(),
                auth_token: token.into_exposed(),
                me: MeView::from(user),
            },
            success: true,
        }))
    }

    /// Log out: the token used for this request stops working.
    #[oai(path = "/api/v1/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: RcAuth) -> Result<Json<LogoutOk>, RcError> {
        self.core.logout(&auth.0).await?;
        Ok(Json(LogoutOk {
            status: "success".into(),
            data: LogoutData {
                message: "You've been logged out!".into(),
            },
        }))
    }

    /// The caller's own user.
    #[oai(path = "/api/v1/me", method = "get", operation_id = "me")]
    async fn me(&self, auth: RcAuth) -> Json<MeOk> {
        Json(MeOk {
            me: MeView::from(&auth.0.user),
            success: true,
        })
    }
}
