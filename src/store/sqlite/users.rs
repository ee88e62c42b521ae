//! Users: the `users` table and each user's `user_emails`.

use super::{from_json, ms, time, to_json, SqliteStore};
use crate::core::model::{Email, PasswordHash, Timestamp, User, UserKey};
use crate::core::userquery::{Condition, Field, Filter, Scalar, SortField, UserQuery};
use crate::store::{
    removes_active_admin, AdminGuard, LastAdmin, StoreResult, UserPatch, UserStore,
};
use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};

const USER_COLUMNS: &str = "id, created_at, updated_at, type, username, name, roles, \
                            permissions, active, require_password_change, password_bcrypt, \
                            last_login";

/// A user from a row of [`USER_COLUMNS`], without its emails.
fn user_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        created_at: time(1, row.get(1)?)?,
        updated_at: time(2, row.get(2)?)?,
        kind: row.get(3)?,
        username: row.get(4)?,
        name: row.get(5)?,
        emails: Vec::new(),
        roles: from_json(6, &row.get::<_, String>(6)?)?,
        permissions: from_json(7, &row.get::<_, String>(7)?)?,
        active: row.get(8)?,
        require_password_change: row.get(9)?,
        password_bcrypt: row.get::<_, Option<String>>(10)?.map(PasswordHash),
        last_login: row
            .get::<_, Option<i64>>(11)?
            .map(|v| time(11, v))
            .transpose()?,
    })
}

fn emails_of(conn: &Connection, id: &str) -> StoreResult<Vec<Email>> {
    let mut stmt = conn.prepare_cached(
        "SELECT address, verified FROM user_emails WHERE user_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(Email {
            address: r.get(0)?,
            verified: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The user with this id, emails included.
pub(super) fn user_by_id(conn: &Connection, id: &str) -> StoreResult<Option<User>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
    let Some(mut user) = stmt.query_row([id], user_row).optional()? else {
        return Ok(None);
    };
    user.emails = emails_of(conn, id)?;
    Ok(Some(user))
}

fn id_by_username(conn: &Connection, lower: &str) -> StoreResult<Option<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM users WHERE username_lower = ?1")?;
    Ok(stmt.query_row([lower], |r| r.get(0)).optional()?)
}

fn id_by_email(conn: &Connection, lower: &str) -> StoreResult<Option<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT user_id FROM user_emails WHERE address_lower = ?1")?;
    Ok(stmt.query_row([lower], |r| r.get(0)).optional()?)
}

/// The id of the user a key names (index lookups; names ignoring case).
pub(super) fn resolve(conn: &Connection, key: &UserKey) -> StoreResult<Option<String>> {
    match key {
        UserKey::Id(id) => {
            let mut stmt = conn.prepare_cached("SELECT id FROM users WHERE id = ?1")?;
            Ok(stmt.query_row([id], |r| r.get(0)).optional()?)
        }
        UserKey::Username(name) => id_by_username(conn, &name.to_lowercase()),
        UserKey::Email(addr) => id_by_email(conn, &addr.to_lowercase()),
        UserKey::Login(login) => {
            let lower = login.to_lowercase();
            match id_by_username(conn, &lower)? {
                Some(id) => Ok(Some(id)),
                None => id_by_email(conn, &lower),
            }
        }
        // Rocket.Chat's importers set `importIds`; tokend imports nothing,
        // so an SQLite store holds none (no column: nothing could fill it).
        UserKey::ImportId(_) => Ok(None),
    }
}

fn write_emails(conn: &Connection, id: &str, emails: &[Email]) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM user_emails WHERE user_id = ?1")?
        .execute([id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO user_emails (user_id, position, address, address_lower, verified) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (position, e) in emails.iter().enumerate() {
        insert.execute(params![
            id,
            position as i64,
            e.address,
            e.address.to_lowercase(),
            e.verified
        ])?;
    }
    Ok(())
}

/// Writes every column of a user's row with `sql`, whose parameters are
/// the columns in this one order (each column named once, here).
fn write_row(conn: &Connection, sql: &str, user: &User) -> StoreResult<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params![
        user.id,
        ms(user.created_at),
        ms(user.updated_at),
        user.kind,
        user.username,
        user.username.as_ref().map(|u| u.to_lowercase()),
        user.name,
        to_json(&user.roles),
        to_json(&user.permissions),
        user.active,
        user.require_password_change,
        user.password_bcrypt.as_ref().map(|p| p.0.as_str()),
        user.last_login.map(ms),
    ])?)
}

fn insert(conn: &Connection, user: &User) -> StoreResult<()> {
    write_row(
        conn,
        "INSERT INTO users (id, created_at, updated_at, type, username, username_lower, name, \
         roles, permissions, active, require_password_change, password_bcrypt, last_login) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        user,
    )?;
    write_emails(conn, &user.id, &user.emails)
}

/// Whether an active user holding the `admin` role exists other than `except_id`.
fn other_active_admin_exists(conn: &Connection, except_id: &str) -> StoreResult<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM users, json_each(users.roles) AS role \
         WHERE users.id <> ?1 AND users.active AND role.value = ?2)",
    )?;
    Ok(stmt.query_row(
        params![except_id, crate::core::permissions::ADMIN_ROLE],
        |r| r.get(0),
    )?)
}

/// The last-admin guard, in the writer's transaction: the check reads the
/// same snapshot the write then changes, and no other write runs between
/// them (one writer, `BEGIN IMMEDIATE`), so two admins removing each other
/// cannot both pass.
fn refused(
    conn: &Connection,
    guard: AdminGuard,
    before: &User,
    after: Option<&User>,
) -> StoreResult<bool> {
    Ok(guard == AdminGuard::KeepLastAdmin
        && removes_active_admin(before, after)
        && !other_active_admin_exists(conn, &before.id)?)
}

fn update(
    conn: &Connection,
    id: &str,
    patch: &UserPatch,
    now: Timestamp,
    guard: AdminGuard,
) -> StoreResult<Result<Option<User>, LastAdmin>> {
    let Some(mut user) = user_by_id(conn, id)? else {
        return Ok(Ok(None));
    };
    let before = user.clone();
    patch.apply(&mut user, now);
    if refused(conn, guard, &before, Some(&user))? {
        return Ok(Err(LastAdmin));
    }
    write_row(
        conn,
        "UPDATE users SET created_at = ?2, updated_at = ?3, type = ?4, username = ?5, \
         username_lower = ?6, name = ?7, roles = ?8, permissions = ?9, active = ?10, \
         require_password_change = ?11, password_bcrypt = ?12, last_login = ?13 WHERE id = ?1",
        &user,
    )?;
    if patch.emails.is_some() {
        write_emails(conn, id, &user.emails)?;
    }
    if patch.clear_login_tokens {
        conn.prepare_cached("DELETE FROM login_tokens WHERE user_id = ?1")?
            .execute([id])?;
    }
    Ok(Ok(Some(user)))
}

fn delete(conn: &Connection, id: &str, guard: AdminGuard) -> StoreResult<Result<bool, LastAdmin>> {
    if guard == AdminGuard::KeepLastAdmin {
        if let Some(user) = user_by_id(conn, id)? {
            if refused(conn, guard, &user, None)? {
                return Ok(Err(LastAdmin));
            }
        }
    }
    // Emails and tokens go with the user (ON DELETE CASCADE).
    Ok(Ok(conn
        .prepare_cached("DELETE FROM users WHERE id = ?1")?
        .execute([id])?
        > 0))
}

/// The SQL function `users.list` filters call for `$regex`:
/// `tokend_regexp(pattern, value)`, true if `value` (text) matches `pattern`
/// (a [`crate::core::userquery::SafeRegex`]'s Rust form), false for NULL.
/// The pattern is compiled once per statement (SQLite's auxiliary data).
pub(super) const REGEXP: &str = "tokend_regexp";

/// Registers [`REGEXP`] on a connection.
pub(super) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        REGEXP,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re = ctx.get_or_create_aux(0, |v| -> Result<regex::Regex, rusqlite::Error> {
                let pattern = v
                    .as_str()
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
                crate::core::userquery::compile_rust(pattern)
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
            })?;
            Ok(match ctx.get_raw(1) {
                rusqlite::types::ValueRef::Text(t) => {
                    std::str::from_utf8(t).is_ok_and(|s| re.is_match(s))
                }
                _ => false,
            })
        },
    )
}

/// A filter as a SQL condition over `users`, its values pushed to `args`
/// (every value a bound parameter; the SQL text is made only of the fixed
/// column names below).
fn where_sql(filter: &Filter, args: &mut Vec<SqlValue>) -> String {
    match filter {
        Filter::And(parts) if parts.is_empty() => "1".into(),
        Filter::Or(parts) if parts.is_empty() => "0".into(),
        Filter::And(parts) | Filter::Or(parts) => {
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts: Vec<String> = parts.iter().map(|p| where_sql(p, args)).collect();
            format!("({})", parts.join(joiner))
        }
        Filter::Test(field, condition) => test_sql(*field, condition, args),
    }
}

fn bind(args: &mut Vec<SqlValue>, v: &Scalar) -> String {
    args.push(match v {
        Scalar::Str(s) => SqlValue::Text(s.clone()),
        Scalar::Bool(b) => SqlValue::Integer(i64::from(*b)),
    });
    format!("?{}", args.len())
}

fn bind_list(args: &mut Vec<SqlValue>, vs: &[Scalar]) -> String {
    let marks: Vec<String> = vs.iter().map(|v| bind(args, v)).collect();
    marks.join(", ")
}

/// One field's condition. Scalar fields compare the column (NULL: missing);
/// array fields test their elements (`roles` JSON, `user_emails` rows) with
/// `EXISTS`, as MongoDB tests an array's elements.
fn test_sql(field: Field, condition: &Condition, args: &mut Vec<SqlValue>) -> String {
    let (elements, e) = match field {
        Field::Roles => (
            "SELECT 1 FROM json_each(users.roles) AS e WHERE ",
            "e.value",
        ),
        Field::EmailAddress => (
            "SELECT 1 FROM user_emails AS e WHERE e.user_id = users.id AND ",
            "e.address",
        ),
        Field::Id | Field::Username | Field::Name | Field::Kind | Field::Active => {
            let c = match field {
                Field::Id => "users.id",
                Field::Username => "users.username",
                Field::Name => "users.name",
                Field::Kind => "users.type",
                _ => "users.active",
            };
            return match condition {
                Condition::Eq(v) => format!("{c} = {}", bind(args, v)),
                Condition::Ne(v) => format!("{c} IS NOT {}", bind(args, v)),
                Condition::In(vs) if vs.is_empty() => "0".into(),
                Condition::In(vs) => format!("{c} IN ({})", bind_list(args, vs)),
                Condition::Nin(vs) if vs.is_empty() => "1".into(),
                Condition::Nin(vs) => {
                    format!("({c} IS NULL OR {c} NOT IN ({}))", bind_list(args, vs))
                }
                Condition::Exists(true) => format!("{c} IS NOT NULL"),
                Condition::Exists(false) => format!("{c} IS NULL"),
                Condition::Regex(re) => {
                    args.push(SqlValue::Text(re.rust_pattern()));
                    format!("{REGEXP}(?{}, {c})", args.len())
                }
            };
        }
    };
    let exists = |cond: String| format!("EXISTS ({elements}{cond})");
    match condition {
        Condition::Eq(v) => exists(format!("{e} = {}", bind(args, v))),
        Condition::Ne(v) => format!("NOT {}", exists(format!("{e} = {}", bind(args, v)))),
        Condition::In(vs) if vs.is_empty() => "0".into(),
        Condition::In(vs) => exists(format!("{e} IN ({})", bind_list(args, vs))),
        Condition::Nin(vs) if vs.is_empty() => "1".into(),
        Condition::Nin(vs) => format!(
            "NOT {}",
            exists(format!("{e} IN ({})", bind_list(args, vs)))
        ),
        Condition::Exists(true) => exists("1".into()),
        Condition::Exists(false) => format!("NOT {}", exists("1".into())),
        Condition::Regex(re) => {
            args.push(SqlValue::Text(re.rust_pattern()));
            exists(format!("{REGEXP}(?{}, {e})", args.len()))
        }
    }
}

/// `ORDER BY` of a query: its keys, then `id`.
fn order_sql(query: &UserQuery) -> String {
    let mut keys: Vec<String> = query
        .sort
        .iter()
        .map(|k| {
            let c = match k.field {
                SortField::Username => "username",
                SortField::Name => "name",
                SortField::Kind => "type",
                SortField::Active => "active",
                SortField::CreatedAt => "created_at",
                SortField::Id => "id",
            };
            format!("{c} {}", if k.descending { "DESC" } else { "ASC" })
        })
        .collect();
    if !query.sort.iter().any(|k| k.field == SortField::Id) {
        keys.push("id ASC".into());
    }
    keys.join(", ")
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn count_users(&self) -> StoreResult<u64> {
        self.read(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write(move |c| insert(c, &user)).await
    }

    async fn find_user(&self, key: &UserKey) -> StoreResult<Option<User>> {
        let key = key.clone();
        self.read_point(move |c| match &key {
            // An id needs no resolving: one statement fewer on every mint.
            UserKey::Id(id) => user_by_id(c, id),
            _ => match resolve(c, &key)? {
                Some(id) => user_by_id(c, &id),
                None => Ok(None),
            },
        })
        .await
    }

    async fn list_users(&self, offset: u64, count: u64) -> StoreResult<(Vec<User>, u64)> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.read(move |c| {
            let total: i64 = c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username, id LIMIT ?1 OFFSET ?2"
            ))?;
            let mut page = stmt
                .query_map([count, offset], user_row)?
                .collect::<Result<Vec<User>, _>>()?;
            for user in &mut page {
                user.emails = emails_of(c, &user.id)?;
            }
            Ok((page, total as u64))
        })
        .await
    }

    /// Two statements in one read: the count and the page.
    async fn find_users(&self, query: &UserQuery) -> StoreResult<(Vec<User>, u64)> {
        let mut args = Vec::new();
        let condition = where_sql(&query.filter, &mut args);
        let order = order_sql(query);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let count = i64::try_from(query.count).unwrap_or(i64::MAX);
        self.read(move |c| {
            let total: i64 = c
                .prepare(&format!("SELECT COUNT(*) FROM users WHERE {condition}"))?
                .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
            let n = args.len();
            // Not cached: each filter is its own text, and would evict the
            // statements every request uses.
            let mut stmt = c.prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {condition} ORDER BY {order} \
                 LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            ))?;
            let mut all = args;
            all.push(SqlValue::Integer(count));
            all.push(SqlValue::Integer(offset));
            let mut page = stmt
                .query_map(rusqlite::params_from_iter(all.iter()), user_row)?
                .collect::<Result<Vec<User>, _>>()?;
            for user in &mut page {
                user.emails = emails_of(c, &user.id)?;
            }
            Ok((page, total as u64))
        })
        .await
    }

    async fn users_in_roles(
        &self,
        roles: &[String],
        offset: u64,
        count: u64,
    ) -> StoreResult<(Vec<User>, u64)> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let wanted = super::to_json(roles);
        self.read(move |c| {
            const HOLDS: &str = "EXISTS (SELECT 1 FROM json_each(users.roles) AS r \
                 JOIN json_each(?1) AS w ON r.value = w.value)";
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM users WHERE {HOLDS}"),
                [&wanted],
                |r| r.get(0),
            )?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {HOLDS} \
                 ORDER BY username, id LIMIT ?2 OFFSET ?3"
            ))?;
            let mut page = stmt
                .query_map(rusqlite::params![wanted, count, offset], user_row)?
                .collect::<Result<Vec<User>, _>>()?;
            for user in &mut page {
                user.emails = emails_of(c, &user.id)?;
            }
            Ok((page, total as u64))
        })
        .await
    }

    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: Timestamp,
        guard: AdminGuard,
    ) -> StoreResult<Result<Option<User>, LastAdmin>> {
        let (id, patch) = (id.to_string(), patch.clone());
        self.write(move |c| update(c, &id, &patch, now, guard))
            .await
    }

    async fn delete_user(
        &self,
        id: &str,
        guard: AdminGuard,
    ) -> StoreResult<Result<bool, LastAdmin>> {
        let id = id.to_string();
        self.write(move |c| delete(c, &id, guard)).await
    }
}
