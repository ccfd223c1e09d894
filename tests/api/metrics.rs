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
    // Long enough never to turn up inside a metric's value by chance, as 4242 once did.
    let user = 7_340_042_917;
    let caller = app.linked_caller("subject-metrics-77", user).await;

    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(429, "rate_limited");
    app.get_with_bearer(Some("garbage"))
        .await
        .assert_problem(401, "unauthenticated");
    // Each resource names its own route, its 405s included; a path of none is `unmatched`.
    for (path, status) in [
        ("/v1/me/phone-number/verification", 405),
        ("/openapi.json", 200),
        ("/v1/me/elsewhere", 404),
    ] {
        let url = format!("{}{path}", app.public);
        let answer = app.send("GET", &url, None, None, &[]).await;
        assert_eq!(answer.status, status, "{path}");
    }

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
        r#"bff_http_requests_total{route="/v1/me/phone-number/verification",status="405"} 1"#,
        r#"bff_http_requests_total{route="/openapi.json",status="200"} 1"#,
        r#"bff_http_requests_total{route="unmatched",status="404"} 1"#,
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
        &user.to_string(),
        "scripted-token",
        &caller.jwt,
        "garbage",
    ] {
        assert!(!text.contains(private), "{private} appears in /metrics");
    }
}

/// The sample names `/metrics` can hold, from its `# TYPE` lines: a counter's `_total`, a
/// histogram's own name and its `_bucket`, `_sum` and `_count`, a gauge's own name.
fn exported_names(exposition: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["", "_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Every `bff_…` name in `text`.
fn used_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("bff_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[actix_web::test]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    let app = crate::helpers::spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let bound = app.bind(&caller, "+13108904569").await;
    assert_eq!(bound.status, 200);
    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app.sandbox().last_code("+13108904569").unwrap();
    assert_eq!(app.complete(&caller, &token, &code).await.status, 200);
    let exported = exported_names(&app.admin_get("/metrics", None).await.text);
    assert!(exported.contains("bff_http_requests_total"), "{exported:?}");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for file in ["helm/files/alerts.yaml", "helm/files/dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let used = used_names(&text);
        assert!(used.len() > 5, "{file} names metrics");
        for name in used {
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which /metrics lacks"
            );
        }
    }
}
