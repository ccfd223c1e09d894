//! The database: one `AnyPool` on SQLite or PostgreSQL, the migrations in `migrations/`,
//! and every statement of the `user_links` table (the audit trail's are in `audit`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::query::QueryAs;
use sqlx::{Any, AnyConnection, AnyPool, Connection as _};

use crate::ids::{AutosharesUserId, Subject};

/// The migrations in `migrations/`. Two of them had their opening comment reworded after
/// databases had applied them (the SQL is the same): they keep the checksum (SHA-384) of
/// the text that was applied, which the migrator compares with what a database recorded,
/// so that a database migrated by an earlier build still starts.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("./migrations");
    for migration in migrator.migrations.to_mut() {
        if let Some((_, applied)) = REWORDED.iter().find(|(v, _)| *v == migration.version) {
            migration.checksum = hex::decode(applied).expect("a checksum in hex").into();
        }
    }
    migrator
});

/// Version and applied checksum of each migration whose comments changed since.
const REWORDED: [(i64, &str); 2] = [
    (
        20261125000001,
        "3de0b0656ac47c45d0fbbfda12e06fa91120ae3315c7e5d3fc4df97acbcb5b0efcc51fdc7d68d2d48ba84854512b10c6",
    ),
    (
        20261201000001,
        "448cf2d1f13141c7f3765dbea22617d7b6973dd859ebb879eb0dd995e02f259e7bbd8cdba66fc3e60c9c2fa3207482eb",
    ),
];

/// How long a request may wait for a database connection, and for one statement
/// (docs/operations.md "Time bounds").
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Set for each unit of work's transaction only: a session setting would stay on a pooled
/// server connection of PgBouncer and reach its other clients.
const BEGIN_WITH_TIMEOUT: &str = "BEGIN; SET LOCAL statement_timeout = 2000";
/// SQLite's page cache of one connection, in KiB (its default is 2 000 KiB, which the audit
/// trail's writes fill on every connection of the pool; the OS caches the file anyway).
const SQLITE_CACHE_SIZE: &str = "PRAGMA cache_size = -256";
/// The pool's connections. PostgreSQL's serve the link lookups (`loader::LANES` at a time),
/// the audit writer and the admin API. SQLite's the same but the writes, which have a
/// connection of their own (`LinkStore::writer`); each is a thread of its own with its own
/// page cache, and one file takes one writer at a time: more would cost memory and buy
/// nothing.
const POSTGRES_CONNECTIONS: u32 = 10;
/// The audit trail's writes at once on PostgreSQL, within `POSTGRES_CONNECTIONS`.
const POSTGRES_CONCURRENT_WRITES: usize = 2;
const SQLITE_CONNECTIONS: u32 = 5;
/// SQLite's writing connections, besides `SQLITE_CONNECTIONS` (`LinkStore::writer`).
const SQLITE_WRITERS: u32 = 1;
/// With the write-ahead log, a commit is in the operating system's hands when it returns,
/// and the log is flushed to the disk at checkpoints: a commit survives the process being
/// killed (what the audit trail's "before the call" guards against), and only a crash of
/// the machine itself may lose the last ones (docs/operations.md "Audit trail"). Syncing
/// every commit would cost each bind a flush of its own.
const SQLITE_SYNCHRONOUS: &str = "PRAGMA synchronous = NORMAL";
/// The write-ahead log is copied into the database file, and both flushed, by a
/// checkpoint. Left to SQLite, the commit that fills the log runs one before it returns,
/// and the audit trail's single writer, with the binds waiting on its batch, stalls for
/// it (a bind's p99 at 32 callers about twice as long, and a sixth fewer binds a second,
/// on a 2-core machine). No commit here checkpoints; `checkpoint_forever` does, on a
/// pooled connection of its own, which never waits for the writer or for readers.
const SQLITE_NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0";
/// How often the log is checkpointed: about as much log between two as SQLite's own
/// threshold (1 000 pages) holds at a few thousand binds a second.
const SQLITE_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// The log's length, in pages, past which a checkpoint also starts it again. A `PASSIVE`
/// checkpoint copies the log into the file but never rewinds it: the writer starts the
/// log again from its beginning only if, when it next writes, the whole log is in the
/// file. Under writes that never pause, the writer has always added to the log while the
/// checkpoint ran, and the log grew without end (by about 100 MB a second in
/// `benches/http.sh` at 32 callers binding). Past this length a `RESTART` checkpoint
/// follows, which holds the writes back until the rest of the log is in the file and no
/// reader needs it (5 to 15 ms under that load, mostly its flushes to the disk); the next
/// write starts the log again, over the same file, whose size stays at its highest. 4 096
/// pages of 4 KiB (SQLite's default page size, which files here keep) is 16 MiB. Cutting
/// the file back at each new start (`journal_size_limit`) made each stall about three
/// times as long.
const SQLITE_LOG_LIMIT_PAGES: i64 = 4096;
/// How long a statement waits for a lock another connection holds (another process's
/// write, a checkpoint) before it fails: sqlx's default, set here on every connection so
/// that a `RESTART` checkpoint can put it back after its shorter wait.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";
/// How long a `RESTART` checkpoint waits for readers to leave the log. It holds the
/// writing connection while it waits, and the audit trail's commits with it; left to
/// `SQLITE_BUSY_TIMEOUT`, a reader that stays (another process's long query or backup)
/// held every bind for 5 s a round, past its pool's wait. Our own readers take
/// milliseconds; one that stays longer makes the checkpoint a `PASSIVE` one this round,
/// and the log starts again in a later one.
const SQLITE_RESTART_WAIT: &str = "PRAGMA busy_timeout = 20";
/// SQLite's journal, a property of the file: with a write-ahead log, reading a link never
/// waits for the audit trail's writes to commit (a rollback journal locks readers out).
const SQLITE_JOURNAL: &str = "PRAGMA journal_mode = WAL";
/// The longest link lookup SQLite's reading connections keep prepared
/// (`Placeholders::keeps_lookups_prepared`).
const SQLITE_PREPARED_ROWS: usize = 2;
/// The client's own bound on one call, for a server that stops answering altogether (a
/// statement_timeout needs a server that still runs).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// A pooled connection idle at least this long is pinged before use (the server may have
/// restarted, or a proxy dropped it); one in steady use is not, which spares each
/// statement a round trip of its own.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// `call` within the client's own bound (for every unit of work on this pool).
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StoreError::Timeout),
    }
}

/// A `RESTART` checkpoint on `connection`, waiting for readers no longer than
/// `SQLITE_RESTART_WAIT`: SQLite's wait is the connection's busy timeout, which is set for
/// the checkpoint alone and then put back to `SQLITE_BUSY_TIMEOUT` (a fixed value, so that
/// a checkpoint cut short before it could put it back leaves it short only until the next
/// one).
async fn restart(connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query(SQLITE_RESTART_WAIT)
        .execute(&mut *connection)
        .await?;
    let restarted = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .execute(&mut *connection)
        .await;
    sqlx::query(SQLITE_BUSY_TIMEOUT)
        .execute(&mut *connection)
        .await?;
    restarted.map(drop)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database url is not usable")]
    BadUrl,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("database did not answer in time")]
    Timeout,
    /// One statement's failure, answered to each lookup that waited for it.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
}

impl StoreError {
    /// Whether the pooled connection turned out dead (the server, or PgBouncer, restarted
    /// or dropped it): the database did not refuse the work, the connection failed it.
    pub fn connection_lost(&self) -> bool {
        match self {
            Self::Database(error) => matches!(error, sqlx::Error::Io(_) | sqlx::Error::Protocol(_)),
            Self::Shared(error) => error.connection_lost(),
            _ => false,
        }
    }
}

/// How a statement's text names its bound values. PostgreSQL takes only `$1, $2, …`.
/// SQLite takes those too, but finds each named value's number by a walk through its list
/// of names, and sqlx asks once per value bound: a statement of hundreds of values then
/// costs time quadratic in their count. SQLite numbers bare `?` in order with no list.
/// Being one per database, it is also what the store tells SQLite's ways from
/// PostgreSQL's by (statements kept prepared, concurrent writes, checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholders {
    Numbered,
    Bare,
}

impl Placeholders {
    /// Whether a link lookup of `rows` subjects stays prepared on its connection, to be
    /// run again without parsing it. On SQLite the lookups of one or two links do, the
    /// shapes a lightly loaded service runs over and over (parsing them cost a read about
    /// 6 % of its instructions): each reading connection then keeps at most
    /// `SQLITE_PREPARED_ROWS` of them, where keeping every length would cost each one memory
    /// for up to `loader::MAX_BATCH` of them. On PostgreSQL no statement is kept: with
    /// PgBouncer in transaction mode, a named statement would stay on a server connection
    /// that other clients share (docs/operations.md).
    pub fn keeps_lookups_prepared(self, rows: usize) -> bool {
        self == Self::Bare && rows <= SQLITE_PREPARED_ROWS
    }

    /// Whether the audit trail's writes stay prepared on their connection: on SQLite
    /// every shape of batch, one to `ROWS_PER_STATEMENT` events, as writes have one
    /// connection of their own (`LinkStore::writer`) and keep one copy of each (about
    /// 0.6 MiB more peak RSS at 512 callers, where parsing them cost a bind about a tenth
    /// of its instructions); on PostgreSQL none, for PgBouncer's sake as above.
    pub fn keeps_writes_prepared(self) -> bool {
        self == Self::Bare
    }

    /// Appends the names of bound values `numbers` (counted from 1), `, ` between them.
    pub fn push_list(self, sql: &mut String, numbers: std::ops::RangeInclusive<usize>) {
        let first = *numbers.start();
        for n in numbers {
            if n > first {
                sql.push_str(", ");
            }
            match self {
                // Writing into a String cannot fail.
                Self::Numbered => {
                    let _ = write!(sql, "${n}");
                }
                Self::Bare => sql.push('?'),
            }
        }
    }
}

/// The mapping store. Connections are made lazily, so `serve` starts with the database down.
#[derive(Clone)]
pub struct LinkStore {
    pool: AnyPool,
    /// Where the rows are written (`writing`). On SQLite, a pool of its own of one
    /// connection: the file takes one writer at a time anyway, and a connection keeps its
    /// page cache only while no other connection commits (one that another's commit
    /// overtook drops its cache and reads its pages again, as each audit write did when
    /// writes rotated over the pool). On PostgreSQL, `pool` itself.
    writer: AnyPool,
    placeholders: Placeholders,
}

impl LinkStore {
    /// A pool for `url` (`sqlite:` or `postgres://`); nothing is connected yet.
    pub fn connect_lazy(url: &SecretString) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let url = prepare_url(url.expose_secret())?;
        let (connections, placeholders) = if url.starts_with("sqlite:") {
            (SQLITE_CONNECTIONS, Placeholders::Bare)
        } else {
            (POSTGRES_CONNECTIONS, Placeholders::Numbered)
        };
        let pool = pool_options(connections).connect_lazy(&url)?;
        let writer = match placeholders {
            Placeholders::Bare => pool_options(SQLITE_WRITERS).connect_lazy(&url)?,
            Placeholders::Numbered => pool.clone(),
        };
        Ok(Self {
            pool,
            writer,
            placeholders,
        })
    }

    /// This store with its work on the connections that write (`writer`): for the
    /// statements that change rows.
    pub fn writing(&self) -> Self {
        Self {
            pool: self.writer.clone(),
            ..self.clone()
        }
    }

    /// On SQLite, checkpoints the write-ahead log every `SQLITE_CHECKPOINT_EVERY`, as
    /// many of its pages as no reader still needs (`PASSIVE`), and starts it again once it
    /// is longer than `SQLITE_LOG_LIMIT_PAGES`; says once when it starts failing and once
    /// when it works again. On PostgreSQL there is nothing to do.
    pub async fn checkpoint_forever(self) {
        self.checkpoint_every(SQLITE_CHECKPOINT_EVERY, SQLITE_LOG_LIMIT_PAGES)
            .await
    }

    async fn checkpoint_every(self, every: std::time::Duration, log_limit_pages: i64) {
        if self.placeholders != Placeholders::Bare {
            return;
        }
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            let outcome = self.checkpoint(log_limit_pages).await;
            match (&outcome, failing) {
                (Ok(_), true) => tracing::info!("SQLite checkpoints run again"),
                (Err(error), false) => tracing::warn!(%error, "SQLite checkpoint failed; retrying"),
                _ => {}
            }
            failing = outcome.is_err();
        }
    }

    /// One `PASSIVE` checkpoint, and a `RESTART` one after it if the log it found was
    /// longer than `log_limit_pages`. The `RESTART` runs on the writing connection, so
    /// the writes queue for it in the pool, and start as it ends, instead of polling
    /// SQLite's lock with waits of up to tens of milliseconds each.
    async fn checkpoint(&self, log_limit_pages: i64) -> Result<(), StoreError> {
        // Its row: whether it was blocked, the log's pages, the pages now in the file.
        let passive = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)");
        let (_, log_pages, _) = self.run(async |c| passive.fetch_one(c).await).await?;
        if log_pages > log_limit_pages {
            self.writing().run(restart).await?;
        }
        Ok(())
    }

    /// How statements of many values on this pool name them.
    pub fn placeholders(&self) -> Placeholders {
        self.placeholders
    }

    /// Runs `work` within the client's bound: on PostgreSQL as one `transaction`, on
    /// SQLite on a pooled connection.
    pub async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        bounded(async { self.work_on(self.pool.acquire().await?, false, work).await }).await
    }

    /// How many of the audit trail's writes may run at once: SQLite takes one writer at a
    /// time (another would wait for its lock in sleeps of milliseconds); PostgreSQL
    /// writes rows in parallel and merges their commits' flushes.
    pub fn concurrent_writes(&self) -> usize {
        match self.placeholders {
            Placeholders::Numbered => POSTGRES_CONCURRENT_WRITES,
            Placeholders::Bare => 1,
        }
    }

    /// Runs `work` in one transaction within the client's bound, all or nothing.
    ///
    /// On PostgreSQL the statement timeout is set for that transaction alone, so no state
    /// outlives it on the server connection; PgBouncer in transaction mode keeps one
    /// transaction's statements on one server connection, and those statements are
    /// unnamed (`persistent(false)`), so none is left there for another client to trip on
    /// (docs/operations.md "PostgreSQL through PgBouncer").
    pub async fn transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        bounded(async { self.work_on(self.pool.acquire().await?, true, work).await }).await
    }

    /// Runs `work` as `run` does (as `transaction` does when `all_or_nothing`), on a
    /// connection that has just answered a ping: for work worth doing again, after its
    /// pooled connection turned out dead. The pool's idle connections died with it (a
    /// restarted server or PgBouncer closes them all) and are reused without a ping while
    /// the pool is busy; each one found dead here is closed rather than given back.
    pub async fn run_on_live_connection<T>(
        &self,
        all_or_nothing: bool,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        bounded(async {
            let connection = loop {
                let mut connection = self.pool.acquire().await?;
                if connection.ping().await.is_ok() {
                    break connection;
                }
                connection.close_on_drop();
            };
            self.work_on(connection, all_or_nothing, work).await
        })
        .await
    }

    /// Runs `work` on `connection`: on PostgreSQL always in a transaction, with its
    /// statement timeout set for it alone (in the same round trip as its `BEGIN`); on
    /// SQLite in one when `all_or_nothing`.
    async fn work_on<T>(
        &self,
        mut connection: PoolConnection<Any>,
        all_or_nothing: bool,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut tx = match self.placeholders {
            Placeholders::Numbered => connection.begin_with(BEGIN_WITH_TIMEOUT).await?,
            Placeholders::Bare if all_or_nothing => connection.begin().await?,
            Placeholders::Bare => return work(&mut connection).await,
        };
        let outcome = work(&mut tx).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Applies the embedded migrations that have not run yet (docs/operations.md
    /// "PostgreSQL through PgBouncer": a migration never holds `CREATE INDEX CONCURRENTLY`,
    /// which cannot run in a transaction).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.placeholders == Placeholders::Bare {
            sqlx::query(SQLITE_JOURNAL).execute(&self.pool).await?;
            MIGRATOR.run(&self.pool).await?;
            return Ok(());
        }
        // One transaction on one connection, so that through PgBouncer in transaction mode
        // the migrator's lock, its statements and their unlock meet the same server
        // connection; its statements are named, and none may stay there after it.
        let mut tx = self.pool.begin().await?;
        MIGRATOR.run(&mut *tx).await?;
        sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Answers once the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(async |c| sqlx::raw_sql("SELECT 1").execute(c).await)
            .await
            .map(drop)
    }

    pub async fn fetch_link(
        &self,
        subject: &Subject,
    ) -> Result<Option<AutosharesUserId>, StoreError> {
        let id: Option<i64> = self
            .run(async |c| {
                sqlx::query_scalar("SELECT autoshares_user_id FROM user_links WHERE subject = $1")
                    .persistent(false)
                    .bind(subject.as_str())
                    .fetch_optional(c)
                    .await
            })
            .await?;
        Ok(id.map(AutosharesUserId))
    }

    /// The links of those of `subjects` that have one, in one statement.
    pub async fn fetch_links(
        &self,
        subjects: &[&Subject],
    ) -> Result<HashMap<Subject, AutosharesUserId>, StoreError> {
        let query = self.links_query(subjects);
        let rows = self.run(async |c| query.fetch_all(c).await).await?;
        Ok(rows
            .into_iter()
            .map(|(subject, user)| (Subject::from(subject), AutosharesUserId(user)))
            .collect())
    }

    /// The statement of `fetch_links`. Its text varies only in its count of placeholders;
    /// every subject is a bound value. (sqlx's QueryBuilder writes `?` for the Any driver,
    /// which PostgreSQL does not take.)
    fn links_query<'q>(
        &self,
        subjects: &[&'q Subject],
    ) -> QueryAs<'q, Any, (String, i64), AnyArguments> {
        let mut sql =
            String::from("SELECT subject, autoshares_user_id FROM user_links WHERE subject IN (");
        self.placeholders.push_list(&mut sql, 1..=subjects.len());
        sql.push(')');
        let statement = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .persistent(self.placeholders.keeps_lookups_prepared(subjects.len()));
        subjects
            .iter()
            .fold(statement, |query, subject| query.bind(subject.as_str()))
    }

    /// Creates or replaces the link of `subject`.
    pub async fn save_link(
        &self,
        subject: &Subject,
        user: AutosharesUserId,
    ) -> Result<(), StoreError> {
        self.writing()
            .run(async |c| {
                sqlx::query(UPSERT)
                    .persistent(false)
                    .bind(subject.as_str())
                    .bind(user.0)
                    .bind(now_seconds())
                    .execute(c)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Removes the link of `subject`; answers whether there was one.
    pub async fn delete_link(&self, subject: &Subject) -> Result<bool, StoreError> {
        let done = self
            .writing()
            .run(async |c| {
                sqlx::query("DELETE FROM user_links WHERE subject = $1")
                    .persistent(false)
                    .bind(subject.as_str())
                    .execute(c)
                    .await
            })
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Creates or replaces every link in one transaction: all or nothing.
    pub async fn import(&self, links: &[(Subject, AutosharesUserId)]) -> Result<(), StoreError> {
        let now = now_seconds();
        // Not within one call's bound: a large file takes longer, and each statement is
        // bounded by the statement timeout.
        let connection = self.writer.acquire().await?;
        self.work_on(connection, true, async |tx| {
            for (subject, user) in links {
                sqlx::query(UPSERT)
                    .persistent(false)
                    .bind(subject.as_str())
                    .bind(user.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// The connections each pool holds, reading then writing: where a test sees its work
    /// went.
    #[cfg(test)]
    pub(crate) fn open_connections(&self) -> (u32, u32) {
        (self.pool.size(), self.writer.size())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// The options of the pools of `connect_lazy`, `connections` at most.
fn pool_options(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(|connection, _| {
            Box::pin(async move {
                // SQLite's page cache is per connection. PostgreSQL's connections get
                // nothing: they may be PgBouncer's, shared with other clients.
                if connection.backend_name() != "PostgreSQL" {
                    sqlx::query(SQLITE_CACHE_SIZE)
                        .execute(&mut *connection)
                        .await?;
                    sqlx::query(SQLITE_SYNCHRONOUS)
                        .execute(&mut *connection)
                        .await?;
                    sqlx::query(SQLITE_NO_AUTOCHECKPOINT)
                        .execute(&mut *connection)
                        .await?;
                    sqlx::query(SQLITE_BUSY_TIMEOUT)
                        .execute(&mut *connection)
                        .await?;
                }
                Ok(())
            })
        })
}

const UPSERT: &str = "INSERT INTO user_links (subject, autoshares_user_id, updated_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (subject) DO UPDATE SET \
     autoshares_user_id = excluded.autoshares_user_id, updated_at = excluded.updated_at";

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// For SQLite: creates the file's folder, and the file itself unless the URL says
/// otherwise (`mode=`).
fn prepare_url(url: &str) -> Result<String, StoreError> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(url.to_owned());
    };
    let rest = rest.trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StoreError::BadUrl);
    }
    if path != ":memory:"
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|_| StoreError::BadUrl)?;
    }
    if query.split('&').any(|pair| pair.starts_with("mode=")) {
        Ok(url.to_owned())
    } else if query.is_empty() {
        Ok(format!("sqlite://{path}?mode=rwc"))
    } else {
        Ok(format!("sqlite://{path}?{query}&mode=rwc"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("sub/x.db");
        let base = base.to_str().unwrap();
        let cases = [
            (
                format!("sqlite://{base}"),
                format!("sqlite://{base}?mode=rwc"),
            ),
            (
                format!("sqlite://{base}?mode=ro"),
                format!("sqlite://{base}?mode=ro"),
            ),
            (
                format!("sqlite:{base}?cache=shared"),
                format!("sqlite://{base}?cache=shared&mode=rwc"),
            ),
            (
                "postgres://u@h/db".to_owned(),
                "postgres://u@h/db".to_owned(),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(prepare_url(&input).unwrap(), expected, "{input}");
        }
        assert!(dir.path().join("sub").is_dir(), "the folder was created");
    }

    #[actix_web::test]
    async fn sqlite_statements_name_their_values_bare_and_postgresql_ones_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("links.db").display());
        let postgres = "postgres://u@127.0.0.1:1/db".to_owned();
        for (url, expected) in [(sqlite, "?, ?, ?"), (postgres, "$1, $2, $3")] {
            let store = LinkStore::connect_lazy(&SecretString::from(url.clone())).unwrap();
            let mut sql = String::new();
            store.placeholders().push_list(&mut sql, 1..=3);
            assert_eq!(sql, expected, "{url}");
        }
    }

    #[actix_web::test]
    async fn sqlite_keeps_the_short_lookups_prepared_and_postgresql_none() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("links.db").display());
        let postgres = "postgres://u@127.0.0.1:1/db".to_owned();
        let subjects: Vec<Subject> = (0..3).map(|n| Subject::from(format!("s{n}"))).collect();
        for (url, kept) in [(sqlite, [true, true, false]), (postgres, [false; 3])] {
            let store = LinkStore::connect_lazy(&SecretString::from(url.clone())).unwrap();
            for (count, kept) in (1..=3).zip(kept) {
                let batch: Vec<&Subject> = subjects.iter().take(count).collect();
                let query = store.links_query(&batch);
                assert_eq!(
                    sqlx::Execute::persistent(&query),
                    kept,
                    "{url}, {count} subjects"
                );
            }
        }
    }

    #[actix_web::test]
    async fn a_sqlite_pool_keeps_fewer_connections_than_a_postgres_one() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("links.db").display());
        let postgres = "postgres://u@127.0.0.1:1/db".to_owned();
        for (url, connections, writers) in [(sqlite, 5, 1), (postgres, 10, 10)] {
            let store = LinkStore::connect_lazy(&SecretString::from(url.clone())).unwrap();
            assert_eq!(
                store.pool.options().get_max_connections(),
                connections,
                "{url}"
            );
            assert_eq!(
                store.writing().pool.options().get_max_connections(),
                writers,
                "{url}: writes"
            );
        }
    }

    #[actix_web::test]
    async fn sqlite_links_are_written_on_the_writing_connection_alone() {
        let subject = Subject::from("s".to_owned());
        for write in ["save", "import", "delete"] {
            // A store of its own for each write: the first to open the writer would hide
            // where the others went.
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("links.db").display());
            let store = LinkStore::connect_lazy(&SecretString::from(url)).unwrap();
            store.migrate().await.unwrap();
            let (readers, writers) = store.open_connections();
            assert_eq!(writers, 0, "nothing written yet");
            match write {
                "save" => store
                    .save_link(&subject, AutosharesUserId(1))
                    .await
                    .unwrap(),
                "import" => store
                    .import(&[(subject.clone(), AutosharesUserId(2))])
                    .await
                    .unwrap(),
                _ => drop(store.delete_link(&subject).await.unwrap()),
            }
            // The write opened the writer, and no other connection.
            assert_eq!(store.open_connections(), (readers, 1), "{write}");
        }
    }

    #[actix_web::test]
    async fn every_sqlite_connection_keeps_a_small_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("links.db").display());
        let store = LinkStore::connect_lazy(&SecretString::from(url)).unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut connection = store.pool.acquire().await.unwrap();
            let kib: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *connection)
                .await
                .unwrap();
            assert_eq!(kib, -256, "PRAGMA cache_size of a pooled connection");
            held.push(connection);
        }
    }

    #[actix_web::test]
    async fn sqlite_commits_leave_the_checkpoints_to_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("links.db");
        let url = format!("sqlite://{}", file.display());
        let store = LinkStore::connect_lazy(&SecretString::from(url)).unwrap();
        store.migrate().await.unwrap();
        let mut connection = store.pool.acquire().await.unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(pages, 0, "a commit never checkpoints");
        // About 200 pages of log, fewer than SQLite's own threshold: without a checkpoint
        // they stay in the log.
        sqlx::query("CREATE TABLE filler (bytes BLOB)")
            .execute(&mut *connection)
            .await
            .unwrap();
        for _ in 0..100 {
            sqlx::query("INSERT INTO filler VALUES (zeroblob(6000))")
                .execute(&mut *connection)
                .await
                .unwrap();
        }
        drop(connection);
        let before = std::fs::metadata(&file).unwrap().len();
        actix_web::rt::spawn(store.clone().checkpoint_forever());
        let deadline = std::time::Instant::now() + 10 * SQLITE_CHECKPOINT_EVERY;
        while std::fs::metadata(&file).unwrap().len() < before + 500_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was copied into the file ({before} bytes before)"
            );
            tokio::time::sleep(SQLITE_CHECKPOINT_EVERY / 5).await;
        }
    }

    /// How many times the write-ahead log `log` has started again: its header counts them
    /// (big-endian, at byte 12).
    fn log_starts(log: &std::path::Path) -> u32 {
        let mut header = [0; 16];
        std::io::Read::read_exact(&mut std::fs::File::open(log).unwrap(), &mut header).unwrap();
        u32::from_be_bytes(header[12..].try_into().unwrap())
    }

    #[actix_web::test]
    async fn sqlite_starts_its_log_again_under_writes_that_never_pause() {
        const LOG_LIMIT_PAGES: i64 = 64;
        const WRITTEN: u64 = 64 << 20;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("links.db");
        let log = dir.path().join("links.db-wal");
        let url = format!("sqlite://{}", file.display());
        let store = LinkStore::connect_lazy(&SecretString::from(url)).unwrap();
        store.migrate().await.unwrap();
        let writer = store.writing();
        sqlx::query("CREATE TABLE filler (bytes BLOB)")
            .execute(&writer.pool)
            .await
            .unwrap();
        let checkpoints = store
            .clone()
            .checkpoint_every(std::time::Duration::from_millis(50), LOG_LIMIT_PAGES);
        let checkpoints = actix_web::rt::spawn(checkpoints);
        // One commit after another, each a page of log at least, as the audit trail's
        // writer under load: each takes the writing connection and gives it back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut logged = 0;
        while logged < WRITTEN {
            assert!(
                std::time::Instant::now() < deadline,
                "{logged} bytes logged"
            );
            sqlx::query("INSERT INTO filler VALUES (randomblob(100))")
                .execute(&writer.pool)
                .await
                .unwrap();
            logged += 4096;
        }
        checkpoints.abort();
        let starts = log_starts(&log);
        assert!(starts >= 3, "the log started again {starts} times");
        let size = std::fs::metadata(&log).unwrap().len();
        assert!(
            size < WRITTEN / 2,
            "the log's file holds {size} bytes after {logged} bytes were logged"
        );
    }

    #[actix_web::test]
    async fn a_reader_that_holds_the_log_never_holds_up_writes_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("links.db");
        let url = format!("sqlite://{}", file.display());
        let store = LinkStore::connect_lazy(&SecretString::from(url.clone())).unwrap();
        store.migrate().await.unwrap();
        let writer = store.writing();
        let write = async || {
            sqlx::query("INSERT INTO filler VALUES (randomblob(100))")
                .execute(&writer.pool)
                .await
                .unwrap();
        };
        sqlx::query("CREATE TABLE filler (bytes BLOB)")
            .execute(&writer.pool)
            .await
            .unwrap();
        write().await;
        // Another process reads the database the whole time, as an operator's backup or
        // long query would: its snapshot is in the log, so the log cannot start again.
        let mut reader = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM filler")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        for _ in 0..10 {
            write().await;
        }
        // Over its bound: the checkpoint tries to start the log again, and a write comes.
        let checkpoint = actix_web::rt::spawn({
            let store = store.clone();
            async move { store.checkpoint(1).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        write().await;
        let waited = started.elapsed();
        checkpoint.await.unwrap().unwrap();
        assert!(
            waited < std::time::Duration::from_secs(1),
            "a write waited {waited:?} for a checkpoint that waited for a reader"
        );
        // The writer's wait for locks, in milliseconds.
        let busy_ms = async || -> i64 {
            sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&writer.pool)
                .await
                .unwrap()
        };
        assert_eq!(
            busy_ms().await,
            5000,
            "the writer's usual wait for locks, put back"
        );
        // Once the reader is gone, the log starts again.
        sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
        reader.close().await.unwrap();
        let starts = || log_starts(&dir.path().join("links.db-wal"));
        let before = starts();
        // As a checkpoint cut short after shortening the wait would leave it.
        sqlx::query(SQLITE_RESTART_WAIT)
            .execute(&writer.pool)
            .await
            .unwrap();
        store.checkpoint(1).await.unwrap();
        write().await;
        assert_eq!(starts(), before + 1, "the log started again");
        assert_eq!(
            busy_ms().await,
            5000,
            "the usual wait, whatever the last checkpoint left"
        );
    }

    #[actix_web::test]
    async fn a_database_migrated_before_comments_were_reworded_still_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let url = SecretString::from(format!("sqlite://{}", dir.path().join("l.db").display()));
        let store = LinkStore::connect_lazy(&url).unwrap();
        store.migrate().await.unwrap();
        let recorded: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        // sqlx's own checksums of the files as they are now.
        let files = sqlx::migrate!("./migrations");
        assert_eq!(recorded.len(), files.migrations.len());
        for ((version, checksum), file) in recorded.into_iter().zip(files.iter()) {
            assert_eq!(version, file.version);
            let expected = match REWORDED.iter().find(|(v, _)| *v == version) {
                // What an earlier build recorded for the text it applied.
                Some((_, applied)) => (*applied).to_owned(),
                None => hex::encode(&file.checksum),
            };
            assert_eq!(hex::encode(checksum), expected, "migration {version}");
        }
        // The next process finds every migration as it recorded it.
        LinkStore::connect_lazy(&url)
            .unwrap()
            .migrate()
            .await
            .unwrap();
    }

    #[actix_web::test]
    async fn a_migrated_sqlite_file_keeps_a_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("links.db").display());
        LinkStore::connect_lazy(&SecretString::from(url.clone()))
            .unwrap()
            .migrate()
            .await
            .unwrap();
        // A later process, as `serve` after `migrate`, finds the file in WAL mode.
        let store = LinkStore::connect_lazy(&SecretString::from(url)).unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
