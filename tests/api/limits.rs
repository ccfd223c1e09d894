use crate::helpers::{Options, spawn_with};

#[actix_web::test]
async fn the_bind_after_a_users_quota_is_429_and_never_reaches_autoshares() {
    let app = spawn_with(Options::default().with("rate_limit.bind_per_user", "3/hour")).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let other = app.linked_caller("sub-2", 1002).await;

    for i in 0..3 {
        let answer = app.bind(&caller, &format!("+1310890456{i}")).await;
        assert_eq!(answer.status, 200, "bind {i}: {}", answer.text);
    }
    let refused = app.bind(&caller, "+13108904569").await;
    refused.assert_problem(429, "rate_limited");
    let retry_after: u64 = refused
        .header("retry-after")
        .unwrap()
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=1200).contains(&retry_after),
        "one unit refills in 20 min: {retry_after}"
    );

    assert_eq!(
        app.bind(&other, "+13108904569").await.status,
        200,
        "another user is unaffected"
    );
    assert_eq!(
        app.sandbox().binds(),
        4,
        "exactly 3 + 1 binds reached AutoShares"
    );
}

#[actix_web::test]
async fn a_number_has_its_own_quota_across_users() {
    let app = spawn_with(Options::default().with("rate_limit.bind_per_phone", "2/day")).await;
    let callers = [
        app.linked_caller("sub-1", 1001).await,
        app.linked_caller("sub-2", 1002).await,
        app.linked_caller("sub-3", 1003).await,
    ];
    assert_eq!(app.bind(&callers[0], "+13108904569").await.status, 200);
    assert_eq!(
        app.bind(&callers[1], "+1 310 890 4569").await.status,
        200,
        "same number, formatted"
    );
    let refused = app.bind(&callers[2], "+13108904569").await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        app.bind(&callers[2], "+13108904568").await.status,
        200,
        "another number"
    );
    assert_eq!(app.sandbox().binds(), 3);
}

#[actix_web::test]
async fn invalid_input_does_not_count_against_a_quota() {
    let app = spawn_with(Options::default().with("rate_limit.bind_per_user", "1/hour")).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for _ in 0..3 {
        app.bind(&caller, "+1800")
            .await
            .assert_problem(422, "invalid_phone_number");
    }
    assert_eq!(app.bind(&caller, "+13108904569").await.status, 200);
}
