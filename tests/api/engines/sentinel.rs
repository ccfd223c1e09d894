//! Redis Sentinel: the service finds the primary through the sentinels and follows a
//! failover without a restart.

use std::time::{Duration, Instant};

use super::servers::{RedisProcess, installed, wait_until};
use super::{Service, autoshares};

#[actix_web::test]
async fn the_primary_is_found_through_the_sentinels_and_followed_across_a_failover() {
    if !installed(&["redis-server", "redis-sentinel", "redis-cli"]) {
        return;
    }
    let mut primary = RedisProcess::start(&[]);
    let replica = RedisProcess::start(&[
        "--replicaof".into(),
        "127.0.0.1".into(),
        primary.port.to_string(),
    ]);
    wait_until("the replica syncs", Duration::from_secs(10), || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let sentinels: Vec<RedisProcess> = (0..3)
        .map(|_| RedisProcess::sentinel(primary.port, 2))
        .collect();
    let nodes: Vec<String> = sentinels.iter().map(RedisProcess::url).collect();
    // One sentinel is down from the start: the others answer.
    let dead = crate::common::free_port();
    let list = format!("redis://127.0.0.1:{dead},{}", nodes.join(","));
    let fake = autoshares();
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        &fake,
        dir.path(),
        &[
            ("BFF__REDIS__SENTINEL_NODES", list),
            ("BFF__REDIS__SENTINEL_MASTER", "mymaster".to_owned()),
            ("BFF__REDIS__KEY_PREFIX", "s1:".to_owned()),
            ("BFF__RATE_LIMIT__BIND_PER_PHONE", "1000/hour".to_owned()),
        ],
    )
    .await;
    assert_eq!(
        service.bind("sub-0", 1, "+13108904569", None).await.status,
        200
    );
    assert!(
        !primary.cli(&["KEYS", "s1:*"]).trim().is_empty(),
        "the limits are on the primary"
    );

    primary.kill();
    let killed = Instant::now();
    let mut promoted = None;
    let mut first_ok = None;
    let mut refusals = Vec::new();
    let mut ready_down = false;
    for i in 1..300 {
        if promoted.is_none() && replica.cli(&["ROLE"]).starts_with("master") {
            promoted = Some(killed.elapsed());
        }
        let answer = service
            .bind(&format!("sub-{i}"), i, "+13108904569", None)
            .await;
        let (ready, _) = service.ready().await;
        if answer.status == 200
            && promoted.is_none()
            && replica.cli(&["ROLE"]).starts_with("master")
        {
            promoted = Some(killed.elapsed());
        }
        if answer.status == 200 && promoted.is_some() {
            first_ok = Some(killed.elapsed());
            assert_eq!(ready, 200, "ready once binds can be decided");
            break;
        }
        assert_ne!(
            answer.status, 200,
            "no bind is decided while no primary answers"
        );
        refusals.push((
            answer.status,
            answer.body["code"].as_str().map(str::to_owned),
        ));
        ready_down |= ready == 503;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = promoted.expect("the sentinels promoted the replica");
    let first_ok = first_ok.expect("binds succeeded again");
    eprintln!(
        "sentinel failover: promoted {:.1} s after the kill, first 200 {:.1} s after the promotion",
        promoted.as_secs_f64(),
        first_ok.saturating_sub(promoted).as_secs_f64()
    );
    assert!(
        refusals
            .iter()
            .all(|(s, c)| *s == 503 && c.as_deref() == Some("rate_limiter_unavailable")),
        "fail closed: {refusals:?}"
    );
    assert!(
        ready_down,
        "/readyz said 503 while binds could not be decided"
    );
    assert!(
        first_ok.saturating_sub(promoted) <= Duration::from_secs(5),
        "recovered within 5 s of the promotion"
    );
    assert!(
        !replica.cli(&["KEYS", "s1:*"]).trim().is_empty(),
        "the new primary holds the limits"
    );
}
