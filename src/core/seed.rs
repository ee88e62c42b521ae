//! Start-up seeding: default roles and permissions (inserted when missing,
//! never overwriting an operator's change) and the first admin.

use super::credential::Plaintext;
use super::error::CoreError;
use super::ids;
use super::permissions::{default_permissions, default_roles};
use super::permissions::{ADMIN_ROLE, USER_ROLE};
use super::service::{Core, CreateUser, NewUser};

/// What seeding did about the admin.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminSeed {
    /// Nothing to do.
    Unchanged,
    /// Created with the configured password.
    Created { username: String },
    /// Created with a generated password, returned to be shown once.
    Generated {
        username: String,
        password: Plaintext,
    },
}

/// Seeds roles, permissions and the first admin.
pub async fn seed(core: &Core) -> Result<AdminSeed, CoreError> {
    seed_roles(core).await?;
    seed_admin(core).await
}

/// Seeds the default roles and permissions only (the operator CLI: never
/// an admin it did not ask for).
pub async fn seed_roles(core: &Core) -> Result<(), CoreError> {
    let store = core.store();
    for role in default_roles() {
        store.ensure_role(&role).await?;
    }
    for permission in default_permissions() {
        store.ensure_permission(&permission).await?;
    }
    Ok(())
}

async fn seed_admin(core: &Core) -> Result<AdminSeed, CoreError> {
    let cfg = core.config();
    let configured = cfg.admin_username.is_some() || cfg.admin_pass.is_some();
    let username = cfg.admin_username.clone().unwrap_or_else(|| "admin".into());
    if configured {
        // As Rocket.Chat: the admin from `ADMIN_*` only while no user is one.
        if core.admin_exists().await? {
            return Ok(AdminSeed::Unchanged);
        }
    } else if core.count_users().await? > 0 {
        return Ok(AdminSeed::Unchanged);
    }
    let (password, generated) = match &cfg.admin_pass {
        Some(p) => (p.0.clone(), false),
        None => (ids::new_password(), true),
    };
    let new = NewUser {
        username: username.clone(),
        name: Some(
            cfg.admin_name
                .clone()
                .unwrap_or_else(|| "Administrator".into()),
        ),
        email: cfg.admin_email.clone(),
        email_verified: cfg.admin_email_verified,
        password: Some(password.clone()),
        roles: vec![ADMIN_ROLE.into(), USER_ROLE.into()],
        active: true,
        // A generated password was printed once: the admin must choose its
        // own (as Rocket.Chat marks such accounts).
        require_password_change: generated,
        kind: "user".into(),
        ..NewUser::default()
    };
    match core.insert_user(new).await? {
        CreateUser::Created(_) if generated => Ok(AdminSeed::Generated {
            username,
            password: Plaintext::new(password),
        }),
        CreateUser::Created(_) => Ok(AdminSeed::Created { username }),
        // Another instance created it first.
        CreateUser::Taken(_) => Ok(AdminSeed::Unchanged),
    }
}
