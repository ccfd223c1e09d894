//! The audit event of a call to AutoShares is in the database before the call
//! (docs/operations.md "Audit trail"): a `serve` process killed with SIGKILL under load
//! leaves an event for every call AutoShares received, and a database that refuses the
//! event stops the call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{ServeProcess, claim_jwt, claim_serve_env};
use crate::helpers::{Options, Reply, Scripted, TestDatabase, connect, spawn_with};

const PHONE: &str = "+13108904569";

/// Callers binding at once, each bind from a user and to a number of its own.
const CALLERS: usize = 24;
/// Answers the callers get before the process is killed.
const ANSWERS_BEFORE_KILL: usize = 400;
/// How long the fake AutoShares holds each bind, so that some are in flight at the kill.
const BIND_TIME: Duration = Duration::from_millis(15);

/// A fake AutoShares that binds every number after `BIND_TIME`.
fn slow_autoshares() -> Scripted {
    Scripted::start(Scripted::good_login, |n, seen| {
        let number = seen
            .query
            .trim_start_matches("phoneNumber=")
            .replace("%2B", "+");
        Reply::bound(&number, 5000 + n as i64).after(BIND_TIME)
    })
}

/// Every event in the database at `url`: its request id and outcome.
async fn stored_events(url: &str) -> Vec<(String, String)> {
    let mut connection = connect(url).await;
    sqlx::query_as("SELECT request_id, outcome FROM audit_events")
        .fetch_all(&mut connection)
        .await
        .unwrap()
}

/// One caller's binds until the process stops answering; each answer is kept with the
/// request id it was sent with.
async fn bind_until_killed(public: String, next: Arc<AtomicUsize>, answers: Answers) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    loop {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let request_id = format!("crash-{n}");
        let user = 100_000 + i64::try_from(n).unwrap();
        let sent = client
            .put(format!("{public}/v1/me/phone-number"))
            .insert_header((
                "Authorization",
                format!("Bearer {}", claim_jwt(&format!("sub-{n}"), user)),
            ))
            .insert_header(("X-Request-Id", request_id.as_str()))
            .send_json(&json!({"phoneNumber": format!("+1310890{:04}", n % 10_000)}))
            .await;
        match sent {
            Ok(response) => answers
                .lock()
                .unwrap()
                .push((request_id, response.status().as_u16())),
            Err(_) => return,
        }
    }
}

type Answers = Arc<Mutex<Vec<(String, u16)>>>;

async fn a_killed_process_leaves_an_event_for_every_call_autoshares_received(url: String) {
    let autoshares = slow_autoshares();
    let dir = tempfile::tempdir().unwrap();
    let mut env = claim_serve_env(
        autoshares.base_url.clone(),
        ("app-key", "service", "password"),
        dir.path(),
    );
    env.retain(|(key, _)| *key != "BFF__DATABASE__URL");
    env.extend([
        ("BFF__DATABASE__URL", url.clone()),
        // Thousands of binds from one address, to numbers of one prefix: only the audit
        // trail is under test.
        ("BFF__RATE_LIMIT__BIND_PER_CLIENT", "off".to_owned()),
        (
            "BFF__RATE_LIMIT__BIND_PER_PHONE",
            "1000000/second".to_owned(),
        ),
        ("BFF__RATE_LIMIT__REQUESTS_PER_USER", "off".to_owned()),
        ("BFF__ABUSE__PREFIX_BUDGET", "off".to_owned()),
        ("BFF__ABUSE__MODES__CONVERSION", "off".to_owned()),
        ("BFF__LOG__LEVEL", "warn".to_owned()),
    ]);
    let mut process = ServeProcess::start(&env);
    process.wait_ready(&awc::Client::default()).await;

    let next = Arc::new(AtomicUsize::new(0));
    let answers: Answers = Arc::default();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            actix_web::rt::spawn(bind_until_killed(
                process.public.clone(),
                Arc::clone(&next),
                Arc::clone(&answers),
            ))
        })
        .collect();
    let started = Instant::now();
    while answers.lock().unwrap().len() < ANSWERS_BEFORE_KILL {
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    process.kill();
    for caller in callers {
        caller.await.unwrap();
    }
    process.finish();

    let mut events: HashMap<String, Vec<String>> = HashMap::new();
    for (request_id, outcome) in stored_events(&url).await {
        events.entry(request_id).or_default().push(outcome);
    }
    let calls = autoshares.phone_calls();
    let mut unknown = 0;
    for call in &calls {
        let request_id = call.header("x-request-id").unwrap();
        let outcomes = events.get(request_id).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            outcomes.len(),
            1,
            "the call {request_id} has exactly one event: {outcomes:?}"
        );
        assert!(
            ["ok", "unknown"].contains(&outcomes[0].as_str()),
            "{request_id}: {outcomes:?}"
        );
        unknown += usize::from(outcomes[0] == "unknown");
    }
    let answers = answers.lock().unwrap();
    let ok: Vec<&String> = answers
        .iter()
        .filter(|(_, status)| *status == 200)
        .map(|(request_id, _)| request_id)
        .collect();
    // An outcome is queued when the caller is answered: a bind answered 200 reads `ok`,
    // or `unknown` when the process was killed before the batch that held its outcome.
    for request_id in &ok {
        let outcomes = events.get(*request_id).map(Vec::as_slice).unwrap_or(&[]);
        assert!(
            matches!(outcomes, [one] if one == "ok" || one == "unknown"),
            "a bind answered 200: {request_id} {outcomes:?}"
        );
    }
    assert!(
        ok.len() >= ANSWERS_BEFORE_KILL,
        "{} of {} answers were 200",
        ok.len(),
        answers.len()
    );
    eprintln!(
        "killed under load: AutoShares received {} binds, callers got {} answers ({} of them \
         200), {} events stored ({} still unknown)",
        calls.len(),
        answers.len(),
        ok.len(),
        events.values().map(Vec::len).sum::<usize>(),
        unknown
    );
}

#[actix_web::test]
async fn on_sqlite_a_killed_process_leaves_an_event_for_every_call_autoshares_received() {
    let database = TestDatabase::sqlite().await;
    a_killed_process_leaves_an_event_for_every_call_autoshares_received(database.url.clone()).await;
}

#[actix_web::test]
async fn on_postgresql_a_killed_process_leaves_an_event_for_every_call_autoshares_received() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    a_killed_process_leaves_an_event_for_every_call_autoshares_received(database.url.clone()).await;
}

/// Makes the database at `url` refuse every new audit event, as a full disk or a
/// read-only database would, while it still reads.
async fn refuse_audit_events(url: &str) {
    let mut connection = connect(url).await;
    let statements: &[&str] = if url.starts_with("sqlite:") {
        &["CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
           BEGIN SELECT RAISE(ABORT, 'refused'); END"]
    } else {
        &[
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
    };
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
            .execute(&mut connection)
            .await
            .unwrap();
    }
}

async fn a_database_that_refuses_the_event_stops_the_call(database: TestDatabase) {
    let url = database.url.clone();
    let app = spawn_with(
        Options::default()
            .database(database)
            .with("rate_limit.bind_per_user", "2/hour"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let bound = app.bind(&caller, PHONE).await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app.sandbox().last_code(PHONE).unwrap();
    let calls = app.sandbox().requests().len();

    refuse_audit_events(&url).await;
    for _ in 0..3 {
        app.bind(&caller, PHONE)
            .await
            .assert_problem(503, "audit_unavailable");
    }
    app.complete(&caller, &token, &code)
        .await
        .assert_problem(503, "audit_unavailable");
    app.delete_phone_number(&caller)
        .await
        .assert_problem(503, "audit_unavailable");
    assert_eq!(
        app.sandbox().requests().len(),
        calls,
        "AutoShares received nothing"
    );
    let read = app.get_phone_number(&caller).await;
    assert_eq!(read.status, 200, "reads still work: {}", read.text);

    // The refused binds took no quota, and the code no attempt: with the database back,
    // the second bind of two and the completion go through.
    let mut connection = connect(&url).await;
    let drop = if url.starts_with("sqlite:") {
        "DROP TRIGGER refuse"
    } else {
        "DROP TRIGGER refuse ON audit_events"
    };
    sqlx::raw_sql(drop).execute(&mut connection).await.unwrap();
    let completed = app.complete(&caller, &token, &code).await;
    assert_eq!(completed.status, 200, "{}", completed.text);
    let again = app.bind(&caller, PHONE).await;
    assert_eq!(again.status, 200, "{}", again.text);
}

#[actix_web::test]
async fn on_sqlite_a_database_that_refuses_the_event_stops_the_call() {
    a_database_that_refuses_the_event_stops_the_call(TestDatabase::sqlite().await).await;
}

#[actix_web::test]
async fn on_postgresql_a_database_that_refuses_the_event_stops_the_call() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    a_database_that_refuses_the_event_stops_the_call(database).await;
}
