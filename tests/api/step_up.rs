//! Step-up on bind and unbind (docs/api.md "Step-up", RFC 9470).

use serde_json::json;

use crate::helpers::{AUDIENCE, ISSUER, Options, TestApp, now, spawn_with};

const CHALLENGE: &str = r#"Bearer error="insufficient_user_authentication", error_description="A more recent or stronger login is required", max_age=300, acr_values="mfa hwk""#;

async fn app() -> TestApp {
    spawn_with(
        Options::default()
            .with("auth.bind_max_age_s", "300")
            .with("auth.bind_acr_values", "mfa,hwk"),
    )
    .await
}

/// A JWT whose login is `auth_age` seconds old (negative: in the future).
fn token(app: &TestApp, subject: &str, auth_age: Option<i64>, acr: Option<&str>) -> String {
    let mut claims = json!({"sub": subject, "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 600});
    if let Some(age) = auth_age {
        claims["auth_time"] = json!(now() as i64 - age);
    }
    if let Some(acr) = acr {
        claims["acr"] = json!(acr);
    }
    app.jwt(claims)
}

#[actix_web::test]
async fn an_old_missing_or_weak_login_is_401_step_up_required_on_bind_and_unbind() {
    let app = app().await;
    app.linked_caller("sub-1", 1001).await;
    let url = format!("{}/v1/me/phone-number", app.public);
    let body = r#"{"phoneNumber":"+13108904569"}"#;
    let cases = [
        (Some(1000), Some("mfa"), "a login 1000 s old"),
        (None, Some("mfa"), "no auth_time"),
        (Some(10), Some("pwd"), "an acr not allowed"),
        (Some(10), None, "no acr"),
        (Some(-3600), Some("mfa"), "a login an hour in the future"),
    ];
    for (age, acr, what) in cases {
        let jwt = token(&app, "sub-1", age, acr);
        for (method, body) in [("PUT", Some(body)), ("DELETE", None)] {
            let answer = app.send(method, &url, Some(&jwt), body, &[]).await;
            answer.assert_problem(401, "step_up_required");
            assert_eq!(
                answer.header("www-authenticate"),
                Some(CHALLENGE),
                "{method}, {what}"
            );
        }
    }
    assert_eq!(app.sandbox().binds(), 0, "nothing reached AutoShares");

    // Step-up comes before the link: an unlinked caller with an old login hears 401.
    let unlinked = token(&app, "sub-unlinked", Some(1000), Some("mfa"));
    app.send("PUT", &url, Some(&unlinked), Some(body), &[])
        .await
        .assert_problem(401, "step_up_required");
}

#[actix_web::test]
async fn a_fresh_strong_login_binds_and_completion_and_read_need_no_step_up() {
    let app = app().await;
    app.linked_caller("sub-1", 1001).await;
    let fresh = crate::helpers::Caller {
        subject: "sub-1".into(),
        jwt: token(&app, "sub-1", Some(5), Some("hwk")),
    };
    let old = crate::helpers::Caller {
        subject: "sub-1".into(),
        jwt: token(&app, "sub-1", Some(5000), None),
    };
    let bound = app.bind(&fresh, "+13108904569").await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app.sandbox().last_code("+13108904569").unwrap();
    let completed = app.complete(&old, &token, &code).await;
    assert_eq!(completed.status, 200, "{}", completed.text);
    assert_eq!(app.get_phone_number(&old).await.status, 200);
    assert_eq!(app.delete_phone_number(&fresh).await.status, 204);
}
