//! The client address behind the ingress (docs/operations.md "The client's address behind the ingress") and the per-client bind quota
//! it keys (`rate_limit.bind_per_client`), over real HTTP.

use crate::helpers::{
    Answer, Options, TestApp, audit_events, random_key_base64, redis_options, redis_url, spawn_with,
};

/// A bind by its own user (so only the per-client quota is shared), sent with `headers`.
async fn bind_from(app: &TestApp, n: usize, headers: &[(&str, &str)]) -> Answer {
    let caller = app.caller(&format!("sub-{n}"));
    let url = format!("{}/v1/me/phone-number", app.public);
    let body = format!(r#"{{"phoneNumber": "+1310890{:04}"}}"#, 4000 + n);
    app.send("PUT", &url, Some(&caller.jwt), Some(&body), headers)
        .await
}

/// Links users `sub-0`… to the sandbox's users.
async fn link_users(app: &TestApp, count: usize) {
    for n in 0..count {
        app.linked_caller(&format!("sub-{n}"), 1001 + n as i64 % 10)
            .await;
    }
}

fn refused_by_client_quota(answer: &Answer) {
    answer.assert_problem(429, "rate_limited");
    let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 0, "Retry-After: {wait}");
}

#[actix_web::test]
async fn without_a_trusted_proxy_a_forged_x_forwarded_for_does_not_escape_the_quota() {
    let app = spawn_with(Options::default().with("rate_limit.bind_per_client", "3/hour")).await;
    link_users(&app, 4).await;
    for n in 0..3 {
        let forged = format!("198.51.100.{n}");
        let answer = bind_from(&app, n, &[("X-Forwarded-For", &forged)]).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    let forged = bind_from(
        &app,
        3,
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "for=203.0.113.9"),
        ],
    )
    .await;
    refused_by_client_quota(&forged);
    assert_eq!(
        app.sandbox().count("PUT", "/phonenumber"),
        3,
        "AutoShares saw the three admitted binds only"
    );
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_quota_and_a_slash_64_is_one_client() {
    let app = spawn_with(
        Options::default()
            .with("rate_limit.bind_per_client", "2/hour")
            .with("server.trusted_proxies", "127.0.0.0/8, ::1/128"),
    )
    .await;
    link_users(&app, 10).await;
    let a = [("X-Forwarded-For", "198.51.100.7")];
    let b = [("X-Forwarded-For", "1.2.3.4, 198.51.100.8")];
    assert_eq!(bind_from(&app, 0, &a).await.status, 200);
    assert_eq!(bind_from(&app, 1, &a).await.status, 200);
    refused_by_client_quota(&bind_from(&app, 2, &a).await);
    assert_eq!(
        bind_from(&app, 3, &b).await.status,
        200,
        "another client, whatever it forged to its left"
    );

    let first = [("X-Forwarded-For", "[2001:db8:1:2::1]:4711")];
    let same_64 = [("X-Forwarded-For", "2001:db8:1:2:ffff:ffff:ffff:ffff")];
    let next_64 = [("X-Forwarded-For", "2001:db8:1:3::1")];
    assert_eq!(bind_from(&app, 4, &first).await.status, 200);
    assert_eq!(bind_from(&app, 5, &same_64).await.status, 200);
    refused_by_client_quota(&bind_from(&app, 6, &same_64).await);
    assert_eq!(bind_from(&app, 7, &next_64).await.status, 200);
    assert_eq!(app.sandbox().count("PUT", "/phonenumber"), 6);
}

#[actix_web::test]
async fn a_bind_refused_by_the_client_quota_takes_nothing_from_the_user_quota() {
    let app = spawn_with(
        Options::default()
            .with("rate_limit.bind_per_client", "1/hour")
            .with("rate_limit.bind_per_user", "5/hour"),
    )
    .await;
    link_users(&app, 2).await;
    assert_eq!(bind_from(&app, 0, &[]).await.status, 200);
    let refused = bind_from(&app, 1, &[]).await;
    refused_by_client_quota(&refused);
    assert_eq!(
        refused.header("ratelimit"),
        Some(r#""bind_per_user";r=5;t=0"#),
        "the user's own quota is untouched"
    );
}

#[actix_web::test]
async fn on_two_instances_sharing_redis_the_per_client_quota_is_one_quota() {
    let Some(url) = redis_url() else { return };
    let shared = redis_options(&url)
        .with("verification.token_secret", random_key_base64())
        .with("rate_limit.bind_per_client", "2/hour")
        .with("server.trusted_proxies", "127.0.0.1");
    let one = spawn_with(shared.same_settings()).await;
    let two = spawn_with(shared.same_settings()).await;
    link_users(&one, 3).await;
    link_users(&two, 3).await;
    let client = [("X-Forwarded-For", "198.51.100.77")];
    assert_eq!(bind_from(&one, 0, &client).await.status, 200);
    assert_eq!(bind_from(&two, 1, &client).await.status, 200);
    refused_by_client_quota(&bind_from(&one, 2, &client).await);
    refused_by_client_quota(&bind_from(&two, 2, &client).await);
}

#[actix_web::test]
async fn the_client_address_is_never_a_metric_label() {
    let app = spawn_with(Options::default().with("server.trusted_proxies", "127.0.0.1")).await;
    link_users(&app, 1).await;
    let answer = bind_from(&app, 0, &[("X-Forwarded-For", "198.51.100.123")]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let metrics = app.admin_get("/metrics", None).await.text;
    assert!(metrics.contains("bff_http_requests_total"), "{metrics}");
    for needle in [
        "198.51.100.123",
        "127.0.0.1",
        "client_address",
        "198.51.100",
    ] {
        assert!(!metrics.contains(needle), "{needle} in /metrics");
    }
    let events = audit_events(&app, "sub-0", 1).await;
    assert_eq!(
        events[0]["clientAddress"], "198.51.100.123",
        "the audit event names the client behind the proxy"
    );
}

/// A bind by `sub-{n}` written byte by byte, so that a header may come in several lines
/// and carry bytes that are not ASCII; answers the status.
async fn raw_bind(app: &TestApp, n: usize, lines: &[(&str, &[u8])]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let caller = app.caller(&format!("sub-{n}"));
    let body = format!(r#"{{"phoneNumber": "+1310890{:04}"}}"#, 4000 + n);
    let host = app.public.trim_start_matches("http://");
    let mut request = format!(
        "PUT /v1/me/phone-number HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        caller.jwt,
        body.len()
    )
    .into_bytes();
    for (name, value) in lines {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body.as_bytes());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let status = String::from_utf8_lossy(&answer[9..12]).into_owned();
    status.parse().unwrap()
}

#[actix_web::test]
async fn only_the_configured_forwarding_header_names_the_client() {
    let xff = "X-Forwarded-For";
    let fwd = "Forwarded";
    for (setting, believed, ignored) in [
        (
            "x-forwarded-for",
            (xff, "198.51.100.21"),
            (fwd, "for=203.0.113.1"),
        ),
        (
            "forwarded",
            (fwd, "for=198.51.100.21"),
            (xff, "203.0.113.1"),
        ),
    ] {
        let app = spawn_with(
            Options::default()
                .with("rate_limit.bind_per_client", "1/hour")
                .with("server.trusted_proxies", "127.0.0.0/8")
                .with("server.client_address_header", setting),
        )
        .await;
        link_users(&app, 3).await;
        let answer = bind_from(&app, 0, &[believed, ignored]).await;
        assert_eq!(answer.status, 200, "{setting}: {}", answer.text);
        let events = audit_events(&app, "sub-0", 1).await;
        assert_eq!(events[0]["clientAddress"], "198.51.100.21", "{setting}");
        // The same client, whatever it writes in the other header.
        let forged = (
            ignored.0,
            if ignored.0 == fwd {
                "for=203.0.113.2"
            } else {
                "203.0.113.2"
            },
        );
        refused_by_client_quota(&bind_from(&app, 1, &[believed, forged]).await);
        // The other header alone names nobody: the client is the proxy.
        assert_eq!(
            bind_from(&app, 2, &[ignored]).await.status,
            200,
            "{setting}"
        );
        let events = audit_events(&app, "sub-2", 1).await;
        assert_eq!(
            events[0]["clientAddress"], "127.0.0.1",
            "{setting}: the other header"
        );
    }
}

#[actix_web::test]
async fn every_line_counts_and_a_line_that_is_not_ascii_ends_the_walk() {
    let app = spawn_with(Options::default().with("server.trusted_proxies", "127.0.0.0/8")).await;
    link_users(&app, 2).await;
    let lines: &[(&str, &[u8])] = &[
        ("X-Forwarded-For", b"203.0.113.9"),
        ("X-Forwarded-For", b"198.51.100.31"),
    ];
    assert_eq!(raw_bind(&app, 0, lines).await, 200);
    let events = audit_events(&app, "sub-0", 1).await;
    assert_eq!(
        events[0]["clientAddress"], "198.51.100.31",
        "the last line's address"
    );

    // A line with a byte of 0x80 or more, last: the walk ends at the peer, not one line
    // further left (a line read as absent would let the one before it speak).
    let lines: &[(&str, &[u8])] = &[
        ("X-Forwarded-For", b"198.51.100.32"),
        ("X-Forwarded-For", b"203.0.113.\xe9"),
    ];
    assert_eq!(raw_bind(&app, 1, lines).await, 200);
    let events = audit_events(&app, "sub-1", 1).await;
    assert_eq!(events[0]["clientAddress"], "127.0.0.1");
}
