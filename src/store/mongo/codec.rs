//! Documents ⇄ domain types, in Rocket.Chat's field names.
//!
//! Writing produces exactly the layout Rocket.Chat writes. Reading is lenient:
//! documents written by Rocket.Chat itself may lack fields, carry extra ones,
//! hold token entries of kinds tokend does not know (skipped, never rewritten),
//! or store dates as numbers (legacy Meteor `when`).

use crate::core::model::*;
use crate::store::{UniqueField, UserKey};
use chrono::DateTime;
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document, Regex};

/// Collection of users (Rocket.Chat's `users`, no prefix).
pub const USERS: &str = "users";
/// Rocket.Chat's permissions.
pub const PERMISSIONS: &str = "rocketchat_permissions";
/// Rocket.Chat's roles.
pub const ROLES: &str = "rocketchat_roles";
/// tokend's SAYMON API tokens, one per user (`_id` = user id).
pub const API_TOKENS: &str = "tokend_api_tokens";
/// tokend's SAYMON sessions (`_id` = hash of the session id).
pub const SESSIONS: &str = "tokend_sessions";
/// tokend's claims on lowercase usernames and emails (see `MongoStore::claim`).
pub const USER_KEYS: &str = "tokend_user_keys";

/// `services.resume.loginTokens`
pub const LOGIN_TOKENS: &str = "services.resume.loginTokens";
/// The `type` of a personal access token entry.
pub const PAT_TYPE: &str = "personalAccessToken";

/// The fields tokend reads from a user document (a plain projection, so the
/// many other fields of a Rocket.Chat user never travel).
pub fn user_projection() -> Document {
    doc! {
        "_id": 1, "createdAt": 1, "_updatedAt": 1, "type": 1, "username": 1, "name": 1,
        "emails": 1, "roles": 1, "permissions": 1, "active": 1, "requirePasswordChange": 1,
        "services.password.bcrypt": 1, LOGIN_TOKENS: 1,
    }
}

/// A BSON date for a timestamp (millisecond precision, as stored).
pub fn date(t: Timestamp) -> Bson {
    Bson::DateTime(BsonDate::from_millis(t.timestamp_millis()))
}

/// A timestamp from a BSON date, or from milliseconds stored as a number.
pub fn timestamp(value: Option<&Bson>) -> Option<Timestamp> {
    let millis = match value? {
        Bson::DateTime(d) => d.timestamp_millis(),
        Bson::Int64(n) => *n,
        Bson::Int32(n) => i64::from(*n),
        // Whole milliseconds; fractions cannot occur in a Date.
        Bson::Double(f) if f.is_finite() => *f as i64,
        _ => return None,
    };
    DateTime::from_timestamp_millis(millis)
}

fn string(d: &Document, key: &str) -> Option<String> {
    match d.get(key) {
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn boolean(d: &Document, key: &str) -> Option<bool> {
    match d.get(key) {
        Some(Bson::Boolean(b)) => Some(*b),
        _ => None,
    }
}

fn strings(d: &Document, key: &str) -> Vec<String> {
    match d.get(key) {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|b| b.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn sub<'a>(d: &'a Document, key: &str) -> Option<&'a Document> {
    d.get_document(key).ok()
}

/// The document's `_id` as a string (an ObjectId as its hex form).
pub fn id_of(d: &Document) -> Option<String> {
    match d.get("_id")? {
        Bson::String(s) => Some(s.clone()),
        Bson::ObjectId(o) => Some(o.to_hex()),
        _ => None,
    }
}

/// The `emails` array of a user document.
pub fn emails_bson(emails: &[Email]) -> Bson {
    Bson::Array(
        emails
            .iter()
            .map(|e| Bson::Document(doc! { "address": &e.address, "verified": e.verified }))
            .collect(),
    )
}

/// A new user document, as Rocket.Chat lays it out.
pub fn user_doc(u: &User) -> Document {
    let mut d = doc! {
        "_id": &u.id,
        "createdAt": date(u.created_at),
        "_updatedAt": date(u.updated_at),
        "type": &u.kind,
    };
    if let Some(name) = &u.username {
        d.insert("username", name);
    }
    if let Some(name) = &u.name {
        d.insert("name", name);
    }
    // Meteor leaves `emails` out rather than writing an empty array.
    if !u.emails.is_empty() {
        d.insert("emails", emails_bson(&u.emails));
    }
    d.insert("roles", u.roles.clone());
    if !u.permissions.is_empty() {
        d.insert("permissions", u.permissions.clone());
    }
    d.insert("active", u.active);
    if u.require_password_change {
        d.insert("requirePasswordChange", true);
    }
    let mut services = Document::new();
    if let Some(hash) = &u.password_bcrypt {
        services.insert("password", doc! { "bcrypt": hash });
    }
    let tokens: Vec<Bson> = u
        .login_tokens
        .iter()
        .map(|t| Bson::Document(token_doc(t)))
        .collect();
    services.insert("resume", doc! { "loginTokens": tokens });
    d.insert("services", services);
    d
}

/// A user from a stored document; `None` without a usable `_id`.
pub fn user_from(d: &Document) -> Option<User> {
    let id = id_of(d)?;
    let created_at = timestamp(d.get("createdAt")).unwrap_or_default();
    let password_bcrypt = sub(d, "services")
        .and_then(|s| sub(s, "password"))
        .and_then(|p| string(p, "bcrypt"));
    let emails = match d.get("emails") {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|b| b.as_document())
            .filter_map(|e| {
                Some(Email {
                    address: string(e, "address")?,
                    verified: boolean(e, "verified").unwrap_or(false),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(User {
        id,
        created_at,
        updated_at: timestamp(d.get("_updatedAt")).unwrap_or(created_at),
        kind: string(d, "type").unwrap_or_else(|| "user".into()),
        username: string(d, "username"),
        name: string(d, "name"),
        emails,
        roles: strings(d, "roles"),
        permissions: strings(d, "permissions"),
        // Rocket.Chat refuses logins unless `active` is true; so does tokend.
        active: boolean(d, "active").unwrap_or(false),
        require_password_change: boolean(d, "requirePasswordChange").unwrap_or(false),
        password_bcrypt,
        login_tokens: login_tokens_of(d),
    })
}

/// The known entries of `services.resume` `{loginTokens: [...]}`.
pub fn tokens_from(resume: &Document) -> Vec<LoginToken> {
    match resume.get("loginTokens") {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|b| b.as_document())
            .filter_map(token_from)
            .collect(),
        _ => Vec::new(),
    }
}

/// The `services.resume.loginTokens` entries of a document projected on them.
pub fn login_tokens_of(d: &Document) -> Vec<LoginToken> {
    sub(d, "services")
        .and_then(|s| sub(s, "resume"))
        .map(tokens_from)
        .unwrap_or_default()
}

/// One `loginTokens` entry; `None` for entries tokend does not know (legacy
/// unhashed `{token}` entries, other types), which it leaves alone.
pub fn token_from(d: &Document) -> Option<LoginToken> {
    let hashed_token = string(d, "hashedToken")?;
    if string(d, "type").as_deref() == Some(PAT_TYPE) {
        return Some(LoginToken::Personal(PersonalAccessToken {
            hashed_token,
            created_at: timestamp(d.get("createdAt")).unwrap_or_default(),
            last_token_part: string(d, "lastTokenPart").unwrap_or_default(),
            name: string(d, "name")?,
            bypass_two_factor: boolean(d, "bypassTwoFactor").unwrap_or(false),
        }));
    }
    Some(LoginToken::Resume(ResumeToken {
        when: timestamp(d.get("when"))?,
        hashed_token,
    }))
}

/// A `loginTokens` entry, exactly as Meteor / Rocket.Chat write it.
pub fn token_doc(t: &LoginToken) -> Document {
    match t {
        LoginToken::Resume(r) => doc! { "when": date(r.when), "hashedToken": &r.hashed_token },
        LoginToken::Personal(p) => pat_doc(p),
    }
}

/// A personal access token entry.
pub fn pat_doc(p: &PersonalAccessToken) -> Document {
    doc! {
        "hashedToken": &p.hashed_token,
        "type": PAT_TYPE,
        "createdAt": date(p.created_at),
        "lastTokenPart": &p.last_token_part,
        "name": &p.name,
        "bypassTwoFactor": p.bypass_two_factor,
    }
}

/// A role document (`rocketchat_roles`).
pub fn role_doc(r: &Role) -> Document {
    doc! {
        "_id": &r.id,
        "name": &r.name,
        "scope": &r.scope,
        "description": &r.description,
        "protected": r.protected,
        "mandatory2fa": false,
    }
}

/// A role from `rocketchat_roles`.
pub fn role_from(d: &Document) -> Option<Role> {
    let id = id_of(d)?;
    Some(Role {
        name: string(d, "name").unwrap_or_else(|| id.clone()),
        scope: string(d, "scope").unwrap_or_else(|| "Users".into()),
        description: string(d, "description").unwrap_or_default(),
        protected: boolean(d, "protected").unwrap_or(false),
        id,
    })
}

/// A permission from `rocketchat_permissions`.
pub fn permission_from(d: &Document) -> Option<Permission> {
    Some(Permission {
        id: id_of(d)?,
        roles: strings(d, "roles"),
    })
}

/// The fields of an API token document besides `_id` (the user id).
pub fn api_token_fields(t: &ApiToken) -> Document {
    doc! {
        "hashedToken": &t.hashed_token,
        "createdAt": date(t.created_at),
        "lastTokenPart": &t.last_part,
    }
}

/// An API token from `tokend_api_tokens`.
pub fn api_token_from(d: &Document) -> Option<ApiToken> {
    Some(ApiToken {
        user_id: id_of(d)?,
        hashed_token: string(d, "hashedToken")?,
        created_at: timestamp(d.get("createdAt")).unwrap_or_default(),
        last_part: string(d, "lastTokenPart").unwrap_or_default(),
    })
}

/// A session document (`tokend_sessions`).
pub fn session_doc(s: &Session) -> Document {
    doc! {
        "_id": &s.hashed_id,
        "userId": &s.user_id,
        "createdAt": date(s.created_at),
        "lastSeenAt": date(s.last_seen_at),
        "expiresAt": date(s.expires_at),
        "absoluteExpiresAt": date(s.absolute_expires_at),
    }
}

/// A session from `tokend_sessions`.
pub fn session_from(d: &Document) -> Option<Session> {
    Some(Session {
        hashed_id: id_of(d)?,
        user_id: string(d, "userId")?,
        created_at: timestamp(d.get("createdAt"))?,
        last_seen_at: timestamp(d.get("lastSeenAt"))?,
        expires_at: timestamp(d.get("expiresAt"))?,
        absolute_expires_at: timestamp(d.get("absoluteExpiresAt"))?,
    })
}

/// An anchored, case-insensitive regex matching exactly `value`, with every
/// ASCII punctuation character and space escaped, so user input is always
/// literal (PCRE on mongod and Python's `re` in the emulator both read a
/// backslash before punctuation as the character itself). `None` when the
/// value holds a NUL, which a BSON regex cannot carry; such a value matches no
/// stored name anyway.
///
/// Why a regex and not a lowercase copy or a collation: a copy would add
/// fields Rocket.Chat does not have to its user documents, and collations
/// are refused by the emulator. Rocket.Chat itself looks usernames up this way
/// (`findOneByUsernameIgnoringCase`); on mongod an anchored regex on an
/// indexed field is an index scan, not a collection scan. Uniqueness ignoring
/// case does not rest on these lookups alone: see `MongoStore::claim`.
pub fn exact_ignoring_case(value: &str) -> Option<Bson> {
    if value.contains('\0') {
        return None;
    }
    let mut pattern = String::with_capacity(value.len() + 8);
    pattern.push('^');
    for c in value.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('$');
    Some(Bson::RegularExpression(Regex {
        pattern,
        options: "i".into(),
    }))
}

/// A key tokend claims for a user so that no two users share it ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    /// `username:<lowercase>` or `email:<lowercase>`: the claim's `_id`.
    pub id: String,
    pub field: UniqueField,
    /// The value as given.
    pub value: String,
}

impl UniqueKey {
    /// The key for a username.
    pub fn username(name: &str) -> Self {
        Self {
            id: format!("username:{}", name.to_lowercase()),
            field: UniqueField::Username,
            value: name.to_string(),
        }
    }

    /// The key for an email address.
    pub fn email(address: &str) -> Self {
        Self {
            id: format!("email:{}", address.to_lowercase()),
            field: UniqueField::Email,
            value: address.to_string(),
        }
    }

    /// The lookup of the user holding this key.
    pub fn user_key(&self) -> UserKey {
        match self.field {
            UniqueField::Email => UserKey::Email(self.value.clone()),
            _ => UserKey::Username(self.value.clone()),
        }
    }

    /// The user field this key is about.
    pub fn path(&self) -> &'static str {
        match self.field {
            UniqueField::Email => "emails.address",
            _ => "username",
        }
    }
}

/// Every unique key of a username and a list of emails, without repeats.
pub fn unique_keys(username: Option<&str>, emails: &[Email]) -> Vec<UniqueKey> {
    let mut keys: Vec<UniqueKey> = username.map(UniqueKey::username).into_iter().collect();
    for e in emails {
        let key = UniqueKey::email(&e.address);
        if !keys.iter().any(|k| k.id == key.id) {
            keys.push(key);
        }
    }
    keys
}

/// A filter matching users that hold any of `keys` ignoring case; `None` when
/// no key can match anything.
pub fn holders_filter(keys: &[UniqueKey]) -> Option<Document> {
    let clauses: Vec<Bson> = keys
        .iter()
        .filter_map(|k| {
            exact_ignoring_case(&k.value).map(|re| Bson::Document(doc! { k.path(): re }))
        })
        .collect();
    if clauses.is_empty() {
        None
    } else {
        Some(doc! { "$or": clauses })
    }
}

/// Which of `keys` the user document `d` holds (ignoring case).
pub fn held_key<'a>(d: &Document, keys: &'a [UniqueKey]) -> Option<&'a UniqueKey> {
    let user = user_from(d)?;
    keys.iter().find(|k| k.user_key().matches(&user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_escapes_every_metacharacter() {
        let Some(Bson::RegularExpression(re)) =
            exact_ignoring_case("a.b*c+(d)[e]{f}|g^h$i?j\\k l/m#")
        else {
            panic!("no regex");
        };
        assert_eq!(
            re.pattern,
            "^a\\.b\\*c\\+\\(d\\)\\[e\\]\\{f\\}\\|g\\^h\\$i\\?j\\\\k\\ l\\/m\\#$"
        );
        assert_eq!(re.options, "i");
        assert!(exact_ignoring_case("nul\0").is_none());
    }

    #[test]
    fn user_documents_round_trip() {
        let now = crate::core::clock::truncate_ms(chrono::Utc::now());
        let user = User {
            id: "Ab3456789abcdefgh".into(),
            created_at: now,
            updated_at: now,
            kind: "user".into(),
            username: Some("alice".into()),
            name: Some("Alice".into()),
            emails: vec![Email {
                address: "alice@example.com".into(),
                verified: true,
            }],
            roles: vec!["user".into()],
            permissions: vec!["manage-users".into()],
            active: true,
            require_password_change: true,
            password_bcrypt: Some("$2b$10$x".into()),
            login_tokens: vec![
                LoginToken::Resume(ResumeToken {
                    when: now,
                    hashed_token: "h1".into(),
                }),
                LoginToken::Personal(PersonalAccessToken {
                    hashed_token: "h2".into(),
                    created_at: now,
                    last_token_part: "abcdef".into(),
                    name: "ci".into(),
                    bypass_two_factor: false,
                }),
            ],
        };
        assert_eq!(user_from(&user_doc(&user)), Some(user));
    }

    #[test]
    fn unknown_token_entries_are_skipped() {
        let d = doc! { "loginTokens": [
            { "token": "legacy-unhashed", "when": BsonDate::from_millis(1) },
            { "hashedToken": "h", "when": 5_i64 },
            { "hashedToken": "x", "type": "somethingElse" },
        ] };
        let tokens = tokens_from(&d);
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].hashed_token(), "h");
    }

    #[test]
    fn sparse_rocket_chat_documents_read() {
        let u = user_from(&doc! { "_id": "rocket.cat", "username": "rocket.cat" }).unwrap();
        assert!(u.emails.is_empty() && u.login_tokens.is_empty() && !u.active);
        assert_eq!(u.kind, "user");
    }
}
