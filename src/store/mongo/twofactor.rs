//! [`TwoFactorStore`]: Rocket.Chat's `services.totp`, `services.email2fa` and
//! `services.emailCode` of a user document. Every write is one conditional
//! `updateOne` on the user, so "use once" holds between concurrent requests.

use super::*;
use crate::core::twofactor::{EmailCode, TotpSecret, TwoFactorState};
use codec::two_factor::*;

impl MongoStore {
    /// One `updateOne` on the user matching `filter` (plus its `_id`);
    /// whether it matched.
    async fn update_user_doc(
        &self,
        op: &'static str,
        user_id: &str,
        mut filter: Document,
        update: Document,
    ) -> StoreResult<bool> {
        filter.insert(user::ID, user_id);
        self.run(op, |db| async move {
            let result = coll(&db, USERS).update_one(filter, update).await?;
            Ok(result.matched_count > 0)
        })
        .await
    }
}

#[async_trait]
impl TwoFactorStore for MongoStore {
    /// One `find`, projected on the three second-factor fields.
    async fn two_factor(&self, user_id: &str) -> StoreResult<TwoFactorState> {
        self.run("two_factor", |db| async move {
            let found = coll(&db, USERS)
                .find_one(doc! { user::ID: user_id })
                .projection(projection(&[TOTP, EMAIL2FA, EMAIL_CODE]))
                .await?;
            Ok(found.as_ref().map(two_factor_from).unwrap_or_default())
        })
        .await
    }

    /// Rocket.Chat's `disable2FAAndSetTempSecretByUserId`.
    async fn begin_totp(&self, user_id: &str, temp_secret: &TotpSecret) -> StoreResult<bool> {
        let update =
            doc! { "$set": { TOTP: { "enabled": false, "tempSecret": temp_secret.expose() } } };
        self.update_user_doc("begin_totp", user_id, doc! {}, update)
            .await
    }

    /// Rocket.Chat's `enable2FAAndSetSecretAndCodesByUserId`, on the
    /// condition that `secret` is still the pending one.
    async fn enable_totp(
        &self,
        user_id: &str,
        secret: &TotpSecret,
        hashed_backup: &[String],
    ) -> StoreResult<bool> {
        let update = doc! {
            "$set": { TOTP_ENABLED: true, TOTP_SECRET: secret.expose(), TOTP_BACKUP: hashed_backup },
            "$unset": { TOTP_TEMP_SECRET: 1 },
        };
        let filter = doc! { TOTP_TEMP_SECRET: secret.expose() };
        self.update_user_doc("enable_totp", user_id, filter, update)
            .await
    }

    /// Rocket.Chat's `disable2FAByUserId`.
    async fn disable_totp(&self, user_id: &str) -> StoreResult<bool> {
        let update = doc! { "$set": { TOTP: { "enabled": false } } };
        self.update_user_doc("disable_totp", user_id, doc! { TOTP_ENABLED: true }, update)
            .await
    }

    /// Rocket.Chat's `update2FABackupCodesByUserId`.
    async fn set_backup_codes(&self, user_id: &str, hashed_backup: &[String]) -> StoreResult<bool> {
        let update = doc! { "$set": { TOTP_BACKUP: hashed_backup } };
        self.update_user_doc(
            "set_backup_codes",
            user_id,
            doc! { TOTP_ENABLED: true },
            update,
        )
        .await
    }

    /// `$pull` filtered on the code being there: matches once per code.
    async fn use_backup_code(&self, user_id: &str, hashed: &str) -> StoreResult<bool> {
        let filter = doc! { TOTP_ENABLED: true, TOTP_BACKUP: hashed };
        let update = doc! { "$pull": { TOTP_BACKUP: hashed } };
        self.update_user_doc("use_backup_code", user_id, filter, update)
            .await
    }

    /// Rocket.Chat's `enableEmail2FAByUserId` / `disableEmail2FAByUserId`.
    async fn set_email_two_factor(&self, user_id: &str, enabled: bool) -> StoreResult<bool> {
        let update = doc! { "$set": { EMAIL2FA: { "enabled": enabled, "changedAt": mongodb::bson::DateTime::now() } } };
        self.update_user_doc("set_email_two_factor", user_id, doc! {}, update)
            .await
    }

    /// Rocket.Chat's `addEmailCodeByUserId` (`{code, expire, attempts: 0}`),
    /// or `removeEmailCodeOfUserId`.
    async fn set_email_code(&self, user_id: &str, code: Option<&EmailCode>) -> StoreResult<()> {
        let update = match code {
            Some(c) => {
                doc! { "$set": { EMAIL_CODE: { "code": &c.hash, "expire": date(c.expire), "attempts": 0 } } }
            }
            None => doc! { "$unset": { EMAIL_CODE: 1 } },
        };
        self.update_user_doc("set_email_code", user_id, doc! {}, update)
            .await
            .map(|_| ())
    }

    /// `$unset` filtered on the hash: matches once per code.
    async fn use_email_code(&self, user_id: &str, hash: &str) -> StoreResult<bool> {
        let update = doc! { "$unset": { EMAIL_CODE: 1 } };
        self.update_user_doc(
            "use_email_code",
            user_id,
            doc! { EMAIL_CODE_HASH: hash },
            update,
        )
        .await
    }

    /// Rocket.Chat's `incrementInvalidEmailCodeAttempt`.
    async fn count_email_code_failure(&self, user_id: &str) -> StoreResult<()> {
        let update = doc! { "$inc": { EMAIL_CODE_ATTEMPTS: 1 } };
        let filter = doc! { EMAIL_CODE_HASH: { "$exists": true } };
        self.update_user_doc("count_email_code_failure", user_id, filter, update)
            .await
            .map(|_| ())
    }
}
