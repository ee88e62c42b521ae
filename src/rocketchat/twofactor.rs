//! Two-factor authentication in Rocket.Chat's words: the `X-2FA-Code` /
//! `X-2FA-Method` headers, the `totp-required` / `totp-invalid` errors with
//! their `details`, TOTP enrolment (`users.totp.*`, Rocket.Chat 8's REST
//! routes for the `2fa:*` methods) and emailed codes (`users.2fa.*`).
//! Every rule is the core's (`core::service::twofactor`).

use super::auth::{optional_caller, RcAuth};
use super::body::RcBody;
use super::error::RcError;
use crate::core::credential::SecondFactor;
use crate::core::service::{
    Blocked, Challenge, Confirmed, EmailUnavailable, Refused, SecondFactorRefusal, SendEmailCode,
    TotpCodes, TotpDisable, TotpEnable,
};
use crate::core::throttle::BlockScope;
use crate::core::{Caller, Core};
use crate::http::{client_ip, ApiTags};
use poem::Request;
use poem_openapi::{payload::Json, Object, OpenApi};
use serde_json::{json, Value};
use std::sync::Arc;

/// The second factor a request carries in `X-2FA-Code` / `X-2FA-Method`.
pub fn second_factor_of(req: &Request) -> SecondFactor {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    SecondFactor::new(header("x-2fa-code"), header("x-2fa-method"))
}

/// Rocket.Chat's `details` of a second-factor error:
/// `{method, codeGenerated, availableMethods}`, plus `emailOrUsername` (and
/// `codeExpires` for a code sent earlier) for the email method.
pub fn challenge_details(c: &Challenge) -> Value {
    let mut d = json!({
        "method": c.method.as_str(),
        "codeGenerated": c.code_generated,
        "availableMethods": c.available.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
    });
    if let Some(who) = &c.email_or_username {
        d["emailOrUsername"] = json!(who);
    }
    if let Some(expires) = &c.code_expires {
        d["codeExpires"] = json!(crate::core::clock::iso(expires));
    }
    d
}

/// The `(error, reason)` of a second-factor refusal, as Rocket.Chat throws it.
pub fn refusal_code(r: &SecondFactorRefusal) -> (&'static str, &'static str) {
    match r {
        SecondFactorRefusal::Required(_) => ("totp-required", "TOTP Required"),
        SecondFactorRefusal::Invalid(_) => ("totp-invalid", "TOTP Invalid"),
        SecondFactorRefusal::MaxAttempts(_) => {
            ("totp-max-attempts", "TOTP Maximun Failed Attempts Reached")
        }
        SecondFactorRefusal::EmailUnavailable(_, EmailUnavailable::NotConfigured) => (
            "error-email-send-failed",
            "Error trying to send email: no SMTP server is configured (SMTP_HOST), so emailed codes cannot be sent",
        ),
        SecondFactorRefusal::EmailUnavailable(_, EmailUnavailable::SendFailed) => (
            "error-email-send-failed",
            "Error trying to send email: the SMTP server did not accept the code",
        ),
    }
}

fn blocked_error(b: Blocked) -> RcError {
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
    RcError::thrown(code, message, None)
}

/// A protected route's answer to a refusal: 400 `totp-required` and kin.
pub fn guard_error(refused: Refused) -> RcError {
    match refused {
        Refused::SecondFactor(r) => {
            let (code, reason) = refusal_code(&r);
            RcError::thrown(code, reason, Some(challenge_details(r.challenge())))
        }
        Refused::Blocked(b) => blocked_error(b),
        Refused::Busy(b) => RcError::too_busy(b.retry_after),
        Refused::Rejected => RcError::not_logged_in(),
    }
}

/// Asks the core whether a route Rocket.Chat marks `twoFactorRequired` may
/// go on for this caller (codes from the headers).
pub async fn require_second_factor(
    core: &Core,
    req: &Request,
    caller: &Caller,
) -> Result<(), RcError> {
    match core
        .confirm_second_factor(caller, &second_factor_of(req), client_ip(core, req))
        .await?
    {
        Confirmed::Yes => Ok(()),
        Confirmed::Refused(r) => Err(guard_error(r)),
    }
}

/// The enrolment and email-code routes.
pub struct TwoFactorApi {
    pub core: Arc<Core>,
}

/// `{code}`: a TOTP code (or a backup code where one is accepted).
#[derive(Object, Clone, Default)]
pub struct CodeBody {
    pub code: Option<String>,
}

crate::redacted_debug!(CodeBody);

/// `users.totp.enable`: the new secret and its `otpauth://` URI, once.
#[derive(Object)]
pub struct TotpEnableOk {
    /// Base32 secret, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/...` (for a QR code).
    pub url: String,
    pub success: bool,
}

crate::redacted_debug!(TotpEnableOk, success);

/// The 12 backup codes, shown this once.
#[derive(Object)]
pub struct CodesOk {
    pub codes: Vec<String>,
    pub success: bool,
}

crate::redacted_debug!(CodesOk, success);

/// `users.totp.disable`.
#[derive(Object, Debug)]
pub struct DisabledOk {
    /// Whether TOTP was turned off (false for a wrong code or TOTP off).
    pub disabled: bool,
    pub success: bool,
}

/// `users.totp.codesRemaining`.
#[derive(Object, Debug)]
pub struct RemainingOk {
    pub remaining: u64,
    pub success: bool,
}

/// `{"success": true}`
#[derive(Object, Debug)]
pub struct TwoFactorOk {
    pub success: bool,
}

/// Body of `users.2fa.sendEmailCode`.
#[derive(Object, Debug, Clone, Default)]
pub struct SendEmailCodeBody {
    /// The user's username or email address.
    #[oai(rename = "emailOrUsername")]
    pub email_or_username: Option<String>,
}

fn code_of(body: RcBody<CodeBody>) -> Result<String, RcError> {
    body.0
        .and_then(|b| b.code)
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| RcError::invalid_params("must have required property 'code'"))
}

fn codes(outcome: TotpCodes) -> Result<Json<CodesOk>, RcError> {
    match outcome {
        TotpCodes::Codes(c) => Ok(Json(CodesOk {
            codes: c.0,
            success: true,
        })),
        TotpCodes::Invalid => Err(RcError::thrown_code("invalid-totp")),
        TotpCodes::Blocked(b) => Err(blocked_error(b)),
    }
}

fn mail_error(why: EmailUnavailable) -> RcError {
    let (code, reason) = refusal_code(&SecondFactorRefusal::EmailUnavailable(
        Challenge {
            method: crate::core::service::Method::Email,
            available: Vec::new(),
            code_generated: false,
            email_or_username: None,
            code_expires: None,
        },
        why,
    ));
    RcError::thrown(code, reason, None)
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl TwoFactorApi {
    /// Start TOTP enrolment (Rocket.Chat `2fa:enable`): a new secret and its
    /// `otpauth://` URI. TOTP stays off until `users.totp.validate`.
    #[oai(
        path = "/api/v1/users.totp.enable",
        method = "post",
        operation_id = "users.totp.enable"
    )]
    async fn totp_enable(&self, auth: RcAuth) -> Result<Json<TotpEnableOk>, RcError> {
        match self.core.totp_enable(&auth.0).await? {
            TotpEnable::Started { secret, url } => Ok(Json(TotpEnableOk {
                secret: secret.expose().to_string(),
                url,
                success: true,
            })),
            TotpEnable::AlreadyEnabled => Err(RcError::thrown_code("error-2fa-already-enabled")),
            TotpEnable::InvalidUser => {
                Err(RcError::thrown("error-invalid-user", "Invalid user", None))
            }
        }
    }

    /// Finish TOTP enrolment (Rocket.Chat `2fa:validateTempToken`): the first
    /// code turns TOTP on and answers the 12 backup codes, once. The caller's
    /// other login tokens end (personal access tokens stay).
    #[oai(
        path = "/api/v1/users.totp.validate",
        method = "post",
        operation_id = "users.totp.validate"
    )]
    async fn totp_validate(
        &self,
        req: &Request,
        auth: RcAuth,
        body: RcBody<CodeBody>,
    ) -> Result<Json<CodesOk>, RcError> {
        let code = code_of(body)?;
        let ip = client_ip(&self.core, req);
        codes(self.core.totp_validate(&auth.0, &code, ip).await?)
    }

    /// Turn TOTP off with a TOTP or backup code (Rocket.Chat `2fa:disable`).
    #[oai(
        path = "/api/v1/users.totp.disable",
        method = "post",
        operation_id = "users.totp.disable"
    )]
    async fn totp_disable(
        &self,
        req: &Request,
        auth: RcAuth,
        body: RcBody<CodeBody>,
    ) -> Result<Json<DisabledOk>, RcError> {
        let code = code_of(body)?;
        let ip = client_ip(&self.core, req);
        match self.core.totp_disable(&auth.0, &code, ip).await? {
            TotpDisable::Done(disabled) => Ok(Json(DisabledOk {
                disabled,
                success: true,
            })),
            TotpDisable::Blocked(b) => Err(blocked_error(b)),
        }
    }

    /// Replace the backup codes with 12 new ones, shown once (Rocket.Chat
    /// `2fa:regenerateCodes`); needs a TOTP or backup code.
    #[oai(
        path = "/api/v1/users.totp.regenerateCodes",
        method = "post",
        operation_id = "users.totp.regenerateCodes"
    )]
    async fn totp_regenerate_codes(
        &self,
        req: &Request,
        auth: RcAuth,
        body: RcBody<CodeBody>,
    ) -> Result<Json<CodesOk>, RcError> {
        let code = code_of(body)?;
        let ip = client_ip(&self.core, req);
        codes(self.core.totp_regenerate_codes(&auth.0, &code, ip).await?)
    }

    /// How many backup codes are left (Rocket.Chat `2fa:checkCodesRemaining`).
    #[oai(
        path = "/api/v1/users.totp.codesRemaining",
        method = "get",
        operation_id = "users.totp.codesRemaining"
    )]
    async fn totp_codes_remaining(&self, auth: RcAuth) -> Result<Json<RemainingOk>, RcError> {
        match self.core.totp_codes_remaining(&auth.0).await? {
            Some(n) => Ok(Json(RemainingOk {
                remaining: n as u64,
                success: true,
            })),
            None => Err(RcError::thrown_code("invalid-totp")),
        }
    }

    /// Turn emailed codes on for the caller (they apply once the caller has
    /// a verified email address).
    #[oai(
        path = "/api/v1/users.2fa.enableEmail",
        method = "post",
        operation_id = "users.2fa.enableEmail"
    )]
    async fn enable_email(&self, auth: RcAuth) -> Result<Json<TwoFactorOk>, RcError> {
        self.core.enable_email_two_factor(&auth.0).await?;
        Ok(Json(TwoFactorOk { success: true }))
    }

    /// Turn emailed codes off: a protected action (`X-2FA-Code` /
    /// `X-2FA-Method`, `totp-required` without them).
    #[oai(
        path = "/api/v1/users.2fa.disableEmail",
        method = "post",
        operation_id = "users.2fa.disableEmail"
    )]
    async fn disable_email(
        &self,
        req: &Request,
        auth: RcAuth,
    ) -> Result<Json<TwoFactorOk>, RcError> {
        require_second_factor(&self.core, req, &auth.0).await?;
        self.core.disable_email_two_factor(&auth.0).await?;
        Ok(Json(TwoFactorOk { success: true }))
    }

    /// Mail a new code to the caller, or without credentials to the user
    /// named by `emailOrUsername` (success either way, so it tells nobody
    /// who exists). Without SMTP configured: 400 `error-email-send-failed`.
    #[oai(
        path = "/api/v1/users.2fa.sendEmailCode",
        method = "post",
        operation_id = "users.2fa.sendEmailCode"
    )]
    async fn send_email_code(
        &self,
        req: &Request,
        body: RcBody<SendEmailCodeBody>,
    ) -> Result<Json<TwoFactorOk>, RcError> {
        super::auth::enforce_rate_limit(&self.core, req, None).await?;
        let name = body
            .0
            .and_then(|b| b.email_or_username)
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                RcError::thrown(
                    "error-parameter-required",
                    "emailOrUsername is required",
                    None,
                )
            })?;
        let caller = optional_caller(&self.core, req).await?;
        match self.core.send_email_code(caller.as_ref(), &name).await? {
            SendEmailCode::Done => Ok(Json(TwoFactorOk { success: true })),
            SendEmailCode::Unavailable(why) => Err(mail_error(why)),
        }
    }
}
