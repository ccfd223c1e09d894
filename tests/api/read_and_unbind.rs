use serde_json::json;

use crate::helpers::{Options, Reply, Scripted, spawn_app, spawn_with};

#[actix_web::test]
async fn the_whole_lifecycle_against_the_sandbox() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;

    app.get_phone_number(&caller)
        .await
        .assert_problem(404, "no_phone_number");
    let bound = app.bind(&caller, "+34 635 95 29 10").await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = app.get_phone_number(&caller).await;
    assert_eq!(
        pending.json(),
        json!({"phoneNumber": "+34635952910", "state": "NotVerified"})
    );

    let code = app.sandbox().last_code("+34635952910").unwrap();
    assert_eq!(app.complete(&caller, &token, &code).await.status, 200);
    let active = app.get_phone_number(&caller).await;
    assert_eq!(active.status, 200);
    assert_eq!(
        active.json(),
        json!({"phoneNumber": "+34635952910", "state": "Active"})
    );

    let deleted = app.delete_phone_number(&caller).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.text.is_empty());
    app.get_phone_number(&caller)
        .await
        .assert_problem(404, "no_phone_number");
}

#[actix_web::test]
async fn a_200_without_a_number_is_404() {
    let cases = [
        json!({"PhoneNumber": null, "PhoneNumberState": null}),
        json!({"PhoneNumber": "", "PhoneNumberState": "NotVerified"}),
        json!({}),
    ];
    for body in cases {
        let reply = Reply::json(200, body.clone());
        let fake = Scripted::start(Scripted::good_login, move |_, _| reply.clone());
        let app = spawn_with(Options::default().upstream(&fake.base_url)).await;
        let caller = app.linked_caller("sub-1", 42).await;
        let answer = app.get_phone_number(&caller).await;
        assert_eq!(answer.status, 404, "{body}: {}", answer.text);
        answer.assert_problem(404, "no_phone_number");
    }
}
