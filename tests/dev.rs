//! `autoshares-bff dev` as a new user runs it: one process, a printed JWT, the whole flow.
// These tests drive the sandbox, which production builds leave out.
#![cfg(feature = "sandbox")]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, call, free_port};
use serde_json::json;

#[actix_web::test]
async fn dev_prints_a_jwt_that_completes_the_whole_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (public, admin, sandbox) = (free_port(), free_port(), free_port());
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("BFF") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    let mut child = command
        .arg("dev")
        .current_dir(dir.path())
        .env("BFF__SERVER__LISTEN", format!("127.0.0.1:{public}"))
        .env("BFF__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("BFF__SANDBOX__LISTEN", format!("127.0.0.1:{sandbox}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let (lines, received) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut token = None;
    let mut banner = Vec::new();
    while token.is_none() {
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .expect("dev prints a token");
        token = line.strip_prefix("export TOKEN=").map(str::to_owned);
        banner.push(line);
    }
    let token = token.unwrap();
    for _ in 0..20 {
        match received.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => banner.push(line),
            Err(_) => break,
        }
    }
    let banner = banner.join("\n");
    assert!(
        banner.contains(&format!("http://127.0.0.1:{public}/v1/me/phone-number")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "http://127.0.0.1:{sandbox}/sandbox/sms?phoneNumber=%2B"
        )),
        "{banner}"
    );

    let client = awc::Client::default();
    let me = format!("http://127.0.0.1:{public}/v1/me/phone-number");
    let (status, bound) = call(
        &client,
        "PUT",
        &me,
        Some(&token),
        Some(json!({"phoneNumber": "+1 (310) 890-4569"})),
    )
    .await;
    assert_eq!(status, 200, "{bound}");
    let sms_url = format!("http://127.0.0.1:{sandbox}/sandbox/sms?phoneNumber=%2B13108904569");
    let (_, sms) = call(&client, "GET", &sms_url, None, None).await;
    let code = sms["code"]
        .as_str()
        .expect("the sandbox shows the code")
        .to_owned();
    let verify = json!({"verificationToken": bound["verificationToken"], "code": code});
    let (status, verified) = call(
        &client,
        "POST",
        &format!("{me}/verification"),
        Some(&token),
        Some(verify),
    )
    .await;
    assert_eq!((status, verified["state"].as_str()), (200, Some("Active")));
    assert_eq!(
        call(&client, "GET", &me, Some(&token), None).await.1["state"],
        "Active"
    );
    assert_eq!(
        call(&client, "DELETE", &me, Some(&token), None).await.0,
        204
    );
    assert_eq!(call(&client, "GET", &me, Some(&token), None).await.0, 404);
    assert!(
        dir.path().join("data/dev.db").exists(),
        "SQLite under ./data/"
    );

    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "Ctrl-C stops dev cleanly: {status:?}");
}
