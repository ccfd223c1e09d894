//! Idempotent binds and the RateLimit fields (docs/api.md), on the memory backend and
//! on the real Redis.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Answer, Caller, Options, Reply, Scripted, TestApp, audit_events, random_key_base64, redis_keys,
    redis_options, redis_url, spawn_with,
};

async fn bind_with_key(app: &TestApp, caller: &Caller, phone: &str, key: &str) -> Answer {
    let url = format!("{}/v1/me/phone-number", app.public);
    let body = json!({"phoneNumber": phone}).to_string();
    app.send(
        "PUT",
        &url,
        Some(&caller.jwt),
        Some(&body),
        &[("Idempotency-Key", key)],
    )
    .await
}

fn rate_limit(answer: &Answer) -> (u32, u64) {
    assert_eq!(
        answer.header("ratelimit-policy"),
        Some(r#""bind_per_user";q=5;w=3600"#),
        "{}",
        answer.text
    );
    let value = answer.header("ratelimit").expect("a RateLimit field");
    let rest = value.strip_prefix(r#""bind_per_user";r="#).expect(value);
    let (r, t) = rest.split_once(";t=").expect(value);
    (r.parse().unwrap(), t.parse().unwrap())
}

async fn a_repeated_key_replays_the_first_answer(options: Options) {
    let app = spawn_with(options).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let first = bind_with_key(&app, &caller, "+13108904569", "key-1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("idempotency-replayed"), None);
    let again = bind_with_key(&app, &caller, "+1 (310) 890-4569", "key-1").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        again.text, first.text,
        "the same body, the same verificationToken"
    );
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
    assert_eq!(app.sandbox().binds(), 1, "AutoShares saw one bind");
    assert_eq!(rate_limit(&first), (4, 0));
    assert_eq!(rate_limit(&again), (4, 0), "the quota was taken once");

    let other = bind_with_key(&app, &caller, "+13108904568", "key-1").await;
    other.assert_problem(422, "idempotency_key_reused");
    assert_eq!(rate_limit(&other), (4, 0));
    bind_with_key(&app, &caller, "+13108904569", "caf\u{e9}")
        .await
        .assert_problem(400, "malformed_request");

    // The audit trail: the bind, the reused key and the malformed key; the replay is the
    // first bind's answer again, not an event of its own.
    let events = audit_events(&app, "sub-1", 3).await;
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["malformed_request", "idempotency_key_reused", "ok"],
        "{events:?}"
    );
}

#[actix_web::test]
async fn a_repeated_key_replays_the_first_answer_in_memory() {
    a_repeated_key_replays_the_first_answer(Options::default()).await;
}

#[actix_web::test]
async fn a_repeated_key_replays_the_first_answer_with_redis() {
    let Some(url) = redis_url() else {
        return;
    };
    a_repeated_key_replays_the_first_answer(redis_options(&url)).await;
}

#[actix_web::test]
async fn concurrent_duplicates_reach_autoshares_once() {
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        Reply::bound("+13108904569", 1900 + n as i64).after(Duration::from_millis(400))
    });
    let app = spawn_with(Options::default().upstream(&fake.base_url)).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let binds = (0..10).map(|_| bind_with_key(&app, &caller, "+13108904569", "same"));
    let answers = futures_util::future::join_all(binds).await;
    assert_eq!(fake.phone_calls().len(), 1, "exactly one AutoShares call");
    let mut fresh = 0;
    for answer in &answers {
        match answer.status {
            200 if answer.header("idempotency-replayed").is_none() => fresh += 1,
            200 => {}
            409 => {
                answer.assert_problem(409, "request_in_progress");
                assert_eq!(answer.header("retry-after"), Some("1"));
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert_eq!(fresh, 1, "one answer is the bind itself");
}

#[actix_web::test]
async fn a_key_reused_after_a_timeout_is_a_new_bind() {
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        let reply = Reply::bound("+13108904569", 1900 + n as i64);
        if n == 0 {
            reply.after(Duration::from_millis(1500))
        } else {
            reply
        }
    });
    let app = spawn_with(
        Options::default()
            .upstream(&fake.base_url)
            .with("upstream.timeout_ms", "500"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    bind_with_key(&app, &caller, "+13108904569", "k")
        .await
        .assert_problem(504, "upstream_timeout");
    let retry = bind_with_key(&app, &caller, "+13108904569", "k").await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.header("idempotency-replayed"), None);
    assert_eq!(fake.phone_calls().len(), 2);
}

#[actix_web::test]
async fn stored_answers_expire_after_idempotency_ttl() {
    let app = spawn_with(Options::default().with("idempotency.ttl_s", "1")).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    assert_eq!(
        bind_with_key(&app, &caller, "+13108904569", "k")
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = bind_with_key(&app, &caller, "+13108904569", "k").await;
    assert_eq!(later.status, 200);
    assert_eq!(later.header("idempotency-replayed"), None, "a new bind");
    assert_eq!(app.sandbox().binds(), 2);
}

#[actix_web::test]
async fn a_retry_on_another_instance_sharing_redis_is_a_replay() {
    let Some(url) = redis_url() else {
        return;
    };
    let shared = redis_options(&url).with("verification.token_secret", random_key_base64());
    let prefix = shared.setting("redis.key_prefix").unwrap().to_owned();
    let one = spawn_with(shared.same_settings()).await;
    let two = spawn_with(shared.same_settings()).await;
    let first = bind_with_key(
        &one,
        &one.linked_caller("sub-1", 1001).await,
        "+13108904569",
        "raw-key-73",
    )
    .await;
    assert_eq!(first.status, 200);
    let retry = bind_with_key(
        &two,
        &two.linked_caller("sub-1", 1001).await,
        "+13108904569",
        "raw-key-73",
    )
    .await;
    assert_eq!(
        retry.header("idempotency-replayed"),
        Some("true"),
        "{}",
        retry.text
    );
    assert_eq!(retry.text, first.text);
    assert_eq!(one.sandbox().binds() + two.sandbox().binds(), 1);

    let keys = redis_keys(&url, &prefix).await;
    let records: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(prefix.as_str()))
        .filter(|k| k.contains("idempotency"))
        .collect();
    assert_eq!(records.len(), 1, "{keys:?}");
    for key in keys.iter().filter_map(|k| k.strip_prefix(prefix.as_str())) {
        assert!(
            !key.contains("raw-key-73") && !key.contains("3108904569"),
            "{key}"
        );
    }
    for record in records {
        assert!(!record.contains("1001"), "{record} names the user id");
    }
}

async fn rate_limit_counts_down(options: Options) {
    let app = spawn_with(options.with("rate_limit.bind_per_user", "5/hour")).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for (i, expected) in [4, 3, 2, 1].into_iter().enumerate() {
        let answer = app.bind(&caller, &format!("+1310890456{i}")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(rate_limit(&answer), (expected, 0), "bind {i}");
    }
    let fifth = app.bind(&caller, "+13108904564").await;
    assert_eq!(fifth.status, 200);
    assert_eq!(
        rate_limit(&fifth),
        (0, 720),
        "none left: one more in 3600 s / 5"
    );
    let sixth = app.bind(&caller, "+13108904565").await;
    sixth.assert_problem(429, "rate_limited");
    let retry_after: u64 = sixth.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(rate_limit(&sixth), (0, retry_after), "t is Retry-After");
    let invalid = app.bind(&caller, "not a number").await;
    invalid.assert_problem(422, "invalid_phone_number");
    assert_eq!(rate_limit(&invalid).0, 0, "every answer to a linked caller");
    let unlinked = app.bind(&app.caller("sub-unlinked"), "+13108904569").await;
    assert_eq!(unlinked.header("ratelimit"), None, "not before the link");
}

#[actix_web::test]
async fn rate_limit_fields_count_down_in_memory() {
    rate_limit_counts_down(Options::default()).await;
}

#[actix_web::test]
async fn rate_limit_fields_count_down_with_redis() {
    let Some(url) = redis_url() else {
        return;
    };
    rate_limit_counts_down(redis_options(&url)).await;
}

/// Sends a bind with `key` byte by byte and resets the connection (RST) after `after`,
/// while AutoShares still holds the call.
async fn bind_and_hang_up(app: &TestApp, caller: &Caller, phone: &str, key: &str, after: Duration) {
    use tokio::io::AsyncWriteExt;
    let body = json!({"phoneNumber": phone}).to_string();
    let host = app.public.trim_start_matches("http://");
    let request = format!(
        "PUT /v1/me/phone-number HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
        caller.jwt,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(after).await;
    // A zero linger: closing sends a reset, as a dropped mobile connection or a balancer does.
    stream.set_zero_linger().unwrap();
    drop(stream);
}

#[actix_web::test]
async fn a_caller_that_hangs_up_mid_bind_gets_a_replay_on_its_retry_and_one_sms() {
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        Reply::bound("+13108904569", 7100 + n as i64).after(Duration::from_millis(800))
    });
    let app = spawn_with(
        Options::default()
            .upstream(&fake.base_url)
            .with("identity.source", "claim"),
    )
    .await;
    let caller = app.claim_caller("sub-1", 1001);
    bind_and_hang_up(
        &app,
        &caller,
        "+13108904569",
        "hang-up-1",
        Duration::from_millis(200),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // AutoShares answered meanwhile

    let retry = bind_with_key(&app, &caller, "+13108904569", "hang-up-1").await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(
        retry.header("idempotency-replayed"),
        Some("true"),
        "a replay, not a second bind"
    );
    assert_eq!(
        fake.phone_calls().len(),
        1,
        "AutoShares saw one bind: one SMS"
    );
    assert_eq!(rate_limit(&retry).0, 4, "the quota was taken once");
    let events = audit_events(&app, "sub-1", 1).await;
    assert_eq!(events.len(), 1, "one audit event: {events:?}");
    assert_eq!(events[0]["outcome"], "ok");
}
