//! `/readyz` follows the database (docs/api.md "The operations API"); `serve` starts without it.

use crate::helpers::{Options, TcpProxy, TestDatabase, spawn_with, wait_for_status};

#[actix_web::test]
async fn readyz_names_an_unreachable_database_and_recovers_when_it_returns() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let after_scheme = database.url.split_once("://").unwrap().1;
    let (credentials_host, path) = after_scheme.split_once('/').unwrap();
    let (credentials, host) = credentials_host
        .rsplit_once('@')
        .map_or(("", credentials_host), |(c, h)| (c, h));
    let proxy = TcpProxy::start(host).await;
    let at = if credentials.is_empty() {
        String::new()
    } else {
        format!("{credentials}@")
    };
    let through_proxy = format!("postgres://{at}127.0.0.1:{}/{path}", proxy.port);
    let app = spawn_with(Options::default().with("database.url", through_proxy)).await;

    let ready = wait_for_status(&app, "/readyz", 200).await;
    assert_eq!(ready.json()["database"], "ok");

    proxy.stop().await;
    let down = wait_for_status(&app, "/readyz", 503).await;
    assert_eq!(down.json()["database"], "down");
    assert_eq!(down.header("content-type"), Some("application/json"));

    proxy.resume().await;
    let back = wait_for_status(&app, "/readyz", 200).await;
    assert_eq!(back.json()["database"], "ok");
    let _keep = database;
}

#[actix_web::test]
async fn the_service_starts_with_the_database_down() {
    let closed = crate::common::ClosedPort::new();
    let app = spawn_with(Options::default().with(
        "database.url",
        format!("postgres://postgres@{}/none", closed.addr()),
    ))
    .await;
    assert_eq!(app.admin_get("/healthz", None).await.status, 200);
    let down = wait_for_status(&app, "/readyz", 503).await;
    assert_eq!(down.json()["database"], "down");
}
