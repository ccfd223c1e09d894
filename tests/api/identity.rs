use serde_json::json;

use crate::helpers::{Options, TestDatabase, spawn_app, spawn_with};

#[actix_web::test]
async fn an_unlinked_subject_is_403_and_autoshares_is_not_called() {
    let app = spawn_app().await;
    let caller = app.caller("nobody");
    app.bind(&caller, "+13108904569")
        .await
        .assert_problem(403, "user_not_linked");
    app.get_phone_number(&caller)
        .await
        .assert_problem(403, "user_not_linked");
    assert_eq!(app.sandbox().requests().len(), 0);
}

#[actix_web::test]
async fn the_claim_source_reads_the_user_id_from_the_token() {
    let app = spawn_with(Options::default().with("identity.source", "claim")).await;
    let with_claim = |value: serde_json::Value| {
        let mut claims = app.claims("sub-claim");
        claims["autoshares_user_id"] = value;
        crate::helpers::Caller {
            subject: "sub-claim".into(),
            jwt: app.jwt(claims),
        }
    };
    assert_eq!(
        app.bind(&with_claim(json!(1002)), "+13108904569")
            .await
            .status,
        200,
        "a number"
    );
    assert_eq!(
        app.bind(&with_claim(json!("1003")), "+13108904568")
            .await
            .status,
        200,
        "a numeric string"
    );
    let seen: Vec<String> = app
        .sandbox()
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(seen.iter().any(|p| p.contains("/users/1002/")), "{seen:?}");
    assert!(seen.iter().any(|p| p.contains("/users/1003/")), "{seen:?}");
    for (value, what) in [
        (json!(0), "zero"),
        (json!("x1"), "not digits"),
        (json!(null), "null"),
    ] {
        let answer = app.bind(&with_claim(value), "+13108904569").await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.text);
        answer.assert_problem(403, "user_not_linked");
    }
    let without = app.caller("sub-claim");
    app.bind(&without, "+13108904569")
        .await
        .assert_problem(403, "user_not_linked");
}

#[actix_web::test]
async fn a_custom_claim_name_is_honoured() {
    let app = spawn_with(
        Options::default()
            .with("identity.source", "claim")
            .with("identity.claim", "as_uid"),
    )
    .await;
    let mut claims = app.claims("sub-x");
    claims["as_uid"] = json!(1004);
    let caller = crate::helpers::Caller {
        subject: "sub-x".into(),
        jwt: app.jwt(claims),
    };
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
}

/// A link made through the admin API maps the subject on `database`.
async fn database_mapping_works_on(database: TestDatabase, user: i64) {
    let app = spawn_with(Options::default().database(database)).await;
    let caller = app.linked_caller("sub-db", user).await;
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    let path = app.sandbox().last_request().unwrap().path;
    assert!(path.contains(&format!("/users/{user}/")), "{path}");
}

#[actix_web::test]
async fn database_mapping_works_on_sqlite() {
    database_mapping_works_on(TestDatabase::sqlite().await, 1005).await;
}

#[actix_web::test]
async fn database_mapping_works_on_postgres() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    database_mapping_works_on(database, 1006).await;
}
