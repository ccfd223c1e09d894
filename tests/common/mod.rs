//! Running the built binary as a service process, the way an operator would.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

pub mod tls;

use std::net::TcpListener;

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_autoshares-bff");

/// A loopback port for a process that binds it itself. Ports are handed out in turn from
/// 10 000 to 19 999, below the kernel's ephemeral range, so that between the test's
/// choosing one and the process's binding it no outgoing connection is given it and no
/// other test of this binary is handed it (a Redis Cluster node's bus, its port + 10 000,
/// stays below the range too); one in use now is passed over. Where the ephemeral range
/// starts lower, a port the kernel just gave and took back.
pub fn free_port() -> u16 {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 10_000;
    const COUNT: u16 = 10_000;
    static NEXT: LazyLock<Option<AtomicU16>> = LazyLock::new(|| {
        let ephemeral_from: Option<u16> =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|range| range.split_whitespace().next()?.parse().ok());
        // Binaries that run one after another start at different places.
        let start = u16::try_from(std::process::id() % u32::from(COUNT)).unwrap();
        ephemeral_from
            .filter(|from| *from >= FIRST + 2 * COUNT)
            .map(|_| AtomicU16::new(start))
    });
    let Some(next) = NEXT.as_ref() else {
        return TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    };
    loop {
        let port = FIRST + next.fetch_add(1, Ordering::Relaxed) % COUNT;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A loopback port held by a bound socket that does not listen: connecting to it is
/// refused, and no other socket, this process's outgoing connections included, can take
/// the port while the test runs. A port only freed could be taken between the test's
/// reading it and its use.
pub struct ClosedPort(socket2::Socket);

impl ClosedPort {
    pub fn new() -> Self {
        use socket2::{Domain, Protocol, Socket, Type};
        // Without SO_REUSEADDR: no other socket may bind the port, with it or not.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        Self(socket)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.0.local_addr().unwrap().as_socket().unwrap()
    }

    /// The port comes up: it listens from now on.
    pub fn listen(self) -> TcpListener {
        self.0.listen(128).unwrap();
        self.0.into()
    }
}

/// A one-worker HTTP server on a free loopback port, serving `routes`; its address.
pub fn spawn_routes(
    routes: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
) -> std::net::SocketAddr {
    spawn_routes_on(TcpListener::bind("127.0.0.1:0").unwrap(), routes)
}

/// A one-worker HTTP server on `listener`, serving `routes`; its address.
pub fn spawn_routes_on(
    listener: TcpListener,
    routes: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
) -> std::net::SocketAddr {
    let addr = listener.local_addr().unwrap();
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
    actix_web::rt::spawn(server);
    addr
}

/// `autoshares-bff serve` with only the given variables (none inherited from the tests).
pub struct ServeProcess {
    child: Child,
    pub public: String,
    pub admin: String,
    /// The threads reading its stdout and stderr, until `finish` takes them.
    output: Option<(JoinHandle<String>, JoinHandle<String>)>,
}

/// Everything the process printed, and how it ended.
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Reads a pipe to its end on a thread, so the child never blocks on a full pipe.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    })
}

impl ServeProcess {
    pub fn start(env: &[(&str, String)]) -> Self {
        Self::spawn(Command::new(BIN), env)
    }

    /// `serve` allowed to run on the CPUs `cpus` only (`taskset -c`, e.g. `0`).
    pub fn start_on_cpus(cpus: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new("taskset");
        command.args(["-c", cpus, BIN]);
        Self::spawn(command, env)
    }

    fn spawn(mut command: Command, env: &[(&str, String)]) -> Self {
        let public_port = free_port();
        let admin_port = free_port();
        for (key, _) in std::env::vars() {
            if key.starts_with("BFF") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command
            .arg("serve")
            .env("BFF__SERVER__LISTEN", format!("127.0.0.1:{public_port}"))
            .env(
                "BFF__SERVER__ADMIN_LISTEN",
                format!("127.0.0.1:{admin_port}"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        Self {
            child,
            public: format!("http://127.0.0.1:{public_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            output: Some((stdout, stderr)),
        }
    }

    /// Waits until `/readyz` answers 200; else fails with its last answer (which part is
    /// down) or why there was none (a process that could not start refuses connections).
    pub async fn wait_ready(&self, client: &awc::Client) {
        let mut last = String::new();
        for _ in 0..100 {
            match client.get(format!("{}/readyz", self.admin)).send().await {
                Ok(answer) if answer.status() == 200 => return,
                Ok(mut answer) => {
                    let body = answer.body().await.unwrap_or_default();
                    last = format!("{} {}", answer.status(), String::from_utf8_lossy(&body));
                }
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve never became ready; /readyz last: {last}");
    }

    /// How many of the process's threads have a name starting with `prefix` (Linux keeps
    /// the first 15 bytes of a name).
    pub fn threads_named(&self, prefix: &str) -> usize {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap();
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }

    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "SIGTERM sent");
    }

    /// SIGKILL, as an OOM kill or a lost node: nothing of the process runs after it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
    }

    /// Waits for the process to end and collects its output.
    pub fn finish(mut self) -> Finished {
        let status = self.child.wait().unwrap();
        let (stdout, stderr) = self.output.take().expect("a process is finished once");
        Finished {
            success: status.success(),
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }
}

/// A process its test did not finish (the test failed, or was done with it) is killed, so
/// that none outlives its test.
impl Drop for ServeProcess {
    fn drop(&mut self) {
        if self.output.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One request as a client sends it; answers the status and the JSON body (or null).
pub async fn call(
    client: &awc::Client,
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = bearer {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .unwrap();
    let bytes = response.body().await.unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 JWT with `claims`, signed with `secret`.
pub fn hs256_jwt(secret: &str, claims: &Value) -> String {
    autoshares_bff::auth::mint_hs256(secret.as_bytes(), claims).unwrap()
}

/// The HS256 secret of the services `claim_serve_env` configures.
pub const CLAIM_SECRET: &str = "serve-test-secret-0123456789abcdef";

/// What `serve` needs against the AutoShares at `base_url`, whose service account is
/// `(app_key, username, password)`: end users named by the `autoshares_user_id` claim of
/// an HS256 JWT (`claim_jwt`), and a SQLite file in `dir`.
pub fn claim_serve_env(
    base_url: String,
    (app_key, username, password): (&str, &str, &str),
    dir: &std::path::Path,
) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    vec![
        ("BFF__UPSTREAM__BASE_URL", base_url),
        ("BFF__UPSTREAM__APP_KEY", app_key.to_owned()),
        ("BFF__UPSTREAM__USERNAME", username.to_owned()),
        ("BFF__UPSTREAM__PASSWORD", password.to_owned()),
        ("BFF__AUTH__ISSUER", "iss".to_owned()),
        ("BFF__AUTH__AUDIENCE", "aud".to_owned()),
        ("BFF__AUTH__HS256_SECRET", CLAIM_SECRET.to_owned()),
        (
            "BFF__VERIFICATION__TOKEN_SECRET",
            base64::engine::general_purpose::STANDARD.encode([1u8; 32]),
        ),
        (
            "BFF__DATABASE__URL",
            format!("sqlite://{}/db.sqlite", dir.display()),
        ),
        ("BFF__IDENTITY__SOURCE", "claim".to_owned()),
    ]
}

/// A JWT for a service of `claim_serve_env`: `subject`, AutoShares user `user`.
pub fn claim_jwt(subject: &str, user: i64) -> String {
    let claims = serde_json::json!({"sub": subject, "iss": "iss", "aud": "aud",
        "exp": unix_now() + 600, "autoshares_user_id": user});
    hs256_jwt(CLAIM_SECRET, &claims)
}
