//! A TCP forwarder that a test can take down and bring back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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

    /// Closes the port and every connection through it.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Takes connections on the same port and never answers on them: a server that hangs.
    /// `resume` forwards again.
    pub async fn black_hole(&self) {
        self.stop();
        let listener = self.listen_again().await;
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
        self.stop();
        let listener = self.listen_again().await;
        self.serve(listener);
    }

    async fn listen_again(&self) -> tokio::net::TcpListener {
        let mut tries = 0;
        loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => return listener,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot listen on {} again: {error}", self.port),
            }
        }
    }
}
