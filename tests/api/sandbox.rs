//! The sandbox answers the shapes AutoShares' API documentation documents.

use std::net::TcpListener;

use autoshares_bff::sandbox::{self, Sandbox, SandboxConfig};
use serde_json::{Value, json};

struct Call {
    status: u16,
    body: Value,
}

async fn call(method: &str, url: &str, headers: &[(&str, &str)]) -> Call {
    let client = awc::Client::default();
    let mut request = client.request(method.parse().unwrap(), url);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send().await.unwrap();
    let bytes = response.body().await.unwrap();
    Call {
        status: response.status().as_u16(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn start() -> (Sandbox, SandboxConfig) {
    let config = SandboxConfig::default();
    let sandbox =
        sandbox::start(TcpListener::bind("127.0.0.1:0").unwrap(), config.clone()).unwrap();
    (sandbox, config)
}

async fn login(sandbox: &Sandbox, config: &SandboxConfig) -> String {
    let answer = call(
        "POST",
        &format!("{}/token", sandbox.base_url()),
        &[
            ("Et-App-Key", &config.app_key),
            ("Username", &config.username),
            ("Password", &config.password),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    answer.body["Token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn token_answers_every_documented_shape() {
    let (sandbox, config) = start();
    let url = format!("{}/token", sandbox.base_url());
    let key = config.app_key.as_str();

    let ok = call(
        "POST",
        &url,
        &[
            ("Et-App-Key", key),
            ("Username", &config.username),
            ("Password", &config.password),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["State"], "Succeeded");
    assert!(ok.body["Token"].as_str().is_some_and(|t| !t.is_empty()));

    let two_factor = call(
        "POST",
        &url,
        &[
            ("Et-App-Key", key),
            ("Username", &config.two_factor_username),
            ("Password", &config.password),
        ],
    )
    .await;
    assert_eq!(two_factor.status, 202);
    assert_eq!(two_factor.body["State"], "Expecting");
    assert_eq!(two_factor.body["Step"], "VerificationCode");
    assert!(two_factor.body["Token"].is_string() && two_factor.body["Reason"].is_string());

    let wrong_password = call(
        "POST",
        &url,
        &[
            ("Et-App-Key", key),
            ("Username", &config.username),
            ("Password", "nope"),
        ],
    )
    .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(
        wrong_password.body,
        json!({"State": "Failed", "Step": "BaseAuthentication", "Reason": "Invalid credentials"})
    );

    let wrong_key = call(
        "POST",
        &url,
        &[
            ("Et-App-Key", "nope"),
            ("Username", &config.username),
            ("Password", &config.password),
        ],
    )
    .await;
    assert!((400..500).contains(&wrong_key.status));
    assert_eq!(
        wrong_key.body,
        json!({"error": "Application key is not defined or does not exist"})
    );
}

#[actix_web::test]
async fn the_phone_endpoints_answer_the_documented_bodies() {
    let (sandbox, config) = start();
    let token = login(&sandbox, &config).await;
    let bearer = format!("Bearer {token}");
    let auth: [(&str, &str); 2] = [("Et-App-Key", &config.app_key), ("Authorization", &bearer)];
    let phone = format!(
        "{}/v1.0/users/1925/subscriptions/settings/phonenumber",
        sandbox.base_url()
    );

    assert_eq!(
        call("GET", &phone, &auth).await.status,
        404,
        "no number yet"
    );

    let bound = call("PUT", &format!("{phone}?phoneNumber=%2B34635952910"), &auth).await;
    assert_eq!(bound.status, 200);
    let token_id = bound.body["m_Item2"].as_i64().expect("an integer token id");
    assert_eq!(
        bound.body["m_Item1"],
        json!({"PhoneNumber": "+34635952910", "PhoneNumberState": "NotVerified"})
    );

    let code = sandbox.last_code("+34635952910").unwrap();
    let sms = call(
        "GET",
        &format!(
            "http://{}/sandbox/sms?phoneNumber=%2B34635952910",
            sandbox.addr()
        ),
        &[],
    )
    .await;
    assert_eq!(
        sms.body,
        json!({"phoneNumber": "+34635952910", "code": code})
    );

    let complete = format!("{phone}/token/{token_id}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        call("PUT", &format!("{complete}?tokenValue={wrong}"), &auth)
            .await
            .status,
        422
    );
    let done = call("PUT", &format!("{complete}?tokenValue={code}"), &auth).await;
    assert_eq!(done.status, 200);
    assert_eq!(
        done.body,
        json!({"PhoneNumber": "+34635952910", "PhoneNumberState": "Active"})
    );

    let read = call("GET", &phone, &auth).await;
    assert_eq!(
        read.body,
        json!({"PhoneNumber": "+34635952910", "PhoneNumberState": "Active"})
    );
    assert_eq!(call("DELETE", &phone, &auth).await.status, 204);
    assert_eq!(call("GET", &phone, &auth).await.status, 404);
}

#[actix_web::test]
async fn the_sandbox_checks_credentials_and_decodes_a_bare_plus_as_a_space() {
    let (sandbox, config) = start();
    let token = login(&sandbox, &config).await;
    let bearer = format!("Bearer {token}");
    let phone = format!(
        "{}/v1.0/users/1925/subscriptions/settings/phonenumber",
        sandbox.base_url()
    );

    let bare_plus = call(
        "PUT",
        &format!("{phone}?phoneNumber=+34635952910"),
        &[("Et-App-Key", &config.app_key), ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(bare_plus.status, 422, "+ arrives as a space");

    let no_token = call("GET", &phone, &[("Et-App-Key", &config.app_key)]).await;
    assert_eq!(no_token.status, 401);
    let bad_key = call(
        "GET",
        &phone,
        &[("Et-App-Key", "nope"), ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(bad_key.status, 403);
    let unknown_user = format!(
        "{}/v1.0/users/77/subscriptions/settings/phonenumber",
        sandbox.base_url()
    );
    assert_eq!(
        call(
            "GET",
            &unknown_user,
            &[("Et-App-Key", &config.app_key), ("Authorization", &bearer)]
        )
        .await
        .status,
        404
    );

    sandbox.revoke_tokens();
    assert_eq!(
        call(
            "GET",
            &phone,
            &[("Et-App-Key", &config.app_key), ("Authorization", &bearer)]
        )
        .await
        .status,
        401,
        "a revoked token"
    );
}
