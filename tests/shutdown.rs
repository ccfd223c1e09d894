//! Graceful shutdown (docs/api.md "The operations API"): on SIGTERM `/readyz` turns 503 at once, the public
//! listener stops accepting, the request in flight still gets its answer, and the process
//! exits 0.

mod common;

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use common::{ServeProcess, claim_jwt, claim_serve_env, spawn_routes};
use serde_json::json;

/// An AutoShares whose phone reads take 1.5 s.
fn slow_autoshares() -> String {
    let addr = spawn_routes(|config| {
        config.default_service(web::to(|request: HttpRequest| async move {
            if request.path().ends_with("/token") {
                return HttpResponse::Ok().json(json!({"State": "Succeeded", "Token": "t"}));
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            HttpResponse::Ok()
                .json(json!({"PhoneNumber": "+13108904569", "PhoneNumberState": "Active"}))
        }));
    });
    format!("http://{addr}/api")
}

#[actix_web::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let upstream = slow_autoshares();
    let dir = tempfile::tempdir().unwrap();
    let mut env = claim_serve_env(upstream, ("k", "u", "p"), dir.path());
    env.push(("BFF__SERVER__SHUTDOWN_GRACE_S", "10".to_owned()));
    let server = ServeProcess::start(&env);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish();
    server.wait_ready(&client).await;
    let jwt = claim_jwt("s", 7);

    let in_flight = {
        let client = client.clone();
        let url = format!("{}/v1/me/phone-number", server.public);
        actix_web::rt::spawn(async move {
            let mut response = client
                .get(url)
                .insert_header(("Authorization", format!("Bearer {jwt}")))
                .send()
                .await
                .expect("the request in flight is answered");
            let body: serde_json::Value = response.json().await.unwrap();
            (response.status().as_u16(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.terminate();

    let mut saw_not_ready = false;
    for _ in 0..20 {
        let ready = client.get(format!("{}/readyz", server.admin)).send().await;
        if ready.is_ok_and(|response| response.status() == 503) {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        saw_not_ready,
        "/readyz turned 503 while the request was in flight"
    );
    let fresh = awc::Client::default()
        .get(format!("{}/healthz", server.public))
        .send()
        .await;
    assert!(
        fresh.is_err() || fresh.is_ok_and(|r| r.status() != 200),
        "no new requests accepted"
    );

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "Active");
    let finished = server.finish();
    assert!(finished.success, "exit 0; stderr: {}", finished.stderr);
    assert!(
        finished.stdout.contains("shutting down"),
        "{}",
        finished.stdout
    );
}

/// docs/operations.md "Audit trail": events of finished requests are written before the process exits,
/// though the writer batches them off the request path.
#[cfg(feature = "sandbox")]
#[actix_web::test]
async fn sigterm_right_after_a_burst_of_binds_leaves_every_finished_bind_recorded() {
    use autoshares_bff::sandbox::{self, SandboxConfig};
    use sqlx::Row as _;

    let defaults = SandboxConfig::default();
    let sandbox = sandbox::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        defaults.clone(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/db.sqlite", dir.path().display());
    let account = (
        defaults.app_key.as_str(),
        defaults.username.as_str(),
        defaults.password.as_str(),
    );
    let mut env = claim_serve_env(sandbox.base_url(), account, dir.path());
    env.push(("BFF__RATE_LIMIT__BIND_PER_CLIENT", "off".to_owned()));
    let server = ServeProcess::start(&env);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish();
    server.wait_ready(&client).await;

    let binds = (0..40).map(|n| {
        let jwt = claim_jwt(&format!("s-{n}"), 1001 + n % 10);
        let url = format!("{}/v1/me/phone-number", server.public);
        let body = json!({"phoneNumber": format!("+1310890{:04}", 4000 + n)});
        let client = client.clone();
        async move {
            common::call(&client, "PUT", &url, Some(&jwt), Some(body))
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(binds).await;
    server.terminate();
    let finished = server.finish();
    assert!(finished.success, "exit 0; stderr: {}", finished.stderr);

    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok > 0, "{statuses:?}");
    sqlx::any::install_default_drivers();
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&database)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT outcome FROM audit_events WHERE action = 'bind'")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    let recorded_ok = rows
        .iter()
        .filter(|row| row.get::<String, _>(0) == "ok")
        .count();
    assert_eq!(rows.len(), statuses.len(), "one event per finished bind");
    assert_eq!(recorded_ok, ok, "{statuses:?}");
}
