//! The engines production teams run, as real processes: a Redis Cluster, Redis Sentinel,
//! Redis over TLS with a private CA, and PgBouncer in transaction mode. Each test starts its
//! own servers on free loopback ports and real `serve` processes against them (two where
//! replicas must agree), and stops everything when it ends.

mod cluster;
mod pgbouncer;
mod sentinel;
mod servers;
mod tls;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ServeProcess, claim_jwt, claim_serve_env};
use crate::helpers::{Reply, Scripted};

/// A fake AutoShares that binds every number and refuses every code.
pub fn autoshares() -> Scripted {
    Scripted::start(Scripted::good_login, |n, seen| {
        if seen.path.contains("/token/") {
            Reply::json(400, json!({"Message": "wrong code"}))
        } else {
            let number = seen
                .query
                .trim_start_matches("phoneNumber=")
                .replace("%2B", "+");
            Reply::bound(&number, 5000 + n as i64)
        }
    })
}

/// One `serve` process against `autoshares`, with its limits in Redis as `redis` says
/// (`BFF__…` variables) and a SQLite file in `dir`.
pub struct Service {
    pub process: ServeProcess,
    client: awc::Client,
}

/// A bind's answer.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
}

impl Service {
    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start(
        autoshares: &Scripted,
        dir: &Path,
        redis: &[(&'static str, String)],
    ) -> Self {
        let service = Self::launch(autoshares, dir, redis);
        service.process.wait_ready(&service.client).await;
        service
    }

    /// Starts the process without waiting for it.
    pub fn launch(autoshares: &Scripted, dir: &Path, redis: &[(&'static str, String)]) -> Self {
        let mut env = claim_serve_env(
            autoshares.base_url.clone(),
            ("app-key", "service", "password"),
            dir,
        );
        env.push(("BFF__RATE_LIMIT__BACKEND", "redis".to_owned()));
        // These tests are of shared state, not of the abuse rules' defaults.
        env.push(("BFF__ABUSE__MODES__CONVERSION", "off".to_owned()));
        env.push(("BFF__ABUSE__PREFIX_BUDGET", "off".to_owned()));
        env.push(("BFF__RATE_LIMIT__REQUESTS_PER_USER", "off".to_owned()));
        env.extend(redis.iter().cloned());
        let process = ServeProcess::start(&env);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        Self { process, client }
    }

    /// Binds `phone` for `subject` (AutoShares user `user`), with an `Idempotency-Key`.
    pub async fn bind(&self, subject: &str, user: i64, phone: &str, key: Option<&str>) -> Answer {
        let mut request = self
            .client
            .put(format!("{}/v1/me/phone-number", self.process.public))
            .insert_header((
                "Authorization",
                format!("Bearer {}", claim_jwt(subject, user)),
            ));
        if let Some(key) = key {
            request = request.insert_header(("Idempotency-Key", key));
        }
        let mut response = request
            .send_json(&json!({"phoneNumber": phone}))
            .await
            .unwrap();
        let body = response.body().await.unwrap();
        Answer {
            status: response.status().as_u16(),
            replayed: response.headers().contains_key("idempotency-replayed"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    /// Completes with `code`; the status and the problem's `code`.
    pub async fn complete(
        &self,
        subject: &str,
        user: i64,
        token: &str,
        code: &str,
    ) -> (u16, Value) {
        crate::common::call(
            &self.client,
            "POST",
            &format!("{}/v1/me/phone-number/verification", self.process.public),
            Some(&claim_jwt(subject, user)),
            Some(json!({"verificationToken": token, "code": code})),
        )
        .await
    }

    /// Reads the caller's number.
    pub async fn read(&self, subject: &str, user: i64) -> (u16, Value) {
        self.call("GET", subject, user).await
    }

    /// Unbinds the caller's number.
    pub async fn unbind(&self, subject: &str, user: i64) -> (u16, Value) {
        self.call("DELETE", subject, user).await
    }

    async fn call(&self, method: &str, subject: &str, user: i64) -> (u16, Value) {
        crate::common::call(
            &self.client,
            method,
            &format!("{}/v1/me/phone-number", self.process.public),
            Some(&claim_jwt(subject, user)),
            None,
        )
        .await
    }

    /// The status of the first `/readyz` the process answers.
    pub async fn first_readiness(&self) -> u16 {
        for _ in 0..50 {
            let url = format!("{}/readyz", self.process.admin);
            if let Ok(response) = self.client.get(url).send().await {
                return response.status().as_u16();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the admin listener never answered");
    }

    /// `/readyz`: its status and body.
    pub async fn ready(&self) -> (u16, Value) {
        crate::common::call(
            &self.client,
            "GET",
            &format!("{}/readyz", self.process.admin),
            None,
            None,
        )
        .await
    }
}

/// Binds (a new user each time) every 100 ms from the moment a primary was killed until one
/// succeeds after `promoted` says the replica took over; then checks that every refusal
/// before was 503 `rate_limiter_unavailable` (fail closed), that `/readyz` said 503 while
/// binds could not be decided and 200 once they could, and that binds came back within
/// 5 s of the promotion. `what` names the set-up in the printed figures.
pub async fn watch_failover(what: &str, service: &Service, promoted: impl Fn() -> bool) {
    let killed = Instant::now();
    let mut promoted_at = None;
    let mut first_ok = None;
    let mut refusals = Vec::new();
    let mut ready_down = false;
    for i in 1..300 {
        if promoted_at.is_none() && promoted() {
            promoted_at = Some(killed.elapsed());
        }
        let answer = service
            .bind(&format!("sub-{i}"), i, "+13108904569", None)
            .await;
        let (ready, _) = service.ready().await;
        if answer.status == 200 && promoted_at.is_none() && promoted() {
            promoted_at = Some(killed.elapsed());
        }
        if answer.status == 200 {
            assert!(
                promoted_at.is_some(),
                "a bind decided while no primary answered"
            );
            first_ok = Some(killed.elapsed());
            assert_eq!(ready, 200, "ready once binds can be decided");
            break;
        }
        refusals.push((
            answer.status,
            answer.body["code"].as_str().map(str::to_owned),
        ));
        ready_down |= ready == 503;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = promoted_at.expect("the replica was promoted");
    let first_ok = first_ok.expect("binds succeeded again");
    eprintln!(
        "{what} failover: promoted {:.1} s after the kill, first 200 {:.1} s after the promotion",
        promoted.as_secs_f64(),
        first_ok.saturating_sub(promoted).as_secs_f64()
    );
    assert!(
        !refusals.is_empty(),
        "binds failed while no primary answered"
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
}
