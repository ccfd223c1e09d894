//! The SQL of the `audit_events` table (migrations/), on the links' pool: one transaction
//! per batch, a subject's history newest first, and retention.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use sqlx::AnyPool;

use crate::identity::{LinkStore, StoreError, bounded};
use crate::ids::Subject;
use crate::phone::Country;

use super::{Event, unix_millis};

/// One event as read back (CONTRACT.md §3 `…/events`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub action: String,
    pub outcome: String,
    pub phone_number: Option<String>,
    pub country: Option<String>,
    pub client_address: Option<String>,
    pub request_id: String,
}

#[derive(Clone)]
pub struct AuditStore {
    pool: AnyPool,
}

type Row = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

impl AuditStore {
    pub fn new(links: &LinkStore) -> Self {
        Self { pool: links.pool() }
    }

    /// Writes `events` all or nothing.
    pub(super) async fn insert(&self, events: &[(u64, Event)]) -> Result<(), StoreError> {
        let write = async {
            let mut tx = self.pool.begin().await?;
            for (seq, event) in events {
                sqlx::query(
                    "INSERT INTO audit_events (at_ms, seq, subject, autoshares_user_id, action, \
                     outcome, phone_number, country, client_address, request_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(unix_millis(event.at))
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX))
                .bind(event.subject.as_str())
                .bind(event.user.0)
                .bind(event.action.name())
                .bind(event.outcome.as_str())
                .bind(event.phone_number.as_deref())
                .bind(event.country.as_ref().map(Country::as_str))
                .bind(event.client_address.to_string())
                .bind(event.request_id.as_str())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        };
        bounded(write).await
    }

    /// The `limit` newest events of `subject`, newest first.
    pub async fn history(
        &self,
        subject: &Subject,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = sqlx::query_as::<_, Row>(
            "SELECT at_ms, action, outcome, phone_number, country, client_address, request_id \
             FROM audit_events WHERE subject = $1 ORDER BY at_ms DESC, seq DESC LIMIT $2",
        )
        .bind(subject.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool);
        let rows = bounded(query).await?;
        Ok(rows
            .into_iter()
            .map(
                |(at_ms, action, outcome, phone_number, country, client_address, request_id)| {
                    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
                    StoredEvent {
                        at: humantime::format_rfc3339_millis(at).to_string(),
                        action,
                        outcome,
                        phone_number,
                        country,
                        client_address,
                        request_id,
                    }
                },
            )
            .collect())
    }

    /// Deletes events older than `before_ms`; answers how many.
    pub(super) async fn delete_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let query = sqlx::query("DELETE FROM audit_events WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool);
        Ok(bounded(query).await?.rows_affected())
    }
}
