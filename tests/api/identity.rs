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
        answer.assert_problem(403, "user_not_linked");
        let _ = what;
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

#[actix_web::test]
async fn database_mapping_works_on_sqlite() {
    let app = spawn_with(Options::default().database(TestDatabase::sqlite().await)).await;
    let caller = app.linked_caller("sub-sqlite", 1005).await;
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    assert!(
        app.sandbox()
            .last_request()
            .unwrap()
            .path
            .contains("/users/1005/")
    );
}

#[actix_web::test]
async fn database_mapping_works_on_postgres() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let app = spawn_with(Options::default().database(database)).await;
    let caller = app.linked_caller("sub-pg", 1006).await;
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
    assert!(
        app.sandbox()
            .last_request()
            .unwrap()
            .path
            .contains("/users/1006/")
    );
}
