//! Faults over real sockets (issue: survive faults): each answers within a bound, with the
//! contract's problem, and nothing of the fault reaches the caller.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;

use crate::helpers::{Options, RawUpstream, TestApp, spawn_with};

async fn app_on(upstream: &RawUpstream, timeout_ms: &str) -> TestApp {
    spawn_with(
        Options::default()
            .upstream(&upstream.base_url)
            .with("upstream.timeout_ms", timeout_ms),
    )
    .await
}

#[actix_web::test]
async fn autoshares_sending_headers_and_then_nothing_is_504_within_the_timeout() {
    let upstream = RawUpstream::start(|mut stream| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Phone";
        let _ = stream.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let app = app_on(&upstream, "800").await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let started = Instant::now();
    let answer = app.get_phone_number(&caller).await;
    answer.assert_problem(504, "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !answer.text.contains("Phone"),
        "no upstream text: {}",
        answer.text
    );
}

#[actix_web::test]
async fn autoshares_answering_200_with_10_mb_is_502_without_reading_it_all() {
    let upstream = RawUpstream::start(|mut stream| async move {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let app = app_on(&upstream, "5000").await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let started = Instant::now();
    let answer = app.get_phone_number(&caller).await;
    answer.assert_problem(502, "upstream_error");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!answer.text.contains("xxxx"));
}

#[actix_web::test]
async fn autoshares_resetting_the_connection_mid_body_is_a_problem_and_the_next_call_recovers() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&calls);
    let upstream = RawUpstream::start(move |mut stream| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let body = r#"{"PhoneNumber":"+13108904569","PhoneNumberState":"Active"}"#;
            if n == 0 {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"Phone",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.set_zero_linger();
                return;
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    })
    .await;
    let app = app_on(&upstream, "2000").await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let started = Instant::now();
    let cut = app.get_phone_number(&caller).await;
    assert!(matches!(cut.status, 502 | 503), "{}", cut.text);
    let code = cut.json()["code"].as_str().unwrap().to_owned();
    assert!(
        code == "upstream_error" || code == "upstream_unavailable",
        "{code}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let healed = app.get_phone_number(&caller).await;
    assert_eq!(healed.status, 200, "{}", healed.text);
}

#[actix_web::test]
async fn redis_that_takes_connections_and_never_answers_is_503_in_a_second_then_recovers() {
    let Some(url) = crate::helpers::redis_url() else {
        return;
    };
    let target = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = crate::helpers::TcpProxy::start(&target).await;
    let app = spawn_with(
        crate::helpers::redis_options(&url)
            .with("redis.url", format!("redis://127.0.0.1:{}", proxy.port)),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    assert_eq!(app.bind(&caller, "+13108904560").await.status, 200);

    proxy.black_hole().await;
    let started = Instant::now();
    app.bind(&caller, "+13108904561")
        .await
        .assert_problem(503, "rate_limiter_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    crate::helpers::wait_for_status(&app, "/readyz", 503).await;

    proxy.resume().await;
    let mut last = None;
    for _ in 0..50 {
        let answer = app.bind(&caller, "+13108904562").await;
        if answer.status == 200 {
            crate::helpers::wait_for_status(&app, "/readyz", 200).await;
            return;
        }
        last = Some(answer.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("binds never recovered: {last:?}");
}

#[actix_web::test]
async fn postgresql_that_stops_answering_is_bounded_and_the_service_recovers() {
    let Some(database) = crate::helpers::TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let (proxy, through_proxy) = crate::helpers::TcpProxy::postgres(&database.url).await;
    let app = spawn_with(Options::default().with("database.url", through_proxy)).await;
    // Two waves of callers: the second arrives while the first one's link lookups are
    // stuck in flight, and waits for them; each answer is bounded from its own start.
    let mut callers = Vec::new();
    for n in 0..20 {
        callers.push(app.linked_caller(&format!("sub-{n}"), 1001 + n).await);
    }
    let (first, second) = callers.split_at(10);
    let app = &app;
    let timed = |caller| async move {
        let started = Instant::now();
        (app.get_phone_number(caller).await, started.elapsed())
    };

    proxy.black_hole().await;
    let second_wave = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        join_all(second.iter().map(timed)).await
    };
    let (first, second) =
        futures_util::future::join(join_all(first.iter().map(timed)), second_wave).await;
    for (stuck, took) in first.iter().chain(&second) {
        stuck.assert_problem(500, "internal_error");
        assert!(took < &Duration::from_secs(7), "{took:?}");
    }
    crate::helpers::wait_for_status(app, "/readyz", 503).await;

    proxy.resume().await;
    crate::helpers::wait_for_status(app, "/readyz", 200).await;
    for answer in join_all(callers.iter().map(|caller| app.get_phone_number(caller))).await {
        assert_eq!(answer.status, 404, "no number yet: {}", answer.text);
    }
    drop(database);
}
