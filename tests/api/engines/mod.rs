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
use std::time::Duration;

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
    pub async fn start(
        autoshares: &Scripted,
        dir: &Path,
        redis: &[(&'static str, String)],
    ) -> Self {
        let mut env = claim_serve_env(
            autoshares.base_url.clone(),
            ("app-key", "service", "password"),
            dir,
        );
        env.push(("BFF__RATE_LIMIT__BACKEND", "redis".to_owned()));
        // These tests are of shared state, not of the abuse rules' defaults.
        env.push(("BFF__ABUSE__MODES__CONVERSION", "off".to_owned()));
        env.push(("BFF__ABUSE__PREFIX_BUDGET", "off".to_owned()));
        env.extend(redis.iter().cloned());
        let process = ServeProcess::start(&env);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        let service = Self { process, client };
        service.process.wait_ready(&service.client).await;
        service
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
