//! The SQL of the `audit_events` table (migrations/), on the links' pool: a batch of new
//! events and outcomes in one transaction of a few statements, a subject's history newest
//! first, and retention.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

use crate::identity::{LinkStore, Placeholders, StoreError};
use crate::ids::Subject;
use crate::phone::Country;

use super::{Event, EventId, unix_millis};

/// What one transaction writes: new events, and outcomes of events written before their call.
#[derive(Debug, Clone)]
pub(super) enum Write {
    Insert(Event),
    Outcome { id: EventId, outcome: String },
}

/// One event as read back (docs/api.md "The operations API" `…/events`).
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
    links: LinkStore,
    /// The `INSERT` of one event, and of `ROWS_PER_STATEMENT` events.
    one: Arc<str>,
    many: Arc<str>,
}

/// Events one `INSERT` writes when the batch has as many left: eleven parameters each.
const ROWS_PER_STATEMENT: usize = 50;

/// The columns of an event, in the order `values` binds them.
const COLUMNS: [&str; 11] = [
    "at_ms",
    "seq",
    "subject",
    "autoshares_user_id",
    "action",
    "outcome",
    "phone_number",
    "country",
    "client_address",
    "request_id",
    "event_id",
];

/// `INSERT … VALUES ($1, …, $10), ($11, …), …` for `rows` events (bare `?` on SQLite).
fn insert_statement(rows: usize, placeholders: Placeholders) -> Arc<str> {
    let mut sql = format!("INSERT INTO audit_events ({}) VALUES ", COLUMNS.join(", "));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        let first = row * COLUMNS.len() + 1;
        placeholders.push_list(&mut sql, first..=first + COLUMNS.len() - 1);
        sql.push(')');
    }
    sql.into()
}

/// `sql` with the values of `events` bound, in `COLUMNS`' order.
fn values<'q>(sql: &Arc<str>, events: &[(u64, &'q Event)]) -> Query<'q, Any, AnyArguments> {
    let mut query = sqlx::query(AssertSqlSafe(Arc::clone(sql))).persistent(false);
    for &(seq, event) in events {
        query = query
            .bind(unix_millis(event.at))
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(event.subject.as_str())
            .bind(event.user.0)
            .bind(event.action.name())
            .bind(event.outcome.as_str())
            .bind(event.phone_number.as_deref())
            .bind(event.country.as_ref().map(Country::as_str))
            .bind(event.client_address.to_string())
            .bind(event.request_id.as_str())
            .bind(event.id.as_ref().map(EventId::as_str));
    }
    query
}

/// `UPDATE … SET outcome = $1 WHERE event_id IN ($2, …)` for `ids` events.
fn outcome_statement(ids: usize, placeholders: Placeholders) -> String {
    let mut sql = "UPDATE audit_events SET outcome = ".to_owned();
    placeholders.push_list(&mut sql, 1..=1);
    sql.push_str(" WHERE event_id IN (");
    placeholders.push_list(&mut sql, 2..=ids + 1);
    sql.push(')');
    sql
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
        Self {
            links: links.clone(),
            one: insert_statement(1, links.placeholders()),
            many: insert_statement(ROWS_PER_STATEMENT, links.placeholders()),
        }
    }

    /// Writes `writes` all or nothing: new events `ROWS_PER_STATEMENT` a statement (the
    /// rest one a statement, so only two inserts are ever prepared), then the outcomes, one
    /// statement for each outcome they name. A whole batch costs a few round trips rather
    /// than one a write.
    pub(super) async fn write(&self, writes: &[(u64, Write)]) -> Result<(), StoreError> {
        let events: Vec<(u64, &Event)> = writes
            .iter()
            .filter_map(|(seq, write)| match write {
                Write::Insert(event) => Some((*seq, event)),
                Write::Outcome { .. } => None,
            })
            .collect();
        let mut outcomes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (_, write) in writes {
            if let Write::Outcome { id, outcome } = write {
                outcomes.entry(outcome).or_default().push(id.as_str());
            }
        }
        let placeholders = self.links.placeholders();
        self.links
            .transaction(async |tx| {
                for chunk in events.chunks(ROWS_PER_STATEMENT) {
                    if chunk.len() == ROWS_PER_STATEMENT {
                        values(&self.many, chunk).execute(&mut *tx).await?;
                    } else {
                        for event in chunk {
                            values(&self.one, std::slice::from_ref(event))
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
                for (outcome, ids) in &outcomes {
                    let sql = outcome_statement(ids.len(), placeholders);
                    let query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
                    let query = ids
                        .iter()
                        .fold(query.bind(*outcome), |query, id| query.bind(*id));
                    query.execute(&mut *tx).await?;
                }
                Ok(())
            })
            .await
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
        .persistent(false)
        .bind(subject.as_str())
        .bind(i64::from(limit));
        let rows = self.links.run(async |c| query.fetch_all(c).await).await?;
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
            .persistent(false)
            .bind(before_ms);
        Ok(self
            .links
            .run(async |c| query.execute(c).await)
            .await?
            .rows_affected())
    }
}
