//! `login`, `logout`, `me`.

use super::auth::RcAuth;
use super::body::RcBody;
use super::error::RcError;
use super::view::MeView;
use crate::core::credential::{PasswordAttempt, SecondFactor};
use crate::core::password::PasswordInput;
use crate::core::service::{Blocked, Login, Refused};
use crate::core::throttle::BlockScope;
use crate::core::validate::{self, nonblank};
use crate::core::{Core, Credential, Plaintext, UserKey};
use crate::http::{client_ip, ApiTags, SerdeJson};
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
    /// The second-factor code of a user with two-factor authentication
    /// (TOTP, backup or emailed code); `X-2FA-Code` works too.
    pub code: Option<String>,
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

/// `users.logoutOtherClients`: the token kept, and when it expires.
#[derive(Object)]
pub struct LogoutOtherClientsOk {
    /// The `X-Auth-Token` of the request, which keeps working.
    pub token: String,
    /// When it expires (ISO 8601); empty for a personal access token.
    #[oai(rename = "tokenExpires")]
    pub token_expires: String,
    pub success: bool,
}

crate::redacted_debug!(LogoutOtherClientsOk, token_expires, success);

/// `{"success": true}`
#[derive(Object, Debug)]
pub struct SuccessOk {
    pub success: bool,
}

/// `users.checkUsernameAvailability`.
#[derive(Object, Debug)]
pub struct UsernameAvailableOk {
    /// Whether the caller could take the username.
    pub result: bool,
    pub success: bool,
}

/// `GET /api/v1/me`: the caller, flat, plus `success`.
#[derive(Object, serde::Serialize, Debug)]
pub struct MeOk {
    #[oai(flatten)]
    #[serde(flatten)]
    pub me: MeView,
    pub success: bool,
}

/// The site origin for absolute URLs in answers (`avatarUrl`).
fn origin(core: &Core, req: &Request) -> Option<String> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    core.public_origin(header("host"), header("x-forwarded-proto"))
}

fn unauthorized() -> RcError {
    RcError::login_failed("Unauthorized", "Unauthorized", None)
}

pub(super) fn blocked(b: Blocked) -> RcError {
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

impl SessionApi {
    async fn end_session(&self, auth: RcAuth) -> Result<Json<LogoutOk>, RcError> {
        self.core.logout(&auth.0).await?;
        Ok(Json(LogoutOk {
            status: "success".into(),
            data: LogoutData {
                message: "You've been logged out!".into(),
            },
        }))
    }
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl SessionApi {
    /// Log in with a password (plain or SHA-256 digest) or an existing token
    /// (`resume`). Any failure answers the same 401. A user with two-factor
    /// authentication also sends `code` (or `X-2FA-Code`, with `X-2FA-Method`
    /// `totp` or `email`); without it the 401 is `totp-required` with
    /// `details` {method, codeGenerated, availableMethods, emailOrUsername},
    /// with a wrong one `totp-invalid`. `resume` is never asked for a code.
    #[oai(path = "/api/v1/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        body: RcBody<LoginBody>,
    ) -> Result<Json<LoginOk>, RcError> {
        // `login` has no user yet, so it is always limited (Rocket.Chat does the same).
        super::auth::enforce_rate_limit(&self.core, req, None).await?;
        let Some(body) = body.0 else {
            return Err(unauthorized());
        };
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
            let user = login_target(&body).ok_or_else(unauthorized)?;
            let (UserKey::Id(name)
            | UserKey::Username(name)
            | UserKey::Email(name)
            | UserKey::Login(name)
            | UserKey::ImportId(name)) = &user;
            if !validate::is_login_name_length(name) {
                return Err(RcError::invalid_params(&format!(
                    "The user name may have at most {} characters",
                    validate::MAX_LOGIN_NAME_LEN
                )));
            }
            let header = super::twofactor::second_factor_of(req);
            let second_factor = match body.code.as_deref() {
                Some(code) => SecondFactor::new(Some(code), header.method()),
                None => header,
            };
            Credential::Password(PasswordAttempt {
                user,
                password,
                ip: client_ip(&self.core, req),
                second_factor,
            })
        };
        let (caller, token) = match self.core.login(credential).await? {
            Login::Ok { caller, token } => (caller, token),
            Login::Refused(Refused::Rejected) => return Err(unauthorized()),
            Login::Refused(Refused::Blocked(b)) => return Err(blocked(b)),
            Login::Refused(Refused::Busy(b)) => return Err(RcError::too_busy(b.retry_after)),
            Login::Refused(Refused::SecondFactor(r)) => {
                let (code, reason) = super::twofactor::refusal_code(&r);
                let details = super::twofactor::challenge_details(r.challenge());
                return Err(RcError::login_failed(code, reason, Some(details)));
            }
        };
        let user = &caller.user;
        Ok(Json(LoginOk {
            status: "success".into(),
            data: LoginData {
                user_id: user.id.clone(),
                auth_token: token.into_exposed(),
                me: MeView::from(user).with_avatar(origin(&self.core, req).as_deref()),
            },
            success: true,
        }))
    }

    /// Log out: the token used for this request stops working.
    #[oai(path = "/api/v1/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: RcAuth) -> Result<Json<LogoutOk>, RcError> {
        self.end_session(auth).await
    }

    /// `logout` by `GET`, as Rocket.Chat also routes it (the npm
    /// `@rocket.chat/sdk` calls it so).
    #[oai(path = "/api/v1/logout", method = "get", operation_id = "logout.get")]
    async fn logout_get(&self, auth: RcAuth) -> Result<Json<LogoutOk>, RcError> {
        self.end_session(auth).await
    }

    /// End every other login token of the caller (Rocket.Chat
    /// `users.logoutOtherClients`): the one presented keeps working, personal
    /// access tokens stay. Answers that token and when it expires.
    #[oai(
        path = "/api/v1/users.logoutOtherClients",
        method = "post",
        operation_id = "users.logoutOtherClients"
    )]
    async fn logout_other_clients(
        &self,
        req: &Request,
        auth: RcAuth,
    ) -> Result<Json<LogoutOtherClientsOk>, RcError> {
        let expires = self.core.logout_other_clients(&auth.0).await?;
        let token = req
            .headers()
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(Json(LogoutOtherClientsOk {
            token,
            token_expires: expires
                .map(|t| crate::core::clock::iso(&t))
                .unwrap_or_default(),
            success: true,
        }))
    }

    /// End every other login token of the caller (Rocket.Chat
    /// `users.removeOtherTokens`); personal access tokens stay.
    #[oai(
        path = "/api/v1/users.removeOtherTokens",
        method = "post",
        operation_id = "users.removeOtherTokens"
    )]
    async fn remove_other_tokens(&self, auth: RcAuth) -> Result<Json<SuccessOk>, RcError> {
        self.core.logout_other_clients(&auth.0).await?;
        Ok(Json(SuccessOk { success: true }))
    }

    /// Whether the caller could take a username (Rocket.Chat
    /// `users.checkUsernameAvailability`): its own yes, another user's (any
    /// case) or an invalid one no. Without `username`: 400 `invalid-params`.
    #[oai(
        path = "/api/v1/users.checkUsernameAvailability",
        method = "get",
        operation_id = "users.checkUsernameAvailability"
    )]
    async fn check_username_availability(
        &self,
        auth: RcAuth,
        username: poem_openapi::param::Query<Option<String>>,
    ) -> Result<Json<UsernameAvailableOk>, RcError> {
        let Some(name) = username.0.filter(|n| !n.is_empty()) else {
            return Err(RcError::invalid_params(
                "must have required property 'username'",
            ));
        };
        let result = self.core.username_available(&auth.0, &name).await?;
        Ok(Json(UsernameAvailableOk {
            result,
            success: true,
        }))
    }

    /// The caller's own user.
    #[oai(path = "/api/v1/me", method = "get", operation_id = "me")]
    async fn me(&self, req: &Request, auth: RcAuth) -> Result<SerdeJson<MeOk>, RcError> {
        Ok(SerdeJson(MeOk {
            me: MeView::from(&auth.0.user).with_avatar(origin(&self.core, req).as_deref()),
            success: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Email, PasswordHash, User};
    use poem_openapi::types::ToJSON;

    /// `me` is serialized by serde ([`SerdeJson`]) but documented by
    /// poem-openapi: the two shapes must be one, with every optional field
    /// present and absent.
    #[test]
    fn me_serializes_as_documented() {
        let t = chrono::Utc::now();
        let full = User {
            id: "u1".into(),
            created_at: t,
            updated_at: t,
            kind: "user".into(),
            username: Some("ann".into()),
            name: Some("Ann \"A\" \u{e9}".into()),
            emails: vec![Email {
                address: "ann@example.org".into(),
                verified: true,
            }],
            roles: vec!["user".into(), "admin".into()],
            permissions: vec![],
            active: true,
            require_password_change: true,
            password_bcrypt: Some(PasswordHash("$2b$10$x".into())),
            last_login: Some(t),
        };
        let bare = User {
            username: None,
            name: None,
            emails: vec![],
            password_bcrypt: None,
            ..full.clone()
        };
        for (user, origin) in [(&full, Some("https://chat.example")), (&bare, None)] {
            let answer = MeOk {
                me: MeView::from(user).with_avatar(origin),
                success: true,
            };
            let by_serde = serde_json::to_value(&answer).unwrap();
            assert_eq!(by_serde, answer.to_json().unwrap(), "{by_serde}");
            assert!(!by_serde.to_string().contains("$2b$"), "never the hash");
        }
    }
}
