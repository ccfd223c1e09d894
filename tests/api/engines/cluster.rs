//! A real Redis Cluster of three primaries and three replicas: two `serve` processes,
//! each seeded with a different node, share every limit exactly, and follow a failover.

use super::servers::{Cluster, installed};
use super::{Service, autoshares, watch_failover};

/// The redis settings of a service seeded with the node at `port` only.
fn seeded(port: u16, prefix: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "BFF__REDIS__CLUSTER_NODES",
            format!("redis://127.0.0.1:{port}"),
        ),
        ("BFF__REDIS__KEY_PREFIX", prefix.to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

#[actix_web::test]
async fn two_processes_seeded_by_different_nodes_share_every_limit_exactly() {
    if !installed(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start();
    let fake = autoshares();
    let dir = tempfile::tempdir().unwrap();
    let limits = [
        ("BFF__RATE_LIMIT__BIND_PER_USER", "3/hour"),
        ("BFF__ABUSE__GLOBAL_BUDGET", "7/hour"),
        ("BFF__RATE_LIMIT__VERIFY_ATTEMPTS", "2"),
    ];
    // The first knows a primary, the second the last node (a replica): any node seeds.
    let one = Service::start(
        &fake,
        dir.path(),
        &seeded(cluster.nodes[0].port, "c1:", &limits),
    )
    .await;
    let two_dir = tempfile::tempdir().unwrap();
    let two = Service::start(
        &fake,
        two_dir.path(),
        &seeded(cluster.nodes[5].port, "c1:", &limits),
    )
    .await;
    let services = [&one, &two];

    // One user's quota, alternating between the processes: exactly three binds.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let answer = services[i % 2]
            .bind("sub-1", 41, &format!("+1310890456{i}"), None)
            .await;
        statuses.push(answer.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429, 429],
        "one quota for both"
    );

    // An idempotent bind on one process is a replay on the other.
    let first = one.bind("sub-2", 42, "+13108904570", Some("key-1")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = two.bind("sub-2", 42, "+13108904570", Some("key-1")).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.replayed, "a replay across processes");
    assert_eq!(again.body, first.body, "the same answer, the same token");

    // Code attempts of one token are counted across processes.
    let token = first.body["verificationToken"].as_str().unwrap();
    let (status, _) = one.complete("sub-2", 42, token, "111111").await;
    assert_eq!(status, 422);
    let (status, _) = two.complete("sub-2", 42, token, "222222").await;
    assert_eq!(status, 422);
    let (status, body) = one.complete("sub-2", 42, token, "333333").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_attempts"))
    );

    // One global budget: 3 + 1 sends so far, 3 more for other users, then none.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let answer = services[i % 2]
            .bind(
                &format!("sub-g{i}"),
                100 + i as i64,
                &format!("+1213555010{i}"),
                None,
            )
            .await;
        statuses.push((
            answer.status,
            answer.body["code"].as_str().map(str::to_owned),
        ));
    }
    let admitted = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(admitted, 3, "{statuses:?}");
    assert!(
        statuses[3..]
            .iter()
            .all(|(s, c)| *s == 429 && c.as_deref() == Some("sms_budget_exhausted")),
        "{statuses:?}"
    );
    let binds = fake
        .phone_calls()
        .iter()
        .filter(|s| s.method == "PUT" && !s.path.contains("/token/"))
        .count();
    assert_eq!(
        binds,
        3 + 1 + 3,
        "AutoShares saw exactly what the limits admitted"
    );
}

#[actix_web::test]
async fn binds_fail_closed_during_a_failover_and_recover_without_a_restart() {
    if !installed(&["redis-server", "redis-cli"]) {
        return;
    }
    let mut cluster = Cluster::start();
    let fake = autoshares();
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        &fake,
        dir.path(),
        &seeded(
            cluster.nodes[1].port,
            "c2:",
            &[("BFF__RATE_LIMIT__BIND_PER_PHONE", "1000/hour")],
        ),
    )
    .await;
    let owner = cluster.owner_of("{bind}");
    let replica = cluster.replica_of(owner);
    assert_eq!(
        service.bind("sub-0", 1, "+13108904569", None).await.status,
        200
    );

    cluster.nodes[owner].kill();
    watch_failover("cluster", &service, || {
        cluster.nodes[replica].cli(&["ROLE"]).starts_with("master")
    })
    .await;
}

/// Moving the binds' own slot: Redis answers TRYAGAIN to a script whose keys are split
/// between the two nodes (or missing from one of them) until the move ends, so binds fail
/// closed meanwhile, never decided on half the state; once the slot has moved they are
/// decided on the new primary, with the state that moved with it, and no restart.
#[actix_web::test]
async fn binds_fail_closed_while_their_slot_moves_and_go_on_on_its_new_primary() {
    if !installed(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start();
    let fake = autoshares();
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        &fake,
        dir.path(),
        &seeded(
            cluster.nodes[0].port,
            "c3:",
            &[
                ("BFF__RATE_LIMIT__BIND_PER_USER", "3/hour"),
                ("BFF__RATE_LIMIT__BIND_PER_PHONE", "1000/hour"),
            ],
        ),
    )
    .await;
    let slot = cluster.slot_of("{bind}");
    let from = cluster.owner_of("{bind}");
    let to = (0..6)
        .find(|&i| i != from && cluster.nodes[i].cli(&["ROLE"]).starts_with("master"))
        .unwrap();
    // One user spends two of three binds before the move.
    for _ in 0..2 {
        assert_eq!(
            service.bind("sub-q", 77, "+13108904569", None).await.status,
            200
        );
    }
    let mut user = 0;
    let mut bind_others = async || {
        let mut answers = Vec::new();
        for _ in 0..3 {
            user += 1;
            let answer = service
                .bind(&format!("sub-{user}"), user, "+13108904569", None)
                .await;
            answers.push((
                answer.status,
                answer.body["code"].as_str().map(str::to_owned),
            ));
        }
        answers
    };

    cluster.begin_slot_move(&slot, from, to);
    let mut moving = bind_others().await;
    cluster.migrate_keys(&slot, from, to, 3);
    moving.extend(bind_others().await);
    while cluster.migrate_keys(&slot, from, to, 100) > 0 {}
    moving.extend(bind_others().await);
    cluster.finish_slot_move(&slot, to);
    let moved = bind_others().await;

    assert!(
        moving
            .iter()
            .all(|(s, c)| *s == 200
                || (*s == 503 && c.as_deref() == Some("rate_limiter_unavailable"))),
        "fail closed while the slot moves: {moving:?}"
    );
    assert!(
        moved.iter().all(|(s, _)| *s == 200),
        "after the move: {moved:?}"
    );
    assert_eq!(cluster.owner_of("{bind}"), to, "the slot moved");
    // The user's quota moved with it: one bind left, then none.
    assert_eq!(
        service.bind("sub-q", 77, "+13108904569", None).await.status,
        200
    );
    assert_eq!(
        service.bind("sub-q", 77, "+13108904569", None).await.status,
        429
    );
}
