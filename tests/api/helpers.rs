//! Test harness: each test gets its own service on random ports, its own database
//! (a temporary SQLite file, or a fresh PostgreSQL database when `BFF_TEST_DATABASE_URL`
//! is set), a random signing secret, and a fake AutoShares over real HTTP: the sandbox
//! for stateful flows, or a scripted server for faults.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use autoshares_bff::config::{Settings, Sources};
use autoshares_bff::sandbox::{self, Sandbox, SandboxConfig, SeenRequest as Seen};
use autoshares_bff::startup::{self, Listeners};
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://id.example.test";
pub const AUDIENCE: &str = "autoshares-bff";
pub const ADMIN_TOKEN: &str = "test-admin-token-5b1f";

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer).unwrap();
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_key_base64() -> String {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A database for one test: a temporary SQLite file, or a new PostgreSQL database.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/links.db", dir.path().display());
        Self {
            url,
            _dir: Some(dir),
        }
    }

    /// A fresh database on the server of `BFF_TEST_DATABASE_URL`, or `None` when unset.
    pub async fn postgres() -> Option<Self> {
        let base = std::env::var("BFF_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        sqlx::any::install_default_drivers();
        let name = format!("bff_test_{}", random_hex(6));
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
            .await
            .expect("BFF_TEST_DATABASE_URL must reach PostgreSQL");
        // The name is ours: `bff_test_` and random hex.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let (prefix, query) = base
            .split_once('?')
            .map_or((base.as_str(), None), |(p, q)| (p, Some(q)));
        let root = &prefix[..prefix.rfind('/').expect("a database URL has a path")];
        let url = match query {
            Some(q) => format!("{root}/{name}?{q}"),
            None => format!("{root}/{name}"),
        };
        Some(Self { url, _dir: None })
    }

    /// PostgreSQL when configured, else SQLite.
    pub async fn for_test() -> Self {
        match Self::postgres().await {
            Some(db) => db,
            None => Self::sqlite().await,
        }
    }
}

/// What the scripted AutoShares answers.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// A documented bind answer.
    pub fn bound(phone: &str, token_id: i64) -> Self {
        Self::json(
            200,
            json!({
                "m_Item1": {"PhoneNumber": phone, "PhoneNumberState": "NotVerified"},
                "m_Item2": token_id
            }),
        )
    }
}

type Script = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

/// A fake AutoShares whose answers a test scripts: logins answer `login`, phone calls
/// answer `phone` with the call's number (0-based) among phone calls.
pub struct Scripted {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    logins: Arc<AtomicUsize>,
}

impl Scripted {
    pub fn start(
        login: impl Fn(usize) -> Reply + Send + Sync + 'static,
        phone: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let logins: Arc<AtomicUsize> = Arc::default();
        let phone_calls: Arc<AtomicUsize> = Arc::default();
        let login: Arc<dyn Fn(usize) -> Reply + Send + Sync> = Arc::new(login);
        let phone: Arc<Script> = Arc::new(phone);
        let state = (seen.clone(), logins.clone(), phone_calls, login, phone);
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().default_service(web::to(move |request: HttpRequest| {
                let (seen, logins, phone_calls, login, phone) = state.clone();
                async move {
                    let request_seen = Seen::of(&request);
                    seen.lock().unwrap().push(request_seen.clone());
                    let reply =
                        if request_seen.path.ends_with("/token") && request_seen.method == "POST" {
                            login(logins.fetch_add(1, Ordering::SeqCst))
                        } else {
                            phone(phone_calls.fetch_add(1, Ordering::SeqCst), &request_seen)
                        };
                    if !reply.delay.is_zero() {
                        tokio::time::sleep(reply.delay).await;
                    }
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(reply.status).unwrap(),
                    )
                    .content_type("application/json")
                    .body(reply.body)
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Self {
            base_url: format!("http://{addr}/api"),
            seen,
            logins,
        }
    }

    /// Logins succeed with `scripted-token-N`.
    pub fn good_login(n: usize) -> Reply {
        Reply::json(
            200,
            json!({"State": "Succeeded", "Token": format!("scripted-token-{}", n + 1)}),
        )
    }

    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }

    pub fn phone_calls(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| !s.path.ends_with("/token"))
            .cloned()
            .collect()
    }
}

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
        .with("server.shutdown_grace_s", "1");
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
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(self.hs256_secret.as_bytes()),
        )
        .unwrap()
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
        let mut request = self.client.request(method.parse().unwrap(), url);
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

/// The Redis of `BFF_TEST_REDIS_URL`, or `None` when unset.
pub fn redis_url() -> Option<String> {
    std::env::var("BFF_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Options for the Redis backend with keys of this test only.
pub fn redis_options(url: &str) -> Options {
    Options::default()
        .with("rate_limit.backend", "redis")
        .with("redis.url", url)
        .with("redis.key_prefix", format!("bff-test-{}:", random_hex(6)))
}

/// A TCP forwarder on a fixed local port that a test can take down and bring back, so a
/// service loses its database or Redis and gets it back at the same address.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<actix_web::rt::task::JoinHandle<()>>>>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            port: listener.local_addr().unwrap().port(),
            target: target.to_owned(),
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let accept = actix_web::rt::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                let connection = actix_web::rt::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(connection);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the port and every connection through it.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens on the same port again.
    pub async fn resume(&self) {
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(error) if tries < 50 => {
                    tries += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot listen on {} again: {error}", self.port),
            }
        };
        self.serve(listener);
    }
}

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
