use std::time::Duration;

use crate::helpers::{Options, Reply, Scripted, TestApp, spawn_app, spawn_with};

async fn bound(
    app: &TestApp,
    subject: &str,
    user: i64,
    phone: &str,
) -> (crate::helpers::Caller, String) {
    let caller = app.linked_caller(subject, user).await;
    let answer = app.bind(&caller, phone).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    (caller, token)
}

#[actix_web::test]
async fn the_sms_code_completes_the_binding() {
    let app = spawn_app().await;
    let (caller, token) = bound(&app, "sub-1", 1001, "+13108904569").await;
    let code = app.sandbox().last_code("+13108904569").unwrap();

    let answer = app.complete(&caller, &token, &code).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json(),
        serde_json::json!({"phoneNumber": "+13108904569", "state": "Active"})
    );
    let seen = app.sandbox().last_request().unwrap();
    assert!(
        seen.path
            .ends_with("/users/1001/subscriptions/settings/phonenumber/token/1901"),
        "{}",
        seen.path
    );
    assert_eq!(seen.raw_query(), format!("tokenValue={code}"));
}

#[actix_web::test]
async fn bad_tokens_have_distinct_422_codes_and_never_reach_autoshares() {
    let app = spawn_with(Options::default().with("verification.token_ttl_s", "1")).await;
    let (caller, token) = bound(&app, "sub-1", 1001, "+13108904569").await;
    let other = app.linked_caller("sub-2", 1002).await;
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let before = app.sandbox().completions();

    app.complete(&caller, &tampered, "123456")
        .await
        .assert_problem(422, "invalid_verification_token");
    app.complete(&caller, "not-a-token", "123456")
        .await
        .assert_problem(422, "invalid_verification_token");
    app.complete(&other, &token, "123456")
        .await
        .assert_problem(422, "invalid_verification_token");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    app.complete(&caller, &token, "123456")
        .await
        .assert_problem(422, "verification_token_expired");

    assert_eq!(
        app.sandbox().completions(),
        before,
        "AutoShares never saw them"
    );
}

#[actix_web::test]
async fn wrong_codes_spend_the_token_after_the_configured_attempts() {
    let app = spawn_with(Options::default().with("rate_limit.verify_attempts", "3")).await;
    let (caller, token) = bound(&app, "sub-1", 1001, "+13108904569").await;
    let code = app.sandbox().last_code("+13108904569").unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };

    for i in 0..3 {
        app.complete(&caller, &token, wrong)
            .await
            .assert_problem(422, "invalid_code");
        assert_eq!(app.sandbox().completions(), i + 1);
    }
    let spent = app.complete(&caller, &token, &code).await;
    spent.assert_problem(429, "too_many_attempts");
    assert!(spent.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        app.sandbox().completions(),
        3,
        "exactly N complete-binding calls"
    );
}

#[actix_web::test]
async fn a_used_token_cannot_be_replayed() {
    let app = spawn_app().await;
    let (caller, token) = bound(&app, "sub-1", 1001, "+13108904569").await;
    let code = app.sandbox().last_code("+13108904569").unwrap();
    assert_eq!(app.complete(&caller, &token, &code).await.status, 200);

    app.complete(&caller, &token, &code)
        .await
        .assert_problem(422, "invalid_verification_token");
    assert_eq!(app.sandbox().completions(), 1);
}

#[actix_web::test]
async fn a_5xx_or_a_timeout_from_autoshares_still_counts_the_attempt() {
    let fake = Scripted::start(Scripted::good_login, |n, _| match n {
        0 => Reply::bound("+13108904569", 1900),
        1 => Reply::raw(200, "{}").after(Duration::from_millis(1500)),
        _ => Reply::raw(500, "boom"),
    });
    let app = spawn_with(
        Options::default()
            .upstream(&fake.base_url)
            .with("upstream.timeout_ms", "500")
            .with("rate_limit.verify_attempts", "3"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let bound = app.bind(&caller, "+13108904569").await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    app.complete(&caller, &token, "123456")
        .await
        .assert_problem(504, "upstream_timeout");
    for _ in 0..2 {
        app.complete(&caller, &token, "123456")
            .await
            .assert_problem(502, "upstream_error");
    }
    let spent = app.complete(&caller, &token, "123456").await;
    spent.assert_problem(429, "too_many_attempts");
    assert_eq!(
        fake.phone_calls().len(),
        4,
        "AutoShares saw the bind and three codes"
    );
}
