//! A database of its own for each test: a temporary SQLite file, or a new PostgreSQL
//! database on the server of `BFF_TEST_DATABASE_URL`.

use super::random_hex;

/// A database for one test: a temporary SQLite file, or a new PostgreSQL database.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/links.db", dir.path().display());
        Self {
            url,
            _dir: Some(dir),
        }
    }

    /// A fresh database on the server of `BFF_TEST_DATABASE_URL`, or `None` when unset.
    pub async fn postgres() -> Option<Self> {
        let base = std::env::var("BFF_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        sqlx::any::install_default_drivers();
        let name = format!("bff_test_{}", random_hex(6));
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
            .await
            .expect("BFF_TEST_DATABASE_URL must reach PostgreSQL");
        // The name is ours: `bff_test_` and random hex.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let (prefix, query) = base
            .split_once('?')
            .map_or((base.as_str(), None), |(p, q)| (p, Some(q)));
        let root = &prefix[..prefix.rfind('/').expect("a database URL has a path")];
        let url = match query {
            Some(q) => format!("{root}/{name}?{q}"),
            None => format!("{root}/{name}"),
        };
        Some(Self { url, _dir: None })
    }

    /// PostgreSQL when configured, else SQLite.
    pub async fn for_test() -> Self {
        match Self::postgres().await {
            Some(db) => db,
            None => Self::sqlite().await,
        }
    }
}

/// A connection of the test's own to the database at `url`, beside the service's.
pub async fn connect(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}
