use std::time::Duration;

use serde_json::json;

use crate::helpers::{Options, Reply, Scripted, TestApp, spawn_with};

const UPSTREAM_TEXT: &str = "UPSTREAM-SECRET-TEXT-4411";

async fn app_on(fake: &Scripted, extra: Options) -> TestApp {
    spawn_with(extra.upstream(&fake.base_url)).await
}

fn active(n: usize) -> Reply {
    let _ = n;
    Reply::json(
        200,
        json!({"PhoneNumber": "+13108904569", "PhoneNumberState": "Active"}),
    )
}

#[actix_web::test]
async fn a_401_from_a_phone_endpoint_logs_in_once_more_and_retries() {
    let fake = Scripted::start(Scripted::good_login, |n, seen| {
        if n == 0 {
            assert_eq!(
                seen.header("Authorization"),
                Some("Bearer scripted-token-1")
            );
            Reply::json(401, json!({"Message": "expired"}))
        } else {
            assert_eq!(
                seen.header("Authorization"),
                Some("Bearer scripted-token-2")
            );
            active(n)
        }
    });
    let app = app_on(&fake, Options::default()).await;
    let caller = app.linked_caller("sub-1", 42).await;

    let answer = app.get_phone_number(&caller).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json(),
        json!({"phoneNumber": "+13108904569", "state": "Active"})
    );
    assert_eq!(fake.logins(), 2, "one re-login");
    assert_eq!(fake.phone_calls().len(), 2, "one retry");
}

#[actix_web::test]
async fn twenty_concurrent_first_requests_cause_exactly_one_login() {
    let fake = Scripted::start(
        |n| Scripted::good_login(n).after(Duration::from_millis(300)),
        |n, _| active(n),
    );
    let app = app_on(&fake, Options::default()).await;
    let caller = app.linked_caller("sub-1", 42).await;

    let requests = (0..20).map(|_| app.get_phone_number(&caller));
    let answers = futures_util::future::join_all(requests).await;

    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(fake.logins(), 1);
}

#[actix_web::test]
async fn autoshares_faults_map_to_their_problems_without_upstream_text() {
    let cases: Vec<(Reply, u16, &str, &str)> = vec![
        (
            Reply::raw(500, UPSTREAM_TEXT),
            502,
            "upstream_error",
            "a 500",
        ),
        (
            Reply::raw(503, UPSTREAM_TEXT),
            502,
            "upstream_error",
            "a 503",
        ),
        (
            Reply::raw(200, &format!("<html>{UPSTREAM_TEXT}")),
            502,
            "upstream_error",
            "garbage",
        ),
        (
            Reply::json(
                200,
                json!({"PhoneNumber": 5, "PhoneNumberState": UPSTREAM_TEXT}),
            ),
            502,
            "upstream_error",
            "wrong types",
        ),
        (
            Reply::json(403, json!({"error": UPSTREAM_TEXT})),
            503,
            "upstream_unavailable",
            "app key refused",
        ),
        (
            Reply::raw(200, UPSTREAM_TEXT).after(Duration::from_millis(1500)),
            504,
            "upstream_timeout",
            "too slow",
        ),
    ];
    for (reply, status, code, what) in cases {
        let fake = Scripted::start(Scripted::good_login, move |_, _| reply.clone());
        let app = app_on(&fake, Options::default().with("upstream.timeout_ms", "500")).await;
        let caller = app.linked_caller("sub-1", 42).await;
        let answer = app.get_phone_number(&caller).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        answer.assert_problem(status, code);
        assert!(
            !answer.text.contains(UPSTREAM_TEXT),
            "{what}: upstream text leaked"
        );
    }
}

#[actix_web::test]
async fn a_slow_login_counts_against_the_same_deadline() {
    let fake = Scripted::start(
        |n| Scripted::good_login(n).after(Duration::from_millis(400)),
        |_, _| {
            Reply::json(
                200,
                json!({"PhoneNumber": "+13108904569", "PhoneNumberState": "Active"}),
            )
            .after(Duration::from_millis(400))
        },
    );
    let app = app_on(&fake, Options::default().with("upstream.timeout_ms", "600")).await;
    let caller = app.linked_caller("sub-1", 42).await;
    app.get_phone_number(&caller)
        .await
        .assert_problem(504, "upstream_timeout");
}

#[actix_web::test]
async fn a_refused_connection_is_503() {
    let closed = crate::common::ClosedPort::new();
    let app =
        spawn_with(Options::default().upstream(&format!("http://{}/api", closed.addr()))).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    app.get_phone_number(&caller)
        .await
        .assert_problem(503, "upstream_unavailable");
}

#[actix_web::test]
async fn a_refused_login_is_503_and_never_reaches_the_phone_endpoint() {
    let cases = [
        (
            Reply::json(
                401,
                json!({"State": "Failed", "Step": "BaseAuthentication", "Reason": "Invalid credentials"}),
            ),
            "bad password",
        ),
        (
            Reply::json(
                202,
                json!({"State": "Expecting", "Step": "VerificationCode", "Reason": "2FA", "Token": "interim"}),
            ),
            "two-factor",
        ),
        (
            Reply::json(
                400,
                json!({"error": "Application key is not defined or does not exist"}),
            ),
            "bad app key",
        ),
    ];
    for (reply, what) in cases {
        let fake = Scripted::start(move |_| reply.clone(), |_, _| Reply::raw(200, "{}"));
        let app = app_on(&fake, Options::default()).await;
        let caller = app.linked_caller("sub-1", 42).await;
        app.get_phone_number(&caller)
            .await
            .assert_problem(503, "upstream_unavailable");
        assert_eq!(fake.phone_calls().len(), 0, "{what}");
    }
}

#[actix_web::test]
async fn after_circuit_failures_the_next_call_is_503_without_reaching_autoshares() {
    let fake = Scripted::start(Scripted::good_login, |_, _| Reply::raw(500, UPSTREAM_TEXT));
    let app = app_on(
        &fake,
        Options::default()
            .with("upstream.circuit_failures", "3")
            .with("upstream.circuit_open_s", "60"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 42).await;

    for i in 0..3 {
        app.get_phone_number(&caller)
            .await
            .assert_problem(502, "upstream_error");
        assert_eq!(fake.phone_calls().len(), i + 1);
    }
    let open = app.get_phone_number(&caller).await;
    open.assert_problem(503, "upstream_unavailable");
    assert!(!open.text.contains(UPSTREAM_TEXT));
    assert_eq!(fake.phone_calls().len(), 3, "the open circuit sent nothing");
}

/// With circuit_failures = 1 and circuit_open_s = 1 and an AutoShares whose first phone
/// call fails: the failure opens the circuit, the next call is refused unsent, and after
/// the open period the next call will be the trial.
async fn open_circuit_until_its_trial(app: &TestApp, caller: &crate::helpers::Caller) {
    app.get_phone_number(caller)
        .await
        .assert_problem(502, "upstream_error");
    app.get_phone_number(caller)
        .await
        .assert_problem(503, "upstream_unavailable");
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[actix_web::test]
async fn the_circuit_closes_after_a_good_trial_call() {
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        if n == 0 {
            Reply::raw(500, "down")
        } else {
            active(n)
        }
    });
    let app = app_on(
        &fake,
        Options::default()
            .with("upstream.circuit_failures", "1")
            .with("upstream.circuit_open_s", "1"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 42).await;
    open_circuit_until_its_trial(&app, &caller).await;
    assert_eq!(
        app.get_phone_number(&caller).await.status,
        200,
        "the trial call"
    );
    assert_eq!(
        app.get_phone_number(&caller).await.status,
        200,
        "closed again"
    );
}

/// Answers every connection with a 200 that promises more body than it sends, then closes.
async fn truncating_autoshares() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_web::rt::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 8192];
            let read = socket.read(&mut request).await.unwrap_or(0);
            let is_login = String::from_utf8_lossy(&request[..read]).starts_with("POST");
            let reply = if is_login {
                let body = r#"{"State":"Succeeded","Token":"t"}"#;
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"PhoneNumber\":\"+1310".to_owned()
            };
            let _ = socket.write_all(reply.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{addr}/api")
}

#[actix_web::test]
async fn a_partial_answer_is_502() {
    let base_url = truncating_autoshares().await;
    let app = spawn_with(Options::default().upstream(&base_url)).await;
    let caller = app.linked_caller("sub-1", 42).await;
    app.get_phone_number(&caller)
        .await
        .assert_problem(502, "upstream_error");
}

#[actix_web::test]
async fn a_trial_whose_caller_hangs_up_does_not_leave_the_circuit_half_open() {
    let fake = Scripted::start(Scripted::good_login, |n, _| {
        let active = json!({"PhoneNumber": "+13108904569", "PhoneNumberState": "Active"});
        match n {
            0 => Reply::raw(500, "down"),
            1 => Reply::json(200, active).after(Duration::from_secs(2)),
            _ => Reply::json(200, active),
        }
    });
    let app = app_on(
        &fake,
        Options::default()
            .with("upstream.timeout_ms", "10000")
            .with("upstream.circuit_failures", "1")
            .with("upstream.circuit_open_s", "1"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    open_circuit_until_its_trial(&app, &caller).await;

    // The trial goes out, slowly; its caller gives up and resets the connection, as a
    // load balancer that stops waiting does.
    let mut socket = tokio::net::TcpStream::connect(app.public.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "GET /v1/me/phone-number HTTP/1.1\r\nHost: bff\r\nAuthorization: Bearer {}\r\n\r\n",
        caller.jwt
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket.set_zero_linger().unwrap();
    drop(socket);

    // The trial runs to its end all the same (its caller's going away cancels nothing):
    // AutoShares' answer closes the circuit, and calls recover without a restart.
    let mut last = None;
    for _ in 0..40 {
        let answer = app.get_phone_number(&caller).await;
        if answer.status == 200 {
            return;
        }
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the circuit never recovered: {last:?}");
}

#[actix_web::test]
async fn one_failed_login_is_shared_and_the_next_waits_out_a_doubling_backoff() {
    let fake = Scripted::start(
        |_| {
            Reply::json(
                401,
                json!({"State": "Failed", "Step": "BaseAuthentication", "Reason": "Invalid credentials"}),
            )
        },
        |_, _| Reply::raw(200, "{}"),
    );
    let app = spawn_with(Options::default().upstream(&fake.base_url)).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let reads = (0..50).map(|_| app.get_phone_number(&caller));
    for answer in futures_util::future::join_all(reads).await {
        answer.assert_problem(503, "upstream_unavailable");
    }
    assert_eq!(fake.logins(), 1, "fifty requests, one login");
    app.get_phone_number(&caller)
        .await
        .assert_problem(503, "upstream_unavailable");
    assert_eq!(fake.logins(), 1, "no login during the backoff");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.get_phone_number(&caller)
        .await
        .assert_problem(503, "upstream_unavailable");
    assert_eq!(fake.logins(), 2, "one more login after 1 s");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.get_phone_number(&caller)
        .await
        .assert_problem(503, "upstream_unavailable");
    assert_eq!(fake.logins(), 2, "the second backoff is 2 s");
    assert!(fake.phone_calls().is_empty());
}

#[actix_web::test]
async fn a_login_whose_request_goes_away_is_finished_and_shared_not_failed() {
    use tokio::io::AsyncWriteExt;
    let fake = Scripted::start(
        |n| Scripted::good_login(n).after(Duration::from_millis(800)),
        |n, _| active(n),
    );
    let app = app_on(&fake, Options::default()).await;
    let caller = app.linked_caller("sub-1", 1001).await;

    // A read starts the service's login, then its caller resets the connection.
    let host = app.public.trim_start_matches("http://").to_owned();
    let request = format!(
        "GET /v1/me/phone-number HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\r\n",
        caller.jwt
    );
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.set_zero_linger().unwrap();
    drop(stream);

    // Another request meanwhile waits for that login rather than hearing it failed.
    let answer = app.get_phone_number(&caller).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(fake.logins(), 1, "one login, finished by the service");
}
