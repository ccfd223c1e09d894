use serde_json::json;

use crate::helpers::{Options, Reply, Scripted, spawn_app, spawn_with};

#[actix_web::test]
async fn bind_answers_exactly_the_contract_json() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;

    let answer = app.bind(&caller, "+13108904569").await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["phoneNumber", "state", "verificationToken"]);
    assert_eq!(body["phoneNumber"], "+13108904569");
    assert_eq!(body["state"], "NotVerified");
    let token = body["verificationToken"].as_str().unwrap();
    assert!(
        token.len() > 40 && !token.contains("3108904569"),
        "opaque token: {token}"
    );
}

#[actix_web::test]
async fn bind_sends_the_normalised_number_percent_encoded() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;

    let answer = app
        .put_phone_number(&caller, r#"{"phoneNumber":"+1 (310) 890-4569"}"#)
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["phoneNumber"], "+13108904569");
    let seen = app.sandbox().last_request().unwrap();
    assert_eq!(
        seen.path,
        "/api/v1.0/users/1001/subscriptions/settings/phonenumber"
    );
    assert_eq!(seen.raw_query(), "phoneNumber=%2B13108904569");
    assert_eq!(
        app.sandbox().last_code("+13108904569").map(|c| c.len()),
        Some(6),
        "an SMS was sent"
    );
}

#[actix_web::test]
async fn bind_sends_the_app_key_the_service_token_and_the_request_id() {
    let fake = Scripted::start(Scripted::good_login, |_, _| {
        Reply::bound("+13108904569", 1925)
    });
    let app = spawn_with(
        Options::default()
            .upstream(&fake.base_url)
            .with("upstream.app_key", "app-key-under-test"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 42).await;

    let url = format!("{}/v1/me/phone-number", app.public);
    let body = json!({"phoneNumber": "+13108904569"}).to_string();
    let answer = app
        .send(
            "PUT",
            &url,
            Some(&caller.jwt),
            Some(&body),
            &[("X-Request-Id", "trace-abc.123")],
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("x-request-id"), Some("trace-abc.123"));
    let calls = fake.phone_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "PUT");
    assert_eq!(
        call.path,
        "/api/v1.0/users/42/subscriptions/settings/phonenumber"
    );
    assert_eq!(call.query, "phoneNumber=%2B13108904569");
    assert_eq!(call.header("Et-App-Key"), Some("app-key-under-test"));
    assert_eq!(
        call.header("Authorization"),
        Some("Bearer scripted-token-1")
    );
    assert_eq!(call.header("X-Request-Id"), Some("trace-abc.123"));
    assert_eq!(fake.logins(), 1);
}

#[actix_web::test]
async fn each_kind_of_invalid_number_is_422_without_an_upstream_call() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let cases = [
        ("13108904569", "no plus and country code"),
        ("+1 310 890 456a", "a letter"),
        ("+1310890", "too short"),
        ("+1234567890123456", "too long"),
        ("+999123456789", "unknown country code"),
        ("+18005550199", "toll-free"),
        ("+34912345678", "fixed line, no SMS"),
        ("+449012345678", "premium rate"),
        ("", "empty"),
    ];
    for (number, what) in cases {
        let answer = app.bind(&caller, number).await;
        assert_eq!(answer.status, 422, "{what}: {}", answer.text);
        answer.assert_problem(422, "invalid_phone_number");
    }
    assert_eq!(app.sandbox().binds(), 0, "AutoShares never called");
}

#[actix_web::test]
async fn countries_outside_the_allowed_list_are_refused() {
    let app = spawn_with(Options::default().with("phone.allowed_countries", "ES")).await;
    let caller = app.linked_caller("sub-1", 1001).await;

    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(422, "invalid_phone_number");
    assert_eq!(app.bind(&caller, "+34635952910").await.status, 200);
}

#[actix_web::test]
async fn an_upstream_4xx_on_bind_is_phone_number_rejected_without_upstream_text() {
    let fake = Scripted::start(Scripted::good_login, |_, _| {
        Reply::json(
            422,
            json!({"Message": "UPSTREAM-DETAIL-7731 number refused"}),
        )
    });
    let app = spawn_with(Options::default().upstream(&fake.base_url)).await;
    let caller = app.linked_caller("sub-1", 42).await;

    let answer = app.bind(&caller, "+13108904569").await;

    answer.assert_problem(422, "phone_number_rejected");
    assert!(!answer.text.contains("UPSTREAM-DETAIL-7731"));
}

#[actix_web::test]
async fn a_bind_that_autoshares_may_have_received_is_not_retried() {
    let fake = Scripted::start(Scripted::good_login, |_, _| Reply::raw(503, "busy"));
    let app = spawn_with(Options::default().upstream(&fake.base_url)).await;
    let caller = app.linked_caller("sub-1", 42).await;

    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(502, "upstream_error");
    assert_eq!(fake.phone_calls().len(), 1, "sent once only");
}
