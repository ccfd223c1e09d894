//! Redis Sentinel: the service finds the primary through the sentinels and follows a
//! failover without a restart.

use std::time::Duration;

use super::servers::{RedisProcess, installed, wait_until};
use super::{Service, autoshares, watch_failover};

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
    let mut sentinels: Vec<RedisProcess> = (0..3)
        .map(|_| RedisProcess::sentinel(primary.port, 2))
        .collect();
    let nodes: Vec<String> = sentinels.iter().map(RedisProcess::url).collect();
    // One listed sentinel is down from the start: the others answer.
    let dead = crate::common::ClosedPort::new();
    let list = format!("redis://{},{}", dead.addr(), nodes.join(","));
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

    // A second sentinel fails with the primary: the remaining two still elect a leader.
    sentinels[0].kill();
    primary.kill();
    watch_failover("sentinel", &service, || {
        replica.cli(&["ROLE"]).starts_with("master")
    })
    .await;
    assert!(
        !replica.cli(&["KEYS", "s1:*"]).trim().is_empty(),
        "the new primary holds the limits"
    );
}
