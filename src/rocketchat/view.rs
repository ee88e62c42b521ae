//! How Rocket.Chat shows a user: `me`, `data.me` of `login`.

use crate::core::model::{Email, User};
use poem_openapi::Object;

/// An email address.
#[derive(Object, serde::Serialize, Debug, Clone)]
#[oai(rename = "RcEmail")]
pub struct EmailView {
    pub address: String,
    pub verified: bool,
}

impl From<&Email> for EmailView {
    fn from(e: &Email) -> Self {
        Self {
            address: e.address.clone(),
            verified: e.verified,
        }
    }
}

/// `{"exists": bool}`: whether the user has a password; never the hash.
#[derive(Object, serde::Serialize, Debug, Clone)]
pub struct PasswordInfo {
    pub exists: bool,
}

/// `services` as `me` shows it.
#[derive(Object, serde::Serialize, Debug, Clone)]
pub struct ServicesView {
    pub password: PasswordInfo,
}

/// `settings` as `me` shows it.
#[derive(Object, serde::Serialize, Debug, Clone)]
pub struct SettingsView {
    pub profile: std::collections::BTreeMap<String, serde_json::Value>,
    pub preferences: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The caller as `GET /api/v1/me` and `login` show it.
#[derive(Object, serde::Serialize, Debug, Clone)]
#[oai(rename = "RcMe")]
pub struct MeView {
    #[oai(rename = "_id")]
    #[serde(rename = "_id")]
    pub id: String,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub emails: Vec<EmailView>,
    /// The first verified email address.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    pub status: String,
    /// Rocket.Chat's connection status; tokend keeps no presence: `offline`.
    #[oai(rename = "statusConnection")]
    #[serde(rename = "statusConnection")]
    pub status_connection: String,
    /// Hours from UTC; tokend keeps none: Rocket.Chat's default, 0.
    #[oai(rename = "utcOffset")]
    #[serde(rename = "utcOffset")]
    pub utc_offset: i64,
    /// `<site>/avatar/<username>`, as Rocket.Chat's `getURL(..., {full: true})`.
    #[oai(rename = "avatarUrl", skip_serializing_if_is_none)]
    #[serde(rename = "avatarUrl", skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[oai(rename = "requirePasswordChange")]
    #[serde(rename = "requirePasswordChange")]
    pub require_password_change: bool,
    pub settings: SettingsView,
    pub services: ServicesView,
    #[oai(rename = "_updatedAt")]
    #[serde(rename = "_updatedAt")]
    pub updated_at: String,
}

impl From<&User> for MeView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            name: u.name.clone(),
            kind: u.kind.clone(),
            emails: u.emails.iter().map(EmailView::from).collect(),
            email: u.verified_email().map(str::to_string),
            roles: u.roles.clone(),
            active: u.active,
            status: "offline".into(),
            status_connection: "offline".into(),
            utc_offset: 0,
            avatar_url: None,
            require_password_change: u.require_password_change,
            settings: SettingsView {
                profile: Default::default(),
                preferences: Default::default(),
            },
            services: ServicesView {
                password: PasswordInfo {
                    exists: u.password_bcrypt.is_some(),
                },
            },
            updated_at: crate::core::clock::iso(&u.updated_at),
        }
    }
}

impl MeView {
    /// With `avatarUrl` under the site's origin (`https://host[:port]`).
    pub fn with_avatar(mut self, origin: Option<&str>) -> Self {
        self.avatar_url = match (origin, &self.username) {
            (Some(origin), Some(name)) => Some(format!("{origin}/avatar/{name}")),
            _ => None,
        };
        self
    }
}

/// A user as the user-administration routes show it (`users.create`,
/// `users.info`, `users.list`, `users.update`): never `services`, never a hash.
#[derive(Object, Debug, Clone)]
#[oai(rename = "RcUser")]
pub struct UserView {
    #[oai(rename = "_id")]
    pub id: String,
    #[oai(rename = "createdAt")]
    pub created_at: String,
    #[oai(rename = "_updatedAt")]
    pub updated_at: String,
    #[oai(rename = "type")]
    pub kind: String,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// Shown for oneself, or with permission `view-full-other-user-info`.
    #[oai(skip_serializing_if_is_none)]
    pub emails: Option<Vec<EmailView>>,
    pub roles: Vec<String>,
    pub active: bool,
    pub status: String,
    #[oai(rename = "requirePasswordChange")]
    pub require_password_change: bool,
}

impl UserView {
    /// Every field, emails included.
    pub fn full(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            created_at: crate::core::clock::iso(&u.created_at),
            updated_at: crate::core::clock::iso(&u.updated_at),
            kind: u.kind.clone(),
            username: u.username.clone(),
            name: u.name.clone(),
            emails: Some(u.emails.iter().map(EmailView::from).collect()),
            roles: u.roles.clone(),
            active: u.active,
            status: "offline".into(),
            require_password_change: u.require_password_change,
        }
    }

    /// Without the email addresses (another user, seen without
    /// `view-full-other-user-info`).
    pub fn limited(u: &User) -> Self {
        Self {
            emails: None,
            ..Self::full(u)
        }
    }
}

/// A user in a `users.list` page: the fields of `RcUser`, less those the
/// request's `fields` parameter hides; `_id` always.
#[derive(Object, Debug, Clone)]
#[oai(rename = "RcListedUser")]
pub struct ListedUserView {
    #[oai(rename = "_id")]
    pub id: String,
    #[oai(rename = "createdAt", skip_serializing_if_is_none)]
    pub created_at: Option<String>,
    #[oai(rename = "_updatedAt", skip_serializing_if_is_none)]
    pub updated_at: Option<String>,
    #[oai(rename = "type", skip_serializing_if_is_none)]
    pub kind: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// Shown for oneself, or with permission `view-full-other-user-info`.
    #[oai(skip_serializing_if_is_none)]
    pub emails: Option<Vec<EmailView>>,
    #[oai(skip_serializing_if_is_none)]
    pub roles: Option<Vec<String>>,
    #[oai(skip_serializing_if_is_none)]
    pub active: Option<bool>,
    #[oai(skip_serializing_if_is_none)]
    pub status: Option<String>,
    #[oai(rename = "requirePasswordChange", skip_serializing_if_is_none)]
    pub require_password_change: Option<bool>,
}

/// A field of [`UserView`] that `fields` may exclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ViewField {
    CreatedAt,
    UpdatedAt,
    Kind,
    Username,
    Name,
    Emails,
    Roles,
    Active,
    Status,
    RequirePasswordChange,
}

/// A `fields` parameter that is not a JSON object of 0s and 1s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadFields;

/// Longest `fields` parameter accepted, in bytes.
pub const MAX_FIELDS_LEN: usize = 4096;

/// Rocket.Chat's `fields` parameter of `users.list` (`{"name": 0}`), applied
/// to what the caller may see anyway: it can only remove fields. Values must
/// be `0` or `1`, else the parameter is refused. `0` hides a field of the
/// view (`emails` also as `emails.<anything>`); `1` changes nothing, as in
/// Rocket.Chat, which adds inclusions to its default fields; `_id` stays;
/// other names (`services`, `lastLogin`, ...) are ignored, as Rocket.Chat
/// drops the fields nobody may select.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    hidden: Vec<ViewField>,
}

impl Projection {
    /// Parses the parameter; `Err` for anything but a JSON object of 0s and 1s.
    pub fn parse(raw: Option<&str>) -> Result<Self, BadFields> {
        let raw = raw.unwrap_or_default();
        if raw.trim().is_empty() {
            return Ok(Self::default());
        }
        if raw.len() > MAX_FIELDS_LEN {
            return Err(BadFields);
        }
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(raw) else {
            return Err(BadFields);
        };
        let mut hidden = Vec::new();
        for (key, value) in &map {
            match value.as_i64() {
                Some(1) => continue,
                Some(0) => {}
                _ => return Err(BadFields),
            }
            let field = match key.split('.').next().unwrap_or_default() {
                "createdAt" => ViewField::CreatedAt,
                "_updatedAt" => ViewField::UpdatedAt,
                "type" => ViewField::Kind,
                "username" => ViewField::Username,
                "name" => ViewField::Name,
                "emails" => ViewField::Emails,
                "roles" => ViewField::Roles,
                "active" => ViewField::Active,
                "status" => ViewField::Status,
                "requirePasswordChange" => ViewField::RequirePasswordChange,
                _ => continue,
            };
            hidden.push(field);
        }
        Ok(Self { hidden })
    }

    /// `view` less the hidden fields.
    pub fn apply(&self, view: UserView) -> ListedUserView {
        let shown = |f: ViewField| !self.hidden.contains(&f);
        let keep = |f: ViewField, v| if shown(f) { Some(v) } else { None };
        ListedUserView {
            id: view.id,
            created_at: keep(ViewField::CreatedAt, view.created_at),
            updated_at: keep(ViewField::UpdatedAt, view.updated_at),
            kind: keep(ViewField::Kind, view.kind),
            username: view.username.filter(|_| shown(ViewField::Username)),
            name: view.name.filter(|_| shown(ViewField::Name)),
            emails: view.emails.filter(|_| shown(ViewField::Emails)),
            roles: shown(ViewField::Roles).then_some(view.roles),
            active: shown(ViewField::Active).then_some(view.active),
            status: keep(ViewField::Status, view.status),
            require_password_change: shown(ViewField::RequirePasswordChange)
                .then_some(view.require_password_change),
        }
    }
}
