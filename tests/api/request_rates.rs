//! Request rates on every `/v1` route (docs/api.md "Rate limits"): per AutoShares user after
//! the link, per client address before the token is read; 429 `too_many_requests` with
//! `Retry-After`, and nothing taken from the bind quotas.

use crate::helpers::{Answer, Options, spawn_with};

fn too_many(answer: &Answer, what: &str) {
    answer.assert_problem(429, "too_many_requests");
    let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{what}: Retry-After {wait}");
}

#[actix_web::test]
async fn every_route_is_held_to_the_users_request_rate_and_a_refused_bind_takes_no_quota() {
    let app = spawn_with(
        Options::default()
            .with("rate_limit.requests_per_user", "4/minute")
            .with("rate_limit.bind_per_user", "5/hour"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let other = app.linked_caller("sub-2", 1002).await;

    let bound = app.bind(&caller, "+13108904569").await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    assert_eq!(app.get_phone_number(&caller).await.status, 200);
    let token = bound.json()["verificationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.complete(&caller, &token, "000000").await.status, 422);
    assert_eq!(app.delete_phone_number(&caller).await.status, 204);
    let calls = app.sandbox().binds();

    too_many(&app.get_phone_number(&caller).await, "read");
    too_many(&app.bind(&caller, "+13108904568").await, "bind");
    too_many(&app.complete(&caller, &token, "000000").await, "completion");
    too_many(&app.delete_phone_number(&caller).await, "unbind");
    assert_eq!(app.sandbox().binds(), calls, "AutoShares saw none of them");

    assert_eq!(
        app.get_phone_number(&other).await.status,
        404,
        "another user has a rate of its own"
    );
    // The refused bind took nothing from the user's bind quota: 4 of 5 are left.
    let answer = app.bind(&other, "+13108904567").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.header("ratelimit"),
        Some(r#""bind_per_user";r=4;t=0"#)
    );
}

#[actix_web::test]
async fn the_client_rate_refuses_before_the_token_is_read() {
    let app = spawn_with(
        Options::default()
            .with("rate_limit.requests_per_client", "3/minute")
            .with("server.trusted_proxies", "127.0.0.0/8"),
    )
    .await;
    let url = format!("{}/v1/me/phone-number", app.public);
    let from = |address: &'static str| [("X-Forwarded-For", address)];
    for _ in 0..3 {
        let answer = app
            .send("GET", &url, Some("not-a-jwt"), None, &from("198.51.100.40"))
            .await;
        answer.assert_problem(401, "unauthenticated");
    }
    let refused = app
        .send("GET", &url, Some("not-a-jwt"), None, &from("198.51.100.40"))
        .await;
    too_many(&refused, "a flood of bad tokens from one address");
    let caller = app.linked_caller("sub-1", 1001).await;
    let refused = app
        .send("GET", &url, Some(&caller.jwt), None, &from("198.51.100.40"))
        .await;
    too_many(&refused, "even with a good token");
    let other = app
        .send("GET", &url, Some(&caller.jwt), None, &from("198.51.100.41"))
        .await;
    assert_eq!(other.status, 404, "another address: {}", other.text);
}
