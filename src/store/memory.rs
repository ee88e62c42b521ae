//! The embedded in-process store: the default when `MONGO_URL` is unset.
//! Nothing is persisted. One lock guards all state; it is never held across
//! an `.await`, so every method is atomic.

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
    /// token hash → user id
    by_token: HashMap<String, String>,
    roles: BTreeMap<String, Role>,
    permissions: BTreeMap<String, Permission>,
    /// user id → API token
    api_tokens: HashMap<String, ApiToken>,
    /// token hash → user id
    api_token_index: HashMap<String, String>,
    sessions: HashMap<String, Session>,
}

impl State {
    fn unindex(&mut self, user: &User) {
        if let Some(name) = &user.username {
            self.by_username.remove(&name.to_lowercase());
        }
        for e in &user.emails {
            self.by_email.remove(&e.address.to_lowercase());
        }
        for t in &user.login_tokens {
            self.by_token.remove(t.hashed_token());
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
        for t in &user.login_tokens {
            self.by_token
                .insert(t.hashed_token().to_string(), user.id.clone());
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

    /// Applies `f` to a user, keeping the indexes right. Rolls back if the
    /// result breaks uniqueness.
    fn modify<T>(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut User) -> T,
    ) -> StoreResult<Option<(T, User)>> {
        let Some(old) = self.users.get(id).cloned() else {
            return Ok(None);
        };
        let mut new = old.clone();
        let out = f(&mut new);
        self.unindex(&old);
        if let Err(e) = self.check_unique(&new) {
            self.index(&old);
            return Err(e);
        }
        self.index(&new);
        self.users.insert(id.to_string(), new.clone());
        Ok(Some((out, new)))
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

    async fn ensure_role(&self, role: &Role) -> StoreResult<()> {
        self.write()
            .roles
            .entry(role.id.clone())
            .or_insert_with(|| role.clone());
        Ok(())
    }

    async fn ensure_permission(&self, permission: &Permission) -> StoreResult<()> {
        self.write()
            .permissions
            .entry(permission.id.clone())
            .or_insert_with(|| permission.clone());
        Ok(())
    }

    async fn set_permission_roles(&self, id: &str, roles: &[String]) -> StoreResult<()> {
        self.write().permissions.insert(
            id.to_string(),
            Permission {
                id: id.to_string(),
                roles: roles.to_vec(),
            },
        );
        Ok(())
    }

    async fn permissions(&self) -> StoreResult<Vec<Permission>> {
        Ok(self.read().permissions.values().cloned().collect())
    }

    async fn roles(&self) -> StoreResult<Vec<Role>> {
        Ok(self.read().roles.values().cloned().collect())
    }

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

    async fn find_user_by_token_hash(
        &self,
        user_id: Option<&str>,
        hashed_token: &str,
    ) -> StoreResult<Option<User>> {
        let state = self.read();
        let Some(owner) = state.by_token.get(hashed_token) else {
            return Ok(None);
        };
        if user_id.is_some_and(|id| id != owner) {
            return Ok(None);
        }
        Ok(state.users.get(owner).cloned())
    }

    async fn other_active_admin_exists(&self, except_id: &str) -> StoreResult<bool> {
        Ok(self
            .read()
            .users
            .values()
            .any(|u| u.id != except_id && u.active && u.roles.iter().any(|r| r == "admin")))
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
        let updated = state.modify(id, |u| {
            let p = patch.clone();
            if let Some(v) = p.username {
                u.username = Some(v);
            }
            if let Some(v) = p.name {
                u.name = Some(v);
            }
            if let Some(v) = p.emails {
                u.emails = v;
            }
            if let Some(v) = p.roles {
                u.roles = v;
            }
            if let Some(v) = p.permissions {
                u.permissions = v;
            }
            if let Some(v) = p.active {
                u.active = v;
            }
            if let Some(v) = p.require_password_change {
                u.require_password_change = v;
            }
            if let Some(v) = p.password_bcrypt {
                u.password_bcrypt = Some(v);
            }
            if p.clear_login_tokens {
                u.login_tokens.clear();
            }
            u.updated_at = now;
        })?;
        Ok(updated.map(|(_, u)| u))
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let mut state = self.write();
        let Some(user) = state.users.remove(id) else {
            return Ok(false);
        };
        state.unindex(&user);
        Ok(true)
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
        state.modify(&id, |u| {
            u.login_tokens.push(LoginToken::Resume(token.clone()));
            if let Some(cutoff) = resume_cutoff(&u.login_tokens, max) {
                u.login_tokens
                    .retain(|t| !matches!(t, LoginToken::Resume(r) if r.when < cutoff));
            }
        })?;
        Ok(Some(id))
    }

    async fn remove_login_token(&self, user_id: &str, hashed_token: &str) -> StoreResult<bool> {
        let mut state = self.write();
        let removed = state.modify(user_id, |u| {
            let before = u.login_tokens.len();
            u.login_tokens.retain(|t| t.hashed_token() != hashed_token);
            before != u.login_tokens.len()
        })?;
        Ok(matches!(removed, Some((true, _))))
    }

    async fn add_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<PatInsert> {
        let mut state = self.write();
        let outcome = state.modify(user_id, |u| {
            if u.personal_access_tokens().any(|p| p.name == pat.name) {
                return PatInsert::NameTaken;
            }
            u.login_tokens.push(LoginToken::Personal(pat.clone()));
            PatInsert::Inserted
        })?;
        Ok(outcome.map_or(PatInsert::NoSuchUser, |(o, _)| o))
    }

    async fn replace_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<bool> {
        let mut state = self.write();
        let replaced = state.modify(user_id, |u| {
            for t in &mut u.login_tokens {
                if matches!(t, LoginToken::Personal(p) if p.name == pat.name) {
                    *t = LoginToken::Personal(pat.clone());
                    return true;
                }
            }
            false
        })?;
        Ok(matches!(replaced, Some((true, _))))
    }

    async fn remove_personal_access_token(&self, user_id: &str, name: &str) -> StoreResult<bool> {
        let mut state = self.write();
        let removed = state.modify(user_id, |u| {
            let before = u.login_tokens.len();
            u.login_tokens
                .retain(|t| !matches!(t, LoginToken::Personal(p) if p.name == name));
            before != u.login_tokens.len()
        })?;
        Ok(matches!(removed, Some((true, _))))
    }

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

    async fn find_api_token(&self, hashed_token: &str) -> StoreResult<Option<ApiToken>> {
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
        hashed_id: &str,
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

    async fn delete_session(&self, hashed_id: &str) -> StoreResult<bool> {
        Ok(self.write().sessions.remove(hashed_id).is_some())
    }

    async fn delete_sessions_of(&self, user_id: &str) -> StoreResult<u64> {
        let mut state = self.write();
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.user_id != user_id);
        Ok((before - state.sessions.len()) as u64)
    }
}
