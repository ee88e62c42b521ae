//! Credentials as types: what tokend issues, what the store keeps, what a
//! client presents, and who a request turns out to be.
//!
//! * [`issue`] draws a new secret for a [`TokenKind`] and returns it once, as
//!   [`Issued`]: the [`Plaintext`] for the response, the [`TokenHash`] for the
//!   store. No other code draws tokens.
//! * [`TokenHash`] (`base64(sha256(token))`, Meteor's `_hashLoginToken`) is the
//!   only form in which any token reaches a store.
//! * [`Credential`] is what a request presents; `Core::authenticate` turns it
//!   into a [`Caller`] (the user, and [`Via`] which credential).
//!
//! Every type here that holds a secret or a hash prints nothing of it in `Debug`.

use super::model::{User, UserKey};
use super::password::PasswordInput;
use super::token::hash_token;
use std::fmt;
use std::net::IpAddr;

/// What a token is for; decides its lifetime rules and its hint length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A Rocket.Chat login ("resume") token: expires, counts toward the cap.
    Login,
    /// A Rocket.Chat personal access token: named, optionally expiring.
    Personal,
    /// A SAYMON API token: one per user, never expires.
    ApiToken,
    /// A SAYMON cookie session id: idle and absolute expiry.
    Session,
}

impl TokenKind {
    /// How many trailing characters are kept as a non-secret hint.
    pub fn hint_len(self) -> usize {
        match self {
            TokenKind::Personal => 6,
            TokenKind::ApiToken => 4,
            TokenKind::Login | TokenKind::Session => 0,
        }
    }
}

/// A secret as the client holds it. `Debug` and `Display` print nothing of it;
/// [`Plaintext::expose`] is the one way to read it (for a response body).
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(String);

impl Plaintext {
    /// Wraps a secret the client presented.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one response that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret itself, consumed.
    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Its hash, as stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

/// `base64(sha256(token))`: the only form of a token a store ever sees.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hash of a plaintext token.
    pub fn of(plaintext: &str) -> Self {
        Self(hash_token(plaintext))
    }

    /// A hash read back from a store.
    pub fn from_stored(hash: impl Into<String>) -> Self {
        Self(hash.into())
    }

    /// The hash as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// A token just drawn: the plaintext (shown once), its hash (stored), and its
/// hint (the last characters, for listings; empty where the kind keeps none).
#[derive(Debug)]
pub struct Issued {
    pub kind: TokenKind,
    pub plaintext: Plaintext,
    pub hash: TokenHash,
    pub hint: String,
}

/// Draws a new 43-character token of the given kind from the CSPRNG.
pub fn issue(kind: TokenKind) -> Issued {
    let token = super::ids::new_token();
    let hint = last_chars(&token, kind.hint_len());
    Issued {
        kind,
        hash: TokenHash::of(&token),
        plaintext: Plaintext(token),
        hint,
    }
}

fn last_chars(token: &str, n: usize) -> String {
    let start = token.len().saturating_sub(n);
    token.get(start..).unwrap_or_default().to_string()
}

/// What a request presents to prove who it is.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Rocket.Chat's `X-User-Id` + `X-Auth-Token` (a login token or PAT of that user).
    UserToken { user_id: String, token: Plaintext },
    /// Rocket.Chat's `login` with `resume`: a login token or PAT of any user.
    Resume(Plaintext),
    /// SAYMON's `?api-token=` / `auth-token`.
    ApiToken(Plaintext),
    /// SAYMON's `sid` cookie.
    Session(Plaintext),
    /// A login name and password (Rocket.Chat `login`, SAYMON Basic and
    /// session login). Throttled by failed-login blocking.
    Password(PasswordAttempt),
}

/// A password login: which user, the name as typed, the password, from where.
#[derive(Debug, Clone)]
pub struct PasswordAttempt {
    /// The user the client named.
    pub user: UserKey,
    /// The password, plain or as a SHA-256 digest.
    pub password: PasswordInput,
    /// The client's address (for per-address blocking).
    pub ip: Option<IpAddr>,
    /// The second-factor code that came with it, if any.
    pub second_factor: SecondFactor,
}

/// A second-factor code a request presents (Rocket.Chat's `code` body field
/// or `X-2FA-Code`, with `X-2FA-Method`). `Debug` prints nothing of the code.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecondFactor {
    code: Option<String>,
    method: Option<String>,
}

impl SecondFactor {
    /// A presented code and method; blank values count as absent.
    pub fn new(code: Option<&str>, method: Option<&str>) -> Self {
        let given = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Self {
            code: given(code),
            method: given(method).map(|m| m.to_ascii_lowercase()),
        }
    }

    /// No code at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The code, if one came.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The method the client named (`totp`, `email`, `password`), lowercase.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }
}

impl fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondFactor")
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("method", &self.method)
            .finish()
    }
}

/// How an authenticated caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A Rocket.Chat login token (its hash, so `logout` removes exactly it).
    LoginToken(TokenHash),
    /// A Rocket.Chat personal access token.
    PersonalAccessToken(TokenHash),
    /// A SAYMON API token, with its non-secret hint.
    ApiToken { hint: String },
    /// A SAYMON session (its hashed id, so ending it removes exactly it).
    Session(TokenHash),
    /// A password.
    Password,
}

/// An authenticated (active) user and the credential it used.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub via: Via,
}

impl Caller {
    /// The caller's user id.
    pub fn id(&self) -> &str {
        &self.user.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_show_only_their_hint() {
        let issued = issue(TokenKind::Personal);
        let secret = issued.plaintext.expose().to_string();
        assert_eq!(secret.len(), 43);
        assert_eq!(issued.hint, secret[37..]);
        assert_eq!(issued.hash, TokenHash::of(&secret));
        let shown = format!("{issued:?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(!shown.contains(issued.hash.as_str()), "{shown}");
        assert!(issue(TokenKind::Login).hint.is_empty());
    }
}
