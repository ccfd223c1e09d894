use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Options, spawn_app, spawn_with};

#[actix_web::test]
async fn health_and_readiness_answer_on_the_admin_listener() {
    let app = spawn_app().await;
    assert_eq!(app.admin_get("/healthz", None).await.status, 200);
    let ready = app.admin_get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json(), json!({"database": "ok", "redis": "unused"}));
}

#[actix_web::test]
async fn links_can_be_created_read_replaced_and_deleted() {
    let app = spawn_app().await;
    let url = format!("{}/admin/v1/links/sub-9", app.admin);

    let missing = app.send("GET", &url, Some(ADMIN_TOKEN), None, &[]).await;
    missing.assert_problem(404, "link_not_found");

    let created = app
        .put_link("sub-9", r#"{"autosharesUserId": 1925}"#, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(
        created.json(),
        json!({"subject": "sub-9", "autosharesUserId": 1925})
    );
    let replaced = app
        .put_link("sub-9", r#"{"autosharesUserId": 1001}"#, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(replaced.json()["autosharesUserId"], 1001);
    let read = app.send("GET", &url, Some(ADMIN_TOKEN), None, &[]).await;
    assert_eq!(
        read.json(),
        json!({"subject": "sub-9", "autosharesUserId": 1001})
    );

    assert_eq!(
        app.send("DELETE", &url, Some(ADMIN_TOKEN), None, &[])
            .await
            .status,
        204
    );
    let again = app.send("DELETE", &url, Some(ADMIN_TOKEN), None, &[]).await;
    again.assert_problem(404, "link_not_found");
}

#[actix_web::test]
async fn links_take_effect_at_once_on_this_replica() {
    let app = spawn_app().await;
    let caller = app.caller("sub-1");
    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(403, "user_not_linked");
    app.linked_caller("sub-1", 1001).await;
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    let url = format!("{}/admin/v1/links/sub-1", app.admin);
    app.send("DELETE", &url, Some(ADMIN_TOKEN), None, &[]).await;
    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(403, "user_not_linked");
}

#[actix_web::test]
async fn the_links_api_needs_the_admin_token_and_a_positive_id() {
    let app = spawn_app().await;
    let cases = [
        (
            None,
            r#"{"autosharesUserId": 1}"#,
            401,
            "unauthenticated",
            "no token",
        ),
        (
            Some("wrong-token"),
            r#"{"autosharesUserId": 1}"#,
            401,
            "unauthenticated",
            "wrong token",
        ),
        (
            Some(ADMIN_TOKEN),
            r#"{"autosharesUserId": 0}"#,
            400,
            "malformed_request",
            "zero",
        ),
        (
            Some(ADMIN_TOKEN),
            r#"{"autosharesUserId": -3}"#,
            400,
            "malformed_request",
            "negative",
        ),
        (
            Some(ADMIN_TOKEN),
            r#"{"autosharesUserId": "12"}"#,
            400,
            "malformed_request",
            "a string",
        ),
        (
            Some(ADMIN_TOKEN),
            r#"{}"#,
            400,
            "malformed_request",
            "missing",
        ),
    ];
    for (token, body, status, code, what) in cases {
        let answer = app.put_link("sub-1", body, token).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        answer.assert_problem(status, code);
    }
}

#[actix_web::test]
async fn without_an_admin_token_the_links_api_does_not_exist() {
    let app = spawn_with(Options::default().with("admin.token", "")).await;
    let answer = app
        .put_link("sub-1", r#"{"autosharesUserId": 1}"#, Some(ADMIN_TOKEN))
        .await;
    answer.assert_problem(404, "not_found");
}

#[actix_web::test]
async fn link_changes_reach_other_replicas_within_five_seconds() {
    let database = crate::helpers::TestDatabase::for_test().await;
    let url = database.url.clone();
    let one = spawn_with(Options::default().database(database)).await;
    let two = spawn_with(Options::default().with("database.url", url)).await;
    let caller = one.linked_caller("sub-1", 1001).await;
    assert_eq!(
        two.bind(&two_caller(&two, &caller), "+13108904569")
            .await
            .status,
        200,
        "linked via one, used via two"
    );

    let url = format!("{}/admin/v1/links/sub-1", one.admin);
    assert_eq!(
        one.send("DELETE", &url, Some(ADMIN_TOKEN), None, &[])
            .await
            .status,
        204
    );
    let started = std::time::Instant::now();
    loop {
        let answer = two.get_phone_number(&two_caller(&two, &caller)).await;
        if answer.status == 403 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_millis(5500),
            "still linked after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The same subject, with a token from the other replica's signing secret.
fn two_caller(
    app: &crate::helpers::TestApp,
    caller: &crate::helpers::Caller,
) -> crate::helpers::Caller {
    app.caller(&caller.subject)
}

#[actix_web::test]
async fn the_admin_token_is_checked_before_the_body_is_read() {
    let app = spawn_app().await;
    let cases = [
        ("{not json", "broken JSON"),
        (r#"{"autosharesUserId": -1}"#, "a bad id"),
        ("[1]", "an array"),
    ];
    for (body, what) in cases {
        for token in [None, Some("wrong-token-of-some-length-0123456789")] {
            let answer = app.put_link("sub-1", body, token).await;
            assert_eq!(
                answer.status, 401,
                "{what}, token {token:?}: {}",
                answer.text
            );
            assert_eq!(answer.json()["code"], "unauthenticated");
        }
    }
    let url = format!("{}/admin/v1/links/sub-1", app.admin);
    let plain = app
        .send(
            "PUT",
            &url,
            None,
            Some("{}"),
            &[("Content-Type", "text/plain")],
        )
        .await;
    assert_eq!(plain.status, 401, "not 415 before the token");
}
