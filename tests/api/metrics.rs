use crate::helpers::{Options, Reply, Scripted, spawn_with};

#[actix_web::test]
async fn metrics_cover_a_scenario_without_personal_data() {
    let fake = Scripted::start(Scripted::good_login, |_, _| {
        Reply::bound("+13108904569", 1925)
    });
    let app = spawn_with(
        Options::default()
            .upstream(&fake.base_url)
            .with("rate_limit.bind_per_user", "1/hour"),
    )
    .await;
    let caller = app.linked_caller("subject-metrics-77", 4242).await;

    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(429, "rate_limited");
    app.get_with_bearer(Some("garbage"))
        .await
        .assert_problem(401, "unauthenticated");

    let answer = app.admin_get("/metrics", None).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = answer.text;
    for family in [
        r#"bff_http_requests_total{route="/v1/me/phone-number",status="200"} 1"#,
        r#"bff_http_requests_total{route="/v1/me/phone-number",status="429"} 1"#,
        r#"bff_http_requests_total{route="/v1/me/phone-number",status="401"} 1"#,
        "bff_http_request_duration_seconds_bucket",
        r#"bff_upstream_requests_total{endpoint="bind",status="200"} 1"#,
        r#"bff_upstream_requests_total{endpoint="token",status="200"} 1"#,
        "bff_upstream_request_duration_seconds_count",
        r#"bff_rate_limit_rejections_total{limit="bind_per_user"} 1"#,
        r#"bff_upstream_logins_total{outcome="succeeded"} 1"#,
        r#"bff_link_cache_lookups_total{outcome="miss"} 1"#,
        r#"bff_link_cache_lookups_total{outcome="hit"} 1"#,
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    for private in [
        "3108904569",
        "subject-metrics-77",
        "4242",
        "scripted-token",
        &caller.jwt,
        "garbage",
    ] {
        assert!(!text.contains(private), "{private} appears in /metrics");
    }
}
