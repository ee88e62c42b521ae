//! The embedded in-process store: the default when `MONGO_URL` is unset.
//! Nothing is persisted. One lock guards all state; it is never held across
//! an `.await`, so every method is atomic.
//!
//! Users and their tokens are kept apart, as the traits see them: a lookup by
//! token reads the user and that one entry, never the user's other tokens.

use super::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Default)]
struct State {
    users: HashMap<String, User>,
    /// lowercase username → user id
    by_username: HashMap<String, String>,
    /// lowercase email → user id
    by_email: HashMap<String, String>,
    /// token hash → (user id, entry): login tokens and PATs.
    tokens: HashMap<TokenHash, (String, LoginToken)>,
    /// user id → that user's token hashes, oldest insertion first.
    user_tokens: HashMap<String, Vec<TokenHash>>,
    roles: BTreeMap<String, Role>,
    permissions: BTreeMap<String, PermissionEntry>,
    /// user id → API token
    api_tokens: HashMap<String, ApiToken>,
    /// API token hash → user id
    api_token_index: HashMap<TokenHash, String>,
    sessions: HashMap<TokenHash, Session>,
}

impl State {
    fn unindex(&mut self, user: &User) {
        if let Some(name) = &user.username {
            self.by_username.remove(&name.to_lowercase());
        }
        for e in &user.emails {
            self.by_email.remove(&e.address.to_lowercase());
        }
    }

    /// Fails with `Duplicate` if `user`'s username or emails belong to another user.
    fn check_unique(&self, user: &User) -> StoreResult<()> {
        if let Some(name) = &user.username {
            if matches!(self.by_username.get(&name.to_lowercase()), Some(id) if *id != user.id) {
                return Err(StoreError::Duplicate(UniqueField::Username));
            }
        }
        for e in &user.emails {
            if matches!(self.by_email.get(&e.address.to_lowercase()), Some(id) if *id != user.id) {
                return Err(StoreError::Duplicate(UniqueField::Email));
            }
        }
        Ok(())
    }

    fn index(&mut self, user: &User) {
        if let Some(name) = &user.username {
            self.by_username
                .insert(name.to_lowercase(), user.id.clone());
        }
        for e in &user.emails {
            self.by_email
                .insert(e.address.to_lowercase(), user.id.clone());
        }
    }

    fn resolve(&self, key: &UserKey) -> Option<&str> {
        let id = match key {
            UserKey::Id(id) => return self.users.get(id).map(|u| u.id.as_str()),
            UserKey::Username(name) => self.by_username.get(&name.to_lowercase()),
            UserKey::Email(email) => self.by_email.get(&email.to_lowercase()),
            UserKey::Login(login) => {
                let lower = login.to_lowercase();
                self.by_username
                    .get(&lower)
                    .or_else(|| self.by_email.get(&lower))
            }
        };
        id.map(String::as_str)
    }

    /// The entries of a user's tokens, oldest insertion first.
    fn tokens_of(&self, user_id: &str) -> impl Iterator<Item = &LoginToken> {
        self.user_tokens
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|h| self.tokens.get(h).map(|(_, t)| t))
    }

    /// Adds a token of an existing user; `Duplicate` if the hash is held.
    fn add_token(&mut self, user_id: &str, token: LoginToken) -> StoreResult<()> {
        let hash = token.hashed_token().clone();
        if self.tokens.contains_key(&hash) {
            return Err(StoreError::Duplicate(UniqueField::Other));
        }
        self.user_tokens
            .entry(user_id.to_string())
            .or_default()
            .push(hash.clone());
        self.tokens.insert(hash, (user_id.to_string(), token));
        Ok(())
    }

    /// Removes the tokens of a user for which `gone` holds; returns how many.
    fn remove_tokens(&mut self, user_id: &str, gone: impl Fn(&LoginToken) -> bool) -> u64 {
        let Some(hashes) = self.user_tokens.get_mut(user_id) else {
            return 0;
        };
        let tokens = &mut self.tokens;
        let before = hashes.len();
        hashes.retain(|h| match tokens.get(h) {
            Some((_, t)) if gone(t) => {
                tokens.remove(h);
                false
            }
            Some(_) => true,
            None => false,
        });
        let removed = (before - hashes.len()) as u64;
        if hashes.is_empty() {
            self.user_tokens.remove(user_id);
        }
        removed
    }

    /// Applies `f` to a user, keeping the indexes right. Rolls back if the
    /// result breaks uniqueness.
    fn modify(&mut self, id: &str, f: impl FnOnce(&mut User)) -> StoreResult<Option<User>> {
        let Some(old) = self.users.get(id).cloned() else {
            return Ok(None);
        };
        let mut new = old.clone();
        f(&mut new);
        self.unindex(&old);
        if let Err(e) = self.check_unique(&new) {
            self.index(&old);
            return Err(e);
        }
        self.index(&new);
        self.users.insert(id.to_string(), new.clone());
        Ok(Some(new))
    }
}

/// In-memory implementation of [`Store`].
#[derive(Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written:
        // every mutation is computed on a copy first.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl RoleStore for MemoryStore {
    async fn ensure_role(&self, role: &Role) -> StoreResult<()> {
        self.write()
            .roles
            .entry(role.id.clone())
            .or_insert_with(|| role.clone());
        Ok(())
    }

    async fn ensure_permission(&self, permission: &PermissionEntry) -> StoreResult<()> {
        self.write()
            .permissions
            .entry(permission.id.clone())
            .or_insert_with(|| permission.clone());
        Ok(())
    }

    async fn set_permission_roles(&self, id: &str, roles: &[String]) -> StoreResult<()> {
        self.write().permissions.insert(
            id.to_string(),
            PermissionEntry {
                id: id.to_string(),
                roles: roles.to_vec(),
            },
        );
        Ok(())
    }

    async fn permissions(&self) -> StoreResult<Vec<PermissionEntry>> {
        Ok(self.read().permissions.values().cloned().collect())
    }

    async fn roles(&self) -> StoreResult<Vec<Role>> {
        Ok(self.read().roles.values().cloned().collect())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn count_users(&self) -> StoreResult<u64> {
        Ok(self.read().users.len() as u64)
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut state = self.write();
        if state.users.contains_key(&user.id) {
            return Err(StoreError::Duplicate(UniqueField::Other));
        }
        state.check_unique(user)?;
        state.index(user);
        state.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn find_user(&self, key: &UserKey) -> StoreResult<Option<User>> {
        let state = self.read();
        Ok(state
            .resolve(key)
            .and_then(|id| state.users.get(id))
            .cloned())
    }

    async fn other_active_admin_exists(&self, except_id: &str) -> StoreResult<bool> {
        Ok(self
            .read()
            .users
            .values()
            .any(|u| u.id != except_id && u.is_active_admin()))
    }

    async fn list_users(&self, offset: u64, count: u64) -> StoreResult<(Vec<User>, u64)> {
        let state = self.read();
        let mut users: Vec<&User> = state.users.values().collect();
        users.sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
        let total = users.len() as u64;
        let page = users
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        Ok((page, total))
    }

    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: Timestamp,
    ) -> StoreResult<Option<User>> {
        let mut state = self.write();
        let updated = state.modify(id, |u| patch.apply(u, now))?;
        if updated.is_some() && patch.clear_login_tokens {
            state.remove_tokens(id, |_| true);
        }
        Ok(updated)
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let mut state = self.write();
        let Some(user) = state.users.remove(id) else {
            return Ok(false);
        };
        state.unindex(&user);
        state.remove_tokens(id, |_| true);
        Ok(true)
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn find_by_token(
        &self,
        user_id: Option<&str>,
        hashed_token: &TokenHash,
    ) -> StoreResult<Option<(User, LoginToken)>> {
        let state = self.read();
        let Some((owner, entry)) = state.tokens.get(hashed_token) else {
            return Ok(None);
        };
        if user_id.is_some_and(|id| id != owner) {
            return Ok(None);
        }
        Ok(state.users.get(owner).map(|u| (u.clone(), entry.clone())))
    }

    async fn tokens_of(&self, user_id: &str) -> StoreResult<Vec<LoginToken>> {
        Ok(self.read().tokens_of(user_id).cloned().collect())
    }

    async fn push_login_token(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
    ) -> StoreResult<Option<String>> {
        let mut state = self.write();
        let Some(id) = state.resolve(key).map(str::to_string) else {
            return Ok(None);
        };
        state.add_token(&id, LoginToken::Resume(token.clone()))?;
        let held: Vec<LoginToken> = state.tokens_of(&id).cloned().collect();
        if let Some(cutoff) = resume_cutoff(&held, max) {
            state.remove_tokens(
                &id,
                |t| matches!(t, LoginToken::Resume(r) if r.when < cutoff),
            );
        }
        Ok(Some(id))
    }

    async fn remove_login_tokens(
        &self,
        user_id: &str,
        keep: Option<&TokenHash>,
    ) -> StoreResult<u64> {
        Ok(self.write().remove_tokens(user_id, |t| {
            matches!(t, LoginToken::Resume(_)) && Some(t.hashed_token()) != keep
        }))
    }

    async fn remove_login_token(
        &self,
        user_id: &str,
        hashed_token: &TokenHash,
    ) -> StoreResult<bool> {
        Ok(self
            .write()
            .remove_tokens(user_id, |t| t.hashed_token() == hashed_token)
            > 0)
    }

    async fn add_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<PatInsert> {
        let mut state = self.write();
        if !state.users.contains_key(user_id) {
            return Ok(PatInsert::NoSuchUser);
        }
        let taken = state
            .tokens_of(user_id)
            .any(|t| matches!(t, LoginToken::Personal(p) if p.name == pat.name));
        if taken {
            return Ok(PatInsert::NameTaken);
        }
        state.add_token(user_id, LoginToken::Personal(pat.clone()))?;
        Ok(PatInsert::Inserted)
    }

    async fn replace_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<bool> {
        let mut state = self.write();
        let old = state.tokens_of(user_id).find_map(|t| match t {
            LoginToken::Personal(p) if p.name == pat.name => Some(p.hashed_token.clone()),
            _ => None,
        });
        let Some(old) = old else {
            return Ok(false);
        };
        if old != pat.hashed_token && state.tokens.contains_key(&pat.hashed_token) {
            return Err(StoreError::Duplicate(UniqueField::Other));
        }
        // Same place in the user's list, new hash and entry.
        state.tokens.remove(&old);
        if let Some(h) = state
            .user_tokens
            .get_mut(user_id)
            .and_then(|hashes| hashes.iter_mut().find(|h| **h == old))
        {
            *h = pat.hashed_token.clone();
        }
        state.tokens.insert(
            pat.hashed_token.clone(),
            (user_id.to_string(), LoginToken::Personal(pat.clone())),
        );
        Ok(true)
    }

    async fn remove_personal_access_token(&self, user_id: &str, name: &str) -> StoreResult<bool> {
        Ok(self.write().remove_tokens(
            user_id,
            |t| matches!(t, LoginToken::Personal(p) if p.name == name),
        ) > 0)
    }
}

#[async_trait]
impl SaymonStore for MemoryStore {
    async fn set_api_token(&self, token: &ApiToken) -> StoreResult<()> {
        let mut state = self.write();
        if let Some(old) = state.api_tokens.remove(&token.user_id) {
            state.api_token_index.remove(&old.hashed_token);
        }
        state
            .api_token_index
            .insert(token.hashed_token.clone(), token.user_id.clone());
        state
            .api_tokens
            .insert(token.user_id.clone(), token.clone());
        Ok(())
    }

    async fn api_token_of(&self, user_id: &str) -> StoreResult<Option<ApiToken>> {
        Ok(self.read().api_tokens.get(user_id).cloned())
    }

    async fn api_tokens_of(&self, user_ids: &[String]) -> StoreResult<Vec<ApiToken>> {
        let state = self.read();
        Ok(user_ids
            .iter()
            .filter_map(|id| state.api_tokens.get(id))
            .cloned()
            .collect())
    }

    async fn find_api_token(&self, hashed_token: &TokenHash) -> StoreResult<Option<ApiToken>> {
        let state = self.read();
        Ok(state
            .api_token_index
            .get(hashed_token)
            .and_then(|id| state.api_tokens.get(id))
            .cloned())
    }

    async fn delete_api_token(&self, user_id: &str) -> StoreResult<bool> {
        let mut state = self.write();
        let Some(old) = state.api_tokens.remove(user_id) else {
            return Ok(false);
        };
        state.api_token_index.remove(&old.hashed_token);
        Ok(true)
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let mut state = self.write();
        if state.sessions.contains_key(&session.hashed_id) {
            return Err(StoreError::Duplicate(UniqueField::Other));
        }
        state
            .sessions
            .insert(session.hashed_id.clone(), session.clone());
        Ok(())
    }

    async fn touch_session(
        &self,
        hashed_id: &TokenHash,
        now: Timestamp,
        new_expires_at: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let mut state = self.write();
        let Some(s) = state.sessions.get_mut(hashed_id) else {
            return Ok(None);
        };
        if s.expires_at <= now || s.absolute_expires_at <= now {
            // Expired: gone for good, as a TTL index would do.
            state.sessions.remove(hashed_id);
            return Ok(None);
        }
        s.last_seen_at = now;
        s.expires_at = new_expires_at;
        Ok(Some(s.clone()))
    }

    async fn delete_session(&self, hashed_id: &TokenHash) -> StoreResult<bool> {
        Ok(self.write().sessions.remove(hashed_id).is_some())
    }

    async fn delete_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&TokenHash>,
    ) -> StoreResult<u64> {
        let mut state = self.write();
        let before = state.sessions.len();
        state
            .sessions
            .retain(|h, s| s.user_id != user_id || Some(h) == keep);
        Ok((before - state.sessions.len()) as u64)
    }
}
