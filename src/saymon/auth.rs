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
//! `sid`, `api-token`; with none at all it is "Not logged in.". Basic is a
//! password login like any other: failed-login blocking, the password-login
//! rate limit and the bound on concurrent password checks apply, each
//! answering 429 with `Retry-After`. A user with a second factor also sends
//! its code in `X-2FA-Code` (401 without it or with a wrong one); API tokens
//! and open sessions are not asked for it.

use super::error::SaymonError;
use crate::core::credential::{PasswordAttempt, SecondFactor};
use crate::core::password::PasswordInput;
use crate::core::service::{
    Authenticated, EmailUnavailable, RateLimit, Refused, SecondFactorRefusal,
};
use crate::core::validate;
use crate::core::{perm, Caller, Core, Credential, Granted, Plaintext, UserKey};
use crate::http::client_ip;
use base64::{engine::general_purpose::STANDARD, Engine};
use poem::{Request, RequestBody};
use poem_openapi::auth::{ApiKey, Basic};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};

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

/// SAYMON's answer to a refused credential: `rejected` for a wrong one,
/// 429 with `Retry-After` for a blocked login or busy password checks.
pub fn refused_error(refused: Refused, rejected: fn() -> SaymonError) -> SaymonError {
    match refused {
        Refused::Rejected => rejected(),
        Refused::Blocked(b) => SaymonError::too_many_login_failures(b.retry_after.as_secs()),
        Refused::Busy(b) => SaymonError::too_many_requests(b.retry_after.as_secs()),
        Refused::SecondFactor(r) => second_factor_error(&r),
    }
}

/// SAYMON's 401 for a refused second factor.
pub fn second_factor_error(r: &SecondFactorRefusal) -> SaymonError {
    let method = r.challenge().method.as_str();
    let message = match r {
        SecondFactorRefusal::Required(c) if c.code_generated => format!(
            "Two-factor authentication code required: send it in X-2FA-Code (method {method}; a code was just emailed)."
        ),
        SecondFactorRefusal::Required(_) => format!(
            "Two-factor authentication code required: send it in X-2FA-Code (method {method})."
        ),
        SecondFactorRefusal::Invalid(_) => {
            format!("Invalid two-factor authentication code (method {method}).")
        }
        SecondFactorRefusal::MaxAttempts(_) => {
            "Too many invalid emailed codes: request a new one.".to_string()
        }
        SecondFactorRefusal::EmailUnavailable(_, EmailUnavailable::NotConfigured) => {
            "Two-factor authentication by email is not possible: no SMTP server is configured (SMTP_HOST).".to_string()
        }
        SecondFactorRefusal::EmailUnavailable(_, EmailUnavailable::SendFailed) => {
            "Two-factor authentication by email failed: the SMTP server did not accept the code.".to_string()
        }
    };
    SaymonError::second_factor(&message)
}

/// The second factor a request carries in `X-2FA-Code` (and `X-2FA-Method`).
pub fn second_factor_of(req: &Request) -> SecondFactor {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    SecondFactor::new(header("x-2fa-code"), header("x-2fa-method"))
}

/// The password credential for a login (username or email) and password,
/// counted against the password-login rate limit (429 over it); `None` for
/// a blank login.
pub async fn password_credential(
    req: &Request,
    core: &Core,
    login: &str,
    password: &str,
) -> Result<Option<Credential>, SaymonError> {
    let login = login.trim();
    if login.is_empty() {
        return Ok(None);
    }
    if !validate::is_login_name_length(login) {
        return Err(SaymonError::bad_request(format!(
            "login may have at most {} characters",
            validate::MAX_LOGIN_NAME_LEN
        )));
    }
    let ip = client_ip(core, req);
    if let RateLimit::Limited(limited) = core.rate_limit_password_login(ip).await? {
        let wait = (limited.reset_at - core.now()).num_seconds().max(1);
        return Err(SaymonError::too_many_requests(
            u64::try_from(wait).unwrap_or(1),
        ));
    }
    Ok(Some(Credential::Password(PasswordAttempt {
        user: UserKey::Login(login.to_string()),
        password: PasswordInput::Plain(password.to_string()),
        ip,
        second_factor: second_factor_of(req),
    })))
}

/// The caller a credential authenticates; `None` when it is refused.
async fn caller_of(core: &Core, credential: Credential) -> Result<Option<Caller>, SaymonError> {
    match core.authenticate(credential).await? {
        Authenticated::Caller(caller) => Ok(Some(*caller)),
        Authenticated::Refused(Refused::Rejected) => Ok(None),
        Authenticated::Refused(refused) => {
            Err(refused_error(refused, SaymonError::invalid_credentials))
        }
    }
}

/// Authenticates a request by any of its credentials (see the module docs).
pub async fn authenticate(core: &Core, req: &Request) -> Result<Caller, SaymonError> {
    let presented = Presented::of(req);
    let mut sid_failed = false;
    let mut token_failed = false;
    if let Some(sid) = &presented.sid {
        match caller_of(core, Credential::Session(Plaintext::new(sid.as_str()))).await? {
            Some(caller) => return Ok(caller),
            None => sid_failed = true,
        }
    }
    if let Some(token) = &presented.api_token {
        match caller_of(core, Credential::ApiToken(Plaintext::new(token.as_str()))).await? {
            Some(caller) => return Ok(caller),
            None => token_failed = true,
        }
    }
    if let Some(basic) = &presented.basic {
        if let Some((login, password)) = basic {
            if let Some(credential) = password_credential(req, core, login, password).await? {
                if let Some(caller) = caller_of(core, credential).await? {
                    return Ok(caller);
                }
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
                let core = crate::http::core_of::<SaymonError>(req)?;
                Ok($ty($check(&core, req).await?))
            }
        }
    };
}

/// Any authenticated SAYMON caller (Basic, `sid` cookie or `api-token`).
pub struct SaymonAuth(pub Caller);

/// An authenticated SAYMON caller holding `manage-users` (403 otherwise,
/// checked before the request body is read).
pub struct ManageUsers(pub Granted<perm::ManageUsers>);

/// A caller authenticated by the `sid` cookie alone (ending a session).
pub struct SidAuth(pub Caller);

async fn check_manage_users(
    core: &Core,
    req: &Request,
) -> Result<Granted<perm::ManageUsers>, SaymonError> {
    let caller = authenticate(core, req).await?;
    core.authorize(&caller)
        .await?
        .ok_or_else(|| SaymonError::forbidden(crate::core::Permission::ManageUsers.id()))
}

async fn check_sid(core: &Core, req: &Request) -> Result<Caller, SaymonError> {
    let Some(sid) = cookie_value(req, SID_COOKIE) else {
        return Err(SaymonError::not_logged_in());
    };
    caller_of(core, Credential::Session(Plaintext::new(sid)))
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
