//! Two-factor authentication as Rocket.Chat keeps it: the data
//! (`services.totp`, `services.email2fa`, `services.emailCode`), TOTP codes
//! (RFC 6238, as Rocket.Chat's `speakeasy`: HMAC-SHA1, 6 digits, 30-second
//! steps, base32 secret), backup codes (12 of `Random.id(8)`, kept as their
//! SHA-256 hex) and emailed codes (6 digits, kept as bcrypt with an expiry).
//!
//! Pure functions only; `Core`'s operations (`service::twofactor`) apply them.

use super::model::Timestamp;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;
use std::fmt;
use subtle::ConstantTimeEq;

/// A TOTP secret in base32 (`services.totp.secret`). `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(String);

impl TotpSecret {
    /// A secret read back from a store (or written there by Rocket.Chat).
    pub fn from_stored(base32: impl Into<String>) -> Self {
        Self(base32.into())
    }

    /// A new secret as `speakeasy.generateSecret()` makes one: 32 random
    /// printable characters, shown and stored as unpadded base32.
    pub fn generate() -> Self {
        const SYMBOLS: &[u8] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!@#$%^&*()<>?/[]{},.:;";
        let mut rng = rand::rng();
        let ascii: Vec<u8> = (0..32)
            .map(|_| SYMBOLS[rng.random_range(0..SYMBOLS.len())])
            .collect();
        Self(data_encoding::BASE32_NOPAD.encode(&ascii))
    }

    /// The base32 text, for the one response that shows it and for the store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key bytes; `None` when the text is not base32 (ignoring case,
    /// spaces and padding, as authenticator apps write it).
    fn key(&self) -> Option<Vec<u8>> {
        let clean: String = self
            .0
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        data_encoding::BASE32_NOPAD.decode(clean.as_bytes()).ok()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Length of a TOTP step.
pub const TOTP_STEP_SECONDS: i64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Backup codes made at once (Rocket.Chat `TOTP.generateCodes`).
pub const BACKUP_CODES: usize = 12;
/// Length of a backup code; a code of this length is checked as one.
pub const BACKUP_CODE_LEN: usize = 8;
/// Digits of an emailed code.
pub const EMAIL_CODE_DIGITS: usize = 6;

/// The RFC 4226 code of `key` at `counter`.
fn hotp(key: &[u8], counter: u64) -> Option<String> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let bytes = digest.get(offset..offset + 4)?;
    let value = u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
    Some(format!(
        "{:0width$}",
        value % 10u32.pow(TOTP_DIGITS as u32),
        width = TOTP_DIGITS
    ))
}

/// The TOTP code of `secret` at `at` (what an authenticator app shows).
pub fn totp_code(secret: &TotpSecret, at: Timestamp) -> Option<String> {
    let counter = u64::try_from(at.timestamp().div_euclid(TOTP_STEP_SECONDS)).ok()?;
    hotp(&secret.key()?, counter)
}

/// Whether `code` is the TOTP code of `secret` within `window` steps either
/// side of `now` (`speakeasy.totp.verifyDelta` with Rocket.Chat's `MaxDelta`).
pub fn verify_totp(secret: &TotpSecret, code: &str, now: Timestamp, window: u32) -> bool {
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some(key) = secret.key() else {
        return false;
    };
    let current = now.timestamp().div_euclid(TOTP_STEP_SECONDS);
    let window = i64::from(window);
    let mut matched = false;
    for counter in (current - window)..=(current + window) {
        let Ok(counter) = u64::try_from(counter) else {
            continue;
        };
        if let Some(expected) = hotp(&key, counter) {
            matched |= bool::from(expected.as_bytes().ct_eq(code.as_bytes()));
        }
    }
    matched
}

/// `otpauth://totp/Rocket.Chat:<username>?secret=<base32>`, as Rocket.Chat's
/// `TOTP.generateOtpauthURL` (the label percent-encoded, default algorithm,
/// digits and period).
pub fn otpauth_url(secret: &TotpSecret, username: &str) -> String {
    let label: String =
        form_urlencoded::byte_serialize(format!("Rocket.Chat:{username}").as_bytes())
            .collect::<String>()
            .replace('+', "%20");
    format!("otpauth://totp/{label}?secret={}", secret.expose())
}

/// Meteor's `Random.id` alphabet (no look-alike characters).
const UNMISTAKABLE: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

/// New backup codes (shown once) and their hashes (stored in
/// `services.totp.hashedBackup`).
pub fn generate_backup_codes() -> (Vec<String>, Vec<String>) {
    let mut rng = rand::rng();
    let codes: Vec<String> = (0..BACKUP_CODES)
        .map(|_| {
            (0..BACKUP_CODE_LEN)
                .map(|_| char::from(UNMISTAKABLE[rng.random_range(0..UNMISTAKABLE.len())]))
                .collect()
        })
        .collect();
    let hashes = codes.iter().map(|c| hash_backup_code(c)).collect();
    (codes, hashes)
}

/// A backup code as stored: Meteor's `SHA256(code)`, lowercase hex.
pub fn hash_backup_code(code: &str) -> String {
    super::token::sha256_hex(code)
}

/// Whether a presented code has the shape of a backup code (Rocket.Chat
/// checks 8-character codes against the backup list, not as TOTP).
pub fn looks_like_backup_code(code: &str) -> bool {
    code.trim().chars().count() == BACKUP_CODE_LEN
}

/// A new emailed code: 6 random digits.
pub fn generate_email_code() -> String {
    let mut rng = rand::rng();
    (0..EMAIL_CODE_DIGITS)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// The code as the email shows it: `123-456`.
pub fn display_email_code(code: &str) -> String {
    match code.split_at_checked(3) {
        Some((a, b)) => format!("{a}-{b}"),
        None => code.to_string(),
    }
}

/// A presented email code with everything but digits removed (Rocket.Chat
/// accepts `123-456` and `123 456`).
pub fn digits_of(code: &str) -> String {
    code.chars().filter(char::is_ascii_digit).collect()
}

/// `services.totp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totp {
    pub enabled: bool,
    /// The secret in use (`secret`), once enrolment is validated.
    pub secret: Option<TotpSecret>,
    /// The secret of an enrolment not validated yet (`tempSecret`).
    pub temp_secret: Option<TotpSecret>,
    /// SHA-256 hex of each unused backup code (`hashedBackup`).
    pub hashed_backup: Vec<String>,
}

/// `services.emailCode`: the last emailed code, hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailCode {
    /// bcrypt of the code's digits (`code`).
    pub hash: String,
    /// When it stops working (`expire`).
    pub expire: Timestamp,
    /// Wrong codes entered since it was sent (`attempts`).
    pub attempts: u32,
}

impl fmt::Debug for EmailCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailCode")
            .field("hash", &"<redacted>")
            .field("expire", &self.expire)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// Everything a store keeps about a user's second factors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwoFactorState {
    /// `services.totp`, if present.
    pub totp: Option<Totp>,
    /// `services.email2fa.enabled`.
    pub email_enabled: bool,
    /// `services.emailCode`, if a code was sent and not used.
    pub email_code: Option<EmailCode>,
}

impl TwoFactorState {
    /// Whether TOTP is on (`services.totp.enabled === true`, with a secret).
    pub fn totp_enabled(&self) -> bool {
        self.totp
            .as_ref()
            .is_some_and(|t| t.enabled && t.secret.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    /// RFC 6238 appendix B, SHA-1 (8-digit values, last 6 digits here).
    #[test]
    fn rfc6238_vectors() {
        let secret = TotpSecret::from_stored(data_encoding::BASE32.encode(b"12345678901234567890"));
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let at = DateTime::from_timestamp(t, 0).unwrap();
            assert_eq!(totp_code(&secret, at).unwrap(), code, "t={t}");
            assert!(verify_totp(&secret, code, at, 0));
        }
    }

    #[test]
    fn the_window_accepts_neighbouring_steps_only() {
        let secret = TotpSecret::generate();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let step = chrono::Duration::seconds(TOTP_STEP_SECONDS);
        let previous = totp_code(&secret, now - step).unwrap();
        let older = totp_code(&secret, now - step * 2).unwrap();
        assert!(verify_totp(&secret, &previous, now, 1));
        assert!(!verify_totp(&secret, &previous, now, 0));
        assert!(!verify_totp(&secret, &older, now, 1) || older == previous);
        assert!(!verify_totp(&secret, "12345", now, 1));
        assert!(!verify_totp(&secret, "abcdef", now, 1));
    }

    #[test]
    fn secrets_are_base32_of_32_characters_and_redacted() {
        let s = TotpSecret::generate();
        assert_eq!(s.expose().len(), 52);
        assert_eq!(s.key().unwrap().len(), 32);
        assert!(!format!("{s:?}").contains(s.expose()));
        let lower = TotpSecret::from_stored(s.expose().to_lowercase());
        assert_eq!(lower.key(), s.key());
    }

    #[test]
    fn backup_codes_are_meteor_ids_hashed_with_sha256() {
        let (codes, hashes) = generate_backup_codes();
        assert_eq!(codes.len(), 12);
        for (c, h) in codes.iter().zip(&hashes) {
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| UNMISTAKABLE.contains(&b)));
            assert_eq!(*h, hash_backup_code(c));
            assert_eq!(h.len(), 64);
        }
    }

    #[test]
    fn email_codes_and_urls() {
        let code = generate_email_code();
        assert_eq!(code.len(), 6);
        assert_eq!(display_email_code("123456"), "123-456");
        assert_eq!(digits_of("123-456"), "123456");
        let s = TotpSecret::from_stored("JBSWY3DPEHPK3PXP");
        assert_eq!(
            otpauth_url(&s, "ann b"),
            "otpauth://totp/Rocket.Chat%3Aann%20b?secret=JBSWY3DPEHPK3PXP"
        );
    }
}
