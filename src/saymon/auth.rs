//! SAYMON authentication: `Authorization: Basic`, the `sid` cookie, or the
//! `api-token` query parameter, any of them.
//!
//! The document lists the three as alternatives through the derived
//! [`SaymonSchemes`] enum. The request itself is checked by [`SaymonAuth`]
//! (and [`ManageUsers`], [`SidAuth`]), which reuse the enum's document entries
//! but look at every credential at once, so that the error names the actual
//! problem: the derived enum would report only its last variant's failure.
//!
//! Rules: a request is authenticated when any credential it carries is valid
//! (the cheap ones are tried first: `sid`, `api-token`, then Basic). When
//! none is, the 401 describes the first one present in the order Basic,
//! `sid`, `api-token`; with none at all it is "Not logged in.". Failed-login
//! blocking applies to Basic as to any password login, and answers 429.

use super::error::SaymonError;
use super::{session, tokens};
use crate::core::password::PasswordInput;
use crate::core::permissions::MANAGE_USERS;
use crate::core::service::PasswordLogin;
use crate::core::throttle::Blocked;
use crate::core::{Core, CoreError, User};
use crate::http::client_ip;
use crate::store::UserKey;
use base64::{engine::general_purpose::STANDARD, Engine};
use poem::{Request, RequestBody};
use poem_openapi::auth::{ApiKey, Basic};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};
use std::sync::Arc;

/// Name of the session cookie.
pub const SID_COOKIE: &str = "sid";
/// Name of the API token query parameter.
pub const API_TOKEN_PARAM: &str = "api-token";

/// `Authorization: Basic base64(login:password)`; the login may be the email address.
#[derive(SecurityScheme)]
#[oai(rename = "SaymonBasic", ty = "basic")]
pub struct BasicScheme(pub Basic);

/// The `sid` cookie set by `POST /node/api/users/session`.
#[derive(SecurityScheme)]
#[oai(
    rename = "SaymonSid",
    ty = "api_key",
    key_name = "sid",
    key_in = "cookie"
)]
pub struct SidScheme(pub ApiKey);

/// The `api-token` query parameter: a token from `POST /node/api/users/{id}/auth-token`.
#[derive(SecurityScheme)]
#[oai(
    rename = "SaymonApiToken",
    ty = "api_key",
    key_name = "api-token",
    key_in = "query"
)]
pub struct ApiTokenScheme(pub ApiKey);

/// SAYMON's three authentication methods, as alternatives. Only its document
/// entries are used; [`SaymonAuth`] checks requests.
#[derive(SecurityScheme)]
pub enum SaymonSchemes {
    Basic(BasicScheme),
    Sid(SidScheme),
    ApiToken(ApiTokenScheme),
}

/// How a caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Basic` with a login and password.
    Basic,
    /// The `sid` cookie; the session's stored (hashed) id.
    Session { hashed_id: String },
    /// The `api-token` parameter; the token's non-secret last characters.
    ApiToken { last_part: String },
}

/// An authenticated SAYMON caller.
#[derive(Debug, Clone)]
pub struct SaymonCaller {
    /// The authenticated (active) user.
    pub user: User,
    /// The credential that authenticated it.
    pub via: Via,
}

/// The credentials a request carries. Empty values count as absent.
#[derive(Default)]
struct Presented {
    /// `Some(None)`: an `Authorization: Basic` header that cannot be decoded.
    basic: Option<Option<(String, String)>>,
    sid: Option<String>,
    api_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    #[serde(rename = "api-token")]
    api_token: Option<String>,
}

fn decode_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (login, password) = decoded.split_once(':')?;
    Some((login.to_string(), password.to_string()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

impl Presented {
    fn of(req: &Request) -> Self {
        let basic = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                v.trim()
                    .get(..6)
                    .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
            })
            .map(decode_basic);
        let api_token = req
            .params::<TokenQuery>()
            .ok()
            .and_then(|q| q.api_token)
            .filter(|t| !t.is_empty());
        Self {
            basic,
            sid: cookie_value(req, SID_COOKIE),
            api_token,
        }
    }
}

fn core_of(req: &Request) -> Result<Arc<Core>, SaymonError> {
    req.data::<Arc<Core>>().cloned().ok_or_else(|| {
        tracing::error!("core missing from request data");
        SaymonError::internal()
    })
}

/// The user a stored credential (API token, session) belongs to, if it still
/// exists and is active: only active users authenticate.
pub async fn credential_owner(core: &Core, user_id: String) -> Result<Option<User>, CoreError> {
    Ok(core
        .store()
        .find_user(&UserKey::Id(user_id))
        .await?
        .filter(|u| u.active))
}

/// The 429 for a blocked login, with the block time as `Retry-After`.
pub fn blocked_error(core: &Core, blocked: Blocked) -> SaymonError {
    let cfg = &core.config.login_block;
    let block = match blocked {
        Blocked::ForUser => cfg.user_block,
        Blocked::ForIp => cfg.ip_block,
    };
    SaymonError::too_many_login_failures(block.as_secs())
}

/// Checks a login (username or email) and password, with failed-login
/// blocking. `Ok(None)`: wrong login or password, or an inactive user.
pub async fn password_user(
    core: &Core,
    req: &Request,
    login: &str,
    password: &str,
) -> Result<Option<User>, SaymonError> {
    let login = login.trim();
    if login.is_empty() {
        return Ok(None);
    }
    let ip = client_ip(req, core.config.trust_proxy);
    let key = UserKey::Login(login.to_string());
    let input = PasswordInput::Plain(password.to_string());
    match core.password_login(&key, login, &input, ip).await? {
        PasswordLogin::Ok(user) => Ok(Some(*user)),
        PasswordLogin::Failed => Ok(None),
        PasswordLogin::Blocked(b) => Err(blocked_error(core, b)),
    }
}

/// Authenticates a request by any of its credentials (see the module docs).
pub async fn authenticate(core: &Core, req: &Request) -> Result<SaymonCaller, SaymonError> {
    let presented = Presented::of(req);
    let mut sid_failed = false;
    let mut token_failed = false;
    if let Some(sid) = &presented.sid {
        match session::session_caller(core, sid).await? {
            Some(caller) => return Ok(caller),
            None => sid_failed = true,
        }
    }
    if let Some(token) = &presented.api_token {
        match tokens::api_token_user(core, token).await? {
            Some((user, entry)) => {
                return Ok(SaymonCaller {
                    user,
                    via: Via::ApiToken {
                        last_part: entry.last_part,
                    },
                })
            }
            None => token_failed = true,
        }
    }
    if let Some(basic) = &presented.basic {
        if let Some((login, password)) = basic {
            if let Some(user) = password_user(core, req, login, password).await? {
                return Ok(SaymonCaller {
                    user,
                    via: Via::Basic,
                });
            }
        }
        return Err(SaymonError::invalid_credentials());
    }
    Err(if sid_failed {
        SaymonError::session_expired()
    } else if token_failed {
        SaymonError::invalid_api_token()
    } else {
        SaymonError::not_logged_in()
    })
}

/// Requires a permission of an authenticated caller (403 naming it otherwise).
pub async fn require(core: &Core, user: &User, permission: &str) -> Result<(), SaymonError> {
    if core.has_permission(user, permission).await? {
        Ok(())
    } else {
        Err(SaymonError::forbidden(permission))
    }
}

/// Implements [`ApiExtractor`] for a wrapper that is documented as the
/// security scheme(s) of `$doc` and checked by `$check`.
macro_rules! saymon_extractor {
    ($ty:ident, $doc:ty, $check:path) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <$doc as ApiExtractor>::register(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                <$doc as ApiExtractor>::security_schemes()
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                let core = core_of(req)?;
                Ok($ty($check(&core, req).await?))
            }
        }
    };
}

/// Any authenticated SAYMON caller (Basic, `sid` cookie or `api-token`).
pub struct SaymonAuth(pub SaymonCaller);

/// An authenticated SAYMON caller holding `manage-users` (403 otherwise,
/// checked before the request body is read).
pub struct ManageUsers(pub SaymonCaller);

/// A caller authenticated by the `sid` cookie alone (ending a session).
pub struct SidAuth(pub SaymonCaller);

async fn check_manage_users(core: &Core, req: &Request) -> Result<SaymonCaller, SaymonError> {
    let caller = authenticate(core, req).await?;
    require(core, &caller.user, MANAGE_USERS).await?;
    Ok(caller)
}

async fn check_sid(core: &Core, req: &Request) -> Result<SaymonCaller, SaymonError> {
    let Some(sid) = cookie_value(req, SID_COOKIE) else {
        return Err(SaymonError::not_logged_in());
    };
    session::session_caller(core, &sid)
        .await?
        .ok_or_else(SaymonError::session_expired)
}

saymon_extractor!(SaymonAuth, SaymonSchemes, authenticate);
saymon_extractor!(ManageUsers, SaymonSchemes, check_manage_users);
saymon_extractor!(SidAuth, SidScheme, check_sid);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_decoding() {
        let enc = STANDARD.encode("bob@example.com:pa:ss");
        assert_eq!(
            decode_basic(&format!("Basic {enc}")),
            Some(("bob@example.com".into(), "pa:ss".into()))
        );
        assert_eq!(decode_basic("Basic !!!"), None);
        assert_eq!(decode_basic(&format!("Bearer {enc}")), None);
    }

    #[test]
    fn cookie_lookup_finds_sid_among_others() {
        let req = Request::builder()
            .header("cookie", "a=1; sid=abc; csrf=x")
            .finish();
        assert_eq!(cookie_value(&req, "sid").as_deref(), Some("abc"));
        assert_eq!(cookie_value(&req, "none"), None);
        let empty = Request::builder().header("cookie", "sid=").finish();
        assert_eq!(cookie_value(&empty, "sid"), None);
    }
}
