//! A TCP forwarder that a test can take down and bring back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP forwarder on a fixed local port that a test can take down and bring back, so a
/// service loses its database or Redis and gets it back at the same address.
///
/// While it is down the port stays bound but does not listen, so connections to it are
/// refused at once and nothing else can have it: another test's listener, or an outgoing
/// connection given it as its own port, which would connect to itself.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<actix_web::rt::task::JoinHandle<()>>>>,
    /// The port, bound and not listening, while the proxy is down.
    held: Mutex<Option<tokio::net::TcpSocket>>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            port: listener.local_addr().unwrap().port(),
            target: target.to_owned(),
            tasks: Arc::default(),
            held: Mutex::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// A proxy to the PostgreSQL server of `url`, and the same URL through it.
    pub async fn postgres(url: &str) -> (Self, String) {
        let rest = url.split_once("://").unwrap().1;
        let (authority, path) = rest.split_once('/').unwrap();
        let (credentials, host) = match authority.rsplit_once('@') {
            Some((credentials, host)) => (format!("{credentials}@"), host),
            None => (String::new(), authority),
        };
        let proxy = Self::start(host).await;
        let through = format!("postgres://{credentials}127.0.0.1:{}/{path}", proxy.port);
        (proxy, through)
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

    /// Closes every connection through the proxy and stops listening, keeping the port, and
    /// returns once they are closed: an aborted task drops its sockets only when the runtime
    /// next reaches it, and until then the kernel still completes connections that are
    /// reset a moment later.
    pub async fn stop(&self) {
        let tasks: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        if self.held.lock().unwrap().is_none() {
            let socket = self.bind_again().await;
            *self.held.lock().unwrap() = Some(socket);
        }
    }

    /// Takes connections on the same port and never answers on them: a server that hangs.
    /// `resume` forwards again.
    pub async fn black_hole(&self) {
        self.stop().await;
        let listener = self.listen_again();
        let tasks = self.tasks.clone();
        let accept = actix_web::rt::spawn(async move {
            let mut held = Vec::new();
            while let Ok((inbound, _)) = listener.accept().await {
                held.push(inbound);
            }
        });
        tasks.lock().unwrap().push(accept);
    }

    /// Listens on the same port again, forwarding.
    pub async fn resume(&self) {
        self.stop().await;
        let listener = self.listen_again();
        self.serve(listener);
    }

    /// Listens on the port `stop` holds (`resume` and `black_hole` stop first).
    fn listen_again(&self) -> tokio::net::TcpListener {
        let held = self.held.lock().unwrap().take();
        held.expect("a stopped proxy holds its port")
            .listen(1024)
            .unwrap()
    }

    /// The proxy's port, bound again once its listener has gone.
    async fn bind_again(&self) -> tokio::net::TcpSocket {
        let mut tries = 0;
        loop {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            match socket.bind(([127, 0, 0, 1], self.port).into()) {
                Ok(()) => return socket,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot bind {} again: {error}", self.port),
            }
        }
    }
}

/// The tests that take a service's database, Redis or AutoShares away rely on this: once
/// `stop` returns, the port refuses connections, even before the runtime has had a turn, and
/// stays the proxy's until `resume` listens on it again.
#[actix_web::test]
async fn a_stopped_proxy_refuses_at_once_keeps_its_port_and_resumes_on_it() {
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = TcpProxy::start(&target.local_addr().unwrap().to_string()).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], proxy.port));

    proxy.stop().await;
    // A blocking connect: the runtime gets no turn to drop what an abort left open.
    let refused = std::net::TcpStream::connect(address).expect_err("refused while stopped");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    tokio::task::yield_now().await;
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    assert!(
        other.bind(address).is_err(),
        "no other socket can have the port"
    );

    proxy.resume().await;
    std::net::TcpStream::connect(address).expect("forwarding again");
}
