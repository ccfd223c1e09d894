//! The SQL of the `audit_events` table (migrations/), on the links' pool: a batch of events
//! in one statement, a subject's history newest first, and retention.

use std::sync::OnceLock;
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

/// Events one statement of retention deletes, about: a year of them due at once (a shorter
/// retention, or the first run of one) was one statement, which on SQLite held the writing
/// connection, and every bind's event with it, for seconds, and on PostgreSQL, past a few
/// million events, ran into the statement timeout each hour and never ended. A thousand
/// take SQLite 40 to 70 ms: each event deleted changes a page of its own in the index of
/// events by subject.
const ROWS_PER_DELETE: i64 = 1000;

/// The oldest `ROWS_PER_DELETE` events before `$1` (`$2` is one less), with any of the
/// same millisecond as the last of them; all of them when fewer are left.
const DELETE_OLDEST: &str = "DELETE FROM audit_events WHERE at_ms < $1 AND at_ms <= COALESCE(\
     (SELECT at_ms FROM audit_events WHERE at_ms < $1 ORDER BY at_ms LIMIT 1 OFFSET $2), $1)";

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
    /// The same database, on its writing connections (`LinkStore::writing`).
    writer: LinkStore,
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

/// The `INSERT` of `events`, their values bound in `COLUMNS`' order.
fn values<'q>(
    events: &[(u64, &'q Event)],
    placeholders: Placeholders,
) -> Query<'q, Any, AnyArguments> {
    let rows = events.len();
    let mut query = if placeholders.keeps_writes_prepared() {
        // Found again by its text: the same text each time, written once (SQLite's).
        static KEPT: [OnceLock<String>; ROWS_PER_STATEMENT] =
            [const { OnceLock::new() }; ROWS_PER_STATEMENT];
        let text = KEPT[rows - 1].get_or_init(|| insert_statement(rows, placeholders));
        sqlx::query(text.as_str()).persistent(true)
    } else {
        sqlx::query(AssertSqlSafe(insert_statement(rows, placeholders))).persistent(false)
    };
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
            .bind(event.client_address.as_str())
            .bind(event.request_id.as_str())
            .bind(event.id.as_ref().map(EventId::as_str));
    }
    query
}

/// `events` in statements of `ROWS_PER_STATEMENT` at most.
async fn insert_all(
    connection: &mut AnyConnection,
    events: &[(u64, &Event)],
    placeholders: Placeholders,
) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        values(chunk, placeholders)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
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
            writer: links.writing(),
        }
    }

    /// Writes `events` all or nothing: up to `ROWS_PER_STATEMENT` in one statement (on
    /// SQLite one call to its connection's thread; on PostgreSQL a transaction of its own,
    /// which through PgBouncer keeps the statement's parse and its execution on one server
    /// connection), more in one transaction of such statements. A write whose connection
    /// turned out dead is written again on a live one: writing an event twice leaves one
    /// row (the `ON CONFLICT` of its id), so the retry is safe even if the first reached
    /// the database.
    pub(super) async fn write(&self, events: &[(u64, &Event)]) -> Result<(), StoreError> {
        let placeholders = self.writer.placeholders();
        let all_or_nothing = events.len() > ROWS_PER_STATEMENT;
        let work = async |c: &mut AnyConnection| insert_all(c, events, placeholders).await;
        let first = if all_or_nothing {
            self.writer.transaction(&work).await
        } else {
            self.writer.run(&work).await
        };
        match first {
            Err(error) if error.connection_lost() => {
                self.writer
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

    /// Deletes events older than `before_ms`, `ROWS_PER_DELETE` at a time, each part taking
    /// the writing connection and giving it back, then resting as long as it took, so that
    /// the audit trail's writes go in between and have at least half of the writer's time;
    /// answers how many.
    pub(super) async fn delete_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let started = std::time::Instant::now();
            let query = sqlx::query(DELETE_OLDEST)
                .persistent(false)
                .bind(before_ms)
                .bind(ROWS_PER_DELETE - 1);
            let part = self
                .writer
                .run(async |c| query.execute(c).await)
                .await?
                .rows_affected();
            deleted += part;
            if part < ROWS_PER_DELETE.unsigned_abs() {
                return Ok(deleted);
            }
            tokio::time::sleep(started.elapsed()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Action;
    use crate::client_address::TrustedProxies;
    use crate::ids::AutosharesUserId;

    fn bind_event() -> Event {
        let client =
            TrustedProxies::default().client_of([203, 0, 113, 7].into(), std::iter::empty());
        Event::new(
            &Subject::from("s".to_owned()),
            AutosharesUserId(1),
            Action::Bind,
            client,
            "r",
        )
    }

    #[actix_web::test]
    async fn sqlite_audit_events_are_written_on_the_writing_connection_alone() {
        let event = bind_event();
        for write in ["insert", "retention"] {
            // A store of its own for each write: the first to open the writer would hide
            // where the other went.
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("links.db").display());
            let links = LinkStore::connect_lazy(&secrecy::SecretString::from(url)).unwrap();
            links.migrate().await.unwrap();
            let (readers, writers) = links.open_connections();
            assert_eq!(writers, 0, "nothing written yet");
            let store = AuditStore::new(&links);
            match write {
                "insert" => store.write(&[(1, &event)]).await.unwrap(),
                _ => drop(store.delete_before(i64::MAX).await.unwrap()),
            }
            // The write opened the writer, and no other connection.
            assert_eq!(links.open_connections(), (readers, 1), "{write}");
        }
    }

    #[actix_web::test]
    async fn retention_deletes_a_backlog_in_parts_that_let_writes_in_between() {
        const BACKLOG: i64 = 8 * ROWS_PER_DELETE + 123;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("links.db").display());
        let links = LinkStore::connect_lazy(&secrecy::SecretString::from(url)).unwrap();
        links.migrate().await.unwrap();
        let store = AuditStore::new(&links);
        // A year of events due at once (a shorter retention, or the first run of one),
        // one a millisecond, and one of today.
        let backlog = format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BACKLOG}) \
             INSERT INTO audit_events (at_ms, seq, subject, autoshares_user_id, action, outcome, \
             request_id) SELECT i, i, 's', 1, 'bind', 'ok', 'r' FROM n"
        );
        let count = async |sql: &'static str| -> i64 {
            let query = sqlx::query_scalar(sql);
            links.run(async |c| query.fetch_one(c).await).await.unwrap()
        };
        let old = async || count("SELECT count(*) FROM audit_events WHERE at_ms < 1000000").await;
        links
            .writing()
            .run(async |c| sqlx::query(AssertSqlSafe(backlog)).execute(c).await)
            .await
            .unwrap();
        store.write(&[(1, &bind_event())]).await.unwrap();
        let deleting = actix_web::rt::spawn({
            let store = store.clone();
            async move { store.delete_before(1_000_000).await }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while old().await == BACKLOG {
            assert!(std::time::Instant::now() < deadline, "nothing deleted");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // A bind's event, while the backlog is being deleted.
        store.write(&[(2, &bind_event())]).await.unwrap();
        let left = old().await;
        assert!(left > 0, "the write waited for the whole backlog to go");
        assert_eq!(deleting.await.unwrap().unwrap(), BACKLOG as u64);
        assert_eq!(old().await, 0);
        let all = count("SELECT count(*) FROM audit_events").await;
        assert_eq!(all, 2, "today's events are kept");
    }

    #[test]
    fn sqlite_keeps_every_write_prepared_by_its_whole_text_and_postgresql_none() {
        let event = bind_event();
        let events: Vec<(u64, &Event)> = (0..50).map(|seq| (seq, &event)).collect();
        for (placeholders, kept) in [(Placeholders::Bare, true), (Placeholders::Numbered, false)] {
            // Each shape twice: the second time its text is the one kept.
            for rows in [1, 2, 3, ROWS_PER_STATEMENT, 1, 2, 3, ROWS_PER_STATEMENT] {
                let query = values(&events[..rows], placeholders);
                assert_eq!(
                    sqlx::Execute::persistent(&query),
                    kept,
                    "{placeholders:?}, {rows} events"
                );
                assert_eq!(
                    sqlx::Execute::sql(query).as_str(),
                    insert_statement(rows, placeholders),
                    "{placeholders:?}, {rows} events"
                );
            }
        }
    }
}
