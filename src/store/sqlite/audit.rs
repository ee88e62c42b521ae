//! The audit trail: the `audit_events` table (schema v2). Nothing removes
//! rows but [`AuditStore::prune_audit_events`], which the core calls (at
//! most hourly) for the events past their `expires_at`.

use super::{ms, time, SqliteStore};
use crate::core::model::Timestamp;
use crate::store::{AuditEvent, AuditKind, AuditQuery, AuditStore, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};

const COLUMNS: &str =
    "id, at, kind, actor, target, route, address, request_id, outcome, detail, expires_at";

fn event_row(row: &Row<'_>) -> rusqlite::Result<(AuditEvent, String)> {
    let kind: String = row.get(2)?;
    Ok((
        AuditEvent {
            id: row.get(0)?,
            at: time(1, row.get(1)?)?,
            // Replaced below; an unknown kind is a corrupt row.
            kind: AuditKind::LoginSucceeded,
            actor: row.get(3)?,
            target: row.get(4)?,
            route: row.get(5)?,
            address: row.get(6)?,
            request_id: row.get(7)?,
            outcome: row.get(8)?,
            detail: row.get(9)?,
            expires_at: time(10, row.get(10)?)?,
        },
        kind,
    ))
}

/// The `WHERE` clause and its parameters for a query's filters.
fn filters(q: &AuditQuery) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    if let Some(user) = &q.user {
        values.push(Value::Text(user.clone()));
        let n = values.len();
        clauses.push(format!("(actor = ?{n} OR target = ?{n})"));
    }
    if let Some(kind) = q.kind {
        values.push(Value::Text(kind.as_str().to_string()));
        clauses.push(format!("kind = ?{}", values.len()));
    }
    if let Some(since) = q.since {
        values.push(Value::Integer(ms(since)));
        clauses.push(format!("at >= ?{}", values.len()));
    }
    if let Some(until) = q.until {
        values.push(Value::Integer(ms(until)));
        clauses.push(format!("at < ?{}", values.len()));
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (clause, values)
}

/// Appends `e` in the caller's transaction.
pub(super) fn insert_event(c: &Connection, e: &AuditEvent) -> StoreResult<()> {
    c.prepare_cached(&format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        e.id,
        ms(e.at),
        e.kind.as_str(),
        e.actor,
        e.target,
        e.route,
        e.address,
        e.request_id,
        e.outcome,
        e.detail,
        ms(e.expires_at)
    ])?;
    Ok(())
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        let e = event.clone();
        self.write(move |c| insert_event(c, &e)).await
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<(Vec<AuditEvent>, u64)> {
        let q = query.clone();
        self.read(move |c| {
            let (clause, mut values) = filters(&q);
            let total: i64 = c
                .prepare(&format!("SELECT COUNT(*) FROM audit_events {clause}"))?
                .query_row(params_from_iter(values.iter()), |r| r.get(0))?;
            values.push(Value::Integer(clamp(q.count)));
            values.push(Value::Integer(clamp(q.offset)));
            let (limit, offset) = (values.len() - 1, values.len());
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM audit_events {clause} \
                 ORDER BY at DESC, id DESC LIMIT ?{limit} OFFSET ?{offset}"
            ))?;
            let mut events = Vec::new();
            for row in stmt.query_map(params_from_iter(values.iter()), event_row)? {
                let (mut event, kind) = row?;
                event.kind = AuditKind::parse(&kind).ok_or_else(|| {
                    StoreError::Internal(format!("audit event of unknown kind {kind:?}"))
                })?;
                events.push(event);
            }
            Ok((events, u64::try_from(total).unwrap_or(0)))
        })
        .await
    }

    async fn prune_audit_events(&self, now: Timestamp) -> StoreResult<u64> {
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM audit_events WHERE expires_at <= ?1")?
                .execute([ms(now)])?;
            Ok(n as u64)
        })
        .await
    }
}
