//! The audit trail (docs/operations.md "Audit trail"): what each phone change leaves in the database, read
//! back through `GET /admin/v1/links/{subject}/events`, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoshares_bff::audit::{Action, Audit, BATCH, Event, LINGER};
use autoshares_bff::client_address::{ClientAddress, TrustedProxies};
use autoshares_bff::identity::LinkStore;
use autoshares_bff::ids::{AutosharesUserId, Subject};
use autoshares_bff::metrics::Metrics;
use autoshares_bff::phone::PhoneNumber;
use secrecy::SecretString;
use serde_json::Value;
use sqlx::Row as _;

use crate::helpers::{
    ADMIN_TOKEN, Options, TcpProxy, TestDatabase, audit_events, connect, sample, spawn_with,
};

const PHONE: &str = "+13108904569";

/// Every text stored in the audit table, for looking for what must not be there.
async fn stored_text(url: &str) -> String {
    let mut connection = connect(url).await;
    let rows = sqlx::query(
        "SELECT subject, action, outcome, phone_number, country, client_address, request_id \
         FROM audit_events",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    rows.iter()
        .flat_map(|row| (0..7).map(|i| row.try_get::<Option<String>, _>(i).unwrap()))
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

async fn a_flow_leaves_its_four_events_in_order(database: TestDatabase) {
    let url = database.url.clone();
    let app = spawn_with(Options::default().database(database)).await;
    let caller = app.linked_caller("sub-1", 1001).await;

    let bound = app.bind(&caller, PHONE).await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app.sandbox().last_code(PHONE).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = app.complete(&caller, &token, wrong).await;
    refused.assert_problem(422, "invalid_code");
    let completed = app.complete(&caller, &token, &code).await;
    assert_eq!(completed.status, 200, "{}", completed.text);
    let unbound = app.delete_phone_number(&caller).await;
    assert_eq!(unbound.status, 204, "{}", unbound.text);
    // Reads are not phone changes; they leave nothing.
    app.get_phone_number(&caller).await;

    let events = audit_events(&app, "sub-1", 4).await;
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("unbind", "ok"),
            ("complete", "ok"),
            ("complete", "invalid_code"),
            ("bind", "ok"),
        ],
        "newest first: {events:?}"
    );
    let answers = [&unbound, &completed, &refused, &bound];
    for (event, answer) in events.iter().zip(answers) {
        assert_eq!(
            event["requestId"].as_str(),
            answer.header("x-request-id"),
            "{event}"
        );
        assert_eq!(event["clientAddress"], "127.0.0.1", "{event}");
        assert!(event["at"].as_str().unwrap().ends_with('Z'), "{event}");
    }
    for event in &events[1..] {
        assert_eq!(event["phoneNumber"], "+1310*****69", "{event}");
        assert_eq!(event["country"], "US", "{event}");
    }
    assert_eq!(
        events[0]["phoneNumber"],
        Value::Null,
        "an unbind names no number"
    );

    let stored = stored_text(&url).await;
    assert!(stored.contains("+1310*****69"), "{stored}");
    assert!(
        !stored.contains(PHONE),
        "no full number is stored: {stored}"
    );
    assert!(!stored.contains(&token), "no token is stored");

    let none = app
        .admin_get("/admin/v1/links/sub-2/events", Some(ADMIN_TOKEN))
        .await;
    none.assert_problem(404, "link_not_found");
    let limited = app
        .admin_get("/admin/v1/links/sub-1/events?limit=1", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(limited.json()["events"].as_array().unwrap().len(), 1);
    for bad in ["0", "1001", "x"] {
        let path = format!("/admin/v1/links/sub-1/events?limit={bad}");
        let answer = app.admin_get(&path, Some(ADMIN_TOKEN)).await;
        answer.assert_problem(400, "malformed_request");
    }
    let anonymous = app.admin_get("/admin/v1/links/sub-1/events", None).await;
    anonymous.assert_problem(401, "unauthenticated");
}

#[actix_web::test]
async fn on_sqlite_a_flow_leaves_its_four_events_in_order() {
    a_flow_leaves_its_four_events_in_order(TestDatabase::sqlite().await).await;
}

#[actix_web::test]
async fn on_postgresql_a_flow_leaves_its_four_events_in_order() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    a_flow_leaves_its_four_events_in_order(database).await;
}

/// An audit trail on `database`, migrated, with a queue of `capacity`, and its metrics.
async fn audit_on(database: &TestDatabase, capacity: usize) -> (Arc<Audit>, Arc<Metrics>) {
    let links = LinkStore::connect_lazy(&SecretString::from(database.url.clone())).unwrap();
    links.migrate().await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let audit = Audit::new(
        &links,
        capacity,
        Duration::from_secs(86_400),
        Arc::clone(&metrics),
    );
    (Arc::new(audit), metrics)
}

/// The address of a caller that reached the service with no proxy in between.
fn direct_client() -> ClientAddress {
    TrustedProxies::default().client_of("192.0.2.7".parse().unwrap(), std::iter::empty())
}

/// More events than two of the writer's batches (500 each), so its statements of many
/// rows and of one row all run.
const BURST: usize = 1007;

async fn a_burst_longer_than_a_batch_is_written_whole_in_order(database: TestDatabase) {
    let (audit, _) = audit_on(&database, BURST).await;
    let client = direct_client();
    let subject = Subject::new("sub-burst");
    let number = PhoneNumber::from_trusted_e164(PHONE.to_owned());
    let outcome = |i: usize| {
        if i.is_multiple_of(2) {
            "ok"
        } else {
            "rate_limited"
        }
    };
    for i in 0..BURST {
        let request_id = format!("request-{i}");
        let user = AutosharesUserId(1001);
        let mut event = Event::new(&subject, user, Action::Bind, client, &request_id);
        event.outcome = outcome(i).to_owned();
        if i.is_multiple_of(3) {
            event.number(&number);
        }
        audit.record(event);
    }

    assert_eq!(
        audit.flush(Duration::from_secs(10)).await,
        0,
        "nothing left"
    );
    let stored = audit.history(&subject, 10_000).await.unwrap();
    assert_eq!(stored.len(), BURST, "every event is stored once");
    // Newest first: the last event recorded comes back first.
    for (i, event) in stored.iter().rev().enumerate() {
        assert_eq!(event.request_id, format!("request-{i}"), "event {i}");
        assert_eq!(event.action, "bind", "event {i}");
        assert_eq!(event.outcome, outcome(i), "event {i}");
        let (masked, country) = if i.is_multiple_of(3) {
            (Some("+1310*****69"), Some("US"))
        } else {
            (None, None)
        };
        assert_eq!(event.phone_number.as_deref(), masked, "event {i}");
        assert_eq!(event.country.as_deref(), country, "event {i}");
        assert_eq!(
            event.client_address.as_deref(),
            Some("192.0.2.7"),
            "event {i}"
        );
    }
}

#[actix_web::test]
async fn on_sqlite_a_burst_longer_than_a_batch_is_written_whole_in_order() {
    a_burst_longer_than_a_batch_is_written_whole_in_order(TestDatabase::sqlite().await).await;
}

#[actix_web::test]
async fn on_postgresql_a_burst_longer_than_a_batch_is_written_whole_in_order() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    a_burst_longer_than_a_batch_is_written_whole_in_order(database).await;
}

/// Events of requests that keep coming: `PER_TICK` a millisecond, so some always arrive
/// while a transaction runs.
const STREAM: usize = 2000;
const PER_TICK: usize = 4;

/// Under a steady stream the writer still waits for a whole batch or for `LINGER`: it does
/// not start a transaction at once for the few events that came in during the last one,
/// which would cost a database round trip and a thread wake-up for every few requests.
#[actix_web::test]
async fn a_steady_stream_of_events_is_written_a_batch_per_linger() {
    let database = TestDatabase::sqlite().await;
    let (audit, metrics) = audit_on(&database, STREAM).await;
    let writer = actix_web::rt::spawn(Arc::clone(&audit).run());
    let subject = Subject::new("sub-stream");
    let started = Instant::now();
    for i in 0..STREAM {
        let request_id = format!("request-{i}");
        let event = Event::new(
            &subject,
            AutosharesUserId(1001),
            Action::Bind,
            direct_client(),
            &request_id,
        );
        audit.record(event);
        if i % PER_TICK == PER_TICK - 1 {
            actix_web::rt::time::sleep(Duration::from_millis(1)).await;
        }
    }
    while audit.queued() > 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "not written");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    writer.abort();

    let batches = sample(&metrics.encode(), "bff_audit_batch_events_count") as u64;
    // Each batch that is not whole waited `LINGER` after the one before it.
    let most = u64::try_from(elapsed.as_millis() / LINGER.as_millis()).unwrap()
        + u64::try_from(STREAM.div_ceil(BATCH)).unwrap()
        + 1;
    assert!(
        batches <= most,
        "{batches} transactions for {STREAM} events in {elapsed:?} (at most {most})"
    );
    let stored = audit.history(&subject, 10_000).await.unwrap();
    assert_eq!(stored.len(), STREAM, "every event is stored once");
}

#[actix_web::test]
async fn refusals_after_the_link_are_recorded_and_those_before_it_are_not() {
    let app = spawn_with(Options::default()).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    app.bind(&caller, "+1 310 555 0100 x")
        .await
        .assert_problem(422, "invalid_phone_number");
    let unlinked = app.caller("sub-unlinked");
    app.bind(&unlinked, PHONE)
        .await
        .assert_problem(403, "user_not_linked");
    let events = audit_events(&app, "sub-1", 1).await;
    assert_eq!(events[0]["action"], "bind");
    assert_eq!(events[0]["outcome"], "invalid_phone_number");
    assert_eq!(events[0]["phoneNumber"], Value::Null);
    let none = app
        .admin_get("/admin/v1/links/sub-unlinked/events", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(none.status, 404, "{}", none.text);
}

/// With the database down, no call is made (its event cannot be written first), and the
/// events of the refused requests wait in a bounded queue until it is back.
#[actix_web::test]
async fn with_the_database_down_binds_are_refused_and_their_events_wait_in_a_bounded_queue() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let (proxy, through_proxy) = TcpProxy::postgres(&database.url).await;
    let app = spawn_with(
        Options::default()
            .with("database.url", through_proxy)
            .with("identity.source", "claim")
            .with("audit.queue_capacity", "4"),
    )
    .await;
    crate::helpers::wait_for_status(&app, "/readyz", 200).await;

    proxy.stop().await;
    crate::helpers::wait_for_status(&app, "/readyz", 503).await;
    let binds = (0..6).map(|n| {
        let caller = app.claim_caller(&format!("sub-{n}"), 1001 + n);
        let number = format!("+1310890456{n}");
        let app = &app;
        async move { app.bind(&caller, &number).await }
    });
    for answer in futures_util::future::join_all(binds).await {
        answer.assert_problem(503, "audit_unavailable");
    }
    assert_eq!(app.sandbox().binds(), 0, "no call without its event");
    let metrics = app.admin_get("/metrics", None).await.text;
    assert_eq!(
        sample(&metrics, "bff_audit_dropped_total"),
        2.0,
        "six events, room for four"
    );
    assert!(metrics.contains("bff_audit_queued 4"), "{metrics}");

    proxy.resume().await;
    let started = Instant::now();
    while !app
        .admin_get("/metrics", None)
        .await
        .text
        .contains("bff_audit_queued 0")
    {
        assert!(started.elapsed() < Duration::from_secs(60), "never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut written = 0;
    for n in 0..6 {
        let path = format!("/admin/v1/links/sub-{n}/events");
        if app.admin_get(&path, Some(ADMIN_TOKEN)).await.status == 200 {
            let events = audit_events(&app, &format!("sub-{n}"), 1).await;
            assert_eq!(events[0]["outcome"], "audit_unavailable");
            written += 1;
        }
    }
    // A write that had taken the oldest two before they were forced out may still land
    // them, if it was waiting for its connection when the database came back.
    assert!(
        (4..=6).contains(&written),
        "the four the queue kept are written: {written}"
    );
    drop(database);
}

#[actix_web::test]
async fn events_past_the_retention_are_deleted_and_newer_ones_kept() {
    let database = TestDatabase::sqlite().await;
    let url = database.url.clone();
    // A first run creates the table and records a fresh event.
    let first = spawn_with(Options::default().database(database)).await;
    let caller = first.linked_caller("sub-1", 1001).await;
    assert_eq!(first.bind(&caller, PHONE).await.status, 200);
    audit_events(&first, "sub-1", 1).await;
    // An event of two days ago.
    let two_days_ago = (crate::helpers::now() - 2 * 86_400) * 1000;
    let mut connection = connect(&url).await;
    sqlx::query(
        "INSERT INTO audit_events (at_ms, seq, subject, autoshares_user_id, action, outcome, \
         request_id) VALUES ($1, 0, 'sub-old', 1002, 'bind', 'ok', 'old-request')",
    )
    .bind(two_days_ago as i64)
    .execute(&mut connection)
    .await
    .unwrap();
    drop(connection);

    // A service with a one-day retention deletes it as it starts, and keeps today's.
    let second = spawn_with(
        Options::default()
            .with("database.url", url)
            .with("audit.retention_days", "1"),
    )
    .await;
    let mut gone = false;
    for _ in 0..50 {
        let answer = second
            .admin_get("/admin/v1/links/sub-old/events", Some(ADMIN_TOKEN))
            .await;
        if answer.status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the old event was deleted");
    assert_eq!(audit_events(&second, "sub-1", 1).await.len(), 1);
}

/// Requests at once.
const CONCURRENT: usize = 100;

/// Events written ahead of their calls by requests that arrive together share
/// transactions (group commit), each reads `unknown` until its outcome is written, and
/// the outcomes are queued, not waited for: they land on their own events in one batch,
/// which a read of the history writes first.
#[actix_web::test]
async fn events_ahead_of_their_calls_share_transactions_and_take_their_outcomes() {
    let database = TestDatabase::sqlite().await;
    let (audit, metrics) = audit_on(&database, CONCURRENT).await;
    let subject = Subject::new("sub-group");
    let ahead = (0..CONCURRENT).map(|i| {
        let audit = Arc::clone(&audit);
        let subject = subject.clone();
        actix_web::rt::spawn(async move {
            let request_id = format!("request-{i}");
            let mut event = Event::new(
                &subject,
                AutosharesUserId(1001),
                Action::Bind,
                direct_client(),
                &request_id,
            );
            audit.before_call(&mut event).await.unwrap();
            event
        })
    });
    let events: Vec<Event> = futures_util::future::join_all(ahead)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let transactions = sample(&metrics.encode(), "bff_audit_batch_events_count");
    assert!(
        transactions < (CONCURRENT / 2) as f64,
        "{CONCURRENT} events took {transactions} transactions"
    );
    let stored = audit.history(&subject, 1000).await.unwrap();
    assert_eq!(stored.len(), CONCURRENT);
    assert!(stored.iter().all(|e| e.outcome == "unknown"), "{stored:?}");

    let outcome = |i: usize| {
        if i.is_multiple_of(3) {
            "upstream_timeout"
        } else {
            "ok"
        }
    };
    for (i, mut event) in events.into_iter().enumerate() {
        event.outcome = outcome(i).to_owned();
        audit.record(event);
    }
    assert_eq!(
        audit.queued(),
        CONCURRENT,
        "the outcomes wait for the writer"
    );
    let stored = audit.history(&subject, 1000).await.unwrap();
    assert_eq!(audit.queued(), 0, "the history wrote them first");
    assert_eq!(
        sample(&metrics.encode(), "bff_audit_batch_events_count"),
        transactions + 1.0,
        "in one transaction"
    );
    assert_eq!(stored.len(), CONCURRENT, "outcomes add no events");
    for event in stored {
        let i: usize = event.request_id["request-".len()..].parse().unwrap();
        assert_eq!(event.outcome, outcome(i), "{event:?}");
    }
}
