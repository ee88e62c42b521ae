//! Passwords as Meteor's `accounts-password` stores them: bcrypt (cost 10) of
//! the lowercase SHA-256 hex of the password. Hashing runs on the blocking
//! pool so it never stalls the async runtime, and [`Bcrypt`] bounds how many
//! run at once (about one per core): a flood of password logins cannot take
//! the CPU from requests that authenticate by token.

use super::error::CoreError;
use super::model::PasswordHash;
use super::token::sha256_hex;
use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Meteor's default bcrypt cost.
pub const BCRYPT_COST: u32 = 10;

/// A password as a client sends it.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordInput {
    /// The password itself.
    Plain(String),
    /// `{digest, algorithm: "sha-256"}`: the SHA-256 hex of the password.
    Sha256Digest(String),
}

impl std::fmt::Debug for PasswordInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordInput(<redacted>)")
    }
}

impl PasswordInput {
    fn digest(&self) -> String {
        match self {
            PasswordInput::Plain(p) => sha256_hex(p),
            PasswordInput::Sha256Digest(d) => d.trim().to_ascii_lowercase(),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CoreError::Internal(format!("password task failed: {e}")))
}

/// Hashes a new password for storage in `services.password.bcrypt`
/// (unbounded: the core goes through [`Bcrypt`]).
pub async fn hash_password(plain: &str) -> Result<PasswordHash, CoreError> {
    let digest = sha256_hex(plain);
    blocking(move || bcrypt::hash(digest, BCRYPT_COST))
        .await?
        .map(PasswordHash)
        .map_err(|e| CoreError::Internal(format!("bcrypt failed: {e}")))
}

/// A valid hash to verify against when the user does not exist, so a wrong
/// login takes as long as a wrong password (no user enumeration by timing).
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        bcrypt::hash(sha256_hex("tokend decoy password"), BCRYPT_COST).unwrap_or_default()
    })
}

/// Checks a password against a stored bcrypt hash. With no hash (unknown user,
/// or a user without a password) it still does the work of one check and fails.
/// Unbounded: the core goes through [`Bcrypt`].
pub async fn verify_password(
    input: &PasswordInput,
    stored: Option<&PasswordHash>,
) -> Result<bool, CoreError> {
    let slot = Arc::new(Semaphore::new(1))
        .try_acquire_owned()
        .map_err(|e| CoreError::Internal(format!("password slot: {e}")))?;
    verify_in_slot(slot, input, stored).await
}

/// The bound on concurrent bcrypt work. A password check that finds every
/// slot taken is refused at once ([`Checked::Busy`]) rather than queued, so
/// the excess costs nothing; hashing a new password (an authorised
/// operation) waits for a slot.
pub struct Bcrypt {
    slots: Arc<Semaphore>,
}

/// Outcome of [`Bcrypt::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Match,
    Mismatch,
    /// Every slot is taken: the password was not checked.
    Busy,
}

impl Bcrypt {
    /// At most `concurrency` bcrypt computations at once (at least one).
    pub fn new(concurrency: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Checks a password if a slot is free. The slot is held by the blocking
    /// task itself, so it stays taken until bcrypt ends even if the request
    /// is dropped.
    pub async fn verify(
        &self,
        input: &PasswordInput,
        stored: Option<&PasswordHash>,
    ) -> Result<Checked, CoreError> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Ok(Checked::Busy);
        };
        Ok(match verify_in_slot(slot, input, stored).await? {
            true => Checked::Match,
            false => Checked::Mismatch,
        })
    }

    /// Checks a one-time code (an emailed two-factor code) against its
    /// bcrypt hash, as Rocket.Chat's `bcrypt.compare(code, hash)`, if a slot
    /// is free.
    pub async fn verify_code(&self, code: &str, hash: &str) -> Result<Checked, CoreError> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Ok(Checked::Busy);
        };
        let (code, hash) = (code.to_string(), hash.to_string());
        let matched = blocking(move || {
            let _slot = slot;
            bcrypt::verify(code, &hash).unwrap_or(false)
        })
        .await?;
        Ok(if matched {
            Checked::Match
        } else {
            Checked::Mismatch
        })
    }

    /// Hashes a one-time code for storage (bcrypt of the code itself),
    /// waiting for a slot.
    pub async fn hash_code(&self, code: &str) -> Result<String, CoreError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CoreError::Internal(format!("password slots closed: {e}")))?;
        let code = code.to_string();
        blocking(move || {
            let _slot = slot;
            bcrypt::hash(code, BCRYPT_COST)
        })
        .await?
        .map_err(|e| CoreError::Internal(format!("bcrypt failed: {e}")))
    }

    /// Hashes a new password, waiting for a slot.
    pub async fn hash(&self, plain: &str) -> Result<PasswordHash, CoreError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CoreError::Internal(format!("password slots closed: {e}")))?;
        let digest = sha256_hex(plain);
        blocking(move || {
            let _slot = slot;
            bcrypt::hash(digest, BCRYPT_COST)
        })
        .await?
        .map(PasswordHash)
        .map_err(|e| CoreError::Internal(format!("bcrypt failed: {e}")))
    }
}

async fn verify_in_slot(
    slot: OwnedSemaphorePermit,
    input: &PasswordInput,
    stored: Option<&PasswordHash>,
) -> Result<bool, CoreError> {
    let digest = input.digest();
    let (hash, real) = match stored {
        Some(h) => (h.0.clone(), true),
        None => (String::new(), false),
    };
    blocking(move || {
        let _slot = slot;
        let hash = if real { hash } else { decoy_hash().to_string() };
        // A malformed stored hash counts as a mismatch, not a server error.
        real & bcrypt::verify(digest, &hash).unwrap_or(false)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_and_digest_forms_both_verify() {
        let hash = hash_password("s3cret!").await.unwrap();
        assert!(hash.0.starts_with("$2b$10$"));
        assert!(
            verify_password(&PasswordInput::Plain("s3cret!".into()), Some(&hash))
                .await
                .unwrap()
        );
        let digest = sha256_hex("s3cret!").to_uppercase();
        assert!(
            verify_password(&PasswordInput::Sha256Digest(digest), Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(&PasswordInput::Plain("wrong".into()), Some(&hash))
                .await
                .unwrap()
        );
    }

    /// On a single-threaded runtime, tasks run in spawn order. If hashing ran
    /// on the runtime thread, the first task would finish before the second
    /// ever ran; off the runtime, the second runs while the hash is computed.
    #[test]
    fn hashing_and_verifying_leave_the_runtime_free() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        use std::sync::Arc;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let hash = hash_password("pw").await.unwrap();
            for verify in [false, true] {
                let done = Arc::new(AtomicBool::new(false));
                let flag = done.clone();
                let hash = hash.clone();
                let work = tokio::spawn(async move {
                    if verify {
                        verify_password(&PasswordInput::Plain("pw".into()), Some(&hash))
                            .await
                            .unwrap();
                    } else {
                        hash_password("pw").await.unwrap();
                    }
                    flag.store(true, SeqCst);
                });
                let other = tokio::spawn(async move { !done.load(SeqCst) });
                assert!(other.await.unwrap(), "runtime blocked (verify: {verify})");
                work.await.unwrap();
            }
        });
    }

    #[tokio::test]
    async fn a_check_beyond_the_bound_is_refused_at_once() {
        let gate = Bcrypt::new(1);
        let hash = hash_password("pw").await.unwrap();
        let input = PasswordInput::Plain("pw".into());
        let (first, second) = tokio::join!(
            gate.verify(&input, Some(&hash)),
            gate.verify(&input, Some(&hash))
        );
        assert_eq!(first.unwrap(), Checked::Match);
        assert_eq!(second.unwrap(), Checked::Busy);
        // The slot is free again.
        assert_eq!(
            gate.verify(&input, Some(&hash)).await.unwrap(),
            Checked::Match
        );
    }

    #[tokio::test]
    async fn missing_or_garbage_hash_never_verifies() {
        let input = PasswordInput::Plain("x".into());
        assert!(!verify_password(&input, None).await.unwrap());
        assert!(
            !verify_password(&input, Some(&PasswordHash("not-a-hash".into())))
                .await
                .unwrap()
        );
    }
}
