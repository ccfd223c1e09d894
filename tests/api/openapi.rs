use crate::helpers::spawn_app;

/// Every `code` of docs/api.md "Problems" and "The operations API".
const DOCUMENTED_CODES: &[&str] = &[
    "malformed_request",
    "unauthenticated",
    "user_not_linked",
    "no_phone_number",
    "payload_too_large",
    "unsupported_media_type",
    "invalid_phone_number",
    "phone_number_rejected",
    "invalid_verification_token",
    "verification_token_expired",
    "invalid_code",
    "rate_limited",
    "too_many_attempts",
    "too_many_requests",
    "internal_error",
    "upstream_error",
    "upstream_unavailable",
    "rate_limiter_unavailable",
    "upstream_timeout",
    "link_not_found",
];

#[actix_web::test]
async fn openapi_json_is_valid_openapi_3_naming_every_route_and_code() {
    let app = spawn_app().await;
    let answer = app
        .send(
            "GET",
            &format!("{}/openapi.json", app.public),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));

    let spec = oas3::from_json(&answer.text).expect("a valid OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3."), "{}", spec.openapi);
    let paths = spec.paths.as_ref().expect("paths");
    let phone = &paths["/v1/me/phone-number"];
    assert!(phone.put.is_some() && phone.get.is_some() && phone.delete.is_some());
    assert!(paths["/v1/me/phone-number/verification"].post.is_some());
    assert!(paths["/openapi.json"].get.is_some());

    let body = answer.json();
    let codes: Vec<&str> = body["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("the problem codes are an enum")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in DOCUMENTED_CODES {
        assert!(codes.contains(code), "{code} missing from the spec");
    }
    for schema in [
        "BindRequest",
        "BindResponse",
        "CompleteRequest",
        "PhoneNumberResponse",
        "Problem",
    ] {
        assert!(
            body["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    let bind = &body["paths"]["/v1/me/phone-number"]["put"]["responses"];
    for status in [
        "200", "400", "401", "403", "413", "415", "422", "429", "502", "503", "504",
    ] {
        assert!(bind[status].is_object(), "bind documents {status}");
    }
}

#[actix_web::test]
async fn openapi_json_declares_headers_the_number_form_and_the_link_to_completion() {
    let app = spawn_app().await;
    let url = format!("{}/openapi.json", app.public);
    let doc = app.send("GET", &url, None, None, &[]).await.json();
    let bind = &doc["paths"]["/v1/me/phone-number"]["put"];
    let parameters: Vec<&str> = bind["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(parameters.contains(&"Idempotency-Key") && parameters.contains(&"X-Request-Id"));
    let ok = &bind["responses"]["200"];
    for header in [
        "X-Request-Id",
        "RateLimit",
        "RateLimit-Policy",
        "Idempotency-Replayed",
    ] {
        assert!(
            ok["headers"][header].is_object(),
            "bind 200 declares {header}"
        );
    }
    assert!(bind["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert!(bind["responses"]["409"]["headers"]["Retry-After"].is_object());
    let link = &ok["links"]["CompleteBinding"];
    assert_eq!(link["operationId"], "complete");
    assert_eq!(
        link["requestBody"]["verificationToken"],
        "$response.body#/verificationToken"
    );
    let number = &doc["components"]["schemas"]["BindRequest"]["properties"]["phoneNumber"];
    assert!(number["pattern"].as_str().unwrap().starts_with("^\\+"));
    assert_eq!(
        (number["minLength"].as_u64(), number["maxLength"].as_u64()),
        (Some(7), Some(32))
    );
    let codes = doc["components"]["schemas"]["ProblemCode"]["enum"].to_string();
    for code in [
        "step_up_required",
        "destination_blocked",
        "origin_not_allowed",
        "request_in_progress",
        "idempotency_key_reused",
        "sms_budget_exhausted",
        "request_timeout",
    ] {
        assert!(codes.contains(code), "{code}");
    }
}
