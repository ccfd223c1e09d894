//! The Redis backend: limits shared by replicas, and what happens when Redis goes away.
//! Runs when `BFF_TEST_REDIS_URL` is set.

use crate::helpers::{
    Options, Reply, Scripted, TcpProxy, random_hex, random_key_base64, redis_keys, redis_options,
    redis_url, spawn_with, wait_for_status,
};

#[actix_web::test]
async fn two_replicas_share_one_quota() {
    let Some(url) = redis_url() else {
        return;
    };
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        Reply::bound("+13108904569", 1900 + n as i64)
    });
    // Replicas of one deployment share the sealing secret, and so the keyed hash.
    let sealing = random_key_base64();
    let shared = redis_options(&url)
        .upstream(&fake.base_url)
        .with("identity.source", "claim")
        .with("verification.token_secret", sealing.clone())
        .with("rate_limit.bind_per_user", "3/hour");
    let prefix = shared.setting("redis.key_prefix").unwrap().to_owned();
    let one = spawn_with(shared).await;
    let two = spawn_with(
        redis_options(&url)
            .upstream(&fake.base_url)
            .with("identity.source", "claim")
            .with("rate_limit.bind_per_user", "3/hour")
            .with("verification.token_secret", sealing)
            .with("redis.key_prefix", prefix.clone()),
    )
    .await;

    let mut statuses = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &one } else { &two };
        let answer = app
            .bind(&app.claim_caller("sub-1", 42), &format!("+1310890456{i}"))
            .await;
        if answer.status == 429 {
            answer.assert_problem(429, "rate_limited");
            assert!(
                answer
                    .header("retry-after")
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
        }
        statuses.push(answer.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        fake.phone_calls().len(),
        3,
        "AutoShares saw exactly the quota"
    );
    // The user's quota, three numbers' quotas, and the breaker's counts for the
    // country and the one prefix the three numbers share.
    assert_every_key_expires(&url, &prefix, 6).await;
}

/// Every key under `prefix` expires within its quota's period (a day at most), and none
/// names a phone number; `expected` of them hold limits, and the rest are the answers of
/// single calls, kept a minute.
async fn assert_every_key_expires(url: &str, prefix: &str, expected: usize) {
    let keys = redis_keys(url, prefix).await;
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let state = keys.iter().filter(|key| !key.contains(":call:")).count();
    assert_eq!(state, expected, "{keys:?}");
    for key in keys {
        assert!(!key.contains("310890"), "a number in a key: {key}");
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        let most = if key.contains(":call:") {
            60_000
        } else {
            86_400_000
        };
        assert!(ttl_ms > 0 && ttl_ms <= most, "{key} expires: {ttl_ms} ms");
    }
}

#[actix_web::test]
async fn a_numbers_quota_and_code_attempts_are_shared_too() {
    let Some(url) = redis_url() else {
        return;
    };
    let sandbox = autoshares_bff::sandbox::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Default::default(),
    )
    .unwrap();
    let prefix = format!("bff-test-{}:", random_hex(6));
    let sealing = random_key_base64();
    let options = || {
        Options::default()
            .upstream(&sandbox.base_url())
            .with("rate_limit.backend", "redis")
            .with("redis.url", url.clone())
            .with("redis.key_prefix", prefix.clone())
            .with("identity.source", "claim")
            .with("verification.token_secret", sealing.clone())
            .with("rate_limit.bind_per_phone", "2/day")
            .with("rate_limit.verify_attempts", "2")
    };
    let one = spawn_with(options()).await;
    let two = spawn_with(options()).await;

    let bound = one
        .bind(&one.claim_caller("sub-1", 1001), "+13108904569")
        .await;
    assert_eq!(bound.status, 200);
    assert_eq!(
        two.bind(&two.claim_caller("sub-2", 1002), "+13108904569")
            .await
            .status,
        200
    );
    one.bind(&one.claim_caller("sub-3", 1003), "+13108904569")
        .await
        .assert_problem(429, "rate_limited");

    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = sandbox.last_code("+13108904569").unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let before = sandbox.completions();
    one.complete(&one.claim_caller("sub-1", 1001), &token, wrong)
        .await
        .assert_problem(422, "invalid_code");
    two.complete(&two.claim_caller("sub-1", 1001), &token, wrong)
        .await
        .assert_problem(422, "invalid_code");
    one.complete(&one.claim_caller("sub-1", 1001), &token, &code)
        .await
        .assert_problem(429, "too_many_attempts");
    two.complete(&two.claim_caller("sub-1", 1001), &token, &code)
        .await
        .assert_problem(429, "too_many_attempts");
    assert_eq!(
        sandbox.completions() - before,
        2,
        "two wrong codes in all reached AutoShares"
    );
}

#[actix_web::test]
async fn without_redis_binds_fail_closed_and_recover_when_it_returns() {
    let Some(url) = redis_url() else {
        return;
    };
    let target = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = TcpProxy::start(&target).await;
    let app = spawn_with(redis_options(&format!("redis://127.0.0.1:{}", proxy.port))).await;
    let caller = app.linked_caller("sub-1", 1001).await;

    assert_eq!(app.bind(&caller, "+13108904560").await.status, 200);
    let ready = wait_for_status(&app, "/readyz", 200).await;
    assert_eq!(ready.json()["redis"], "ok");

    proxy.stop().await;
    let refused = app.bind(&caller, "+13108904561").await;
    refused.assert_problem(503, "rate_limiter_unavailable");
    let down = wait_for_status(&app, "/readyz", 503).await;
    assert_eq!(down.json()["redis"], "down");
    assert_eq!(down.json()["database"], "ok");

    proxy.resume().await;
    wait_for_status(&app, "/readyz", 200).await;
    let mut recovered = false;
    for _ in 0..20 {
        if app.bind(&caller, "+13108904562").await.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "binds work again without a restart");
    assert_eq!(
        app.sandbox().binds(),
        2,
        "nothing reached AutoShares while Redis was away"
    );
}

#[actix_web::test]
async fn allow_on_backend_error_lets_binds_through_and_counts_them() {
    let closed = crate::common::ClosedPort::new();
    let app = spawn_with(
        Options::default()
            .with("rate_limit.backend", "redis")
            .with("redis.url", format!("redis://{}", closed.addr()))
            .with("rate_limit.on_backend_error", "allow"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    let metrics = app.admin_get("/metrics", None).await.text;
    assert!(
        metrics.contains("bff_rate_limiter_errors_total{outcome=\"allowed\"} 1"),
        "{metrics}"
    );
    wait_for_status(&app, "/readyz", 503).await;
}

#[actix_web::test]
async fn the_redis_quota_refills_evenly_like_the_memory_one() {
    let Some(url) = redis_url() else {
        return;
    };
    let app = spawn_with(
        redis_options(&url)
            .with("identity.source", "claim")
            .with("rate_limit.bind_per_user", "2/second"),
    )
    .await;
    let caller = app.claim_caller("sub-1", 1001);
    assert_eq!(app.bind(&caller, "+13108904560").await.status, 200);
    assert_eq!(app.bind(&caller, "+13108904561").await.status, 200);
    let refused = app.bind(&caller, "+13108904562").await;
    refused.assert_problem(429, "rate_limited");
    assert_eq!(
        refused.header("retry-after"),
        Some("1"),
        "500 ms rounds up to 1 s"
    );

    // One unit comes back every 500 ms, not the whole burst.
    tokio::time::sleep(std::time::Duration::from_millis(550)).await;
    assert_eq!(
        app.bind(&caller, "+13108904563").await.status,
        200,
        "one unit refilled"
    );
    assert_eq!(
        app.bind(&caller, "+13108904564").await.status,
        429,
        "only one"
    );
}
