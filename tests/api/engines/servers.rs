//! Real Redis servers of every deployment a team runs, started on free loopback ports from
//! Debian's `redis-server` and `redis-sentinel`, and stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

/// Whether this machine has the servers (`.ci/run` installs them); a test without them
/// says so and returns.
pub fn installed(programs: &[&str]) -> bool {
    let missing: Vec<&&str> = programs
        .iter()
        .filter(|p| {
            Command::new("which")
                .arg(p)
                .output()
                .is_ok_and(|o| !o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("skipped: {missing:?} not installed (.ci/run installs them)");
    }
    missing.is_empty()
}

/// One `redis-server` (or `redis-sentinel`) process.
pub struct RedisProcess {
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl RedisProcess {
    /// `redis-server` on a free port with `extra` arguments; waits until it answers.
    pub fn start(extra: &[String]) -> Self {
        // A cluster node also listens on its port + 10000 (the cluster bus).
        let bus = extra.iter().any(|a| a == "--cluster-enabled");
        Self::launch(bus, &[], |port| {
            let mut args = vec!["--port".to_owned(), port.to_string()];
            args.extend(extra.iter().cloned());
            args
        })
    }

    /// `redis-server` serving only TLS on a free port, with `certificates`; `clients`
    /// asks clients for a certificate.
    pub fn start_tls(certificates: &Certificates, clients: bool, extra: &[String]) -> Self {
        Self::launch(false, &certificates.cli_args(), |port| {
            let mut args = vec!["--port".to_owned(), "0".to_owned()];
            args.extend(certificates.server_args(port, clients));
            args.extend(extra.iter().cloned());
            args
        })
    }

    /// Starts `redis-server` with `args_for(port)` on a free port, and on another if the
    /// port was taken meanwhile (another test's listener).
    fn launch(bus: bool, cli_tls: &[String], args_for: impl Fn(u16) -> Vec<String>) -> Self {
        let mut log = String::new();
        for _ in 0..5 {
            let port = loop {
                let port = free_port();
                let bus_free = port < 55_535
                    && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
                if !bus || bus_free {
                    break port;
                }
            };
            let dir = tempfile::tempdir().unwrap();
            let mut args = args_for(port);
            args.extend([
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
                "--dir".to_owned(),
                dir.path().display().to_string(),
                "--logfile".to_owned(),
                dir.path().join("log").display().to_string(),
            ]);
            let mut process = Self {
                port,
                child: Some(spawn("redis-server", &args)),
                _dir: dir,
            };
            if process.answers(cli_tls) {
                return process;
            }
            log = std::fs::read_to_string(process._dir.path().join("log")).unwrap_or_default();
            process.kill();
        }
        panic!("redis-server never answered:\n{log}");
    }

    /// `redis-sentinel` on a free port watching the primary at `primary_port` as
    /// `mymaster`, with a quorum of `quorum`.
    pub fn sentinel(primary_port: u16, quorum: u8) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary_port} {quorum}\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 5000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = spawn("redis-sentinel", &[conf.display().to_string()]);
        let mut process = Self {
            port,
            child: Some(child),
            _dir: dir,
        };
        assert!(
            process.answers(&[]),
            "redis-sentinel on {port} never answered"
        );
        process
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli` against this server; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, &[], args)
    }

    /// Whether the server answers within 10 s; `false` at once if it exited.
    fn answers(&mut self, tls: &[String]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let answer = cli(self.port, tls, &["PING"]);
            if answer.contains("PONG") || answer.contains("NOAUTH") {
                return true;
            }
            if self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some())
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGKILL, as a lost node.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(program: &str, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `redis-cli -p port [tls…] args…`; its stdout.
pub fn cli(port: u16, tls: &[String], args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(tls)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A Redis Cluster of three primaries, each with one replica.
pub struct Cluster {
    pub nodes: Vec<RedisProcess>,
}

impl Cluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisProcess> = (0..6)
            .map(|_| {
                RedisProcess::start(&[
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-node-timeout".into(),
                    "1000".into(),
                    "--cluster-config-file".into(),
                    "nodes.conf".into(),
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let created = Command::new("redis-cli").args(&args).output().unwrap();
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// Until every live node says the cluster is ok and knows all six nodes, and every
    /// replica has synced with its primary (one that never did cannot be promoted).
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = n.cli(&["CLUSTER", "INFO"]);
                let replication = n.cli(&["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_known_nodes:6")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster never became ok");
    }

    /// The node that owns `key`'s slot now (a primary), by its index.
    pub fn owner_of(&self, key: &str) -> usize {
        let any = self.nodes.iter().find(|n| n.child.is_some()).unwrap();
        let slot: u16 = any
            .cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .unwrap();
        let nodes = any.cli(&["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1]
                .split('@')
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            for range in &fields[8..] {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(low), Ok(high)) = (low.parse::<u16>(), high.parse::<u16>())
                    && (low..=high).contains(&slot)
                {
                    return self.nodes.iter().position(|n| n.port == port).unwrap();
                }
            }
        }
        panic!("no primary owns slot {slot}:\n{nodes}");
    }

    /// The slot of `key`.
    pub fn slot_of(&self, key: &str) -> String {
        self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .to_owned()
    }

    /// Starts moving `slot` from the primary at `from` to the one at `to`, as
    /// `redis-cli --cluster reshard` does: importing on `to`, migrating on `from`.
    pub fn begin_slot_move(&self, slot: &str, from: usize, to: usize) {
        let (from_id, to_id) = (self.id(from), self.id(to));
        assert!(
            self.nodes[to]
                .cli(&["CLUSTER", "SETSLOT", slot, "IMPORTING", &from_id])
                .contains("OK")
        );
        assert!(
            self.nodes[from]
                .cli(&["CLUSTER", "SETSLOT", slot, "MIGRATING", &to_id])
                .contains("OK")
        );
    }

    /// Moves up to `count` keys of `slot` from `from` to `to`; answers how many moved.
    pub fn migrate_keys(&self, slot: &str, from: usize, to: usize, count: usize) -> usize {
        let keys = self.nodes[from].cli(&["CLUSTER", "GETKEYSINSLOT", slot, &count.to_string()]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            return 0;
        }
        let port = self.nodes[to].port.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys.iter().copied());
        assert!(self.nodes[from].cli(&args).contains("OK"), "MIGRATE");
        keys.len()
    }

    /// Ends the move: every primary says `to` owns `slot`.
    pub fn finish_slot_move(&self, slot: &str, to: usize) {
        let to_id = self.id(to);
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            if node.cli(&["ROLE"]).starts_with("master") {
                node.cli(&["CLUSTER", "SETSLOT", slot, "NODE", &to_id]);
            }
        }
    }

    fn id(&self, index: usize) -> String {
        self.nodes[index]
            .cli(&["CLUSTER", "MYID"])
            .trim()
            .to_owned()
    }

    /// The replica of the primary at `index`, by its index.
    pub fn replica_of(&self, index: usize) -> usize {
        let id = self.nodes[index]
            .cli(&["CLUSTER", "MYID"])
            .trim()
            .to_owned();
        self.nodes
            .iter()
            .position(|n| {
                n.child.is_some() && n.cli(&["ROLE"]).starts_with("slave") && {
                    let nodes = n.cli(&["CLUSTER", "NODES"]);
                    nodes
                        .lines()
                        .any(|l| l.contains("myself") && l.split_whitespace().nth(3) == Some(&id))
                }
            })
            .expect("the primary has a replica")
    }
}

/// A private CA and certificates it signs for `localhost` and for a client, in PEM files.
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    pub fn make() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        for (name, subject) in [("server", "localhost"), ("client", "autoshares-bff")] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![subject.to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        // Another CA, which signed nothing here.
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = other.self_signed(&other_key).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The arguments that make `redis-server` serve TLS only, with these certificates;
    /// `clients` asks clients for a certificate.
    pub fn server_args(&self, port: u16, clients: bool) -> Vec<String> {
        let p = |name: &str| self.path(name).display().to_string();
        vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            p("server.pem"),
            "--tls-key-file".into(),
            p("server.key"),
            "--tls-ca-cert-file".into(),
            p("ca.pem"),
            "--tls-auth-clients".into(),
            if clients { "yes" } else { "no" }.into(),
        ]
    }
}

impl Certificates {
    /// `redis-cli`'s arguments to reach a server of `server_args`.
    pub fn cli_args(&self) -> Vec<String> {
        let p = |name: &str| self.path(name).display().to_string();
        vec![
            "--tls".into(),
            "--sni".into(),
            "localhost".into(),
            "--cacert".into(),
            p("ca.pem"),
            "--cert".into(),
            p("client.pem"),
            "--key".into(),
            p("client.key"),
        ]
    }
}

/// Waits until `check` holds, or panics after `limit` naming `what`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within {limit:?}");
}
