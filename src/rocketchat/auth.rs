//! Rocket.Chat authentication: `X-User-Id` and `X-Auth-Token`, both required.
//!
//! poem-openapi lists two security schemes on one operation as alternatives;
//! [`RcSecurity`] rewrites the operation metadata so the document states them
//! as one requirement (both headers), which is what the server enforces.

use super::error::RcError;
use crate::core::service::{Authenticated, RateLimit};
use crate::core::validate::nonblank;
use crate::core::{Caller, Core, Credential, Plaintext};
use poem::Request;
use poem_openapi::auth::ApiKey;
use poem_openapi::registry::{MetaApi, Registry};
use poem_openapi::{ApiExtractor, OpenApi, SecurityScheme};

/// Name of the `X-Auth-Token` scheme in the document.
const AUTH_TOKEN_SCHEME: &str = "RcAuthToken";
/// Name of the `X-User-Id` scheme in the document.
const USER_ID_SCHEME: &str = "RcUserId";

/// An authenticated Rocket.Chat caller. Send `X-Auth-Token` (a login token or
/// personal access token) together with `X-User-Id`.
#[derive(SecurityScheme)]
#[oai(
    rename = "RcAuthToken",
    ty = "api_key",
    key_name = "X-Auth-Token",
    key_in = "header",
    checker = "check_rc_auth"
)]
pub struct RcAuth(pub Caller);

/// The `X-User-Id` header, the other half of Rocket.Chat authentication.
/// Only registered in the document; [`RcAuth`] reads and checks it.
#[derive(SecurityScheme)]
#[oai(
    rename = "RcUserId",
    ty = "api_key",
    key_name = "X-User-Id",
    key_in = "header"
)]
pub struct RcUserId(pub ApiKey);

async fn check_rc_auth(req: &Request, token: ApiKey) -> poem::Result<Caller> {
    let core = &crate::http::core_of::<RcError>(req)?;
    let user_id = nonblank(req.headers().get("x-user-id").and_then(|v| v.to_str().ok()))
        .ok_or_else(RcError::not_logged_in)?;
    let credential = Credential::UserToken {
        user_id: user_id.to_string(),
        token: Plaintext::new(token.key.trim()),
    };
    let caller = match core.authenticate(credential).await.map_err(RcError::from)? {
        Authenticated::Caller(caller) => *caller,
        Authenticated::Refused(_) => return Err(RcError::not_logged_in().into()),
    };
    enforce_rate_limit(core, req, Some(&caller)).await?;
    Ok(caller)
}

/// The caller `X-User-Id` and `X-Auth-Token` name, on a route Rocket.Chat
/// serves without authentication but answers more to some callers (`info`):
/// missing or invalid credentials make an anonymous call, not a 401.
pub async fn optional_caller(core: &Core, req: &Request) -> Result<Option<Caller>, RcError> {
    let header = |name: &str| nonblank(req.headers().get(name).and_then(|v| v.to_str().ok()));
    let (Some(user_id), Some(token)) = (header("x-user-id"), header("x-auth-token")) else {
        return Ok(None);
    };
    let credential = Credential::UserToken {
        user_id: user_id.to_string(),
        token: Plaintext::new(token),
    };
    Ok(match core.authenticate(credential).await? {
        Authenticated::Caller(caller) => Some(*caller),
        Authenticated::Refused(_) => None,
    })
}

/// Counts the call against Rocket.Chat's REST rate limiter (per client
/// address, method and path); 429 with `X-RateLimit-*` headers when over it.
pub async fn enforce_rate_limit(
    core: &Core,
    req: &Request,
    caller: Option<&Caller>,
) -> Result<(), RcError> {
    let ip = crate::http::client_ip(core, req);
    let route = format!("{} {}", req.method(), req.uri().path());
    match core.rate_limit(ip, &route, caller).await? {
        RateLimit::Allowed => Ok(()),
        RateLimit::Limited(limited) => Err(RcError::too_many_requests(limited, core.now())),
    }
}

/// Wraps the Rocket.Chat API so every operation secured by `X-Auth-Token`
/// requires `X-User-Id` in the same requirement object (AND, not OR).
pub struct RcSecurity<T>(pub T);

impl<T: OpenApi> OpenApi for RcSecurity<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for api in &mut apis {
            for path in &mut api.paths {
                for op in &mut path.operations {
                    for requirement in &mut op.security {
                        if requirement.contains_key(AUTH_TOKEN_SCHEME) {
                            requirement.insert(USER_ID_SCHEME, Vec::new());
                        }
                    }
                }
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        <RcUserId as ApiExtractor>::register(registry);
    }

    fn add_routes(
        self,
        route_table: &mut std::collections::HashMap<
            String,
            std::collections::HashMap<poem::http::Method, poem::endpoint::BoxEndpoint<'static>>,
        >,
    ) {
        self.0.add_routes(route_table)
    }
}
