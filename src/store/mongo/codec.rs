//! Documents ⇄ domain types, in Rocket.Chat's field names.
//!
//! Every path of a user document is named once, in [`user`] (and the fields
//! of its array entries in [`email`] and [`entry`]); the decoder, the
//! projections, the new-user document, the update builder, the filters and
//! the indexes all use those names. User fields are encoded in one place,
//! [`UserValue::encode`], shared by [`user_doc`] (insert) and [`user_update`]
//! (a [`UserPatch`] as `$set`/`$unset`), so the two cannot disagree.
//!
//! Writing produces exactly the layout Rocket.Chat writes. Reading is lenient:
//! documents written by Rocket.Chat itself may lack fields, carry extra ones,
//! hold token entries of kinds tokend does not know (skipped, never rewritten),
//! or store dates as numbers (legacy Meteor `when`).

use crate::core::credential::TokenHash;
use crate::core::model::*;
use crate::core::twofactor::{EmailCode, Totp, TotpSecret, TwoFactorState};
use crate::store::{UniqueField, UserPatch};
use chrono::DateTime;
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document, Regex};

/// Collection of users (Rocket.Chat's `users`, no prefix).
pub const USERS: &str = "users";
/// Rocket.Chat's permissions.
pub const PERMISSIONS: &str = "rocketchat_permissions";
/// Rocket.Chat's roles.
pub const ROLES: &str = "rocketchat_roles";
/// Rocket.Chat's settings (read only: `Accounts_LoginExpiration`).
pub const SETTINGS: &str = "rocketchat_settings";
/// tokend's SAYMON API tokens, one per user (`_id` = user id).
pub const API_TOKENS: &str = "tokend_api_tokens";
/// tokend's SAYMON sessions (`_id` = hash of the session id).
pub const SESSIONS: &str = "tokend_sessions";
/// tokend's claims on lowercase usernames and emails (see `MongoStore::claim`).
pub const USER_KEYS: &str = "tokend_user_keys";
/// tokend's lease serialising the writes that may remove an admin (see
/// `admin_guard`): one document.
pub const ADMIN_GUARD: &str = "tokend_admin_guard";
/// The audit trail (TTL index on `expiresAt`).
pub const AUDIT: &str = "tokend_audit";

/// Rocket.Chat's server events: its failed-login and login records (shared
/// with Rocket.Chat; tokend's own records also carry `expireAt`).
pub const SERVER_EVENTS: &str = "rocketchat_server_events";

/// The fields of a server event tokend reads or writes (Rocket.Chat's
/// `IServerEvent`: `{_id, t, ts, ip, u: {_id, username}}`).
pub mod event {
    pub const ID: &str = "_id";
    /// The event type.
    pub const TYPE: &str = "t";
    pub const TS: &str = "ts";
    pub const IP: &str = "ip";
    pub const USER: &str = "u";
    pub const USER_ID: &str = "u._id";
    pub const USERNAME: &str = "u.username";
    /// tokend's own: when its record may go (TTL index; Rocket.Chat's
    /// events have none, so the index never touches them).
    pub const EXPIRE_AT: &str = "expireAt";
    /// Rocket.Chat's `ServerEventType.FAILED_LOGIN_ATTEMPT`.
    pub const FAILED_LOGIN: &str = "failed-login-attempt";
    /// Rocket.Chat's `ServerEventType.LOGIN`.
    pub const LOGIN: &str = "login";
}

/// The paths of a Rocket.Chat user document that tokend reads or writes.
pub mod user {
    pub const ID: &str = "_id";
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "_updatedAt";
    pub const KIND: &str = "type";
    pub const USERNAME: &str = "username";
    pub const NAME: &str = "name";
    /// `[{address, verified}]` (see [`super::email`]).
    pub const EMAILS: &str = "emails";
    /// The address of any `emails` entry (filters, index).
    pub const EMAIL_ADDRESS: &str = "emails.address";
    pub const ROLES: &str = "roles";
    /// tokend's user-level permissions (not Rocket.Chat's).
    pub const PERMISSIONS: &str = "permissions";
    pub const ACTIVE: &str = "active";
    pub const REQUIRE_PASSWORD_CHANGE: &str = "requirePasswordChange";
    /// Unset together with [`REQUIRE_PASSWORD_CHANGE`], as Rocket.Chat does.
    pub const REQUIRE_PASSWORD_CHANGE_REASON: &str = "requirePasswordChangeReason";
    /// bcrypt of the SHA-256 hex of the password.
    pub const PASSWORD: &str = "services.password.bcrypt";
    /// Rocket.Chat's `lastLogin` (a Date).
    pub const LAST_LOGIN: &str = "lastLogin";
    /// Ids the user had in the system Rocket.Chat imported it from
    /// (`users.info?importId=`); written by Rocket.Chat's importers only.
    pub const IMPORT_IDS: &str = "importIds";
    /// Login tokens and personal access tokens (see [`super::entry`]).
    pub const LOGIN_TOKENS: &str = "services.resume.loginTokens";
    /// The hash of any `loginTokens` entry (Rocket.Chat's lookup, index).
    pub const TOKEN_HASH: &str = "services.resume.loginTokens.hashedToken";
}

/// Rocket.Chat's second-factor paths of a user document.
pub mod two_factor {
    /// `{enabled, secret, tempSecret, hashedBackup}`.
    pub const TOTP: &str = "services.totp";
    pub const TOTP_ENABLED: &str = "services.totp.enabled";
    pub const TOTP_SECRET: &str = "services.totp.secret";
    pub const TOTP_TEMP_SECRET: &str = "services.totp.tempSecret";
    /// SHA-256 hex of each unused backup code.
    pub const TOTP_BACKUP: &str = "services.totp.hashedBackup";
    /// `{enabled, changedAt}`.
    pub const EMAIL2FA: &str = "services.email2fa";
    pub const EMAIL2FA_ENABLED: &str = "services.email2fa.enabled";
    /// `{code (bcrypt), expire, attempts}` of the last emailed code.
    pub const EMAIL_CODE: &str = "services.emailCode";
    pub const EMAIL_CODE_HASH: &str = "services.emailCode.code";
    pub const EMAIL_CODE_EXPIRE: &str = "services.emailCode.expire";
    pub const EMAIL_CODE_ATTEMPTS: &str = "services.emailCode.attempts";
}

/// The second-factor state of a user document projected on
/// [`two_factor::TOTP`], [`two_factor::EMAIL2FA`], [`two_factor::EMAIL_CODE`].
pub fn two_factor_from(d: &Document) -> TwoFactorState {
    use two_factor::*;
    let secret = |path| string(at(d, path)).map(TotpSecret::from_stored);
    let totp = at(d, TOTP).and_then(Bson::as_document).map(|_| Totp {
        enabled: boolean(at(d, TOTP_ENABLED)) == Some(true),
        secret: secret(TOTP_SECRET),
        temp_secret: secret(TOTP_TEMP_SECRET),
        hashed_backup: strings(at(d, TOTP_BACKUP)),
    });
    let email_code = match (
        string(at(d, EMAIL_CODE_HASH)),
        timestamp(at(d, EMAIL_CODE_EXPIRE)),
    ) {
        (Some(hash), Some(expire)) => Some(EmailCode {
            hash,
            expire,
            attempts: match at(d, EMAIL_CODE_ATTEMPTS) {
                Some(Bson::Int32(n)) => u32::try_from(*n).unwrap_or(0),
                Some(Bson::Int64(n)) => u32::try_from(*n).unwrap_or(0),
                Some(Bson::Double(f)) if f.is_finite() && *f >= 0.0 => *f as u32,
                _ => 0,
            },
        }),
        _ => None,
    };
    TwoFactorState {
        totp,
        email_enabled: boolean(at(d, EMAIL2FA_ENABLED)) == Some(true),
        email_code,
    }
}

/// The fields of an `emails` entry.
pub mod email {
    pub const ADDRESS: &str = "address";
    pub const VERIFIED: &str = "verified";
}

/// The fields of a `loginTokens` entry.
pub mod entry {
    pub const HASHED_TOKEN: &str = "hashedToken";
    /// Login tokens only.
    pub const WHEN: &str = "when";
    /// [`PAT_TYPE`] for personal access tokens; absent on login tokens.
    pub const TYPE: &str = "type";
    pub const PAT_TYPE: &str = "personalAccessToken";
    pub const CREATED_AT: &str = "createdAt";
    pub const LAST_TOKEN_PART: &str = "lastTokenPart";
    pub const NAME: &str = "name";
    pub const BYPASS_TWO_FACTOR: &str = "bypassTwoFactor";
    /// tokend's: when a PAT stops working (absent: never).
    pub const EXPIRES_AT: &str = "expiresAt";
    /// tokend's: a PAT's last use, to `LAST_USED_RESOLUTION_SECONDS`.
    pub const LAST_USED_AT: &str = "lastUsedAt";
}

/// Every user field [`user_from`] decodes: the projection of every user read,
/// so the many other fields of a Rocket.Chat user, and its tokens, never travel.
pub const USER_FIELDS: &[&str] = &[
    user::ID,
    user::CREATED_AT,
    user::UPDATED_AT,
    user::KIND,
    user::USERNAME,
    user::NAME,
    user::EMAILS,
    user::ROLES,
    user::PERMISSIONS,
    user::ACTIVE,
    user::REQUIRE_PASSWORD_CHANGE,
    user::PASSWORD,
    user::LAST_LOGIN,
];

/// A path inside the entries of `loginTokens` (`services.resume.loginTokens.<field>`).
pub fn in_tokens(field: &str) -> String {
    format!("{}.{field}", user::LOGIN_TOKENS)
}

/// An inclusion projection of `fields`.
pub fn projection(fields: &[&str]) -> Document {
    fields
        .iter()
        .map(|f| (f.to_string(), Bson::Int32(1)))
        .collect()
}

/// The user fields tokend decodes, without `services.resume`.
pub fn user_projection() -> Document {
    projection(USER_FIELDS)
}

/// The user fields plus, by MongoDB's positional projection, only the one
/// `loginTokens` entry the query's condition on the array matched (the
/// filter must name `services.resume.loginTokens.hashedToken`).
pub fn user_and_matched_token_projection() -> Document {
    let mut p = user_projection();
    p.insert(in_tokens("$"), 1);
    p
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

/// The value at a dotted path, through subdocuments (not arrays).
pub fn at<'a>(d: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut value = d.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
}

/// Sets the value at a dotted path, creating the subdocuments on the way.
fn put(d: &mut Document, path: &str, value: Bson) {
    let Some((head, rest)) = path.split_once('.') else {
        d.insert(path, value);
        return;
    };
    if !matches!(d.get(head), Some(Bson::Document(_))) {
        d.insert(head, Document::new());
    }
    if let Some(Bson::Document(sub)) = d.get_mut(head) {
        put(sub, rest, value);
    }
}

fn string(value: Option<&Bson>) -> Option<String> {
    value.and_then(Bson::as_str).map(str::to_string)
}

fn boolean(value: Option<&Bson>) -> Option<bool> {
    value.and_then(Bson::as_bool)
}

fn strings(value: Option<&Bson>) -> Vec<String> {
    match value {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|b| b.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn documents(value: Option<&Bson>) -> impl Iterator<Item = &Document> {
    let items = match value {
        Some(Bson::Array(items)) => items.as_slice(),
        _ => &[],
    };
    items.iter().filter_map(Bson::as_document)
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
fn emails_bson(emails: &[Email]) -> Bson {
    Bson::Array(
        emails
            .iter()
            .map(|e| {
                Bson::Document(doc! { email::ADDRESS: &e.address, email::VERIFIED: e.verified })
            })
            .collect(),
    )
}

/// A value of a user field, as tokend writes it.
enum UserValue<'a> {
    UpdatedAt(Timestamp),
    Username(&'a str),
    Name(&'a str),
    Emails(&'a [Email]),
    Roles(&'a [String]),
    Permissions(&'a [String]),
    Active(bool),
    RequirePasswordChange(bool),
    Password(&'a PasswordHash),
    LastLogin(Timestamp),
    /// An empty `loginTokens` list.
    NoTokens,
}

impl UserValue<'_> {
    /// The paths this value writes: `Some` to set, `None` for "absent" (left
    /// out of a new document, `$unset` by an update). Meteor leaves empty
    /// `emails` out rather than writing an empty array; tokend does the
    /// same for its `permissions`; `requirePasswordChange: false` is
    /// Rocket.Chat's `unsetRequirePasswordChange`.
    fn encode(&self) -> Vec<(&'static str, Option<Bson>)> {
        let present = |path, value: Bson| vec![(path, Some(value))];
        let unless_empty = |path, list: &[String]| {
            vec![(path, (!list.is_empty()).then(|| Bson::from(list.to_vec())))]
        };
        match *self {
            UserValue::UpdatedAt(t) => present(user::UPDATED_AT, date(t)),
            UserValue::Username(v) => present(user::USERNAME, v.into()),
            UserValue::Name(v) => present(user::NAME, v.into()),
            UserValue::Emails(v) => vec![(user::EMAILS, (!v.is_empty()).then(|| emails_bson(v)))],
            UserValue::Roles(v) => present(user::ROLES, v.to_vec().into()),
            UserValue::Permissions(v) => unless_empty(user::PERMISSIONS, v),
            UserValue::Active(v) => present(user::ACTIVE, v.into()),
            UserValue::RequirePasswordChange(true) => {
                present(user::REQUIRE_PASSWORD_CHANGE, true.into())
            }
            UserValue::RequirePasswordChange(false) => vec![
                (user::REQUIRE_PASSWORD_CHANGE, None),
                (user::REQUIRE_PASSWORD_CHANGE_REASON, None),
            ],
            UserValue::Password(v) => present(user::PASSWORD, v.0.as_str().into()),
            UserValue::LastLogin(t) => present(user::LAST_LOGIN, date(t)),
            UserValue::NoTokens => present(user::LOGIN_TOKENS, Bson::Array(Vec::new())),
        }
    }
}

/// A new user document, as Rocket.Chat lays it out (with an empty token list).
pub fn user_doc(u: &User) -> Document {
    let mut d = doc! {
        user::ID: &u.id,
        user::CREATED_AT: date(u.created_at),
        user::KIND: &u.kind,
    };
    let mut values = vec![UserValue::UpdatedAt(u.updated_at)];
    values.extend(u.username.as_deref().map(UserValue::Username));
    values.extend(u.name.as_deref().map(UserValue::Name));
    values.extend([
        UserValue::Emails(&u.emails),
        UserValue::Roles(&u.roles),
        UserValue::Permissions(&u.permissions),
        UserValue::Active(u.active),
        UserValue::RequirePasswordChange(u.require_password_change),
    ]);
    values.extend(u.password_bcrypt.as_ref().map(UserValue::Password));
    values.extend(u.last_login.map(UserValue::LastLogin));
    values.push(UserValue::NoTokens);
    for (path, value) in values.iter().flat_map(UserValue::encode) {
        if let Some(value) = value {
            put(&mut d, path, value);
        }
    }
    d
}

/// The update document for a patch: `$set`/`$unset` of exactly the fields it
/// names (targeted: every other field of the document survives), and `_updatedAt`.
pub fn user_update(patch: &UserPatch, now: Timestamp) -> Document {
    let mut values = vec![UserValue::UpdatedAt(now)];
    values.extend(patch.username.as_deref().map(UserValue::Username));
    values.extend(patch.name.as_deref().map(UserValue::Name));
    values.extend(patch.emails.as_deref().map(UserValue::Emails));
    values.extend(patch.roles.as_deref().map(UserValue::Roles));
    values.extend(patch.permissions.as_deref().map(UserValue::Permissions));
    values.extend(patch.active.map(UserValue::Active));
    values.extend(
        patch
            .require_password_change
            .map(UserValue::RequirePasswordChange),
    );
    values.extend(patch.password_bcrypt.as_ref().map(UserValue::Password));
    values.extend(patch.last_login.map(UserValue::LastLogin));
    if patch.clear_login_tokens {
        values.push(UserValue::NoTokens);
    }
    let (mut set, mut unset) = (Document::new(), Document::new());
    for (path, value) in values.iter().flat_map(UserValue::encode) {
        match value {
            Some(value) => set.insert(path, value),
            None => unset.insert(path, ""),
        };
    }
    let mut update = doc! { "$set": set };
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update
}

/// A user from a stored document; `None` without a usable `_id`.
pub fn user_from(d: &Document) -> Option<User> {
    let id = id_of(d)?;
    let created_at = timestamp(at(d, user::CREATED_AT)).unwrap_or_default();
    let emails = documents(at(d, user::EMAILS))
        .filter_map(|e| {
            Some(Email {
                address: string(e.get(email::ADDRESS))?,
                verified: boolean(e.get(email::VERIFIED)).unwrap_or(false),
            })
        })
        .collect();
    Some(User {
        id,
        created_at,
        updated_at: timestamp(at(d, user::UPDATED_AT)).unwrap_or(created_at),
        kind: string(at(d, user::KIND)).unwrap_or_else(|| "user".into()),
        username: string(at(d, user::USERNAME)),
        name: string(at(d, user::NAME)),
        emails,
        roles: strings(at(d, user::ROLES)),
        permissions: strings(at(d, user::PERMISSIONS)),
        // Rocket.Chat refuses logins unless `active` is true; so does tokend.
        active: boolean(at(d, user::ACTIVE)).unwrap_or(false),
        require_password_change: boolean(at(d, user::REQUIRE_PASSWORD_CHANGE)).unwrap_or(false),
        password_bcrypt: string(at(d, user::PASSWORD)).map(PasswordHash),
        last_login: timestamp(at(d, user::LAST_LOGIN)),
    })
}

/// The known entries of `services.resume.loginTokens` of a user document
/// (projected on them, or positionally on one of them).
pub fn login_tokens_of(d: &Document) -> Vec<LoginToken> {
    documents(at(d, user::LOGIN_TOKENS))
        .filter_map(token_from)
        .collect()
}

/// One `loginTokens` entry; `None` for entries tokend does not know (legacy
/// unhashed `{token}` entries, other types), which it leaves alone.
pub fn token_from(d: &Document) -> Option<LoginToken> {
    let hashed_token = TokenHash::from_stored(string(d.get(entry::HASHED_TOKEN))?);
    if string(d.get(entry::TYPE)).as_deref() == Some(entry::PAT_TYPE) {
        return Some(LoginToken::Personal(PersonalAccessToken {
            hashed_token,
            created_at: timestamp(d.get(entry::CREATED_AT)).unwrap_or_default(),
            last_token_part: string(d.get(entry::LAST_TOKEN_PART)).unwrap_or_default(),
            name: string(d.get(entry::NAME))?,
            bypass_two_factor: boolean(d.get(entry::BYPASS_TWO_FACTOR)).unwrap_or(false),
            expires_at: timestamp(d.get(entry::EXPIRES_AT)),
            last_used_at: timestamp(d.get(entry::LAST_USED_AT)),
        }));
    }
    Some(LoginToken::Resume(ResumeToken {
        when: timestamp(d.get(entry::WHEN))?,
        hashed_token,
    }))
}

/// Whether a `loginTokens` entry (or its projection on `type`) is a PAT.
fn is_pat(d: &Document) -> bool {
    d.get_str(entry::TYPE).ok() == Some(entry::PAT_TYPE)
}

/// The entries the cap's `$pull` may remove: every entry with a `when` that
/// is not a PAT (Rocket.Chat's rule), as `(when, hashedToken)`.
/// [`cap_projection`] reads just enough of each entry to find them.
pub fn cap_counted(d: &Document) -> Vec<(Timestamp, Option<String>)> {
    documents(at(d, user::LOGIN_TOKENS))
        .filter(|e| !is_pat(e))
        .filter_map(|e| {
            let when = timestamp(e.get(entry::WHEN))?;
            Some((
                when,
                e.get_str(entry::HASHED_TOKEN).ok().map(str::to_string),
            ))
        })
        .collect()
}

/// What the cap reads of a user after a push: `when`, `type` and the hash
/// of each entry (the hash breaks ties of `when`), not the PATs' other fields.
pub fn cap_projection() -> Document {
    doc! {
        user::ID: 1,
        in_tokens(entry::WHEN): 1,
        in_tokens(entry::TYPE): 1,
        in_tokens(entry::HASHED_TOKEN): 1,
    }
}

/// The `$pull` condition matching the cap's victims: entries older than
/// `cutoff`, and those of exactly `cutoff` whose hash is in `tied`; never PATs.
pub fn cap_victims(cutoff: Timestamp, tied: &[String]) -> Document {
    let older = doc! { entry::WHEN: { "$lt": date(cutoff) } };
    let mut cond = if tied.is_empty() {
        older
    } else {
        doc! { "$or": [older, { entry::WHEN: date(cutoff), entry::HASHED_TOKEN: { "$in": tied } }] }
    };
    cond.insert(entry::TYPE, doc! { "$ne": entry::PAT_TYPE });
    cond
}

/// The `$pull` condition of `remove_login_tokens`: every entry but PATs and
/// `keep` (Rocket.Chat's `removeNonPATLoginTokensExcept`).
pub fn non_pat_entries_except(keep: Option<&TokenHash>) -> Document {
    let mut cond = doc! { entry::TYPE: { "$ne": entry::PAT_TYPE } };
    if let Some(keep) = keep {
        cond.insert(entry::HASHED_TOKEN, doc! { "$ne": keep.as_str() });
    }
    cond
}

/// What `remove_login_tokens` reads to count: `type` and hash of each entry.
pub fn removal_projection() -> Document {
    doc! { user::ID: 1, in_tokens(entry::TYPE): 1, in_tokens(entry::HASHED_TOKEN): 1 }
}

/// How many entries of `d` (projected by [`removal_projection`]) match
/// [`non_pat_entries_except`]`(keep)`.
pub fn count_non_pat_except(d: &Document, keep: Option<&TokenHash>) -> u64 {
    documents(at(d, user::LOGIN_TOKENS))
        .filter(|e| !is_pat(e))
        .filter(|e| keep.is_none_or(|k| e.get_str(entry::HASHED_TOKEN).ok() != Some(k.as_str())))
        .count() as u64
}

/// A `loginTokens` entry, exactly as Meteor / Rocket.Chat write it.
pub fn token_doc(t: &LoginToken) -> Document {
    match t {
        LoginToken::Resume(r) => {
            doc! { entry::WHEN: date(r.when), entry::HASHED_TOKEN: r.hashed_token.as_str() }
        }
        LoginToken::Personal(p) => pat_doc(p),
    }
}

/// A personal access token entry.
pub fn pat_doc(p: &PersonalAccessToken) -> Document {
    let mut d = doc! {
        entry::HASHED_TOKEN: p.hashed_token.as_str(),
        entry::TYPE: entry::PAT_TYPE,
        entry::CREATED_AT: date(p.created_at),
        entry::LAST_TOKEN_PART: &p.last_token_part,
        entry::NAME: &p.name,
        entry::BYPASS_TWO_FACTOR: p.bypass_two_factor,
    };
    // tokend's own fields, only when set: Rocket.Chat ignores them.
    if let Some(t) = p.expires_at {
        d.insert(entry::EXPIRES_AT, date(t));
    }
    if let Some(t) = p.last_used_at {
        d.insert(entry::LAST_USED_AT, date(t));
    }
    d
}

/// What the PAT cap reads of a user after a push: each entry's type and hash.
pub fn pat_cap_projection() -> Document {
    doc! { user::ID: 1, in_tokens(entry::TYPE): 1, in_tokens(entry::HASHED_TOKEN): 1 }
}

/// Among a user's PATs (in array order), the position of the one with this hash.
pub fn pat_position(user_doc: &Document, hash: &TokenHash) -> Option<usize> {
    documents(at(user_doc, user::LOGIN_TOKENS))
        .filter(|e| is_pat(e))
        .position(|e| string(e.get(entry::HASHED_TOKEN)).as_deref() == Some(hash.as_str()))
}

/// An `$elemMatch` on the PAT named `name`.
pub fn pat_named(name: &str) -> Document {
    doc! { entry::TYPE: entry::PAT_TYPE, entry::NAME: name }
}

/// A role document (`rocketchat_roles`).
pub fn role_doc(r: &Role) -> Document {
    let mut d = doc! {
        "_id": &r.id,
        "name": &r.name,
        "scope": &r.scope,
        "description": &r.description,
        "protected": r.protected,
        "mandatory2fa": false,
    };
    if let Some(at) = r.updated_at {
        d.insert("_updatedAt", date(at));
    }
    d
}

/// A role from `rocketchat_roles`.
pub fn role_from(d: &Document) -> Option<Role> {
    let id = id_of(d)?;
    Some(Role {
        name: string(d.get("name")).unwrap_or_else(|| id.clone()),
        scope: string(d.get("scope")).unwrap_or_else(|| "Users".into()),
        description: string(d.get("description")).unwrap_or_default(),
        protected: boolean(d.get("protected")).unwrap_or(false),
        updated_at: timestamp(d.get("_updatedAt")),
        id,
    })
}

/// A permission from `rocketchat_permissions`.
pub fn permission_from(d: &Document) -> Option<PermissionEntry> {
    Some(PermissionEntry {
        id: id_of(d)?,
        roles: strings(d.get("roles")),
        updated_at: timestamp(d.get("_updatedAt")),
    })
}

/// The fields of an API token document besides `_id` (the user id).
pub fn api_token_fields(t: &ApiToken) -> Document {
    doc! {
        "hashedToken": t.hashed_token.as_str(),
        "createdAt": date(t.created_at),
        "lastTokenPart": &t.hint,
    }
}

/// An API token from `tokend_api_tokens`.
pub fn api_token_from(d: &Document) -> Option<ApiToken> {
    Some(ApiToken {
        user_id: id_of(d)?,
        hashed_token: TokenHash::from_stored(string(d.get("hashedToken"))?),
        created_at: timestamp(d.get("createdAt")).unwrap_or_default(),
        hint: string(d.get("lastTokenPart")).unwrap_or_default(),
        last_used_at: timestamp(d.get("lastUsedAt")),
    })
}

/// A session document (`tokend_sessions`).
pub fn session_doc(s: &Session) -> Document {
    doc! {
        "_id": s.hashed_id.as_str(),
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
        hashed_id: TokenHash::from_stored(id_of(d)?),
        user_id: string(d.get("userId"))?,
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

/// The filter finding the user `key` names; `None` when nothing can match.
pub fn key_filter(key: &UserKey) -> Option<Document> {
    match key {
        UserKey::Id(id) => Some(doc! { user::ID: id }),
        UserKey::Username(name) => exact_ignoring_case(name).map(|re| doc! { user::USERNAME: re }),
        UserKey::Email(address) => {
            exact_ignoring_case(address).map(|re| doc! { user::EMAIL_ADDRESS: re })
        }
        UserKey::Login(login) => exact_ignoring_case(login).map(|re| {
            doc! { "$or": [ { user::USERNAME: re.clone() }, { user::EMAIL_ADDRESS: re } ] }
        }),
        // An exact element of the array (Rocket.Chat's `findOneByImportId`).
        UserKey::ImportId(id) => Some(doc! { user::IMPORT_IDS: id }),
    }
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
            UniqueField::Email => user::EMAIL_ADDRESS,
            _ => user::USERNAME,
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

/// What a uniqueness check reads of a holder.
pub fn names_projection() -> Document {
    projection(&[user::USERNAME, user::EMAILS])
}

/// Which of `keys` the user document `d` holds (ignoring case).
pub fn held_key<'a>(d: &Document, keys: &'a [UniqueKey]) -> Option<&'a UniqueKey> {
    let user = user_from(d)?;
    keys.iter().find(|k| k.user_key().matches(&user))
}

/// A `users.list` filter as a MongoDB filter document over Rocket.Chat's
/// user fields. Built only from the core's validated AST
/// ([`crate::core::userquery::Filter`]): field names are this module's
/// constants, operators are the few below, values are strings and booleans.
pub fn query_filter(filter: &crate::core::userquery::Filter) -> Document {
    use crate::core::userquery::Filter;
    match filter {
        Filter::And(parts) if parts.is_empty() => doc! {},
        Filter::And(parts) => doc! { "$and": parts.iter().map(query_filter).collect::<Vec<_>>() },
        // An empty `$or` is an error to MongoDB; it matches nothing.
        Filter::Or(parts) if parts.is_empty() => doc! { user::ID: { "$in": Vec::<String>::new() } },
        Filter::Or(parts) => doc! { "$or": parts.iter().map(query_filter).collect::<Vec<_>>() },
        Filter::Test(field, condition) => query_test(*field, condition),
    }
}

fn query_test(
    field: crate::core::userquery::Field,
    condition: &crate::core::userquery::Condition,
) -> Document {
    use crate::core::userquery::{Condition, Field, Scalar};
    let path = match field {
        Field::Id => user::ID,
        Field::Username => user::USERNAME,
        Field::Name => user::NAME,
        Field::Kind => user::KIND,
        Field::Active => user::ACTIVE,
        Field::Roles => user::ROLES,
        Field::EmailAddress => user::EMAIL_ADDRESS,
    };
    let value = |v: &Scalar| match v {
        Scalar::Str(s) => Bson::String(s.clone()),
        Scalar::Bool(b) => Bson::Boolean(*b),
    };
    let list = |vs: &[Scalar]| vs.iter().map(value).collect::<Vec<_>>();
    let test = match condition {
        Condition::Eq(v) => doc! { "$eq": value(v) },
        Condition::Ne(v) => doc! { "$ne": value(v) },
        Condition::In(vs) => doc! { "$in": list(vs) },
        Condition::Nin(vs) => doc! { "$nin": list(vs) },
        Condition::Exists(b) => doc! { "$exists": *b },
        Condition::Regex(re) => doc! {
            "$regex": re.pattern(),
            "$options": if re.case_insensitive() { "i" } else { "" },
        },
    };
    doc! { path: test }
}

/// The order of a `users.list` query: its keys, then `_id`.
pub fn query_sort(query: &crate::core::userquery::UserQuery) -> Document {
    use crate::core::userquery::SortField;
    let mut d = Document::new();
    for k in &query.sort {
        let path = match k.field {
            SortField::Username => user::USERNAME,
            SortField::Name => user::NAME,
            SortField::Kind => user::KIND,
            SortField::Active => user::ACTIVE,
            SortField::CreatedAt => user::CREATED_AT,
            SortField::Id => user::ID,
        };
        d.insert(path, if k.descending { -1 } else { 1 });
    }
    if !d.contains_key(user::ID) {
        d.insert(user::ID, 1);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        let now = crate::core::clock::truncate_ms(chrono::Utc::now());
        User {
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
            password_bcrypt: Some(PasswordHash("$2b$10$x".into())),
            last_login: Some(now),
        }
    }

    /// Every dotted path of a document, through subdocuments.
    fn paths(d: &Document, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in d {
            let path = format!("{prefix}{k}");
            match v {
                Bson::Document(sub) => paths(sub, &format!("{path}."), out),
                _ => out.push(path),
            }
        }
    }

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
        let user = alice();
        let d = user_doc(&user);
        assert_eq!(user_from(&d), Some(user));
        assert_eq!(
            d.get_document("services").unwrap(),
            &doc! { "password": { "bcrypt": "$2b$10$x" }, "resume": { "loginTokens": [] } }
        );
    }

    #[test]
    fn the_projection_covers_every_field_written() {
        let mut written = Vec::new();
        paths(&user_doc(&alice()), "", &mut written);
        for path in written {
            assert!(
                path == user::LOGIN_TOKENS || USER_FIELDS.contains(&path.as_str()),
                "{path} is written but not read back"
            );
        }
        assert_eq!(
            user::EMAIL_ADDRESS,
            format!("{}.{}", user::EMAILS, email::ADDRESS)
        );
        assert_eq!(user::TOKEN_HASH, in_tokens(entry::HASHED_TOKEN));
    }

    #[test]
    fn user_reads_never_carry_every_token() {
        let plain = user_projection();
        assert!(
            plain.keys().all(|k| !k.starts_with("services.resume")),
            "{plain}"
        );
        let with_token = user_and_matched_token_projection();
        let resume: Vec<&String> = with_token
            .keys()
            .filter(|k| k.starts_with("services.resume"))
            .collect();
        assert_eq!(resume, ["services.resume.loginTokens.$"]);
    }

    #[test]
    fn patches_set_and_unset_only_what_they_name() {
        let now = crate::core::clock::truncate_ms(chrono::Utc::now());
        let patch = UserPatch {
            name: Some("A".into()),
            emails: Some(Vec::new()),
            require_password_change: Some(false),
            password_bcrypt: Some(PasswordHash("h".into())),
            clear_login_tokens: true,
            ..Default::default()
        };
        assert_eq!(
            user_update(&patch, now),
            doc! {
                "$set": {
                    "_updatedAt": date(now),
                    "name": "A",
                    "services.password.bcrypt": "h",
                    "services.resume.loginTokens": [],
                },
                "$unset": { "emails": "", "requirePasswordChange": "", "requirePasswordChangeReason": "" },
            }
        );
        assert_eq!(
            user_update(&UserPatch::default(), now),
            doc! { "$set": { "_updatedAt": date(now) } }
        );
        // Applied to a document, an update and a fresh document agree.
        let mut user = alice();
        patch.apply(&mut user, now);
        let fresh = user_doc(&user);
        let update = user_update(&patch, now);
        let set = update.get_document("$set").unwrap();
        for (path, value) in set {
            assert_eq!(at(&fresh, path), Some(value), "{path}");
        }
        for path in update.get_document("$unset").unwrap().keys() {
            assert_eq!(at(&fresh, path), None, "{path}");
        }
    }

    #[test]
    fn unknown_token_entries_are_skipped() {
        let d = doc! { "services": { "resume": { "loginTokens": [
            { "token": "legacy-unhashed", "when": BsonDate::from_millis(1) },
            { "hashedToken": "h", "when": 5_i64 },
            { "hashedToken": "x", "type": "somethingElse" },
        ] } } };
        let tokens = login_tokens_of(&d);
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].hashed_token().as_str(), "h");
    }

    #[test]
    fn the_cap_and_removal_counts_read_projected_entries() {
        // As `cap_projection` and `removal_projection` return them.
        let d = doc! { "_id": "u", "services": { "resume": { "loginTokens": [
            { "when": BsonDate::from_millis(1) },
            { "type": "personalAccessToken" },
            { "when": 7_i64 },
        ] } } };
        assert_eq!(cap_counted(&d).len(), 2);
        let d = doc! { "_id": "u", "services": { "resume": { "loginTokens": [
            { "hashedToken": "a" },
            { "type": "personalAccessToken", "hashedToken": "p" },
            { "hashedToken": "b" },
            {},
        ] } } };
        assert_eq!(count_non_pat_except(&d, None), 3);
        assert_eq!(
            count_non_pat_except(&d, Some(&TokenHash::from_stored("a"))),
            2
        );
    }

    #[test]
    fn sparse_rocket_chat_documents_read() {
        let d = doc! { "_id": "rocket.cat", "username": "rocket.cat" };
        let u = user_from(&d).unwrap();
        assert!(u.emails.is_empty() && !u.active && u.password_bcrypt.is_none());
        assert!(login_tokens_of(&d).is_empty());
        assert_eq!(u.kind, "user");
    }
}
