//! [`AuditStore`]: the audit trail, `tokend_audit` (one document per event,
//! `_id` = the event id). A TTL index on `expiresAt` removes events past
//! `AUDIT_RETENTION_DAYS`; `prune_audit_events` does the same at once.

use super::*;
use crate::store::{AuditEvent, AuditKind, AuditQuery, AuditStore};
use mongodb::bson::Bson;

fn event_doc(e: &AuditEvent) -> Document {
    doc! {
        "_id": &e.id,
        "at": date(e.at),
        "expiresAt": date(e.expires_at),
        "kind": e.kind.as_str(),
        "actor": e.actor.as_deref(),
        "target": e.target.as_deref(),
        "route": e.route.as_deref(),
        "address": e.address.as_deref(),
        "requestId": e.request_id.as_deref(),
        "outcome": &e.outcome,
        "detail": e.detail.as_deref(),
    }
}

fn event_from(d: &Document) -> Option<AuditEvent> {
    let text = |k: &str| match d.get(k) {
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    };
    Some(AuditEvent {
        id: text("_id")?,
        at: timestamp(d.get("at"))?,
        expires_at: timestamp(d.get("expiresAt"))?,
        kind: AuditKind::parse(&text("kind")?)?,
        actor: text("actor"),
        target: text("target"),
        route: text("route"),
        address: text("address"),
        request_id: text("requestId"),
        outcome: text("outcome")?,
        detail: text("detail"),
    })
}

fn filter(q: &AuditQuery) -> Document {
    let mut f = Document::new();
    if let Some(user) = &q.user {
        f.insert("$or", vec![doc! { "actor": user }, doc! { "target": user }]);
    }
    if let Some(kind) = q.kind {
        f.insert("kind", kind.as_str());
    }
    let mut at = Document::new();
    if let Some(since) = q.since {
        at.insert("$gte", date(since));
    }
    if let Some(until) = q.until {
        at.insert("$lt", date(until));
    }
    if !at.is_empty() {
        f.insert("at", at);
    }
    f
}

#[async_trait]
impl AuditStore for MongoStore {
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        self.run("record_audit_event", |db| async move {
            coll(&db, AUDIT).insert_one(event_doc(event)).await?;
            Ok(())
        })
        .await
    }

    /// A `count` and one sorted, paged `find`.
    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<(Vec<AuditEvent>, u64)> {
        self.run("audit_events", |db| async move {
            let events = coll(&db, AUDIT);
            let f = filter(query);
            let total = events.count_documents(f.clone()).await?;
            if query.count == 0 {
                return Ok((Vec::new(), total));
            }
            let cursor = events
                .find(f)
                .sort(doc! { "at": -1, "_id": -1 })
                .skip(query.offset)
                .limit(i64::try_from(query.count).unwrap_or(i64::MAX))
                .await?;
            Ok((collect(cursor, event_from).await?, total))
        })
        .await
    }

    async fn prune_audit_events(&self, now: Timestamp) -> StoreResult<u64> {
        self.run("prune_audit_events", |db| async move {
            let result = coll(&db, AUDIT)
                .delete_many(doc! { "expiresAt": { "$lte": date(now) } })
                .await?;
            Ok(result.deleted_count)
        })
        .await
    }
}
