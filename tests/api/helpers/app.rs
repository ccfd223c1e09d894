//! The service under test, started on random ports, and a client helper per route.

use std::net::TcpListener;
use std::time::Duration;

use autoshares_bff::auth::mint_hs256;
use autoshares_bff::config::{Settings, Sources};
use autoshares_bff::sandbox::{self, Sandbox, SandboxConfig};
use autoshares_bff::startup::{self, Listeners};
use serde_json::{Value, json};

use super::{TestDatabase, now, random_hex, random_key_base64};

pub const ISSUER: &str = "https://id.example.test";
pub const AUDIENCE: &str = "autoshares-bff";
pub const ADMIN_TOKEN: &str = "test-admin-token-5b1f-0123456789abcdef";

/// Where the service under test sends its AutoShares calls.
pub enum Upstream {
    Sandbox,
    Url(String),
}

/// How a test wants its app.
pub struct Options {
    pub upstream: Upstream,
    pub overrides: Vec<(String, String)>,
    pub database: Option<TestDatabase>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            upstream: Upstream::Sandbox,
            overrides: Vec::new(),
            database: None,
        }
    }
}

impl Options {
    /// The value this test gives `key`, if any (the last one wins, as in the layers).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.overrides
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The same upstream and settings, with a database of its own.
    pub fn same_settings(&self) -> Self {
        Self {
            upstream: match &self.upstream {
                Upstream::Sandbox => Upstream::Sandbox,
                Upstream::Url(url) => Upstream::Url(url.clone()),
            },
            overrides: self.overrides.clone(),
            database: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.overrides.push((key.to_owned(), value.into()));
        self
    }

    pub fn upstream(mut self, base_url: &str) -> Self {
        self.upstream = Upstream::Url(base_url.to_owned());
        self
    }

    pub fn database(mut self, database: TestDatabase) -> Self {
        self.database = Some(database);
        self
    }
}

/// A running service and what a test needs to talk to it.
pub struct TestApp {
    pub public: String,
    pub admin: String,
    pub sandbox: Option<Sandbox>,
    pub hs256_secret: String,
    pub client: awc::Client,
    _database: TestDatabase,
}

/// A caller with a JWT for a subject.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub jwt: String,
}

/// An answer as a client sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a problem document with `status` and `code`, and returns it.
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "status of {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{}", self.text);
        assert_eq!(body["status"], status);
        for key in ["type", "title", "detail", "requestId"] {
            assert!(body[key].is_string(), "problem lacks {key}: {}", self.text);
        }
        assert_eq!(
            Some(body["requestId"].as_str().unwrap()),
            self.header("x-request-id"),
            "requestId matches the header"
        );
        body
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    let sandbox = match options.upstream {
        Upstream::Sandbox => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            Some(sandbox::start(listener, SandboxConfig::default()).unwrap())
        }
        Upstream::Url(_) => None,
    };
    let base_url = match &options.upstream {
        Upstream::Sandbox => sandbox.as_ref().unwrap().base_url(),
        Upstream::Url(url) => url.clone(),
    };
    let database = match options.database {
        Some(database) => database,
        None => TestDatabase::for_test().await,
    };
    let hs256_secret = random_hex(32);
    let defaults = SandboxConfig::default();
    let mut sources = Sources::default()
        .with("upstream.base_url", base_url)
        .with("upstream.app_key", defaults.app_key)
        .with("upstream.username", defaults.username)
        .with("upstream.password", defaults.password)
        .with("upstream.timeout_ms", "2000")
        .with("auth.issuer", ISSUER)
        .with("auth.audience", AUDIENCE)
        .with("auth.hs256_secret", hs256_secret.clone())
        .with("verification.token_secret", random_key_base64())
        .with("database.url", database.url.clone())
        .with("admin.token", ADMIN_TOKEN)
        .with("server.shutdown_grace_s", "1")
        // Most test binds never complete and share a prefix, and all come from 127.0.0.1,
        // and many tests send one user's requests faster than the default request rate;
        // the tests of those rules set them.
        .with("abuse.prefix_budget", "off")
        .with("rate_limit.bind_per_client", "off")
        .with("rate_limit.requests_per_user", "off");
    for (key, value) in options.overrides {
        sources = sources.with(&key, value);
    }
    let settings = Settings::load(&sources).expect("test settings are valid");
    let listeners = Listeners::bind("127.0.0.1:0", "127.0.0.1:0").unwrap();
    let app = startup::build(settings, listeners)
        .await
        .expect("the app builds");
    let public = format!("http://{}", app.public_addr());
    let admin = format!("http://{}", app.admin_addr());
    actix_web::rt::spawn(app.run_until(std::future::pending()));
    TestApp {
        public,
        admin,
        sandbox,
        hs256_secret,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
        _database: database,
    }
}

impl TestApp {
    pub fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().expect("this app uses the sandbox")
    }

    /// A JWT with these claims (HS256, the app's secret).
    pub fn jwt(&self, claims: Value) -> String {
        mint_hs256(self.hs256_secret.as_bytes(), &claims).unwrap()
    }

    /// Valid claims for `subject`.
    pub fn claims(&self, subject: &str) -> Value {
        json!({"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600})
    }

    pub fn caller(&self, subject: &str) -> Caller {
        Caller {
            subject: subject.to_owned(),
            jwt: self.jwt(self.claims(subject)),
        }
    }

    /// A caller whose JWT names its AutoShares user id (for `identity.source = claim`):
    /// binds need no link and no database.
    pub fn claim_caller(&self, subject: &str, user: i64) -> Caller {
        let mut claims = self.claims(subject);
        claims["autoshares_user_id"] = json!(user);
        Caller {
            subject: subject.to_owned(),
            jwt: self.jwt(claims),
        }
    }

    /// A caller whose subject is linked to `user` through the admin API.
    pub async fn linked_caller(&self, subject: &str, user: i64) -> Caller {
        let answer = self
            .put_link(
                subject,
                &json!({"autosharesUserId": user}).to_string(),
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(answer.status, 200, "linking {subject}: {}", answer.text);
        self.caller(subject)
    }

    pub async fn send(
        &self,
        method: &str,
        url: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        Self::send_with(&self.client, method, url, bearer, body, headers).await
    }

    /// [`TestApp::send`] through `client` (one with room for more connections than the
    /// harness's 100, say).
    pub async fn send_with(
        client: &awc::Client,
        method: &str,
        url: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = client.request(method.parse().unwrap(), url);
        if let Some(token) = bearer {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let mut response = match body {
            Some(body) => {
                if !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                {
                    request = request.insert_header(("Content-Type", "application/json"));
                }
                request.send_body(body.to_owned()).await
            }
            None => request.send().await,
        }
        .expect("the service answers");
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let bytes = response.body().limit(1 << 20).await.unwrap();
        Answer {
            status: response.status().as_u16(),
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn put_phone_number(&self, caller: &Caller, body: &str) -> Answer {
        let url = format!("{}/v1/me/phone-number", self.public);
        self.send("PUT", &url, Some(&caller.jwt), Some(body), &[])
            .await
    }

    pub async fn bind(&self, caller: &Caller, phone: &str) -> Answer {
        self.put_phone_number(caller, &json!({"phoneNumber": phone}).to_string())
            .await
    }

    pub async fn complete(&self, caller: &Caller, verification_token: &str, code: &str) -> Answer {
        let url = format!("{}/v1/me/phone-number/verification", self.public);
        let body = json!({"verificationToken": verification_token, "code": code}).to_string();
        self.send("POST", &url, Some(&caller.jwt), Some(&body), &[])
            .await
    }

    pub async fn get_phone_number(&self, caller: &Caller) -> Answer {
        let url = format!("{}/v1/me/phone-number", self.public);
        self.send("GET", &url, Some(&caller.jwt), None, &[]).await
    }

    pub async fn delete_phone_number(&self, caller: &Caller) -> Answer {
        let url = format!("{}/v1/me/phone-number", self.public);
        self.send("DELETE", &url, Some(&caller.jwt), None, &[])
            .await
    }

    pub async fn get_with_bearer(&self, bearer: Option<&str>) -> Answer {
        let url = format!("{}/v1/me/phone-number", self.public);
        self.send("GET", &url, bearer, None, &[]).await
    }

    pub async fn put_link(&self, subject: &str, body: &str, token: Option<&str>) -> Answer {
        let url = format!("{}/admin/v1/links/{subject}", self.admin);
        self.send("PUT", &url, token, Some(body), &[]).await
    }

    pub async fn admin_get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send("GET", &format!("{}{path}", self.admin), token, None, &[])
            .await
    }
}

/// The Redis of `BFF_TEST_REDIS_URL`, or `None` (saying the test is skipped) when unset.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("BFF_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: BFF_TEST_REDIS_URL is not set");
    }
    url
}

/// Every Redis key under `prefix` that a scenario left.
pub async fn redis_keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// Options for the Redis backend with keys of this test only.
pub fn redis_options(url: &str) -> Options {
    Options::default()
        .with("rate_limit.backend", "redis")
        .with("redis.url", url)
        .with("redis.key_prefix", format!("bff-test-{}:", random_hex(6)))
}
