//! PostgreSQL through PgBouncer in transaction mode, with a pool smaller than the service's
//! connections: `migrate` and `users import` through it, a thousand mixed requests from
//! concurrent callers without an error, every audit event written, and nothing of ours
//! left on a pooled connection for another client to see.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::Service;
use super::servers::{installed, wait_until};
use crate::common::{BIN, free_port};
use crate::helpers::{Reply, Scripted, TestDatabase};

/// `pgbouncer` in transaction mode on a free port, in front of the server of `base`
/// (trust authentication, as the test server has), with three server connections a
/// database. PgBouncer will not run as root: it runs as `postgres`.
struct PgBouncer {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    fn start() -> Self {
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let users = dir.path().join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = transaction\n\
                 default_pool_size = 3\nmax_client_conn = 500\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {}\n",
                users.display(),
                dir.path().join("log").display()
            ),
        )
        .unwrap();
        for file in [&users, &ini] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let child = Command::new("pgbouncer")
            .args(["-u", "postgres"])
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("pgbouncer listens", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `psql` through the pooler: one value.
fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-Atc", sql])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The binary's `command` against `database_url`.
fn run(database_url: &str, args: &[&str]) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("BFF__DATABASE__URL", database_url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[actix_web::test]
async fn mixed_requests_through_pgbouncer_in_transaction_mode_lose_nothing() {
    if !installed(&["pgbouncer", "psql"]) {
        return;
    }
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let mut bouncer = PgBouncer::start();
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let pooled = format!("postgres://postgres@127.0.0.1:{}/{name}", bouncer.port);

    // migrate and users import, through the pooler.
    run(&pooled, &["migrate"]);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("links.csv");
    let mut lines = String::from("subject,autoshares_user_id\n");
    for user in 0..40 {
        lines.push_str(&format!("sub-{user},{}\n", 7000 + user));
    }
    std::fs::write(&csv, lines).unwrap();
    run(&pooled, &["users", "import", csv.to_str().unwrap()]);

    let fake = Scripted::start(Scripted::good_login, |n, seen| match seen.method.as_str() {
        "GET" => Reply::json(
            200,
            json!({"PhoneNumber": "+13108904569", "PhoneNumberState": "Active"}),
        ),
        "DELETE" => Reply::json(200, json!({})),
        _ if seen.path.contains("/token/") => Reply::json(400, json!({})),
        _ => Reply::bound("+13108904569", 9000 + n as i64),
    });
    let service = Service::start(
        &fake,
        dir.path(),
        &[
            ("BFF__RATE_LIMIT__BACKEND", "memory".to_owned()),
            ("BFF__DATABASE__URL", pooled.clone()),
            ("BFF__IDENTITY__SOURCE", "database".to_owned()),
            ("BFF__RATE_LIMIT__BIND_PER_USER", "10000/hour".to_owned()),
            ("BFF__RATE_LIMIT__BIND_PER_PHONE", "10000/hour".to_owned()),
            ("BFF__RATE_LIMIT__BIND_PER_CLIENT", "off".to_owned()),
            ("BFF__RATE_LIMIT__VERIFY_ATTEMPTS", "10000".to_owned()),
        ],
    )
    .await;

    // Eight callers at once, 125 requests each: binds, completions, reads and unbinds.
    let callers = (0..8).map(|caller| {
        let service = &service;
        async move {
            let mut audited = 0;
            let mut unexpected = Vec::new();
            let mut token = None;
            for i in 0..125 {
                let user = (caller * 5 + i % 5) as i64;
                let subject = format!("sub-{user}");
                let (status, body) = match (i % 4, &token) {
                    (0, _) | (1, None) => {
                        let answer = service
                            .bind(&subject, 7000 + user, "+13108904569", None)
                            .await;
                        token = answer.body["verificationToken"].as_str().map(str::to_owned);
                        (answer.status, answer.body)
                    }
                    (1, Some(t)) => service.complete(&subject, 7000 + user, t, "123456").await,
                    (2, _) => service.read(&subject, 7000 + user).await,
                    _ => service.unbind(&subject, 7000 + user).await,
                };
                let expected = match i % 4 {
                    1 if token.is_some() => 422,
                    2 => 200,
                    3 => 204,
                    _ => 200,
                };
                if i % 4 != 2 {
                    audited += 1;
                }
                if status != expected {
                    unexpected.push((status, body));
                }
            }
            (audited, unexpected)
        }
    });
    let outcomes = futures_util::future::join_all(callers).await;
    let audited: usize = outcomes.iter().map(|(a, _)| a).sum();
    let unexpected: Vec<_> = outcomes.into_iter().flat_map(|(_, u)| u).collect();
    assert!(
        unexpected.is_empty(),
        "{} errors: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );

    eprintln!("pgbouncer: {} requests, {audited} audited", 8 * 125);
    let direct = &database.url;
    wait_until(
        "every audit event is written",
        Duration::from_secs(10),
        || psql(direct, "SELECT count(*) FROM audit_events") == audited.to_string(),
    );
    // Another client of the pool, on each of its server connections, sees the defaults.
    for _ in 0..6 {
        assert_eq!(
            psql(&pooled, "SHOW statement_timeout"),
            "0",
            "a setting left on the pool"
        );
    }
    assert_eq!(
        psql(&pooled, "SELECT count(*) FROM pg_prepared_statements"),
        "0",
        "a named statement left on the pool"
    );

    // PgBouncer restarted: unready while it is gone, back by itself once it is.
    let port = bouncer.port;
    drop(bouncer);
    let mut down = false;
    for _ in 0..50 {
        if service.ready().await.0 == 503 {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(down, "/readyz 503 while PgBouncer is down");
    bouncer = PgBouncer::start_on(port);
    let mut back = None;
    let restarted = std::time::Instant::now();
    for _ in 0..100 {
        if service.ready().await.0 == 200 {
            back = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = back.expect("ready again without a restart");
    eprintln!(
        "pgbouncer restarted: ready again {:.1} s later",
        back.as_secs_f64()
    );
    let answer = service.bind("sub-39", 7039, "+13108904569", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    drop(bouncer);
}
