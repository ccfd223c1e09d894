//! A fake AutoShares at the byte level, for faults no HTTP framework makes: logins answer
//! as documented; every phone call is handed to a behaviour that writes what it likes
//! (headers and then nothing, an endless body) and may hold the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Behaviour = Arc<dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>;

pub struct RawUpstream {
    pub base_url: String,
}

impl RawUpstream {
    pub async fn start<F, Fut>(behaviour: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let behaviour: Behaviour = Arc::new(move |stream| Box::pin(behaviour(stream)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        actix_web::rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let behaviour = Arc::clone(&behaviour);
                actix_web::rt::spawn(serve(stream, behaviour));
            }
        });
        Self {
            base_url: format!("http://{addr}/api"),
        }
    }
}

/// Answers logins on this connection until a phone call arrives, then hands it over.
async fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    loop {
        let Some(head) = read_head(&mut stream).await else {
            return;
        };
        if head.starts_with("POST ")
            && head
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p.ends_with("/token"))
        {
            let body = r#"{"State":"Succeeded","Token":"raw-token"}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        behaviour(stream).await;
        return;
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}
