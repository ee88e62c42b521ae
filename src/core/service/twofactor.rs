//! Two-factor authentication, as Rocket.Chat's `checkCodeForUser`: the one
//! rule both password logins and protected actions go through
//! ([`Core::check_second_factor`]), TOTP enrolment (`users.totp.*`) and
//! emailed codes (`users.2fa.*`).
//!
//! * Which method: the one the client names (`X-2FA-Method`) if the user has
//!   it, else the first the user has (TOTP, then email); for a protected
//!   action of a user with neither, the password
//!   (`TWO_FACTOR_PASSWORD_FALLBACK`); none at all: nothing to check.
//! * Email: without a live code, a new one is mailed first (Rocket.Chat's
//!   `processInvalidCode`); with no mailer, or a failed send, the refusal
//!   says so ([`SecondFactorRefusal::EmailUnavailable`]): never a bypass.
//! * Wrong codes count as failed logins (the account's and the address's
//!   throttle); a missing code does not count.
//! * Backup codes and emailed codes work once: the store spends them atomically.

use super::auth::BUSY_RETRY_AFTER;
use super::{Core, Refused};
use crate::core::audit::AuditKind;
use crate::core::credential::{Caller, SecondFactor, Via};
use crate::core::error::CoreError;
use crate::core::model::{LoginToken, Timestamp, User};
use crate::core::password::{Checked, PasswordInput};
use crate::core::service::auth::{Blocked, Busy, PendingLogin};
use crate::core::twofactor::{self as tf, EmailCode, TotpSecret, TwoFactorState};
use std::net::IpAddr;

/// A second-factor method (Rocket.Chat's `ICodeCheck.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    Email,
    /// The password fallback of protected actions.
    Password,
}

impl Method {
    /// The method's name in Rocket.Chat's `details` and `X-2FA-Method`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Email => "email",
            Method::Password => "password",
        }
    }
}

/// What a refused second factor tells the client (Rocket.Chat's `details`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The method the code is checked with.
    pub method: Method,
    /// The user's methods (`availableMethods`; never `password`).
    pub available: Vec<Method>,
    /// Whether an email code was just sent (`codeGenerated`).
    pub code_generated: bool,
    /// Email method only: the user's username (or first verified address).
    pub email_or_username: Option<String>,
    /// Email method only: when the code already sent expires (`codeExpires`).
    pub code_expires: Option<Timestamp>,
}

/// Why an emailed code cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailUnavailable {
    /// `SMTP_HOST` is not set.
    NotConfigured,
    /// The SMTP server did not take the message.
    SendFailed,
}

/// Why a second factor was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactorRefusal {
    /// No code came (`totp-required`).
    Required(Challenge),
    /// The code is wrong, expired or spent (`totp-invalid`).
    Invalid(Challenge),
    /// Too many wrong emailed codes (`totp-max-attempts`).
    MaxAttempts(Challenge),
    /// The email method is selected and no code can be mailed.
    EmailUnavailable(Challenge, EmailUnavailable),
}

impl SecondFactorRefusal {
    /// The challenge, whichever the refusal.
    pub fn challenge(&self) -> &Challenge {
        match self {
            SecondFactorRefusal::Required(c)
            | SecondFactorRefusal::Invalid(c)
            | SecondFactorRefusal::MaxAttempts(c)
            | SecondFactorRefusal::EmailUnavailable(c, _) => c,
        }
    }

    /// Whether a wrong code was presented (counts as a failed login).
    pub(crate) fn is_wrong_code(&self) -> bool {
        matches!(
            self,
            SecondFactorRefusal::Invalid(_) | SecondFactorRefusal::MaxAttempts(_)
        )
    }
}

/// Outcome of [`Core::check_second_factor`].
#[derive(Debug)]
pub(super) enum CodeCheck {
    /// The user has nothing to check (and no fallback applies).
    NotNeeded,
    /// The code is right.
    Passed,
    /// Refused (a second-factor refusal, or `Busy`).
    Refused(Refused),
}

/// Outcome of [`Core::confirm_second_factor`] (a protected action).
#[derive(Debug)]
pub enum Confirmed {
    /// Go ahead.
    Yes,
    /// Refused: a second-factor refusal, `Blocked` or `Busy`.
    Refused(Refused),
}

/// Outcome of [`Core::totp_enable`]. `Debug` prints neither the secret nor
/// the URI (which holds it).
pub enum TotpEnable {
    /// The pending secret and its `otpauth://` URI (shown once).
    Started { secret: TotpSecret, url: String },
    /// TOTP is on already (`error-2fa-already-enabled`).
    AlreadyEnabled,
    /// The user has no username (`error-invalid-user`).
    InvalidUser,
}

impl std::fmt::Debug for TotpEnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TotpEnable::Started { .. } => f.write_str("Started(<redacted>)"),
            TotpEnable::AlreadyEnabled => f.write_str("AlreadyEnabled"),
            TotpEnable::InvalidUser => f.write_str("InvalidUser"),
        }
    }
}

/// Outcome of [`Core::totp_validate`] and [`Core::totp_regenerate_codes`].
#[derive(Debug)]
pub enum TotpCodes {
    /// The new backup codes, shown once.
    Codes(BackupCodes),
    /// No pending enrolment / TOTP off, or a wrong code (`invalid-totp`).
    Invalid,
    /// Too many failed logins or codes.
    Blocked(Blocked),
}

/// Backup codes in clear: shown once. `Debug` prints only how many.
pub struct BackupCodes(pub Vec<String>);

impl std::fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupCodes({} codes, <redacted>)", self.0.len())
    }
}

/// Outcome of [`Core::totp_disable`].
#[derive(Debug)]
pub enum TotpDisable {
    /// Whether TOTP was turned off (`{disabled}`: false for a wrong code or TOTP off).
    Done(bool),
    Blocked(Blocked),
}

/// Outcome of [`Core::send_email_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendEmailCode {
    /// Sent, or nothing to send (an unknown user or one without email 2FA
    /// is not told apart, as Rocket.Chat).
    Done,
    /// No code could be mailed.
    Unavailable(EmailUnavailable),
}

/// The methods a user has, in Rocket.Chat's order (TOTP, then email; email
/// only with a verified address).
fn available(user: &User, state: &TwoFactorState) -> Vec<Method> {
    let mut methods = Vec::new();
    if state.totp_enabled() {
        methods.push(Method::Totp);
    }
    if state.email_enabled && user.verified_email().is_some() {
        methods.push(Method::Email);
    }
    methods
}

fn verified_addresses(user: &User) -> Vec<String> {
    user.emails
        .iter()
        .filter(|e| e.verified)
        .map(|e| e.address.clone())
        .collect()
}

/// Whether a stored email code still works at `now`.
fn live(code: &EmailCode, now: Timestamp, max_attempts: u32) -> bool {
    code.expire > now && code.attempts < max_attempts
}

impl Core {
    /// The one second-factor rule (Rocket.Chat's `checkCodeForUser`), for a
    /// user whose password or token was already checked. `password_fallback`:
    /// whether a user without a second factor confirms with the password.
    /// Counting failures is the caller's (it holds the throttle reservation).
    pub(super) async fn check_second_factor(
        &self,
        user: &User,
        presented: &SecondFactor,
        password_fallback: bool,
    ) -> Result<CodeCheck, CoreError> {
        let state = self.store.two_factor(&user.id).await?;
        let available = available(user, &state);
        let named = match presented.method() {
            Some("totp") => Some(Method::Totp),
            Some("email") => Some(Method::Email),
            _ => None,
        };
        let fallback = password_fallback && user.password_bcrypt.is_some();
        let method = match named.filter(|m| available.contains(m)) {
            Some(m) => m,
            None => match available.first() {
                Some(m) => *m,
                None if fallback => Method::Password,
                None => return Ok(CodeCheck::NotNeeded),
            },
        };
        let mut challenge = Challenge {
            method,
            available,
            code_generated: false,
            email_or_username: None,
            code_expires: None,
        };
        let refuse =
            |r: SecondFactorRefusal| Ok(CodeCheck::Refused(Refused::SecondFactor(Box::new(r))));
        let mut email_code = None;
        if method == Method::Email {
            challenge.email_or_username = user
                .username
                .clone()
                .or_else(|| user.verified_email().map(str::to_string));
            match self.live_email_code(user, &state).await? {
                Ok((code, generated)) => {
                    challenge.code_generated = generated;
                    if !generated {
                        challenge.code_expires = Some(code.expire);
                    }
                    email_code = Some(code);
                }
                Err(why) => return refuse(SecondFactorRefusal::EmailUnavailable(challenge, why)),
            }
        }
        let Some(code) = presented.code() else {
            return refuse(SecondFactorRefusal::Required(challenge));
        };
        let verified = match method {
            Method::Totp => self.verify_totp_or_backup(&user.id, &state, code).await?,
            Method::Password => {
                let input = if code.len() == 64 && code.bytes().all(|b| b.is_ascii_hexdigit()) {
                    PasswordInput::Sha256Digest(code.to_string())
                } else {
                    PasswordInput::Plain(code.to_string())
                };
                match self
                    .bcrypt
                    .verify(&input, user.password_bcrypt.as_ref())
                    .await?
                {
                    Checked::Busy => return Ok(CodeCheck::Refused(busy())),
                    checked => checked == Checked::Match,
                }
            }
            Method::Email => {
                let Some(stored) = email_code.filter(|_| !challenge.code_generated) else {
                    // A code was only just sent: the one presented is not it.
                    return refuse(SecondFactorRefusal::Invalid(challenge));
                };
                match self
                    .bcrypt
                    .verify_code(&tf::digits_of(code), &stored.hash)
                    .await?
                {
                    Checked::Busy => return Ok(CodeCheck::Refused(busy())),
                    Checked::Match => self.store.use_email_code(&user.id, &stored.hash).await?,
                    Checked::Mismatch => {
                        self.store.count_email_code_failure(&user.id).await?;
                        if stored.attempts + 1 >= self.config.two_factor.email_max_attempts {
                            return refuse(SecondFactorRefusal::MaxAttempts(challenge));
                        }
                        false
                    }
                }
            }
        };
        if verified {
            Ok(CodeCheck::Passed)
        } else {
            refuse(SecondFactorRefusal::Invalid(challenge))
        }
    }

    /// A TOTP code within the window, or an unused backup code (spent here).
    async fn verify_totp_or_backup(
        &self,
        user_id: &str,
        state: &TwoFactorState,
        code: &str,
    ) -> Result<bool, CoreError> {
        let Some(totp) = state.totp.as_ref().filter(|_| state.totp_enabled()) else {
            return Ok(false);
        };
        if tf::looks_like_backup_code(code) {
            let hash = tf::hash_backup_code(code.trim());
            return Ok(totp.hashed_backup.contains(&hash)
                && self.store.use_backup_code(user_id, &hash).await?);
        }
        Ok(totp.secret.as_ref().is_some_and(|secret| {
            tf::verify_totp(secret, code, self.now(), self.config.two_factor.totp_window)
        }))
    }

    /// The user's live email code, or a new one mailed now (`true`). An
    /// expired one is removed first.
    async fn live_email_code(
        &self,
        user: &User,
        state: &TwoFactorState,
    ) -> Result<Result<(EmailCode, bool), EmailUnavailable>, CoreError> {
        let now = self.now();
        match &state.email_code {
            Some(code) if live(code, now, self.config.two_factor.email_max_attempts) => {
                return Ok(Ok((code.clone(), false)));
            }
            Some(code) if code.expire <= now => self.store.set_email_code(&user.id, None).await?,
            _ => {}
        }
        Ok(self.mail_new_code(user).await?.map(|code| (code, true)))
    }

    /// Draws a code, keeps its hash with its expiry, and mails it to every
    /// verified address. Nothing is kept when it cannot be sent.
    async fn mail_new_code(
        &self,
        user: &User,
    ) -> Result<Result<EmailCode, EmailUnavailable>, CoreError> {
        let Some(mailer) = self.mailer.as_ref() else {
            return Ok(Err(EmailUnavailable::NotConfigured));
        };
        let code = tf::generate_email_code();
        let stored = EmailCode {
            hash: self.bcrypt.hash_code(&code).await?,
            expire: self.login_code_expiry(),
            attempts: 0,
        };
        self.store.set_email_code(&user.id, Some(&stored)).await?;
        let text = format!(
            "\nHere is your authentication code:\n\n{}\n\nDo not provide this code to anyone.\n\
             If you didn't try to login in your account please ignore this email.\n",
            tf::display_email_code(&code)
        );
        for address in verified_addresses(user) {
            if let Err(e) = mailer.send(&address, "Authentication code", &text).await {
                tracing::warn!(user_id = %user.id, error = %e, "an emailed two-factor code was not sent");
                self.store.set_email_code(&user.id, None).await?;
                return Ok(Err(EmailUnavailable::SendFailed));
            }
        }
        Ok(Ok(stored))
    }

    fn login_code_expiry(&self) -> Timestamp {
        let lifetime = chrono::Duration::from_std(self.config.two_factor.email_code_lifetime)
            .unwrap_or(chrono::Duration::hours(1));
        self.now() + lifetime
    }

    /// The second factor of a password login (the caller holds the throttle
    /// reservation and counts what [`counts_as_failure`] says).
    pub(super) async fn login_second_factor(
        &self,
        user: &User,
        presented: &SecondFactor,
    ) -> Result<CodeCheck, CoreError> {
        // As Rocket.Chat's login hook: no password fallback at login.
        self.check_second_factor(user, presented, false).await
    }

    /// Whether the caller may go on with an action Rocket.Chat guards with
    /// two-factor (`twoFactorRequired`): a code of the user's method, or for
    /// a user without one the password (`TWO_FACTOR_PASSWORD_FALLBACK`).
    /// Skipped for a personal access token made with `bypassTwoFactor`, and
    /// for a request that authenticated with the password itself (SAYMON
    /// Basic: password and code were checked by this very request). Wrong
    /// codes count as failed logins, and a blocked account is refused.
    pub async fn confirm_second_factor(
        &self,
        caller: &Caller,
        presented: &SecondFactor,
        ip: Option<IpAddr>,
    ) -> Result<Confirmed, CoreError> {
        match &caller.via {
            Via::Password => return Ok(Confirmed::Yes),
            Via::PersonalAccessToken(hash) => {
                if let Some((_, LoginToken::Personal(pat))) =
                    self.store.find_by_token(Some(caller.id()), hash).await?
                {
                    if pat.bypass_two_factor {
                        return Ok(Confirmed::Yes);
                    }
                }
            }
            _ => {}
        }
        let fallback = self.config.two_factor.password_fallback;
        if presented.code().is_none() {
            // No code to check, so nothing to count or reserve: the answer
            // is "not needed" or a challenge.
            return Ok(
                match self
                    .check_second_factor(&caller.user, presented, fallback)
                    .await?
                {
                    CodeCheck::NotNeeded | CodeCheck::Passed => Confirmed::Yes,
                    CodeCheck::Refused(refused) => Confirmed::Refused(refused),
                },
            );
        }
        let pending = match self.reserve_code_check(caller, ip).await? {
            Ok(pending) => pending,
            Err(blocked) => return Ok(Confirmed::Refused(Refused::Blocked(blocked))),
        };
        Ok(
            match self
                .check_second_factor(&caller.user, presented, fallback)
                .await?
            {
                CodeCheck::NotNeeded => {
                    self.withdraw_login_attempt(pending).await?;
                    Confirmed::Yes
                }
                CodeCheck::Passed => {
                    self.login_attempt_succeeded(pending).await?;
                    Confirmed::Yes
                }
                CodeCheck::Refused(refused) => {
                    if counts_as_failure(&refused) {
                        pending.failed();
                    } else {
                        self.withdraw_login_attempt(pending).await?;
                    }
                    Confirmed::Refused(refused)
                }
            },
        )
    }

    /// Reserves a failed-login attempt on the caller's account and address
    /// before a second-factor code is checked (the shared store-backed
    /// throttle of [`Core::begin_login_attempt`]): a blocked account or
    /// address is refused before any code is looked at.
    async fn reserve_code_check(
        &self,
        caller: &Caller,
        ip: Option<IpAddr>,
    ) -> Result<Result<PendingLogin, Blocked>, CoreError> {
        let typed = caller.user.username.as_deref().unwrap_or(caller.id());
        self.begin_login_attempt(Some(&caller.user), typed, ip)
            .await
    }

    /// Checks a TOTP (or backup) code of the caller for an enrolment route,
    /// counting a wrong one as a failed login.
    async fn throttled_totp(
        &self,
        caller: &Caller,
        secret: Option<&TotpSecret>,
        state: &TwoFactorState,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<bool, Blocked>, CoreError> {
        let pending = match self.reserve_code_check(caller, ip).await? {
            Ok(pending) => pending,
            Err(blocked) => return Ok(Err(blocked)),
        };
        let ok = match secret {
            // A pending secret: TOTP only (no backup codes yet).
            Some(secret) => {
                tf::verify_totp(secret, code, self.now(), self.config.two_factor.totp_window)
            }
            None => self.verify_totp_or_backup(caller.id(), state, code).await?,
        };
        if ok {
            self.login_attempt_succeeded(pending).await?;
        } else {
            pending.failed();
        }
        Ok(Ok(ok))
    }

    /// `users.totp.enable`: a new pending secret (TOTP stays off until
    /// [`Core::totp_validate`]).
    pub async fn totp_enable(&self, caller: &Caller) -> Result<TotpEnable, CoreError> {
        let Some(username) = caller.user.username.as_deref() else {
            return Ok(TotpEnable::InvalidUser);
        };
        if self.store.two_factor(caller.id()).await?.totp_enabled() {
            return Ok(TotpEnable::AlreadyEnabled);
        }
        let secret = TotpSecret::generate();
        if !self.store.begin_totp(caller.id(), &secret).await? {
            return Ok(TotpEnable::InvalidUser);
        }
        let url = tf::otpauth_url(&secret, username);
        Ok(TotpEnable::Started { secret, url })
    }

    /// `users.totp.validate`: the first code of the pending secret turns TOTP
    /// on and answers the backup codes, once. The caller's other login tokens
    /// end (not PATs), as Rocket.Chat's `validateTotpTempToken`.
    pub async fn totp_validate(
        &self,
        caller: &Caller,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<TotpCodes, CoreError> {
        let state = self.store.two_factor(caller.id()).await?;
        let Some(pending) = state.totp.as_ref().and_then(|t| t.temp_secret.clone()) else {
            return Ok(TotpCodes::Invalid);
        };
        match self
            .throttled_totp(caller, Some(&pending), &state, code, ip)
            .await?
        {
            Err(blocked) => return Ok(TotpCodes::Blocked(blocked)),
            Ok(false) => return Ok(TotpCodes::Invalid),
            Ok(true) => {}
        }
        let (codes, hashes) = tf::generate_backup_codes();
        if !self
            .store
            .enable_totp(caller.id(), &pending, &hashes)
            .await?
        {
            return Ok(TotpCodes::Invalid);
        }
        if let Via::LoginToken(current) = &caller.via {
            self.store
                .remove_login_tokens(caller.id(), Some(current))
                .await?;
        }
        self.audit(
            AuditKind::TwoFactorEnabled,
            Some(caller.id()),
            Some(caller.id()),
            Some("totp"),
        )
        .await;
        Ok(TotpCodes::Codes(BackupCodes(codes)))
    }

    /// `users.totp.disable`: a TOTP or backup code turns TOTP off.
    pub async fn totp_disable(
        &self,
        caller: &Caller,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<TotpDisable, CoreError> {
        let state = self.store.two_factor(caller.id()).await?;
        if !state.totp_enabled() {
            return Ok(TotpDisable::Done(false));
        }
        Ok(
            match self.throttled_totp(caller, None, &state, code, ip).await? {
                Err(blocked) => TotpDisable::Blocked(blocked),
                Ok(false) => TotpDisable::Done(false),
                Ok(true) => {
                    let disabled = self.store.disable_totp(caller.id()).await?;
                    if disabled {
                        self.audit(
                            AuditKind::TwoFactorDisabled,
                            Some(caller.id()),
                            Some(caller.id()),
                            Some("totp"),
                        )
                        .await;
                    }
                    TotpDisable::Done(disabled)
                }
            },
        )
    }

    /// `users.totp.regenerateCodes`: a TOTP or backup code replaces every
    /// backup code with 12 new ones, shown once.
    pub async fn totp_regenerate_codes(
        &self,
        caller: &Caller,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<TotpCodes, CoreError> {
        let state = self.store.two_factor(caller.id()).await?;
        if !state.totp_enabled() {
            return Ok(TotpCodes::Invalid);
        }
        match self.throttled_totp(caller, None, &state, code, ip).await? {
            Err(blocked) => return Ok(TotpCodes::Blocked(blocked)),
            Ok(false) => return Ok(TotpCodes::Invalid),
            Ok(true) => {}
        }
        let (codes, hashes) = tf::generate_backup_codes();
        Ok(
            if self.store.set_backup_codes(caller.id(), &hashes).await? {
                TotpCodes::Codes(BackupCodes(codes))
            } else {
                TotpCodes::Invalid
            },
        )
    }

    /// `users.totp.codesRemaining`: unused backup codes; `None` with TOTP off.
    pub async fn totp_codes_remaining(&self, caller: &Caller) -> Result<Option<usize>, CoreError> {
        let state = self.store.two_factor(caller.id()).await?;
        let enabled = state.totp_enabled();
        Ok(state
            .totp
            .filter(|_| enabled)
            .map(|t| t.hashed_backup.len()))
    }

    /// `users.2fa.enableEmail`: emailed codes on for the caller (they work
    /// once the user has a verified address).
    pub async fn enable_email_two_factor(&self, caller: &Caller) -> Result<(), CoreError> {
        if self.store.set_email_two_factor(caller.id(), true).await? {
            self.audit(
                AuditKind::TwoFactorEnabled,
                Some(caller.id()),
                Some(caller.id()),
                Some("email"),
            )
            .await;
        }
        Ok(())
    }

    /// `users.2fa.disableEmail`: emailed codes off. A protected action: the
    /// dialect confirms the second factor first.
    pub async fn disable_email_two_factor(&self, caller: &Caller) -> Result<(), CoreError> {
        let changed = self.store.set_email_two_factor(caller.id(), false).await?;
        self.store.set_email_code(caller.id(), None).await?;
        if changed {
            self.audit(
                AuditKind::TwoFactorDisabled,
                Some(caller.id()),
                Some(caller.id()),
                Some("email"),
            )
            .await;
        }
        Ok(())
    }

    /// `users.2fa.sendEmailCode`: mails a new code to the caller, or to the
    /// user named by username or email address, if that user has email 2FA.
    pub async fn send_email_code(
        &self,
        caller: Option<&Caller>,
        email_or_username: &str,
    ) -> Result<SendEmailCode, CoreError> {
        let user = match caller {
            Some(caller) => Some(caller.user.clone()),
            None => {
                let name = email_or_username.trim().to_string();
                let key = if name.contains('@') {
                    crate::core::UserKey::Email(name)
                } else {
                    crate::core::UserKey::Username(name)
                };
                self.store.find_user(&key).await?
            }
        };
        let Some(user) = user.filter(|u| u.active) else {
            return Ok(SendEmailCode::Done);
        };
        let state = self.store.two_factor(&user.id).await?;
        if !available(&user, &state).contains(&Method::Email) {
            return Ok(SendEmailCode::Done);
        }
        Ok(match self.mail_new_code(&user).await? {
            Ok(_) => SendEmailCode::Done,
            Err(why) => SendEmailCode::Unavailable(why),
        })
    }
}

fn busy() -> Refused {
    Refused::Busy(Busy {
        retry_after: BUSY_RETRY_AFTER,
    })
}

/// Whether a refusal of the second factor counts as a failed login: a wrong
/// code does; a missing one, a busy server or a mail failure does not.
pub(super) fn counts_as_failure(refused: &Refused) -> bool {
    matches!(refused, Refused::SecondFactor(r) if r.is_wrong_code())
}

impl Core {
    /// The second factor of a user change ([`Core::update_user`]): changing
    /// one's own password or email address is a protected action
    /// (Rocket.Chat asks for two-factor there); any other change needs none.
    pub async fn confirm_user_update(
        &self,
        caller: &Caller,
        target_id: &str,
        changes: &super::UserChanges,
        presented: &SecondFactor,
        ip: Option<IpAddr>,
    ) -> Result<Confirmed, CoreError> {
        let own = target_id == caller.id();
        let sensitive = changes.password.is_some()
            || changes.email.as_ref().is_some_and(|e| e.address.is_some());
        if !(own && sensitive) {
            return Ok(Confirmed::Yes);
        }
        self.confirm_second_factor(caller, presented, ip).await
    }
}
