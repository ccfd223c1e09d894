//! The AutoShares client (docs/operations.md "The AutoShares client"): typed calls for the
//! four phone-number endpoints and what their answers say. How a call travels (deadline,
//! service token, circuit) is `transport.rs`; the token cache `session.rs`; the circuit
//! `breaker.rs`; AutoShares' JSON shapes `wire.rs`. What an answer means for a route is
//! the handler's business.

mod breaker;
mod session;
mod transport;
mod wire;

use std::sync::Arc;

use awc::http::header::HeaderValue;
use awc::http::{Method, StatusCode, Uri};

use crate::config::UpstreamSettings;
use crate::ids::{AutosharesUserId, UpstreamTokenId};
use crate::metrics::{Declared, Metrics};
use crate::phone::PhoneNumber;

use transport::{Answer, Call};

use breaker::Breaker;
use session::{ServiceToken, Session};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("autoshares did not answer in time")]
    Timeout,
    #[error("the autoshares call waited out its time before it was sent")]
    NotSent,
    #[error("autoshares refused the connection")]
    ConnectFailed,
    #[error("autoshares dropped the connection")]
    Unreachable,
    #[error("autoshares circuit is open")]
    CircuitOpen,
    #[error("autoshares login did not succeed")]
    LoginRefused,
    #[error("autoshares refused the service credentials")]
    CredentialsRefused { status: u16 },
    #[error("autoshares answered {status}")]
    Rejected { status: u16 },
    #[error("autoshares failed with {status}")]
    ServerError { status: u16 },
    #[error("autoshares sent an answer that cannot be used")]
    BadAnswer,
}

impl UpstreamError {
    /// Whether the request provably never reached AutoShares' logic: no connection, an
    /// open circuit, or a login or credentials refused before the call was judged. Any
    /// other failure (a timeout, a 5xx, a dropped answer) may have acted on it.
    pub fn never_reached(&self) -> bool {
        matches!(
            self,
            Self::ConnectFailed
                | Self::NotSent
                | Self::CircuitOpen
                | Self::LoginRefused
                | Self::CredentialsRefused { .. }
        )
    }
}

/// What a bind started: the SMS is on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub phone_number: String,
    pub state: String,
    pub token_id: UpstreamTokenId,
}

/// A user's number and its `PhoneNumberState`, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneStatus {
    pub phone_number: String,
    pub state: String,
}

/// State shared by every worker: settings, the service token and the circuit.
pub struct Upstream {
    settings: UpstreamSettings,
    /// `{base_url}/v{api_version}/users/`: what every user's path starts with, written once.
    users_path: String,
    /// The `Host` of every call, written once; none for a base URL that names no host.
    host: Option<HeaderValue>,
    tls: Arc<rustls::ClientConfig>,
    session: Session,
    breaker: Breaker,
    /// `upstream.max_connections` permits: a call holds one while it is sent and read.
    connections: tokio::sync::Semaphore,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// `tls` trusts the system's roots and `upstream.ca_file` (see `net::tls_config`).
    pub fn new(
        settings: UpstreamSettings,
        tls: Arc<rustls::ClientConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.declare(Declared::Logins(&[
            transport::LOGIN_SUCCEEDED,
            transport::LOGIN_FAILED,
            transport::LOGIN_REFUSED,
        ]));
        Self {
            users_path: format!("{}/v{}/users/", settings.base_url, settings.api_version),
            host: host_header(&settings.base_url),
            tls,
            breaker: Breaker::new(settings.circuit_failures, settings.circuit_open),
            connections: tokio::sync::Semaphore::new(settings.max_connections),
            session: Session::default(),
            settings,
            metrics,
        }
    }

    /// A client for the current worker thread (`awc::Client` stays on one thread).
    pub fn client(self: &Arc<Self>) -> AutoShares {
        AutoShares {
            // The pool never makes a call wait: the permits do, within the deadline.
            client: crate::net::http_client(
                self.settings.timeout,
                &self.tls,
                self.settings.max_connections,
            ),
            shared: Arc::clone(self),
        }
    }
}

/// The typed AutoShares calls, one per documented endpoint.
pub struct AutoShares {
    client: awc::Client,
    shared: Arc<Upstream>,
}

impl AutoShares {
    /// Step 1: binds `phone` to `user`; AutoShares sends the SMS. Never retried once it
    /// may have reached AutoShares, except after a 401, which AutoShares answers before
    /// acting.
    pub async fn bind(
        &self,
        user: AutosharesUserId,
        phone: &PhoneNumber,
        request_id: &str,
    ) -> Result<Bound, UpstreamError> {
        let call = Call {
            endpoint: "bind",
            method: Method::PUT,
            url: with_query(self.phone_path(user), "phoneNumber", phone.as_e164()),
        };
        let answer = self.call(&call, request_id).await?;
        let parsed: wire::BindAnswer = parse_success(&answer)?;
        let status = phone_status(parsed.setting).ok_or(UpstreamError::BadAnswer)?;
        Ok(Bound {
            phone_number: status.phone_number,
            state: status.state,
            token_id: UpstreamTokenId(parsed.token_id),
        })
    }

    /// Step 2: completes the binding with the SMS `code`.
    pub async fn complete(
        &self,
        user: AutosharesUserId,
        token_id: UpstreamTokenId,
        code: &str,
        request_id: &str,
    ) -> Result<PhoneStatus, UpstreamError> {
        let call = Call {
            endpoint: "complete",
            method: Method::PUT,
            url: with_query(
                format!("{}/token/{token_id}", self.phone_path(user)),
                "tokenValue",
                code,
            ),
        };
        let answer = self.call(&call, request_id).await?;
        let parsed: wire::PhoneSetting = parse_success(&answer)?;
        phone_status(parsed).ok_or(UpstreamError::BadAnswer)
    }

    /// Reads `user`'s number; `None` when AutoShares says there is none (a 404, or a
    /// 200 without a number: its documentation does not say which it sends).
    pub async fn read(
        &self,
        user: AutosharesUserId,
        request_id: &str,
    ) -> Result<Option<PhoneStatus>, UpstreamError> {
        let call = Call {
            endpoint: "read",
            method: Method::GET,
            url: self.phone_path(user),
        };
        let answer = self.call(&call, request_id).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let parsed: wire::PhoneSetting = parse_success(&answer)?;
        let has_number = parsed
            .phone_number
            .as_deref()
            .is_some_and(|n| !n.trim().is_empty());
        if !has_number {
            return Ok(None);
        }
        phone_status(parsed)
            .map(Some)
            .ok_or(UpstreamError::BadAnswer)
    }

    /// Removes `user`'s number; a 404 (nothing to remove) counts as done.
    pub async fn unbind(
        &self,
        user: AutosharesUserId,
        request_id: &str,
    ) -> Result<(), UpstreamError> {
        let call = Call {
            endpoint: "unbind",
            method: Method::DELETE,
            url: self.phone_path(user),
        };
        let answer = self.call(&call, request_id).await?;
        match answer.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(status_error(s)),
        }
    }

    fn phone_path(&self, user: AutosharesUserId) -> String {
        const SETTINGS: &str = "/subscriptions/settings/phonenumber";
        let users = &self.shared.users_path;
        // An i64 takes 20 characters at most.
        let mut path = String::with_capacity(users.len() + 20 + SETTINGS.len());
        path.push_str(users);
        path.push_str(itoa::Buffer::new().format(user.0));
        path.push_str(SETTINGS);
        path
    }
}

/// The `Host` header for calls to `base_url`, as the HTTP client writes it from a call's
/// URL when the call carries none: the host, and its port unless that is 80 or 443. Set
/// once here, it is not written again on each call.
fn host_header(base_url: &str) -> Option<HeaderValue> {
    let uri: Uri = base_url.parse().ok()?;
    let host = uri.host()?;
    let value = match uri.port_u16() {
        None | Some(80 | 443) => host.to_owned(),
        Some(port) => format!("{host}:{port}"),
    };
    HeaderValue::try_from(value).ok()
}

/// `path` with the query `name=value`, form-encoded as the HTTP client's own `query` would
/// encode it: a `+` is sent as `%2B`, where a bare one would arrive as a space.
fn with_query(path: String, name: &str, value: &str) -> String {
    let start = path.len() + 1;
    let mut url = path;
    url.push('?');
    form_urlencoded::Serializer::for_suffix(url, start)
        .append_pair(name, value)
        .finish()
}

fn parse_success<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, UpstreamError> {
    if !answer.status.is_success() {
        return Err(status_error(answer.status));
    }
    serde_json::from_slice(&answer.body).map_err(|_| UpstreamError::BadAnswer)
}

fn status_error(status: StatusCode) -> UpstreamError {
    if status.is_server_error() {
        UpstreamError::ServerError {
            status: status.as_u16(),
        }
    } else if status.is_client_error() {
        UpstreamError::Rejected {
            status: status.as_u16(),
        }
    } else {
        UpstreamError::BadAnswer
    }
}

fn phone_status(setting: wire::PhoneSetting) -> Option<PhoneStatus> {
    let phone_number = setting.phone_number.filter(|n| !n.trim().is_empty())?;
    let state = setting
        .phone_number_state
        .filter(|s| !s.trim().is_empty())?;
    Some(PhoneStatus {
        phone_number,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calls_host_is_the_base_urls_host_and_any_port_but_80_and_443() {
        let cases = [
            ("http://127.0.0.1:8080", Some("127.0.0.1:8080")),
            ("https://api.example.com", Some("api.example.com")),
            (
                "https://api.example.com:443/gateway",
                Some("api.example.com"),
            ),
            ("http://api.example.com:80", Some("api.example.com")),
            (
                "https://api.example.com:8443/gateway",
                Some("api.example.com:8443"),
            ),
            ("http://[::1]:9000", Some("[::1]:9000")),
            (
                "https://user:secret@api.example.com",
                Some("api.example.com"),
            ),
            ("not a url", None),
        ];
        for (base_url, expected) in cases {
            let host = host_header(base_url);
            assert_eq!(
                host.as_ref().map(|h| h.to_str().unwrap()),
                expected,
                "{base_url}"
            );
        }
    }

    #[actix_web::test]
    async fn the_written_host_is_the_one_the_client_writes_itself() {
        use std::io::{Read as _, Write as _};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let read = stream.read(&mut buffer).unwrap();
                assert!(read > 0, "the request head ended early");
                head.extend_from_slice(&buffer[..read]);
            }
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let tls = crate::net::tls_config(None).unwrap();
        let client = crate::net::http_client(std::time::Duration::from_secs(5), &tls, 1);
        // No `Host` of ours: the client writes its own from the URL.
        client.get(format!("{base_url}/")).send().await.unwrap();
        let head = server.join().unwrap();
        let written = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("host")
                    .then(|| value.trim().to_owned())
            })
            .expect("the client writes a Host");
        let ours = host_header(&base_url).unwrap();
        assert_eq!(ours.to_str().unwrap(), written);
    }

    #[test]
    fn only_failures_before_autoshares_acted_count_as_never_reached() {
        let cases = [
            (UpstreamError::ConnectFailed, true, "connection refused"),
            (UpstreamError::CircuitOpen, true, "circuit open"),
            (UpstreamError::LoginRefused, true, "login refused"),
            (
                UpstreamError::CredentialsRefused { status: 403 },
                true,
                "app key refused",
            ),
            (UpstreamError::Timeout, false, "no answer in time"),
            (UpstreamError::ServerError { status: 500 }, false, "a 5xx"),
            (UpstreamError::Unreachable, false, "dropped mid-answer"),
            (UpstreamError::BadAnswer, false, "an answer we cannot read"),
            (UpstreamError::Rejected { status: 422 }, false, "a 4xx"),
        ];
        for (error, never, what) in cases {
            assert_eq!(error.never_reached(), never, "{what}");
        }
    }
}
