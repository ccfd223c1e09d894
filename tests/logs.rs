//! Runs `serve` as a process through a whole scenario, captures everything it prints, and
//! checks the log lines (docs/operations.md "Logs"): JSON with the required keys, `request_id` on a
//! request's lines, and no secret, token, JWT, code or full phone number at any level.
// These tests drive the sandbox, which production builds leave out.
#![cfg(feature = "sandbox")]

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::tls::TlsFront;
use common::{ServeProcess, call, hs256_jwt, unix_now};

use autoshares_bff::sandbox::{self, SandboxConfig};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

const HS256_SECRET: &str = "log-test-signing-secret-93ab-0123456789";
const ADMIN_TOKEN: &str = "log-test-admin-token-51cd-0123456789";
const APP_KEY: &str = "sandbox-app-key";
const PASSWORD: &str = "sandbox-password";
/// Base64 of 32 bytes of 7.
const SEALING_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn jwt(subject: &str, exp_offset: i64) -> String {
    let exp = unix_now() as i64 + exp_offset;
    let claims = json!({"sub": subject, "iss": "iss-logs", "aud": "aud-logs", "exp": exp});
    hs256_jwt(HS256_SECRET, &claims)
}

/// `serve` against `upstream` with JSON logs at every level; `extra` is applied last.
fn start_serve(
    upstream: &str,
    extra: &[(&'static str, String)],
) -> (ServeProcess, tempfile::TempDir) {
    let (env, dir) = serve_env(upstream, extra);
    (ServeProcess::start(&env), dir)
}

/// What `start_serve` runs with, and the directory of its database.
fn serve_env(
    upstream: &str,
    extra: &[(&'static str, String)],
) -> (Vec<(&'static str, String)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/logs.db", dir.path().display());
    let mut env = vec![
        ("BFF__UPSTREAM__BASE_URL", upstream.to_owned()),
        ("BFF__UPSTREAM__APP_KEY", APP_KEY.to_owned()),
        ("BFF__UPSTREAM__USERNAME", "sandbox".to_owned()),
        ("BFF__UPSTREAM__PASSWORD", PASSWORD.to_owned()),
        ("BFF__AUTH__ISSUER", "iss-logs".to_owned()),
        ("BFF__AUTH__AUDIENCE", "aud-logs".to_owned()),
        ("BFF__AUTH__HS256_SECRET", HS256_SECRET.to_owned()),
        ("BFF__VERIFICATION__TOKEN_SECRET", SEALING_KEY.to_owned()),
        ("BFF__DATABASE__URL", database),
        ("BFF__ADMIN__TOKEN", ADMIN_TOKEN.to_owned()),
        ("BFF__LOG__FORMAT", "json".to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    (env, dir)
}

/// Whether `needle` stands in `text` on its own, not inside a longer run of letters/digits.
fn stands_alone(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[actix_web::test]
async fn a_whole_scenario_logs_json_lines_and_no_secret() {
    whole_scenario(false).await;
}

/// AutoShares behind TLS with a private CA, trusted through `upstream.ca_file`: calls go
/// over HTTP/1.1 only, and the trace log of a whole flow still holds no secret (the HTTP/2
/// client logs whole request heads at trace level).
#[actix_web::test]
async fn behind_tls_with_a_private_ca_a_whole_scenario_at_trace_leaks_nothing() {
    whole_scenario(true).await;
}

async fn whole_scenario(tls: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sandbox = sandbox::start(listener, SandboxConfig::default()).unwrap();
    let front = match tls {
        true => Some(TlsFront::start(sandbox.addr()).await),
        false => None,
    };
    let (base_url, extra) = match &front {
        Some(front) => (
            front.base_url(),
            vec![(
                "BFF__UPSTREAM__CA_FILE",
                front.ca_file.display().to_string(),
            )],
        ),
        None => (sandbox.base_url(), Vec::new()),
    };
    let (server, _dir) = start_serve(&base_url, &extra);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();

    server.wait_ready(&client).await;

    let token = jwt("log-subject", 600);
    let link = call(
        &client,
        "PUT",
        &format!("{}/admin/v1/links/log-subject", server.admin),
        Some(ADMIN_TOKEN),
        Some(json!({"autosharesUserId": 1001})),
    )
    .await;
    assert_eq!(link.0, 200);
    let me = format!("{}/v1/me/phone-number", server.public);
    let (status, bound) = call(
        &client,
        "PUT",
        &me,
        Some(&token),
        Some(json!({"phoneNumber": "+1 (310) 890-4569"})),
    )
    .await;
    assert_eq!(status, 200, "{bound}");
    let verification_token = bound["verificationToken"].as_str().unwrap().to_owned();
    let code = sandbox.last_code("+13108904569").unwrap();
    let wrong = if code == "000000" { "999999" } else { "000000" };
    let verify = format!("{me}/verification");
    assert_eq!(
        call(
            &client,
            "POST",
            &verify,
            Some(&token),
            Some(json!({"verificationToken": verification_token, "code": wrong}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        call(
            &client,
            "POST",
            &verify,
            Some(&token),
            Some(json!({"verificationToken": verification_token, "code": code}))
        )
        .await
        .0,
        200
    );
    sandbox.revoke_tokens();
    assert_eq!(
        call(&client, "GET", &me, Some(&token), None).await.0,
        200,
        "after a re-login"
    );
    assert_eq!(
        call(&client, "DELETE", &me, Some(&token), None).await.0,
        204
    );
    let expired = jwt("log-subject", -3600);
    assert_eq!(call(&client, "GET", &me, Some(&expired), None).await.0, 401);
    assert_eq!(
        call(
            &client,
            "PUT",
            &me,
            Some(&token),
            Some(json!({"phoneNumber": "+1 310 555 0199 x"}))
        )
        .await
        .0,
        422
    );

    server.terminate();
    let finished = server.finish();
    assert!(finished.success, "exit 0 after SIGTERM");
    let (out, err) = (finished.stdout, finished.stderr);
    let everything = format!("{out}{err}");
    sandbox.stop().await;

    let mut secrets: Vec<(String, &str)> = vec![
        (token.clone(), "the caller's JWT"),
        (expired.clone(), "an expired JWT"),
        (HS256_SECRET.to_owned(), "the signing secret"),
        (ADMIN_TOKEN.to_owned(), "the admin token"),
        (APP_KEY.to_owned(), "Et-App-Key"),
        (PASSWORD.to_owned(), "the service password"),
        (SEALING_KEY.to_owned(), "the sealing key"),
        (verification_token.clone(), "the verification token"),
        ("3108904569".to_owned(), "the full phone number"),
    ];
    for issued in sandbox.issued_tokens() {
        secrets.push((issued, "an AutoShares token"));
    }
    assert!(
        sandbox.issued_tokens().len() >= 2,
        "both logins were captured: {:?} {}",
        sandbox.issued_tokens(),
        sandbox.logins()
    );
    for (secret, what) in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "{what} appears in the logs"
        );
    }
    for (_, sent) in sandbox.sent_codes() {
        assert!(
            !stands_alone(&everything, &sent),
            "the SMS code {sent} appears in the logs"
        );
    }
    assert!(
        !stands_alone(&everything, wrong),
        "the wrong code appears in the logs"
    );
    assert!(everything.contains("+1310*****69"), "numbers appear masked");

    assert!(err.trim().is_empty(), "nothing on stderr: {err}");
    let mut finished = 0;
    for line in out.lines() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        for key in ["timestamp", "level", "message"] {
            assert!(entry.get(key).is_some(), "{key} missing: {line}");
        }
        if entry["message"] == "request finished" {
            finished += 1;
            for key in ["request_id", "route", "status", "latency_ms"] {
                assert!(entry.get(key).is_some(), "{key} missing: {line}");
            }
            if entry["route"]
                .as_str()
                .is_some_and(|r| r.starts_with("/v1/"))
            {
                assert_eq!(entry["client_address"], "127.0.0.1", "{line}");
            }
        }
    }
    assert!(finished >= 8, "one closing line per request: {finished}");
    let bind_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("\"bind sent\""))
        .collect();
    assert_eq!(bind_lines.len(), 1);
    assert!(
        bind_lines[0].contains("\"request_id\""),
        "{}",
        bind_lines[0]
    );
    if let Some(front) = front {
        let negotiated = front.negotiated.lock().unwrap().clone();
        assert!(!negotiated.is_empty(), "AutoShares was called over TLS");
        assert!(
            negotiated.iter().all(|p| p.as_deref() == Some("http/1.1")),
            "every connection chose HTTP/1.1: {negotiated:?}"
        );
    }
}

#[actix_web::test]
async fn a_refused_login_is_one_error_line_with_status_and_state() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sandbox = sandbox::start(listener, SandboxConfig::default()).unwrap();
    let (server, _dir) = start_serve(
        &sandbox.base_url(),
        &[
            ("BFF__UPSTREAM__PASSWORD", "a-wrong-password-77".to_owned()),
            ("BFF__IDENTITY__SOURCE", "claim".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ],
    );
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    server.wait_ready(&client).await;
    let claims = json!({"sub": "s", "iss": "iss-logs", "aud": "aud-logs", "exp": unix_now() + 600, "autoshares_user_id": 1001});
    let token = hs256_jwt(HS256_SECRET, &claims);

    let (status, body) = call(
        &client,
        "GET",
        &format!("{}/v1/me/phone-number", server.public),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "upstream_unavailable");

    server.terminate();
    let finished = server.finish();
    sandbox.stop().await;
    let logins: Vec<Value> = json_lines(&finished.stdout)
        .filter(|entry| {
            entry["message"]
                .as_str()
                .is_some_and(|m| m.contains("login"))
        })
        .collect();
    assert_eq!(logins.len(), 1, "{}", finished.stdout);
    let line = &logins[0];
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["status"], 401);
    assert_eq!(line["state"], "Failed");
    assert!(line["request_id"].is_string());
    assert!(!finished.stdout.contains("a-wrong-password-77"));
}

/// The lines of `stdout` that are JSON.
fn json_lines(stdout: &str) -> impl Iterator<Item = Value> + '_ {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
}

/// The log is written by a thread of its own: a burst answered just before SIGTERM still
/// has every closing line, and the last line of all is `stopped`.
#[actix_web::test]
async fn every_line_of_a_burst_is_written_before_exit() {
    let (server, _dir) = start_serve("http://127.0.0.1:9/api", &[]);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    server.wait_ready(&client).await;
    let url = format!("{}/v1/me/phone-number", server.public);
    let statuses: Vec<u16> = futures_util::stream::iter(0..300)
        .map(|_| async { client.get(&url).send().await.unwrap().status().as_u16() })
        .buffer_unordered(20)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");

    server.terminate();
    let finished = server.finish();
    assert!(finished.success, "{}", finished.stderr);
    let closing = json_lines(&finished.stdout)
        .filter(|entry| entry["route"] == "/v1/me/phone-number" && entry["status"] == 401)
        .count();
    assert_eq!(closing, 300, "one closing line per request");
    let last = finished.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(last).unwrap()["message"],
        "stopped"
    );
}

/// The public listener runs one worker per CPU the process may use, which `serving` says;
/// the admin listener has one more.
#[actix_web::test]
async fn the_worker_count_follows_the_cpus_the_process_may_use() {
    let client = awc::Client::default();
    let workers = |stdout: &str| {
        let serving: Vec<Value> = json_lines(stdout)
            .filter(|entry| entry["message"] == "serving")
            .collect();
        assert_eq!(serving.len(), 1, "{stdout}");
        serving[0]["workers"].as_u64().unwrap()
    };
    let (env, _dir) = serve_env("http://127.0.0.1:9/api", &[("RUST_LOG", "info".to_owned())]);
    for (server, expected, what) in [
        (
            ServeProcess::start(&env),
            std::thread::available_parallelism().unwrap().get() as u64,
            "as many workers as CPUs",
        ),
        (
            ServeProcess::start_on_cpus("0", &env),
            1,
            "one CPU, one worker",
        ),
    ] {
        server.wait_ready(&client).await;
        // actix names its worker threads `actix-rt|system:…|arbiter:…`.
        let threads = server.threads_named("actix-rt|system");
        server.terminate();
        let finished = server.finish();
        assert_eq!(
            workers(&finished.stdout),
            expected,
            "{what}: the serving line"
        );
        assert_eq!(threads as u64, expected + 1, "{what}: worker threads");
    }
}
