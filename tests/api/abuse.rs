//! The abuse rules of docs/abuse.md over real HTTP: budgets, the pumping breaker, modes,
//! the safe-list and the admin routes, on the memory backend and on the real Redis.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::helpers::{
    ADMIN_TOKEN, Answer, Caller, Options, TestApp, random_key_base64, redis_keys, redis_options,
    redis_url, spawn_with,
};

/// Spanish mobiles: `es(0..10)` share the prefix `+3463595`, `other_es` is `+3463596`.
fn es(i: u32) -> String {
    format!("+3463595291{i}")
}

fn other_es(i: u32) -> String {
    format!("+3463596291{i}")
}

fn us(i: u32) -> String {
    format!("+1310890456{i}")
}

/// Quotas out of the way unless a test sets them, and the breaker off unless it does.
fn roomy(options: Options) -> Options {
    options
        .with("rate_limit.bind_per_user", "100/hour")
        .with("rate_limit.bind_per_phone", "100/day")
        .with("abuse.conversion.min_sends_country", "1000")
        .with("abuse.conversion.min_sends_prefix", "1000")
}

async fn bind_ok(app: &TestApp, caller: &Caller, phone: &str) -> Value {
    let answer = app.bind(caller, phone).await;
    assert_eq!(answer.status, 200, "bind {phone}: {}", answer.text);
    answer.json()
}

async fn complete(app: &TestApp, caller: &Caller, bound: &Value) {
    let phone = bound["phoneNumber"].as_str().unwrap();
    let code = app
        .sandbox()
        .last_code(phone)
        .expect("the sandbox sent a code");
    let token = bound["verificationToken"].as_str().unwrap();
    let answer = app.complete(caller, token, &code).await;
    assert_eq!(answer.status, 200, "complete {phone}: {}", answer.text);
}

fn assert_refused(answer: &Answer, status: u16, code: &str, reason: &str) {
    let body = answer.assert_problem(status, code);
    assert_eq!(body["reason"], reason, "{}", answer.text);
    if status == 429 {
        let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!(wait >= 1, "Retry-After {wait}");
    }
}

async fn metrics(app: &TestApp) -> String {
    app.admin_get("/metrics", None).await.text
}

async fn admin(app: &TestApp, method: &str, path: &str) -> Answer {
    let url = format!("{}{path}", app.admin);
    app.send(method, &url, Some(ADMIN_TOKEN), None, &[]).await
}

#[actix_web::test]
async fn each_budget_refuses_the_next_send_and_takes_nothing_from_the_callers_quota() {
    let cases = [
        ("abuse.global_budget", "global_budget", None),
        ("abuse.country_budgets.ES", "country_budget", Some(us(0))),
        ("abuse.prefix_budget", "prefix_budget", Some(other_es(0))),
    ];
    for (key, rule, unaffected) in cases {
        let app = spawn_with(
            roomy(Options::default())
                .with(key, "1/second")
                .with("rate_limit.bind_per_user", "2/hour"),
        )
        .await;
        let caller = app.linked_caller("sub-1", 1001).await;
        bind_ok(&app, &caller, &es(0)).await;
        assert_refused(
            &app.bind(&caller, &es(1)).await,
            429,
            "sms_budget_exhausted",
            rule,
        );
        if let Some(number) = &unaffected {
            let other = app.linked_caller("sub-2", 1002).await;
            bind_ok(&app, &other, number).await;
        }
        // The budget refills; the caller still has the unit the refused bind did not take.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        bind_ok(&app, &caller, &es(2)).await;
        app.bind(&caller, &es(3))
            .await
            .assert_problem(429, "rate_limited");
        let sent = app.sandbox().binds();
        assert_eq!(sent, 2 + usize::from(unaffected.is_some()), "{rule}: sends");
    }
}

/// Three sends to `+3463595…` that never complete, with the breaker watching prefixes.
fn prefix_breaker(options: Options) -> Options {
    roomy(options)
        .with("abuse.conversion.min_sends_prefix", "3")
        .with("abuse.conversion.min_ratio", "0.5")
        .with("abuse.conversion.block_s", "1")
}

async fn breaker_trips_on_a_prefix_lifts_doubles_and_is_lifted_by_an_operator(options: Options) {
    let app = spawn_with(prefix_breaker(options)).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for i in 0..3 {
        bind_ok(&app, &caller, &es(i)).await;
    }
    let refused = app.bind(&caller, &es(3)).await;
    assert_refused(&refused, 403, "destination_blocked", "conversion_prefix");
    bind_ok(&app, &caller, &other_es(0)).await;
    let state = admin(&app, "GET", "/admin/v1/abuse").await.json();
    assert_eq!(state["blocks"][0]["scope"], "prefix", "{state}");
    assert_eq!(state["blocks"][0]["key"], "+3463595", "{state}");
    assert!(state["blocks"][0]["until"].is_string());

    // The block ends after block_s; counting starts afresh, and a second trip doubles it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 4..7 {
        bind_ok(&app, &caller, &es(i)).await;
    }
    assert_refused(
        &app.bind(&caller, &es(7)).await,
        403,
        "destination_blocked",
        "conversion_prefix",
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.bind(&caller, &es(7)).await.status,
        403,
        "blocked for 2 s"
    );

    let lifted = admin(&app, "DELETE", "/admin/v1/abuse/blocks/prefix/%2B3463595").await;
    assert_eq!(lifted.status, 204, "{}", lifted.text);
    bind_ok(&app, &caller, &es(8)).await;
    admin(&app, "DELETE", "/admin/v1/abuse/blocks/prefix/%2B3463595")
        .await
        .assert_problem(404, "block_not_found");
    let text = metrics(&app).await;
    assert!(
        text.contains(r#"bff_abuse_decisions_total{rule="conversion_prefix",outcome="refused"} 3"#),
        "{text}"
    );
    assert!(!text.contains("3463595"), "no prefix in a label");
}

#[actix_web::test]
async fn the_breaker_trips_on_a_prefix_lifts_doubles_and_is_lifted_by_an_operator() {
    breaker_trips_on_a_prefix_lifts_doubles_and_is_lifted_by_an_operator(Options::default()).await;
}

#[actix_web::test]
async fn the_breaker_trips_on_a_prefix_with_redis_too() {
    let Some(url) = redis_url() else {
        return;
    };
    breaker_trips_on_a_prefix_lifts_doubles_and_is_lifted_by_an_operator(redis_options(&url)).await;
}

#[actix_web::test]
async fn the_breaker_trips_on_a_country_and_leaves_other_countries_alone() {
    let app = spawn_with(
        roomy(Options::default())
            .with("abuse.conversion.min_sends_country", "3")
            .with("abuse.conversion.min_ratio", "0.5"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for number in [es(0), other_es(0), "+34612345678".to_owned()] {
        bind_ok(&app, &caller, &number).await;
    }
    assert_refused(
        &app.bind(&caller, "+34699887766").await,
        403,
        "destination_blocked",
        "conversion_country",
    );
    bind_ok(&app, &caller, &us(0)).await;
}

#[actix_web::test]
async fn binds_that_complete_do_not_trip_the_breaker() {
    let app = spawn_with(prefix_breaker(Options::default())).await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for i in 0..6 {
        let bound = bind_ok(&app, &caller, &es(i)).await;
        complete(&app, &caller, &bound).await;
    }
    let text = metrics(&app).await;
    assert!(
        text.contains(r#"bff_sms_sends_total{country="ES"} 6"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bff_bindings_completed_total{country="ES"} 6"#),
        "{text}"
    );
}

/// Whether every sample line holding `needle` is 0 (series are declared at 0 up front).
fn nothing_counted(metrics: &str, needle: &str) -> bool {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains(needle))
        .all(|line| line.ends_with(" 0"))
}

#[actix_web::test]
async fn shadow_mode_lets_the_same_traffic_through_and_counts_it_and_off_does_nothing() {
    let shadow = spawn_with(
        prefix_breaker(Options::default())
            .with("abuse.prefix_budget", "2/hour")
            .with("abuse.modes.conversion", "shadow")
            .with("abuse.modes.prefix_budget", "shadow"),
    )
    .await;
    let caller = shadow.linked_caller("sub-1", 1001).await;
    for i in 0..5 {
        bind_ok(&shadow, &caller, &es(i)).await;
    }
    let text = metrics(&shadow).await;
    for rule in ["conversion_prefix", "prefix_budget"] {
        let line = format!(r#"bff_abuse_decisions_total{{rule="{rule}",outcome="shadow"}}"#);
        assert!(text.contains(&line), "{rule} counted in shadow: {text}");
    }
    assert!(nothing_counted(&text, r#"outcome="refused""#), "{text}");
    let state = admin(&shadow, "GET", "/admin/v1/abuse").await.json();
    assert_eq!(state["blocks"], Value::Array(vec![]), "shadow never blocks");

    let off = spawn_with(
        prefix_breaker(Options::default())
            .with("abuse.prefix_budget", "2/hour")
            .with("abuse.modes.conversion", "off")
            .with("abuse.modes.prefix_budget", "off"),
    )
    .await;
    let caller = off.linked_caller("sub-1", 1001).await;
    for i in 0..5 {
        bind_ok(&off, &caller, &es(i)).await;
    }
    assert!(nothing_counted(
        &metrics(&off).await,
        "bff_abuse_decisions_total{"
    ));
    let rules = admin(&off, "GET", "/admin/v1/abuse").await.json()["rules"].clone();
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .all(|rule| rule["mode"] == "off"
                || rule["rule"] == "global_budget"
                || rule["rule"] == "country_budget"),
        "{rules}"
    );
}

#[actix_web::test]
async fn a_safe_listed_number_passes_every_rule_but_its_own_quota() {
    let app = spawn_with(
        prefix_breaker(Options::default())
            .with("abuse.prefix_budget", "1/hour")
            .with("abuse.safe", "+3463595")
            .with("rate_limit.bind_per_user", "6/hour"),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for i in 0..6 {
        bind_ok(&app, &caller, &es(i)).await;
    }
    app.bind(&caller, &es(6))
        .await
        .assert_problem(429, "rate_limited");

    let other = app.linked_caller("sub-2", 1002).await;
    let added = admin(&app, "PUT", "/admin/v1/abuse/safe/%2B3463596").await;
    assert_eq!(added.status, 200, "{}", added.text);
    assert_eq!(added.json()["entry"], "+3463596");
    for i in 0..3 {
        bind_ok(&app, &other, &other_es(i)).await;
    }
    let state = admin(&app, "GET", "/admin/v1/abuse").await.json();
    assert_eq!(state["safe"], serde_json::json!(["+3463595", "+3463596"]));
    let removed = admin(&app, "DELETE", "/admin/v1/abuse/safe/%2B3463596").await;
    assert_eq!(removed.status, 204);
    bind_ok(&app, &other, &other_es(3)).await;
    let refused = app.bind(&other, &other_es(4)).await;
    assert_refused(&refused, 429, "sms_budget_exhausted", "prefix_budget");
    admin(&app, "DELETE", "/admin/v1/abuse/safe/%2B3463596")
        .await
        .assert_problem(404, "safe_entry_not_found");
    admin(&app, "PUT", "/admin/v1/abuse/safe/12345")
        .await
        .assert_problem(400, "malformed_request");
}

#[actix_web::test]
async fn the_abuse_admin_routes_need_the_admin_token() {
    let app = spawn_with(Options::default()).await;
    for (method, path) in [
        ("GET", "/admin/v1/abuse"),
        ("DELETE", "/admin/v1/abuse/blocks/country/ES"),
        ("PUT", "/admin/v1/abuse/safe/%2B3463596"),
    ] {
        let url = format!("{}{path}", app.admin);
        let answer = app.send(method, &url, None, None, &[]).await;
        assert_eq!(answer.status, 401, "{method} {path}");
    }
}

/// Two instances of one deployment on this machine's Redis: one key prefix, one secret.
async fn two_on_redis(
    url: &str,
    options: impl Fn(Options) -> Options,
) -> (TestApp, TestApp, Options) {
    let shared = redis_options(url).with("verification.token_secret", random_key_base64());
    let one = spawn_with(options(shared.same_settings())).await;
    let two = spawn_with(options(shared.same_settings())).await;
    (one, two, shared)
}

#[actix_web::test]
async fn two_instances_on_redis_enforce_one_global_budget_and_share_the_safe_list() {
    let Some(url) = redis_url() else {
        return;
    };
    let (one, two, shared) = two_on_redis(&url, |options| {
        roomy(options)
            .with("abuse.global_budget", "10/hour")
            .with("abuse.safe", "+1310890")
    })
    .await;
    let callers = [
        one.linked_caller("sub-1", 1001).await,
        two.linked_caller("sub-1", 1001).await,
    ];
    let mut statuses = Vec::new();
    for i in 0..12u32 {
        let app = [&one, &two][i as usize % 2];
        let answer = app.bind(&callers[i as usize % 2], &spread(i)).await;
        if answer.status != 200 {
            assert_refused(&answer, 429, "sms_budget_exhausted", "global_budget");
        }
        statuses.push(answer.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(&statuses[10..], [429, 429], "{statuses:?}");
    assert_eq!(
        one.sandbox().binds() + two.sandbox().binds(),
        10,
        "AutoShares saw the budget"
    );

    // A number on the configured safe-list passes the spent budget; an entry added
    // through one instance counts on the other.
    bind_ok(&two, &callers[1], &us(0)).await;
    assert_eq!(
        admin(&one, "PUT", "/admin/v1/abuse/safe/%2B3463595")
            .await
            .status,
        200
    );
    bind_ok(&two, &callers[1], &es(0)).await;
    let state = admin(&two, "GET", "/admin/v1/abuse").await.json();
    assert_eq!(
        state["safe"],
        serde_json::json!(["+1310890", "+3463595"]),
        "{state}"
    );

    assert_no_key_names_a_number(&url, &shared).await;
}

#[actix_web::test]
async fn a_block_tripped_through_one_instance_holds_on_the_other() {
    let Some(url) = redis_url() else {
        return;
    };
    let (one, two, _) = two_on_redis(&url, prefix_breaker).await;
    let first = one.linked_caller("sub-1", 1001).await;
    let second = two.linked_caller("sub-1", 1001).await;
    for i in 0..3 {
        bind_ok(&one, &first, &es(i)).await;
    }
    let refused = two.bind(&second, &es(3)).await;
    assert_refused(&refused, 403, "destination_blocked", "conversion_prefix");
    let state = admin(&one, "GET", "/admin/v1/abuse").await.json();
    assert_eq!(state["blocks"][0]["key"], "+3463595", "{state}");
    assert_eq!(
        admin(&two, "DELETE", "/admin/v1/abuse/blocks/prefix/%2B3463595")
            .await
            .status,
        204
    );
    bind_ok(&one, &first, &es(4)).await;
}

/// Twelve valid Spanish mobiles under different prefixes.
fn spread(i: u32) -> String {
    format!("+346{:02}{:06}", 10 + i, 123_456 + i)
}

/// Scans the keys a scenario left: no number or prefix in them, plain or as an unkeyed
/// SHA-256.
async fn assert_no_key_names_a_number(url: &str, options: &Options) {
    let prefix = &options.setting("redis.key_prefix").unwrap().to_owned();
    let keys = redis_keys(url, prefix).await;
    assert!(keys.len() > 5, "{keys:?}");
    let mut texts: Vec<String> = (0..12u32).map(spread).chain((0..3).map(es)).collect();
    texts.extend((0..12u32).map(|i| spread(i)[..8].to_owned()));
    texts.push("+3463595".to_owned());
    for text in texts {
        let sha = digest::digest(&digest::SHA256, text.as_bytes());
        let forms = [
            text.trim_start_matches('+').to_owned(),
            URL_SAFE_NO_PAD.encode(sha.as_ref()),
            URL_SAFE_NO_PAD.encode(&sha.as_ref()[..16]),
            URL_SAFE_NO_PAD.encode(&sha.as_ref()[..24]),
            sha.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        ];
        for key in &keys {
            for form in &forms {
                assert!(
                    !key.contains(&form[..form.len().min(22)]),
                    "{key} names {text}"
                );
            }
        }
    }
}

/// An app whose AutoShares (the sandbox) is behind a proxy the test can take down, on
/// `options`' backend.
async fn behind_a_proxy(
    options: Options,
) -> (
    TestApp,
    crate::helpers::TcpProxy,
    autoshares_bff::sandbox::Sandbox,
) {
    let sandbox = autoshares_bff::sandbox::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Default::default(),
    )
    .unwrap();
    let target = sandbox.base_url();
    let host = target
        .trim_start_matches("http://")
        .trim_end_matches("/api")
        .to_owned();
    let proxy = crate::helpers::TcpProxy::start(&host).await;
    let app = spawn_with(
        options
            .upstream(&format!("http://127.0.0.1:{}/api", proxy.port))
            .with("identity.source", "claim")
            .with("upstream.circuit_open_s", "1"),
    )
    .await;
    (app, proxy, sandbox)
}

/// 60 binds to one country while AutoShares refuses connections (and then its circuit is
/// open), then AutoShares back: the breaker never tripped and the users' quotas are whole.
async fn an_outage_costs_nothing(options: Options) {
    let (app, proxy, _sandbox) = behind_a_proxy(options).await;
    proxy.stop().await;
    for i in 0..60 {
        let caller = app.claim_caller(&format!("sub-{i}"), 2000 + i);
        let answer = app.bind(&caller, &format!("+1310890{:04}", 5000 + i)).await;
        answer.assert_problem(503, "upstream_unavailable");
    }
    let user = app.claim_caller("sub-user", 1001);
    for _ in 0..5 {
        let answer = app.bind(&user, "+13108904569").await;
        answer.assert_problem(503, "upstream_unavailable");
    }
    proxy.resume().await;
    let answer = bind_once_autoshares_answers(&app, &user, "+13108904569").await;
    assert_eq!(
        answer.status, 200,
        "the country is not blocked: {}",
        answer.text
    );
    assert_eq!(
        answer.header("ratelimit"),
        Some(r#""bind_per_user";r=4;t=0"#),
        "the user's quota is whole but for this bind"
    );
}

/// Binds until AutoShares is reached again. After an outage the service waits before it
/// tries again: its circuit stays open for a second, and each failed login holds off the
/// next for a second, doubling while they fail, so a slow machine, whose outage loop
/// outlasts a second, waits longer. The binds refused meanwhile cost nothing, which is
/// what the caller holds.
async fn bind_once_autoshares_answers(app: &TestApp, caller: &Caller, phone: &str) -> Answer {
    for _ in 0..150 {
        let answer = app.bind(caller, phone).await;
        if answer.status != 503 || answer.json()["code"] != "upstream_unavailable" {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("AutoShares was not reached again within 30 s");
}

#[actix_web::test]
async fn an_autoshares_outage_trips_no_breaker_and_spends_no_quota() {
    an_outage_costs_nothing(Options::default().with("rate_limit.bind_per_user", "5/hour")).await;
}

#[actix_web::test]
async fn an_autoshares_outage_costs_nothing_on_redis_either() {
    let Some(url) = redis_url() else { return };
    an_outage_costs_nothing(redis_options(&url).with("rate_limit.bind_per_user", "5/hour")).await;
}

/// Completions of a safe-listed number are not counted: they cannot lift a country's
/// conversion over the breaker's ratio while its other sends never complete.
async fn safe_completions_count_for_nothing(options: Options) {
    let app = spawn_with(
        roomy(options)
            .with("abuse.conversion.min_sends_country", "4")
            .with("abuse.conversion.min_ratio", "0.3")
            .with("abuse.safe", other_es(0)),
    )
    .await;
    let caller = app.linked_caller("sub-1", 1001).await;
    for i in 0..4 {
        bind_ok(&app, &caller, &es(i)).await;
    }
    // The QA device binds and completes twice: were it counted, 2 of 4 would pass 0.3.
    for _ in 0..2 {
        let bound = bind_ok(&app, &caller, &other_es(0)).await;
        complete(&app, &caller, &bound).await;
    }
    let refused = app.bind(&caller, &es(4)).await;
    assert_refused(&refused, 403, "destination_blocked", "conversion_country");
}

#[actix_web::test]
async fn a_safe_listed_numbers_completions_are_not_counted() {
    safe_completions_count_for_nothing(Options::default()).await;
}

#[actix_web::test]
async fn a_safe_listed_numbers_completions_are_not_counted_on_redis_either() {
    let Some(url) = redis_url() else { return };
    safe_completions_count_for_nothing(redis_options(&url)).await;
}
