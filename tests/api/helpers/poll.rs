//! Waiting for the service to reach a state, without timed assertions.

use std::time::Duration;

use super::{Answer, TestApp};

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
