//! A replayed SMS-pumping attack (docs/abuse.md), run by hand:
//!
//!   cargo bench --bench attack                       # one instance, memory limits
//!   cargo bench --bench attack -- --redis redis://127.0.0.1:6379   # two instances, one Redis
//!   cargo bench --bench attack -- --shadow           # every rule in shadow mode
//!   cargo bench --bench attack -- --breaker-only     # the prefix budget off
//!
//! The service runs against its sandbox with the shipped defaults of `config/default.toml`,
//! time compressed by configuration: an hour of the real rules is a minute here (the
//! breaker window and block, and the per-user quota). Honest traffic: a few hundred users
//! binding numbers across eight countries, most completing with the code the sandbox
//! sent. The attack: a few hundred accounts binding thousands of distinct numbers in five
//! prefixes of two countries, never completing. The last line says how many SMS reached
//! attack numbers (`leaked`), how many honest binds were refused, and the rules that fired.
//! Under `cargo test` (no `--bench` argument) it runs a few seconds only, as a smoke test.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use autoshares_bff::auth::mint_hs256;
use autoshares_bff::config::{Settings, Sources};
use autoshares_bff::phone::{PhoneNumber, PhoneRules};
use autoshares_bff::sandbox::{self, Sandbox, SandboxConfig};
use autoshares_bff::startup::{self, Listeners};
use serde_json::{Value, json};

const ISSUER: &str = "attack-bench";
const SECRET: &str = "attack-bench-hs256-secret-of-32-bytes!";

struct Scenario {
    seconds: u64,
    honest_users: u32,
    attack_accounts: u32,
    attack_numbers: u32,
}

struct Instance {
    public: String,
    admin: String,
}

#[actix_web::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let shadow = args.iter().any(|a| a == "--shadow");
    let breaker_only = args.iter().any(|a| a == "--breaker-only");
    let redis = args
        .iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1).cloned());
    let scenario = if full {
        Scenario {
            seconds: 90,
            honest_users: 300,
            attack_accounts: 300,
            attack_numbers: 3000,
        }
    } else {
        Scenario {
            seconds: 3,
            honest_users: 10,
            attack_accounts: 10,
            attack_numbers: 60,
        }
    };
    let sandbox = sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxConfig {
            users: (1..=10_000).collect(),
            ..SandboxConfig::default()
        },
    )
    .unwrap();
    let instances = match &redis {
        Some(url) => vec![
            start(&sandbox, shadow, breaker_only, Some(url)).await,
            start(&sandbox, shadow, breaker_only, Some(url)).await,
        ],
        None => vec![start(&sandbox, shadow, breaker_only, None).await],
    };
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();

    let honest = honest_numbers(scenario.honest_users);
    let attack = attack_numbers(scenario.attack_numbers);
    let started = Instant::now();
    let run = Duration::from_secs(scenario.seconds);
    let honest_loop = honest_traffic(&client, &instances, &sandbox, &honest, run);
    let attack_loop = attack_traffic(&client, &instances, &attack, scenario.attack_accounts, run);
    let ((honest_sent, honest_refused, completed), (leaked, attack_refused)) =
        tokio::join!(honest_loop, attack_loop);
    let fired = rules_fired(&client, &instances).await;
    let mode = if shadow { "shadow" } else { "enforce" };
    println!(
        "instances={} backend={} mode={mode} seconds={:.0} honest_binds={honest_sent} \
         completed={completed} attack_binds={} attack_refused={attack_refused}",
        instances.len(),
        if redis.is_some() { "redis" } else { "memory" },
        started.elapsed().as_secs_f64(),
        leaked + attack_refused,
    );
    let percent = 100.0 * f64::from(honest_refused) / f64::from(honest_sent.max(1));
    println!(
        "leaked={leaked} honest_refused={honest_refused} ({percent:.2} %) rules_fired={fired}"
    );
}

async fn start(
    sandbox: &Sandbox,
    shadow: bool,
    breaker_only: bool,
    redis: Option<&str>,
) -> Instance {
    let dir = tempfile::tempdir().unwrap().keep();
    let defaults = SandboxConfig::default();
    let mut sources = Sources::default()
        .with("upstream.base_url", sandbox.base_url())
        .with("upstream.app_key", defaults.app_key)
        .with("upstream.username", defaults.username)
        .with("upstream.password", defaults.password)
        .with("auth.issuer", ISSUER)
        .with("auth.audience", ISSUER)
        .with("auth.hs256_secret", SECRET)
        .with("identity.source", "claim")
        .with(
            "verification.token_secret",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .with(
            "database.url",
            format!("sqlite://{}/bench.db", dir.display()),
        )
        .with("admin.token", "attack-bench-admin-token-0123456789")
        .with("log.level", "error")
        // An hour is a minute: the breaker's window and block, and the user's quota.
        .with("abuse.conversion.window_s", "60")
        .with("abuse.conversion.block_s", "60")
        .with("rate_limit.bind_per_user", "5/minute")
        // Every simulated caller comes from 127.0.0.1: the per-client quota would stop
        // the attack (and the honest users) before the rules this bench measures.
        .with("rate_limit.bind_per_client", "off")
        // The simulated callers send faster than people do; the rules measured are others.
        .with("rate_limit.requests_per_user", "off");
    if shadow {
        for rule in [
            "global_budget",
            "country_budget",
            "prefix_budget",
            "conversion",
        ] {
            sources = sources.with(&format!("abuse.modes.{rule}"), "shadow");
        }
    }
    if breaker_only {
        sources = sources.with("abuse.prefix_budget", "off");
    }
    if let Some(url) = redis {
        sources = sources
            .with("rate_limit.backend", "redis")
            .with("redis.url", url)
            .with(
                "redis.key_prefix",
                format!("attack-bench-{}:", std::process::id()),
            );
    }
    let settings = Settings::load(&sources).expect("bench settings are valid");
    let listeners = Listeners::bind("127.0.0.1:0", "127.0.0.1:0").unwrap();
    let app = startup::build(settings, listeners).await.unwrap();
    let instance = Instance {
        public: format!("http://{}", app.public_addr()),
        admin: format!("http://{}", app.admin_addr()),
    };
    actix_web::rt::spawn(app.run_until(std::future::pending()));
    instance
}

fn jwt(user: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": format!("user-{user}"), "iss": ISSUER, "aud": ISSUER,
        "iat": now, "exp": now + 3600, "autoshares_user_id": user});
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

/// A cheap deterministic spread of digits.
fn digits(seed: u64, count: usize) -> String {
    let mut x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..count)
        .map(|_| {
            x ^= x >> 29;
            x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            char::from(b'0' + (x >> 59) as u8 % 10)
        })
        .collect()
}

/// Valid mobile numbers across eight countries, one per honest user, spread over each
/// country's number ranges as real subscribers are (area codes, exchanges, carriers).
fn honest_numbers(users: u32) -> Vec<String> {
    let shapes: [(&str, usize); 8] = [
        ("+1", 10),
        ("+346", 8),
        ("+447", 9),
        ("+4915", 9),
        ("+336", 8),
        ("+52", 10),
        ("+55119", 8),
        ("+919", 9),
    ];
    let rules = PhoneRules::default();
    let mut numbers = Vec::new();
    let mut seed = 1;
    while numbers.len() < users as usize {
        let (head, tail) = shapes[numbers.len() % shapes.len()];
        let candidate = format!("{head}{}", digits(seed, tail));
        seed += 1;
        if let Ok(number) = PhoneNumber::parse(&candidate, &rules) {
            numbers.push(number.as_e164().to_owned());
        }
    }
    numbers
}

/// Distinct numbers in five prefixes of two countries (Spain and the United Kingdom).
fn attack_numbers(count: u32) -> Vec<String> {
    let prefixes = ["+3463595", "+3463596", "+3463597", "+4474009", "+4474010"];
    (0..count)
        .map(|i| {
            format!(
                "{}{:04}",
                prefixes[i as usize % prefixes.len()],
                (i * 7919) % 10_000
            )
        })
        .collect()
}

async fn bind(client: &awc::Client, instance: &Instance, user: u32, phone: &str) -> (u16, Value) {
    let answer = client
        .put(format!("{}/v1/me/phone-number", instance.public))
        .insert_header(("Authorization", format!("Bearer {}", jwt(user))))
        .send_json(&json!({"phoneNumber": phone}))
        .await;
    match answer {
        Ok(mut response) => {
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            (response.status().as_u16(), body)
        }
        Err(_) => (0, Value::Null),
    }
}

/// Every honest user binds once, spread over the run; 85 % complete with the code.
async fn honest_traffic(
    client: &awc::Client,
    instances: &[Instance],
    sandbox: &Sandbox,
    numbers: &[String],
    run: Duration,
) -> (u32, u32, u32) {
    let pause = run / numbers.len() as u32;
    let (mut sent, mut refused, mut completed) = (0, 0, 0);
    for (i, number) in numbers.iter().enumerate() {
        let user = 1 + i as u32;
        let instance = &instances[i % instances.len()];
        let (status, body) = bind(client, instance, user, number).await;
        sent += 1;
        if status != 200 {
            refused += 1;
        } else if i % 20 < 17 {
            let code = sandbox.last_code(number).unwrap_or_default();
            let answer = client
                .post(format!(
                    "{}/v1/me/phone-number/verification",
                    instance.public
                ))
                .insert_header(("Authorization", format!("Bearer {}", jwt(user))))
                .send_json(&json!({"verificationToken": body["verificationToken"], "code": code}))
                .await;
            if answer.is_ok_and(|r| r.status() == 200) {
                completed += 1;
            }
        }
        actix_web::rt::time::sleep(pause).await;
    }
    (sent, refused, completed)
}

/// The accounts take turns binding every attack number once, spread over the run.
async fn attack_traffic(
    client: &awc::Client,
    instances: &[Instance],
    numbers: &[String],
    accounts: u32,
    run: Duration,
) -> (u32, u32) {
    let pause = run / numbers.len() as u32;
    let (mut leaked, mut refused) = (0, 0);
    for (i, number) in numbers.iter().enumerate() {
        let account = 5_001 + (i as u32 % accounts);
        let instance = &instances[i % instances.len()];
        match bind(client, instance, account, number).await.0 {
            200 => leaked += 1,
            _ => refused += 1,
        }
        actix_web::rt::time::sleep(pause).await;
    }
    (leaked, refused)
}

/// `rule:outcome=count` of `bff_abuse_decisions_total`, summed over the instances.
async fn rules_fired(client: &awc::Client, instances: &[Instance]) -> String {
    let mut fired: BTreeMap<String, u64> = BTreeMap::new();
    for instance in instances {
        let Ok(mut response) = client
            .get(format!("{}/metrics", instance.admin))
            .send()
            .await
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&response.body().await.unwrap_or_default()).into_owned();
        for line in text
            .lines()
            .filter(|l| l.starts_with("bff_abuse_decisions_total{"))
        {
            let (labels, count) = line.rsplit_once(' ').unwrap();
            let rule = labels
                .split("rule=\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            let outcome = labels
                .split("outcome=\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            if let (Some(rule), Some(outcome)) = (rule, outcome) {
                *fired.entry(format!("{rule}:{outcome}")).or_default() +=
                    count.parse::<u64>().unwrap_or(0);
            }
        }
    }
    if fired.is_empty() {
        return "none".to_owned();
    }
    fired
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
