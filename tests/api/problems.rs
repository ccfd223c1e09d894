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
