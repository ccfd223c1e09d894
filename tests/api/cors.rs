//! Browsers (docs/api.md "Browsers (CORS)") over real HTTP.

use crate::helpers::{Answer, Options, TestApp, spawn_with};

const ALLOWED: &str = "https://app.example.test";

async fn app() -> TestApp {
    spawn_with(
        Options::default()
            .with(
                "cors.allowed_origins",
                format!("{ALLOWED},https://other.example.test"),
            )
            .with("cors.max_age_s", "120"),
    )
    .await
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> Answer {
    let url = format!("{}{path}", app.public);
    let headers = [
        ("Origin", origin),
        ("Access-Control-Request-Method", "PUT"),
        (
            "Access-Control-Request-Headers",
            "authorization, content-type, idempotency-key",
        ),
    ];
    app.send("OPTIONS", &url, None, None, &headers).await
}

#[actix_web::test]
async fn a_preflight_from_a_listed_origin_is_204_with_the_routes_methods() {
    let app = app().await;
    let cases = [
        ("/v1/me/phone-number", "GET, PUT, DELETE"),
        ("/v1/me/phone-number/verification", "POST"),
    ];
    for (path, methods) in cases {
        let answer = preflight(&app, path, ALLOWED).await;
        assert_eq!(answer.status, 204, "{path}: {}", answer.text);
        assert_eq!(answer.header("access-control-allow-origin"), Some(ALLOWED));
        assert_eq!(answer.header("access-control-allow-methods"), Some(methods));
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some(
                "authorization, content-type, idempotency-key, x-request-id, traceparent, tracestate"
            )
        );
        assert_eq!(answer.header("access-control-max-age"), Some("120"));
        assert_eq!(answer.header("vary"), Some("Origin"));
        assert_eq!(answer.header("access-control-allow-credentials"), None);
    }
}

#[actix_web::test]
async fn a_preflight_from_another_origin_is_403_with_no_allow_headers() {
    let app = app().await;
    for origin in [
        "https://evil.example.test",
        "https://app.example.test.evil",
        "null",
    ] {
        let answer = preflight(&app, "/v1/me/phone-number", origin).await;
        answer.assert_problem(403, "origin_not_allowed");
        assert!(
            !answer
                .headers
                .iter()
                .any(|(n, _)| n.starts_with("access-control-allow")),
            "{origin}: {:?}",
            answer.headers
        );
    }
}

#[actix_web::test]
async fn answers_to_a_listed_origin_name_it_and_expose_the_headers_problems_included() {
    let app = app().await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let url = format!("{}/v1/me/phone-number", app.public);
    let body = r#"{"phoneNumber":"+13108904569"}"#;
    let ok = app
        .send(
            "PUT",
            &url,
            Some(&caller.jwt),
            Some(body),
            &[("Origin", ALLOWED)],
        )
        .await;
    let problem = app
        .send("GET", &url, None, None, &[("Origin", ALLOWED)])
        .await;
    assert_eq!(ok.status, 200);
    problem.assert_problem(401, "unauthenticated");
    for answer in [&ok, &problem] {
        assert_eq!(answer.header("access-control-allow-origin"), Some(ALLOWED));
        assert_eq!(
            answer.header("access-control-expose-headers"),
            Some("x-request-id, retry-after, ratelimit, ratelimit-policy, idempotency-replayed")
        );
        assert_eq!(answer.header("vary"), Some("Origin"));
    }
    let stranger = app
        .send(
            "GET",
            &url,
            None,
            None,
            &[("Origin", "https://evil.example.test")],
        )
        .await;
    assert_eq!(stranger.header("access-control-allow-origin"), None);
}

#[actix_web::test]
async fn without_cors_an_options_request_is_405_with_allow() {
    let app = spawn_with(Options::default()).await;
    let answer = preflight(&app, "/v1/me/phone-number", ALLOWED).await;
    answer.assert_problem(405, "method_not_allowed");
    assert_eq!(answer.header("allow"), Some("GET, PUT, DELETE"));
    assert_eq!(answer.header("access-control-allow-origin"), None);
}
