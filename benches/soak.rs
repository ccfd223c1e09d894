//! A soak of the service as an operator runs it, by hand:
//!
//!   cargo bench --bench soak                # 10 minutes
//!   cargo bench --bench soak -- --minutes 2
//!
//! Starts `autoshares-bff serve` (the release binary) against the sandbox, measures the
//! peak rate of a mixed workload (bind, complete with the sandbox's code, read) for 15 s,
//! then runs it at 80 % of that peak for the whole time, and prints requests, errors and
//! the service's RSS at start, after a warm-up of one token lifetime, and at end. Last, a
//! SIGTERM at full load: every request the service accepted must get its answer. Under
//! `cargo test` it runs a few seconds only.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoshares_bff::auth::mint_hs256;
use autoshares_bff::sandbox::{self, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const SECRET: &str = "soak-bench-hs256-secret-of-32-bytes-0123";
const WORKERS: u64 = 32;
/// Code attempts are kept for a token's lifetime, so the working set is only complete
/// one lifetime (and one eviction pass, every 60 s) into the load: a short lifetime lets
/// the soak measure growth after that warm-up.
const TOKEN_TTL_S: u64 = 120;
const WARM_UP_S: u64 = TOKEN_TTL_S + 90;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn jwt(user: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": format!("soak-{user}"), "iss": "soak", "aud": "soak",
        "iat": now, "auth_time": now, "exp": now + 7200, "autoshares_user_id": user});
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

/// The allocator settings the container image runs with: the Dockerfile's `ENV MIMALLOC_…`
/// (mimalloc's) and `ENV MALLOC_…` (glibc's).
fn image_allocator_env() -> Vec<(String, String)> {
    let dockerfile = include_str!("../Dockerfile");
    dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .flat_map(str::split_whitespace)
        .filter(|pair| pair.starts_with("MIMALLOC_") || pair.starts_with("MALLOC_"))
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn serve(sandbox: &Sandbox, public: u16, admin: u16, dir: &std::path::Path) -> Child {
    let defaults = SandboxConfig::default();
    Command::new(env!("CARGO_BIN_EXE_autoshares-bff"))
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .envs(image_allocator_env())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BFF__SERVER__LISTEN", format!("127.0.0.1:{public}"))
        .env("BFF__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("BFF__UPSTREAM__BASE_URL", sandbox.base_url())
        .env("BFF__UPSTREAM__APP_KEY", defaults.app_key)
        .env("BFF__UPSTREAM__USERNAME", defaults.username)
        .env("BFF__UPSTREAM__PASSWORD", defaults.password)
        .env("BFF__AUTH__ISSUER", "soak")
        .env("BFF__AUTH__AUDIENCE", "soak")
        .env("BFF__AUTH__HS256_SECRET", SECRET)
        .env("BFF__IDENTITY__SOURCE", "claim")
        .env(
            "BFF__VERIFICATION__TOKEN_SECRET",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env(
            "BFF__DATABASE__URL",
            format!("sqlite://{}/soak.db", dir.display()),
        )
        .env("BFF__RATE_LIMIT__BIND_PER_USER", "1000000/second")
        .env("BFF__RATE_LIMIT__BIND_PER_PHONE", "1000000/second")
        .env("BFF__RATE_LIMIT__BIND_PER_CLIENT", "off")
        .env("BFF__RATE_LIMIT__REQUESTS_PER_USER", "1000000/second")
        .env("BFF__ABUSE__PREFIX_BUDGET", "off")
        .env("BFF__VERIFICATION__TOKEN_TTL_S", TOKEN_TTL_S.to_string())
        .env("BFF__LOG__LEVEL", "warn")
        .env("BFF__SERVER__SHUTDOWN_GRACE_S", "10")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the release binary runs")
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests whose connection was taken but never answered (a SIGTERM must not do it).
    unanswered: AtomicU64,
}

/// One worker: bind, complete with the sandbox's code, read; paced to `per_worker_rps`
/// requests a second when given.
async fn worker(
    id: u64,
    api: String,
    sandbox: Arc<Sandbox>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    per_worker_rps: Option<f64>,
) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let token = jwt(1001 + id % 10);
    let mut n = 0u64;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let phone = format!("+1310{:07}", 2_000_000 + (id * 1_000_003 + n) % 8_000_000);
        n += 1;
        let step = |status: Result<u16, bool>| {
            counts.requests.fetch_add(1, Ordering::Relaxed);
            match status {
                Ok(200) | Ok(204) | Ok(422) => {}
                Ok(other) => {
                    if counts.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("soak: an answer of {other}");
                    }
                }
                Err(accepted) => {
                    if counts.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("soak: no answer (connection accepted: {accepted})");
                    }
                    if accepted {
                        counts.unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        };
        let bound = client
            .put(format!("{api}/v1/me/phone-number"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send_json(&json!({"phoneNumber": phone}))
            .await;
        let body = match bound {
            Ok(mut response) => {
                step(Ok(response.status().as_u16()));
                response.json::<Value>().await.unwrap_or(Value::Null)
            }
            Err(error) => {
                step(Err(!matches!(
                    error,
                    awc::error::SendRequestError::Connect(_)
                )));
                continue;
            }
        };
        if let (Some(verification), Some(code)) = (
            body["verificationToken"].as_str(),
            sandbox.last_code(&phone),
        ) {
            let completed = client
                .post(format!("{api}/v1/me/phone-number/verification"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send_json(&json!({"verificationToken": verification, "code": code}))
                .await;
            step(
                completed
                    .map(|r| r.status().as_u16())
                    .map_err(|e| !matches!(e, awc::error::SendRequestError::Connect(_))),
            );
        }
        let read = client
            .get(format!("{api}/v1/me/phone-number"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await;
        step(
            read.map(|r| r.status().as_u16())
                .map_err(|e| !matches!(e, awc::error::SendRequestError::Connect(_))),
        );
        if let Some(rps) = per_worker_rps {
            let due = started + Duration::from_secs_f64(3.0 * n as f64 / rps);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                actix_web::rt::time::sleep(wait).await;
            }
        }
    }
}

async fn run(
    api: &str,
    sandbox: &Arc<Sandbox>,
    seconds: u64,
    per_worker_rps: Option<f64>,
) -> (u64, u64, u64) {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|id| {
            actix_web::rt::spawn(worker(
                id,
                api.to_owned(),
                Arc::clone(sandbox),
                Arc::clone(&counts),
                Arc::clone(&stop),
                per_worker_rps,
            ))
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    (
        counts.requests.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
        counts.unanswered.load(Ordering::Relaxed),
    )
}

#[actix_web::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let minutes: u64 = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(10);
    let (peak_s, soak_s, term_s) = if full {
        (15, minutes * 60, 5)
    } else {
        (1, 2, 1)
    };

    let sandbox = Arc::new(
        sandbox::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            SandboxConfig::default(),
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (public, admin) = (free_port(), free_port());
    let mut child = serve(&sandbox, public, admin, dir.path());
    let api = format!("http://127.0.0.1:{public}");
    let probe = awc::Client::default();
    for _ in 0..100 {
        if probe
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id();

    let (peak_requests, _, _) = run(&api, &sandbox, peak_s, None).await;
    let peak = peak_requests as f64 / peak_s as f64;
    let target = 0.8 * peak;
    let rss_start = rss_mib(pid);
    let started = Instant::now();
    let pace = Some(target / WORKERS as f64);
    let warm_s = if full { WARM_UP_S.min(soak_s / 2) } else { 1 };
    let (warm_requests, warm_errors, _) = run(&api, &sandbox, warm_s, pace).await;
    let rss_warm = rss_mib(pid);
    let (requests, errors, _) = run(&api, &sandbox, soak_s - warm_s, pace).await;
    let (requests, errors) = (requests + warm_requests, errors + warm_errors);
    let took = started.elapsed().as_secs_f64();
    let rss_end = rss_mib(pid);
    println!(
        "soak: peak {peak:.0} req/s; at {target:.0} req/s for {took:.0} s: {requests} requests, {errors} errors; RSS {rss_start:.1} MiB at start, {rss_warm:.1} MiB after {warm_s} s warm-up, {rss_end:.1} MiB at end ({:+.1} % after warm-up)",
        100.0 * (rss_end - rss_warm) / rss_warm.max(0.1)
    );

    // SIGTERM at full load: what the service accepted, it answers.
    let load = actix_web::rt::spawn({
        let (api, sandbox) = (api.clone(), Arc::clone(&sandbox));
        async move { run(&api, &sandbox, term_s + 3, None).await }
    });
    actix_web::rt::time::sleep(Duration::from_secs(term_s)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.wait().expect("serve ends");
    let (term_requests, _, unanswered) = load.await.unwrap_or((0, 0, 0));
    println!(
        "sigterm at full load: {term_requests} requests, {unanswered} accepted and left unanswered; exit {}",
        exit.code().map_or("signal".to_owned(), |c| c.to_string())
    );
}
