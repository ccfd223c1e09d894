//! A stand-in AutoShares for `dev`, `sandbox` and the tests, written straight from
//! AutoShares' API documentation (and sharing none of `upstream/`'s types, so a misreading
//! there cannot hide here): `POST /token`, the four phone-number endpoints, a few known
//! users, and `GET /sandbox/sms` showing the last code sent to a number.

mod api;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::{App, HttpServer, web};

/// Who may log in and which users exist.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub app_key: String,
    pub username: String,
    pub password: String,
    /// A second account that has two-factor login (answers 202 `Expecting`).
    pub two_factor_username: String,
    /// AutoShares user ids that exist.
    pub users: Vec<i64>,
    /// How long a step-1 token id stays valid (AutoShares does not document it).
    pub bind_ttl: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            app_key: "sandbox-app-key".to_owned(),
            username: "sandbox".to_owned(),
            password: "sandbox-password".to_owned(),
            two_factor_username: "sandbox-2fa".to_owned(),
            users: (1001..=1010).chain([1925]).collect(),
            bind_ttl: Duration::from_secs(600),
        }
    }
}

/// One request as the sandbox received it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, exactly as sent.
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// What `request` carried.
    pub fn of(request: &actix_web::HttpRequest) -> Self {
        Self {
            method: request.method().to_string(),
            path: request.path().to_owned(),
            query: request.query_string().to_owned(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn raw_query(&self) -> &str {
        &self.query
    }
}

struct Pending {
    user: i64,
    phone: String,
    code: String,
    expires: Instant,
}

#[derive(Default)]
struct World {
    tokens: HashMap<String, Instant>,
    issued: Vec<String>,
    phones: HashMap<i64, (String, String)>,
    pending: HashMap<i64, Pending>,
    next_token_id: i64,
    last_codes: HashMap<String, String>,
    seen: Vec<SeenRequest>,
}

type Shared = Arc<Mutex<World>>;

/// How many requests the sandbox remembers for tests; older ones are forgotten.
const MAX_SEEN: usize = 10_000;

/// A running sandbox.
pub struct Sandbox {
    addr: SocketAddr,
    world: Shared,
    handle: ServerHandle,
}

/// Builds the sandbox server on `listener`; the caller runs (or spawns) the `Server`.
pub fn serve(listener: TcpListener, config: SandboxConfig) -> std::io::Result<(Sandbox, Server)> {
    let addr = listener.local_addr()?;
    let world: Shared = Arc::new(Mutex::new(World {
        next_token_id: 1900,
        ..World::default()
    }));
    let shared = world.clone();
    let config = web::Data::new(config);
    let server = HttpServer::new(move || {
        let recorder = shared.clone();
        App::new()
            .app_data(web::Data::new(shared.clone()))
            .app_data(config.clone())
            .wrap_fn(move |request, service| {
                let seen = SeenRequest::of(request.request());
                if seen.path.starts_with("/api/") {
                    let mut world = recorder.lock().expect("sandbox lock poisoned");
                    // A long `dev` session must not grow without bound.
                    if world.seen.len() >= MAX_SEEN {
                        world.seen.drain(..MAX_SEEN / 2);
                    }
                    world.seen.push(seen);
                }
                service.call(request)
            })
            .configure(api::routes)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    Ok((
        Sandbox {
            addr,
            world,
            handle,
        },
        server,
    ))
}

/// Starts the sandbox in the background of the current actix system.
pub fn start(listener: TcpListener, config: SandboxConfig) -> std::io::Result<Sandbox> {
    let (sandbox, server) = serve(listener, config)?;
    actix_web::rt::spawn(server);
    Ok(sandbox)
}

impl Sandbox {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `upstream.base_url` that reaches this sandbox.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Every request to the AutoShares API, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.world().seen.clone()
    }

    /// The newest request to the AutoShares API.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.world().seen.last().cloned()
    }

    /// How many requests had `method` and a path ending with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.world()
            .seen
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    /// How many `POST /token` calls were made.
    pub fn logins(&self) -> usize {
        self.count("POST", "/api/token")
    }

    /// How many complete-binding calls were made.
    pub fn completions(&self) -> usize {
        self.world()
            .seen
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/phonenumber/token/"))
            .count()
    }

    /// How many bind calls were made.
    pub fn binds(&self) -> usize {
        self.count("PUT", "/subscriptions/settings/phonenumber")
    }

    /// The last code sent to `phone` (E.164).
    pub fn last_code(&self, phone: &str) -> Option<String> {
        self.world().last_codes.get(phone).cloned()
    }

    /// Every service token issued so far, revoked ones included.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.world().issued.clone()
    }

    /// Every code sent so far, by number.
    pub fn sent_codes(&self) -> Vec<(String, String)> {
        let world = self.world();
        world
            .last_codes
            .iter()
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect()
    }

    /// Forgets every issued token, as if they had expired.
    pub fn revoke_tokens(&self) {
        self.world().tokens.clear();
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().expect("sandbox lock poisoned")
    }
}
