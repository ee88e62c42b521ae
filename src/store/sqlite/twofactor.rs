//! Second factors: `user_totp`, `user_totp_backup_codes`, `user_email_two_factor`.
//! Each method is one write job, so its check and its change are one transaction.

use super::{ms, time, SqliteStore};
use crate::core::twofactor::{EmailCode, Totp, TotpSecret, TwoFactorState};
use crate::store::{StoreResult, TwoFactorStore};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

fn user_exists(c: &Connection, user_id: &str) -> StoreResult<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .query_row([user_id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn totp_enabled(c: &Connection, user_id: &str) -> StoreResult<bool> {
    Ok(
        c.prepare_cached("SELECT enabled FROM user_totp WHERE user_id = ?1")?
            .query_row([user_id], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false),
    )
}

fn replace_backup_codes(c: &Connection, user_id: &str, hashes: &[String]) -> StoreResult<()> {
    c.prepare_cached("DELETE FROM user_totp_backup_codes WHERE user_id = ?1")?
        .execute([user_id])?;
    let mut insert = c.prepare_cached(
        "INSERT OR IGNORE INTO user_totp_backup_codes (user_id, hash) VALUES (?1, ?2)",
    )?;
    for hash in hashes {
        insert.execute(params![user_id, hash])?;
    }
    Ok(())
}

#[async_trait]
impl TwoFactorStore for SqliteStore {
    async fn two_factor(&self, user_id: &str) -> StoreResult<TwoFactorState> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            let totp = c
                .prepare_cached(
                    "SELECT enabled, secret, temp_secret FROM user_totp WHERE user_id = ?1",
                )?
                .query_row([&user_id], |r| {
                    Ok(Totp {
                        enabled: r.get(0)?,
                        secret: r.get::<_, Option<String>>(1)?.map(TotpSecret::from_stored),
                        temp_secret: r.get::<_, Option<String>>(2)?.map(TotpSecret::from_stored),
                        hashed_backup: Vec::new(),
                    })
                })
                .optional()?;
            let totp = match totp {
                Some(mut totp) => {
                    let mut stmt = c.prepare_cached(
                        "SELECT hash FROM user_totp_backup_codes WHERE user_id = ?1 ORDER BY hash",
                    )?;
                    totp.hashed_backup = stmt
                        .query_map([&user_id], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    Some(totp)
                }
                None => None,
            };
            let email = c
                .prepare_cached(
                    "SELECT enabled, code_hash, code_expire, code_attempts \
                     FROM user_email_two_factor WHERE user_id = ?1",
                )?
                .query_row([&user_id], |r| {
                    let code = match (r.get::<_, Option<String>>(1)?, r.get::<_, Option<i64>>(2)?) {
                        (Some(hash), Some(expire)) => Some(EmailCode {
                            hash,
                            expire: time(2, expire)?,
                            attempts: r.get(3)?,
                        }),
                        _ => None,
                    };
                    Ok((r.get::<_, bool>(0)?, code))
                })
                .optional()?;
            let (email_enabled, email_code) = email.unwrap_or((false, None));
            Ok(TwoFactorState {
                totp,
                email_enabled,
                email_code,
            })
        })
        .await
    }

    async fn begin_totp(&self, user_id: &str, temp_secret: &TotpSecret) -> StoreResult<bool> {
        let (user_id, secret) = (user_id.to_string(), temp_secret.expose().to_string());
        self.write(move |c| {
            if !user_exists(c, &user_id)? {
                return Ok(false);
            }
            c.prepare_cached(
                "INSERT INTO user_totp (user_id, enabled, secret, temp_secret) VALUES (?1, 0, NULL, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET enabled = 0, secret = NULL, temp_secret = ?2",
            )?
            .execute(params![user_id, secret])?;
            replace_backup_codes(c, &user_id, &[])?;
            Ok(true)
        })
        .await
    }

    async fn enable_totp(
        &self,
        user_id: &str,
        secret: &TotpSecret,
        hashed_backup: &[String],
    ) -> StoreResult<bool> {
        let (user_id, secret) = (user_id.to_string(), secret.expose().to_string());
        let hashes = hashed_backup.to_vec();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE user_totp SET enabled = 1, secret = temp_secret, temp_secret = NULL \
                     WHERE user_id = ?1 AND temp_secret = ?2",
                )?
                .execute(params![user_id, secret])?;
            if changed == 0 {
                return Ok(false);
            }
            replace_backup_codes(c, &user_id, &hashes)?;
            Ok(true)
        })
        .await
    }

    async fn disable_totp(&self, user_id: &str) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE user_totp SET enabled = 0, secret = NULL, temp_secret = NULL \
                     WHERE user_id = ?1 AND enabled = 1",
                )?
                .execute([&user_id])?;
            replace_backup_codes(c, &user_id, &[])?;
            Ok(changed > 0)
        })
        .await
    }

    async fn set_backup_codes(&self, user_id: &str, hashed_backup: &[String]) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        let hashes = hashed_backup.to_vec();
        self.write(move |c| {
            if !totp_enabled(c, &user_id)? {
                return Ok(false);
            }
            replace_backup_codes(c, &user_id, &hashes)?;
            Ok(true)
        })
        .await
    }

    async fn use_backup_code(&self, user_id: &str, hashed: &str) -> StoreResult<bool> {
        let (user_id, hashed) = (user_id.to_string(), hashed.to_string());
        self.write(move |c| {
            if !totp_enabled(c, &user_id)? {
                return Ok(false);
            }
            let removed = c
                .prepare_cached(
                    "DELETE FROM user_totp_backup_codes WHERE user_id = ?1 AND hash = ?2",
                )?
                .execute(params![user_id, hashed])?;
            Ok(removed > 0)
        })
        .await
    }

    async fn set_email_two_factor(&self, user_id: &str, enabled: bool) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        self.write(move |c| {
            if !user_exists(c, &user_id)? {
                return Ok(false);
            }
            c.prepare_cached(
                "INSERT INTO user_email_two_factor (user_id, enabled) VALUES (?1, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET enabled = ?2",
            )?
            .execute(params![user_id, enabled])?;
            Ok(true)
        })
        .await
    }

    async fn set_email_code(&self, user_id: &str, code: Option<&EmailCode>) -> StoreResult<()> {
        let user_id = user_id.to_string();
        let code = code.map(|c| (c.hash.clone(), ms(c.expire)));
        self.write(move |c| {
            if !user_exists(c, &user_id)? {
                return Ok(());
            }
            let (hash, expire) = code.clone().unzip();
            c.prepare_cached(
                "INSERT INTO user_email_two_factor (user_id, code_hash, code_expire, code_attempts) \
                 VALUES (?1, ?2, ?3, 0) ON CONFLICT (user_id) DO UPDATE SET \
                 code_hash = ?2, code_expire = ?3, code_attempts = 0",
            )?
            .execute(params![user_id, hash, expire])?;
            Ok(())
        })
        .await
    }

    async fn use_email_code(&self, user_id: &str, hash: &str) -> StoreResult<bool> {
        let (user_id, hash) = (user_id.to_string(), hash.to_string());
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE user_email_two_factor SET code_hash = NULL, code_expire = NULL, \
                     code_attempts = 0 WHERE user_id = ?1 AND code_hash = ?2",
                )?
                .execute(params![user_id, hash])?;
            Ok(changed > 0)
        })
        .await
    }

    async fn count_email_code_failure(&self, user_id: &str) -> StoreResult<()> {
        let user_id = user_id.to_string();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE user_email_two_factor SET code_attempts = code_attempts + 1 \
                 WHERE user_id = ?1 AND code_hash IS NOT NULL",
            )?
            .execute([&user_id])?;
            Ok(())
        })
        .await
    }
}
