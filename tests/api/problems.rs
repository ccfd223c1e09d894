use crate::helpers::spawn_app;

#[actix_web::test]
async fn bodies_that_are_not_the_routes_json_are_problems() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let url = format!("{}/v1/me/phone-number", app.public);
    let big = format!(
        r#"{{"phoneNumber":"+13108904569","x":"{}"}}"#,
        "a".repeat(17 * 1024)
    );
    let json_type: &[(&str, &str)] = &[];
    let plain_text: &[(&str, &str)] = &[("Content-Type", "text/plain")];
    let cases = [
        (
            "{not json",
            json_type,
            400,
            "malformed_request",
            "broken JSON",
        ),
        (
            r#"{"phone":"+13108904569"}"#,
            json_type,
            400,
            "malformed_request",
            "wrong field",
        ),
        (
            r#"{"phoneNumber":13108904569}"#,
            json_type,
            400,
            "malformed_request",
            "a number",
        ),
        (
            r#"{"phoneNumber":"+13108904569","extra":1}"#,
            json_type,
            400,
            "malformed_request",
            "unknown field",
        ),
        (&big, json_type, 413, "payload_too_large", "over 16 KiB"),
        (
            r#"{"phoneNumber":"+13108904569"}"#,
            plain_text,
            415,
            "unsupported_media_type",
            "text/plain",
        ),
    ];
    for (body, headers, status, code, what) in cases {
        let answer = app
            .send("PUT", &url, Some(&caller.jwt), Some(body), headers)
            .await;
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        answer.assert_problem(status, code);
    }
    assert_eq!(app.sandbox().binds(), 0);
}

#[actix_web::test]
async fn a_body_without_a_content_type_is_415() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let mut response = app
        .client
        .put(format!("{}/v1/me/phone-number", app.public))
        .insert_header(("Authorization", format!("Bearer {}", caller.jwt)))
        .send_body(r#"{"phoneNumber":"+13108904569"}"#)
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_media_type");
}

#[actix_web::test]
async fn request_ids_are_echoed_when_acceptable_and_minted_otherwise() {
    let app = spawn_app().await;
    let url = format!("{}/v1/me/phone-number", app.public);
    let long = "a".repeat(129);
    let cases = [
        ("caller-id_1.2:3", true, "acceptable"),
        ("has space", false, "a space"),
        (long.as_str(), false, "129 characters"),
    ];
    for (sent, echoed, what) in cases {
        let answer = app
            .send("GET", &url, None, None, &[("X-Request-Id", sent)])
            .await;
        let got = answer.header("x-request-id").unwrap();
        assert_eq!(got == sent, echoed, "{what}: {got}");
        assert!(!got.is_empty() && got.len() <= 128, "{what}");
        assert_eq!(answer.json()["requestId"], got, "{what}");
    }
    let minted = app.send("GET", &url, None, None, &[]).await;
    assert!(
        minted
            .header("x-request-id")
            .is_some_and(|id| id.len() == 32)
    );
}

#[actix_web::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let caller = app.caller("sub-1");
    let unknown = app
        .send(
            "GET",
            &format!("{}/v1/nothing", app.public),
            None,
            None,
            &[],
        )
        .await;
    unknown.assert_problem(404, "not_found");
    let patch = app
        .send(
            "PATCH",
            &format!("{}/v1/me/phone-number", app.public),
            Some(&caller.jwt),
            None,
            &[],
        )
        .await;
    patch.assert_problem(405, "method_not_allowed");
}

#[actix_web::test]
async fn a_method_a_path_does_not_take_is_405_with_the_methods_it_does() {
    let app = spawn_app().await;
    let caller = app.caller("sub-1");
    let cases = [
        ("PATCH", "/v1/me/phone-number", "GET, PUT, DELETE"),
        ("POST", "/v1/me/phone-number", "GET, PUT, DELETE"),
        ("OPTIONS", "/v1/me/phone-number", "GET, PUT, DELETE"),
        ("GET", "/v1/me/phone-number/verification", "POST"),
        ("DELETE", "/openapi.json", "GET"),
    ];
    for (method, path, allow) in cases {
        let url = format!("{}{path}", app.public);
        let answer = app.send(method, &url, Some(&caller.jwt), None, &[]).await;
        answer.assert_problem(405, "method_not_allowed");
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
    }
    let url = format!("{}/admin/v1/abuse", app.admin);
    let token = Some(crate::helpers::ADMIN_TOKEN);
    let answer = app.send("POST", &url, token, None, &[]).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("GET"));
}

#[actix_web::test]
async fn json_that_is_not_an_object_is_400_malformed_request() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for body in [r#"["+13108904569"]"#, "42", r#""+13108904569""#, "null"] {
        app.put_phone_number(&caller, body)
            .await
            .assert_problem(400, "malformed_request");
        let url = format!("{}/v1/me/phone-number/verification", app.public);
        app.send("POST", &url, Some(&caller.jwt), Some(body), &[])
            .await
            .assert_problem(400, "malformed_request");
    }
    assert_eq!(app.sandbox().binds(), 0, "nothing reached AutoShares");
}

#[actix_web::test]
async fn a_caller_dripping_its_body_gets_408_within_request_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = crate::helpers::spawn_with(
        crate::helpers::Options::default().with("server.request_timeout_ms", "1000"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let socket = tokio::net::TcpStream::connect(app.public.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut reader, mut writer) = socket.into_split();
    let head = format!(
        "PUT /v1/me/phone-number HTTP/1.1\r\nHost: bff\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        caller.jwt
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // One body byte every 300 ms: the whole body would take 30 s.
    let drip = actix_web::rt::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    drip.abort();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.sandbox().binds(), 0);
}
