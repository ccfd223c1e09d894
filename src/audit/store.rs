//! The SQL of the `audit_events` table (migrations/), on the links' pool: a batch of events
//! in one statement, a subject's history newest first, and retention.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe};

use crate::identity::{LinkStore, Placeholders, StoreError};
use crate::ids::Subject;
use crate::phone::Country;

use super::{Event, EventId, unix_millis};

/// Events one statement writes at most. A statement's cost grows faster than its rows
/// (on PostgreSQL one of 350 rows took 85 ms, seven of 50 a few); fifty keep it linear.
pub(super) const ROWS_PER_STATEMENT: usize = 50;

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
}

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

/// `INSERT … VALUES ($1, …, $11), ($12, …), … ON CONFLICT …` for `rows` events (bare `?` on
/// SQLite): an event written before its call is written again with its outcome, which
/// then replaces `unknown` on the row of its `event_id`.
fn insert_statement(rows: usize, placeholders: Placeholders) -> String {
    let mut sql = format!("INSERT INTO audit_events ({}) VALUES ", COLUMNS.join(", "));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        let first = row * COLUMNS.len() + 1;
        placeholders.push_list(&mut sql, first..=first + COLUMNS.len() - 1);
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (event_id) DO UPDATE SET outcome = excluded.outcome");
    sql
}

/// The row counts of the statements a batch is written in, where statements stay prepared
/// (SQLite): a batch is cut greedily into these, so a connection keeps six statements,
/// not one per batch size.
const KEPT_SHAPES: [usize; 6] = [ROWS_PER_STATEMENT, 20, 10, 5, 2, 1];

/// How a batch of events is written: how its values are named, and whether its statements
/// stay prepared (`LinkStore::keeps_statements`).
#[derive(Clone, Copy)]
struct Statements {
    placeholders: Placeholders,
    kept: bool,
}

impl Statements {
    /// The row counts of the statements that write `events` events, largest first.
    fn rows(self, events: usize) -> impl Iterator<Item = usize> {
        let shapes: &[usize] = if self.kept {
            &KEPT_SHAPES
        } else {
            &[ROWS_PER_STATEMENT]
        };
        let mut left = events;
        std::iter::from_fn(move || {
            let rows = if self.kept {
                *shapes.iter().find(|&&rows| rows <= left)?
            } else {
                left.min(ROWS_PER_STATEMENT)
            };
            left -= rows;
            (rows > 0).then_some(rows)
        })
    }

    /// The `INSERT` of `events`, their values bound in `COLUMNS`' order.
    fn values<'q>(self, events: &[(u64, &'q Event)]) -> Query<'q, Any, AnyArguments> {
        let sql = insert_statement(events.len(), self.placeholders);
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(self.kept);
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

    /// Writes `events` in the statements of `rows`.
    async fn insert_all(
        self,
        connection: &mut AnyConnection,
        events: &[(u64, &Event)],
    ) -> Result<(), sqlx::Error> {
        let mut rest = events;
        for rows in self.rows(events.len()) {
            let (these, after) = rest.split_at(rows);
            self.values(these).execute(&mut *connection).await?;
            rest = after;
        }
        Ok(())
    }
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
        }
    }

    /// Writes `events` all or nothing: in one statement where one holds them (on SQLite
    /// one call to its connection's thread; on PostgreSQL a transaction of its own, which
    /// through PgBouncer keeps the statement's parse and its execution on one server
    /// connection), else in one transaction of such statements: on PostgreSQL of
    /// `ROWS_PER_STATEMENT` rows at most, on SQLite of the kept shapes. A write whose connection
    /// turned out dead is written again on a live one: writing an event twice leaves one
    /// row (the `ON CONFLICT` of its id), so the retry is safe even if the first reached
    /// the database.
    pub(super) async fn write(&self, events: &[(u64, &Event)]) -> Result<(), StoreError> {
        let statements = Statements {
            placeholders: self.links.placeholders(),
            kept: self.links.keeps_statements(),
        };
        let all_or_nothing = statements.rows(events.len()).nth(1).is_some();
        let work = async |c: &mut AnyConnection| statements.insert_all(c, events).await;
        let first = if all_or_nothing {
            self.links.transaction(&work).await
        } else {
            self.links.run(&work).await
        };
        match first {
            Err(error) if error.connection_lost() => {
                self.links
                    .run_on_live_connection(all_or_nothing, &work)
                    .await
            }
            written => written,
        }
    }

    /// How many writes may run at once.
    pub(super) fn concurrent_writes(&self) -> usize {
        self.links.concurrent_writes()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(kept: bool, events: usize) -> Vec<usize> {
        let statements = Statements {
            placeholders: Placeholders::Bare,
            kept,
        };
        statements.rows(events).collect()
    }

    #[test]
    fn kept_statements_come_in_six_shapes_and_unnamed_ones_in_fifties() {
        assert_eq!(rows(true, 1), [1]);
        assert_eq!(rows(true, 17), [10, 5, 2]);
        assert_eq!(rows(true, 49), [20, 20, 5, 2, 2]);
        assert_eq!(rows(true, 120), [50, 50, 20]);
        assert_eq!(rows(false, 17), [17]);
        assert_eq!(rows(false, 120), [50, 50, 20]);
        assert!(rows(true, 0).is_empty() && rows(false, 0).is_empty());
        for events in 0..=200 {
            let kept = rows(true, events);
            assert_eq!(kept.iter().sum::<usize>(), events, "{events}");
            assert!(kept.iter().all(|rows| KEPT_SHAPES.contains(rows)));
            assert_eq!(rows(false, events).iter().sum::<usize>(), events);
        }
    }
}
