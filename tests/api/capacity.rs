//! Bursts and the service's own queueing (`upstream.max_connections`, docs/operations.md
//! "The AutoShares client" and docs/configuration.md): a burst against a fast AutoShares all succeeds with the circuit closed, and a call
//! that waited out its time before it was sent is not held against AutoShares.

use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{Options, Reply, Scripted, TestApp, spawn_with};

/// `count` binds at once, each by its own user to its own number; their statuses.
async fn burst(app: &TestApp, count: usize, first: usize) -> Vec<u16> {
    let binds = (first..first + count).map(|n| {
        let caller = app.claim_caller(&format!("sub-{n}"), 1000 + n as i64);
        async move {
            app.bind(&caller, &format!("+1310890{:04}", n % 10_000))
                .await
                .status
        }
    });
    join_all(binds).await
}

fn roomy(fake: &Scripted) -> Options {
    Options::default()
        .upstream(&fake.base_url)
        .with("identity.source", "claim")
        .with("abuse.modes.conversion", "off")
        .with("rate_limit.bind_per_phone", "1000/hour")
}

#[actix_web::test]
async fn six_hundred_concurrent_binds_against_a_fast_autoshares_all_succeed() {
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        Reply::bound("+13108904569", n as i64 + 1)
    });
    let app = spawn_with(roomy(&fake).with("upstream.timeout_ms", "5000")).await;
    let statuses = burst(&app, 600, 0).await;
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of 600 failed: {failed:?}",
        failed.len()
    );
    assert_eq!(fake.phone_calls().len(), 600);
    let metrics = app.admin_get("/metrics", None).await.text;
    assert!(!metrics.contains(r#"status="circuit_open""#), "{metrics}");
}

#[actix_web::test]
async fn a_call_that_timed_out_before_it_was_sent_does_not_count_against_the_circuit() {
    // AutoShares holds every bind longer than the service waits.
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        Reply::bound("+13108904569", n as i64 + 1).after(Duration::from_secs(4))
    });
    let app = spawn_with(
        roomy(&fake)
            .with("upstream.timeout_ms", "3000")
            .with("upstream.max_connections", "1")
            .with("upstream.circuit_failures", "2")
            .with("upstream.circuit_open_s", "60"),
    )
    .await;
    // One bind holds the only connection and times out: one failure. Two more start once
    // AutoShares has it, and wait for the connection (nearly) all their time: one is sent
    // with its time gone, the other never. However late a busy machine starts them, each
    // waits out more than half of its time.
    let holder = burst(&app, 1, 0);
    let waiters = async {
        while fake.phone_calls().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        burst(&app, 2, 1).await
    };
    let (held, waited) = futures_util::future::join(holder, waiters).await;
    assert_eq!((held, waited), (vec![504], vec![504, 504]));
    let metrics = app.admin_get("/metrics", None).await.text;
    assert!(!metrics.contains(r#"status="circuit_open""#), "{metrics}");

    // The circuit is still closed: the next bind is sent (an open circuit answers 503
    // without sending), and times out.
    let next = burst(&app, 1, 3).await;
    assert_eq!(next, [504], "sent, and timed out");
    let metrics = app.admin_get("/metrics", None).await.text;
    assert!(!metrics.contains(r#"status="circuit_open""#), "{metrics}");
}
