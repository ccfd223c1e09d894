//! A fake AutoShares whose answers a test scripts, for faults the sandbox never makes.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use autoshares_bff::sandbox::SeenRequest as Seen;
use serde_json::{Value, json};

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
