//! Waiting for the service to reach a state, without timed assertions.

use std::time::Duration;

use serde_json::Value;

use super::{ADMIN_TOKEN, Answer, TestApp};

/// Polls `path` on the admin listener until it answers `status`, or panics after 10 s.
pub async fn wait_for_status(app: &TestApp, path: &str, status: u16) -> Answer {
    let mut last = None;
    for _ in 0..100 {
        let answer = app.admin_get(path, None).await;
        if answer.status == status {
            return answer;
        }
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered {status}: {last:?}");
}

/// The subject's events once there are `count` of them (newest first).
pub async fn audit_events(app: &TestApp, subject: &str, count: usize) -> Vec<Value> {
    let path = format!("/admin/v1/links/{subject}/events");
    let mut last = None;
    for _ in 0..100 {
        let answer = app.admin_get(&path, Some(ADMIN_TOKEN)).await;
        if answer.status == 200 {
            let events = answer.json()["events"].as_array().cloned().unwrap();
            if events.len() >= count {
                return events;
            }
        }
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{subject} never had {count} events: {last:?}");
}
