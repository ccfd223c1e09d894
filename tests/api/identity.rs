use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use sqlx::Connection as _;

use crate::helpers::{Options, TestApp, TestDatabase, sample, spawn_app, spawn_with};

#[actix_web::test]
async fn an_unlinked_subject_is_403_and_autoshares_is_not_called() {
    let app = spawn_app().await;
    let caller = app.caller("nobody");
    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(403, "user_not_linked");
    app.get_phone_number(&caller)
        .await
        .assert_problem(403, "user_not_linked");
    assert_eq!(app.sandbox().requests().len(), 0);
}

#[actix_web::test]
async fn the_claim_source_reads_the_user_id_from_the_token() {
    let app = spawn_with(Options::default().with("identity.source", "claim")).await;
    let with_claim = |value: serde_json::Value| {
        let mut claims = app.claims("sub-claim");
        claims["autoshares_user_id"] = value;
        crate::helpers::Caller {
            subject: "sub-claim".into(),
            jwt: app.jwt(claims),
        }
    };
    assert_eq!(
        app.bind(&with_claim(json!(1002)), "+13108904569")
            .await
            .status,
        200,
        "a number"
    );
    assert_eq!(
        app.bind(&with_claim(json!("1003")), "+13108904568")
            .await
            .status,
        200,
        "a numeric string"
    );
    let seen: Vec<String> = app
        .sandbox()
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(seen.iter().any(|p| p.contains("/users/1002/")), "{seen:?}");
    assert!(seen.iter().any(|p| p.contains("/users/1003/")), "{seen:?}");
    for (value, what) in [
        (json!(0), "zero"),
        (json!("x1"), "not digits"),
        (json!(null), "null"),
    ] {
        let answer = app.bind(&with_claim(value), "+13108904569").await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.text);
        answer.assert_problem(403, "user_not_linked");
    }
    let without = app.caller("sub-claim");
    app.bind(&without, "+13108904569")
        .await
        .assert_problem(403, "user_not_linked");
}

#[actix_web::test]
async fn a_custom_claim_name_is_honoured() {
    let app = spawn_with(
        Options::default()
            .with("identity.source", "claim")
            .with("identity.claim", "as_uid"),
    )
    .await;
    let mut claims = app.claims("sub-x");
    claims["as_uid"] = json!(1004);
    let caller = crate::helpers::Caller {
        subject: "sub-x".into(),
        jwt: app.jwt(claims),
    };
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
}

/// A link made through the admin API maps the subject on `database`.
async fn database_mapping_works_on(database: TestDatabase, user: i64) {
    let app = spawn_with(Options::default().database(database)).await;
    let caller = app.linked_caller("sub-db", user).await;
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    let path = app.sandbox().last_request().unwrap().path;
    assert!(path.contains(&format!("/users/{user}/")), "{path}");
}

#[actix_web::test]
async fn database_mapping_works_on_sqlite() {
    database_mapping_works_on(TestDatabase::sqlite().await, 1005).await;
}

#[actix_web::test]
async fn database_mapping_works_on_postgres() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    database_mapping_works_on(database, 1006).await;
}

#[actix_web::test]
async fn lookups_that_wait_for_the_database_are_read_together_and_each_gets_its_own_link() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let database_url = database.url.clone();
    let app = spawn_with(Options::default().database(database)).await;
    let linked: Vec<_> = (0..150).map(|n| (format!("sub-{n}"), 5000 + n)).collect();
    let mut callers = Vec::new();
    for (subject, user) in &linked {
        callers.push((app.linked_caller(subject, *user).await, Some(*user)));
    }
    for n in 0..50 {
        callers.push((app.caller(&format!("unlinked-{n}")), None));
    }

    // Another session holds the table, so the first lookup's statement waits and every
    // other lookup arrives while it is in flight.
    let mut holder = sqlx::PgConnection::connect(&database_url).await.unwrap();
    let lock = hold_links(&mut holder).await;
    // A client of its own, with room for every read at once (the harness's keeps 100
    // connections, and polls the metrics below).
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(callers.len()))
        .timeout(Duration::from_secs(30))
        .finish();
    let url = format!("{}/v1/me/phone-number", app.public);
    let reads =
        join_all(callers.iter().map(|(caller, _)| {
            TestApp::send_with(&client, "GET", &url, Some(&caller.jwt), None, &[])
        }));
    // Released once every lookup has missed the cache (or well before PostgreSQL's
    // statement_timeout of 2 s ends the statements that wait).
    let release = async {
        let started = std::time::Instant::now();
        let miss = r#"bff_link_cache_lookups_total{outcome="miss"}"#;
        while started.elapsed() < Duration::from_millis(1500) {
            let metrics = app.admin_get("/metrics", None).await.text;
            if sample(&metrics, miss) >= 200.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lock.rollback().await.unwrap();
    };
    let (answers, ()) = futures_util::future::join(reads, release).await;

    for ((caller, user), answer) in callers.iter().zip(&answers) {
        let expected = if user.is_some() { 404 } else { 403 };
        assert_eq!(
            answer.status, expected,
            "{}: {}",
            caller.subject, answer.text
        );
        if user.is_none() {
            assert!(
                answer.text.contains(r#""code":"user_not_linked""#),
                "{}",
                answer.text
            );
        }
    }
    let mut called: Vec<i64> = app
        .sandbox()
        .requests()
        .iter()
        .filter_map(|seen| user_in_path(&seen.path))
        .collect();
    called.sort_unstable();
    let expected: Vec<i64> = linked.iter().map(|(_, user)| *user).collect();
    assert_eq!(called, expected, "each linked caller read as its own user");

    let metrics = app.admin_get("/metrics", None).await.text;
    let subjects = sample(&metrics, "bff_link_lookup_batch_subjects_sum");
    let statements = sample(&metrics, "bff_link_lookup_batch_subjects_count");
    assert_eq!(subjects, 200.0, "every lookup read once: {metrics}");
    // One a lookup without coalescing. With it: one in each of the four lanes for the
    // lookups that came first, then a few for the rest (seven here, on idle or busy
    // cores); more only if some lookups came after the release.
    assert!(
        statements <= 20.0,
        "{statements} statements for 200 lookups: {metrics}"
    );
}

/// Locks `user_links` in `session` until the transaction is rolled back: statements of
/// other sessions that read it wait.
async fn hold_links(session: &mut sqlx::PgConnection) -> sqlx::Transaction<'_, sqlx::Postgres> {
    let mut lock = session.begin().await.unwrap();
    sqlx::query("LOCK TABLE user_links IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// The AutoShares user id in the path of a request to AutoShares.
fn user_in_path(path: &str) -> Option<i64> {
    path.split("/users/")
        .nth(1)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The AutoShares user id of the sandbox's last request.
fn last_user_called(app: &TestApp) -> Option<i64> {
    user_in_path(&app.sandbox().last_request()?.path)
}

/// The link-reading statements so far, and the subjects they read.
struct LinkReads {
    statements: f64,
    subjects: f64,
}

async fn link_reads(app: &TestApp) -> LinkReads {
    let metrics = app.admin_get("/metrics", None).await.text;
    LinkReads {
        statements: sample(&metrics, "bff_link_lookup_batch_subjects_count"),
        subjects: sample(&metrics, "bff_link_lookup_batch_subjects_sum"),
    }
}

#[actix_web::test]
async fn links_read_again_in_the_background_share_their_statements() {
    let app = spawn_app().await;
    let mut callers = Vec::new();
    for n in 0..12 {
        callers.push(app.linked_caller(&format!("sub-{n}"), 6000 + n).await);
    }
    join_all(callers.iter().map(|caller| app.get_phone_number(caller))).await;
    // Every entry was read before this instant, so each is due by +4 s and has expired by +5 s.
    let cached = std::time::Instant::now();
    tokio::time::sleep_until((cached + Duration::from_millis(4100)).into()).await;
    let before = link_reads(&app).await;
    // One caller after another, each answered from its entry and asking for its link to be
    // read again: one statement each, were each read at once.
    for caller in &callers {
        let answer = app.get_phone_number(caller).await;
        assert!(answer.status < 500, "{}", answer.text);
    }
    let mut after = link_reads(&app).await;
    while after.subjects < before.subjects + 12.0 && cached.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = link_reads(&app).await;
    }
    assert_eq!(
        after.subjects - before.subjects,
        12.0,
        "every link read again, once"
    );
    let shared = after.statements - before.statements;
    assert!(shared <= 4.0, "12 links read again in {shared} statements");
}

#[actix_web::test]
async fn a_caller_who_keeps_calling_is_answered_from_a_link_read_again_in_the_background() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let database_url = database.url.clone();
    let app = spawn_with(Options::default().database(database)).await;
    let caller = app.linked_caller("sub-hot", 7001).await;
    app.get_phone_number(&caller).await;
    // The cache's entry was read before this instant, so it expires before +5 s.
    let cached = std::time::Instant::now();
    assert_eq!(last_user_called(&app), Some(7001));

    // The link changes behind the service's back (as by another replica).
    let mut other = sqlx::PgConnection::connect(&database_url).await.unwrap();
    sqlx::query("UPDATE user_links SET autoshares_user_id = 7002 WHERE subject = 'sub-hot'")
        .execute(&mut other)
        .await
        .unwrap();

    // In the entry's last second: answered from it, and it is read again meanwhile.
    tokio::time::sleep_until((cached + Duration::from_millis(4050)).into()).await;
    app.get_phone_number(&caller).await;
    assert_eq!(last_user_called(&app), Some(7001), "still the cached link");
    // The cached link answers until the read again lands, well before the entry's end.
    while last_user_called(&app) != Some(7002)
        && std::time::Instant::now() < cached + Duration::from_millis(4800)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
        app.get_phone_number(&caller).await;
    }

    // Past the first read's 5 s, with the table held by another session: the link read
    // again answers at once, with the new user id; a lookup would wait for the lock.
    let lock = hold_links(&mut other).await;
    tokio::time::sleep_until((cached + Duration::from_millis(5100)).into()).await;
    let started = std::time::Instant::now();
    let answer = app.get_phone_number(&caller).await;
    let waited = started.elapsed();
    lock.rollback().await.unwrap();
    assert!(answer.status < 500, "{}", answer.text);
    assert_eq!(last_user_called(&app), Some(7002), "the link read again");
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");
}
