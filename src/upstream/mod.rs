//! The AutoShares client (CONTRACT.md §4, `upstream/AUTOSHARES.md`): typed calls for the
//! four phone-number endpoints, each sent with `Et-App-Key`, the service token and the
//! caller's request id, under one deadline and one shared circuit. What an answer means
//! for a route is the handler's business; this module only says what came back.

mod breaker;
mod session;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use awc::http::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};

use crate::config::UpstreamSettings;
use crate::metrics::Metrics;
use crate::phone::PhoneNumber;

pub use breaker::Breaker;
pub use session::{ServiceToken, Session};

/// Largest AutoShares body we read; its documented answers are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// AutoShares' own integer user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AutosharesUserId(pub i64);

impl fmt::Display for AutosharesUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The token id AutoShares hands out in step 1 (`m_Item2`) and expects in step 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamTokenId(pub i64);

impl fmt::Display for UpstreamTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("autoshares did not answer in time")]
    Timeout,
    #[error("autoshares refused or dropped the connection")]
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
    session: Session,
    breaker: Breaker,
    metrics: Arc<Metrics>,
}

impl Upstream {
    pub fn new(settings: UpstreamSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            breaker: Breaker::new(settings.circuit_failures, settings.circuit_open),
            session: Session::default(),
            settings,
            metrics,
        }
    }

    /// A client for the current worker thread (`awc::Client` stays on one thread).
    pub fn client(self: &Arc<Self>) -> AutoShares {
        AutoShares {
            client: crate::net::http_client(self.settings.timeout),
            shared: Arc::clone(self),
        }
    }
}

/// The typed AutoShares calls, one per documented endpoint.
pub struct AutoShares {
    client: awc::Client,
    shared: Arc<Upstream>,
}

struct Call<'a> {
    endpoint: &'static str,
    method: Method,
    path: String,
    query: Option<(&'static str, &'a str)>,
}

struct Answer {
    status: StatusCode,
    body: bytes::Bytes,
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
            path: self.phone_path(user),
            query: Some(("phoneNumber", phone.as_e164())),
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
            path: format!("{}/token/{token_id}", self.phone_path(user)),
            query: Some(("tokenValue", code)),
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
            path: self.phone_path(user),
            query: None,
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
            path: self.phone_path(user),
            query: None,
        };
        let answer = self.call(&call, request_id).await?;
        match answer.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(status_error(s)),
        }
    }

    fn phone_path(&self, user: AutosharesUserId) -> String {
        let settings = &self.shared.settings;
        format!(
            "{}/v{}/users/{user}/subscriptions/settings/phonenumber",
            settings.base_url, settings.api_version
        )
    }

    /// One call under the whole-request deadline, logins and the retry included.
    async fn call(&self, call: &Call<'_>, request_id: &str) -> Result<Answer, UpstreamError> {
        let deadline = self.shared.settings.timeout;
        match tokio::time::timeout(deadline, self.call_with_login(call, request_id)).await {
            Ok(result) => result,
            Err(_) => {
                self.shared.breaker.record(false, Instant::now());
                self.shared.metrics.upstream(call.endpoint, "timeout", None);
                tracing::warn!(
                    upstream_endpoint = call.endpoint,
                    timeout_ms = deadline.as_millis() as u64,
                    "autoshares call timed out"
                );
                Err(UpstreamError::Timeout)
            }
        }
    }

    async fn call_with_login(
        &self,
        call: &Call<'_>,
        request_id: &str,
    ) -> Result<Answer, UpstreamError> {
        let token = self.token(request_id).await?;
        let answer = self.exchange(call, &token, request_id).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        tracing::info!(
            upstream_endpoint = call.endpoint,
            "autoshares refused the service token; logging in again"
        );
        self.shared.session.invalidate(&token);
        let token = self.token(request_id).await?;
        let answer = self.exchange(call, &token, request_id).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(UpstreamError::CredentialsRefused { status: 401 });
        }
        Ok(answer)
    }

    async fn token(&self, request_id: &str) -> Result<ServiceToken, UpstreamError> {
        self.shared.session.token(|| self.login(request_id)).await
    }

    async fn exchange(
        &self,
        call: &Call<'_>,
        token: &ServiceToken,
        request_id: &str,
    ) -> Result<Answer, UpstreamError> {
        let settings = &self.shared.settings;
        let mut request = self
            .client
            .request(call.method.clone(), &call.path)
            .insert_header(("Et-App-Key", settings.app_key.expose_secret()))
            .insert_header((
                header::AUTHORIZATION,
                format!("Bearer {}", token.expose_secret()),
            ))
            .insert_header(("X-Request-Id", request_id));
        if let Some(pair) = call.query {
            // serde_urlencoded sends `+` as %2B; a bare plus would arrive as a space.
            request = request
                .query(&[pair])
                .map_err(|_| UpstreamError::BadAnswer)?;
        }
        let answer = self.send(call.endpoint, request).await?;
        if answer.status == StatusCode::FORBIDDEN {
            tracing::error!(
                upstream_endpoint = call.endpoint,
                status = 403,
                "autoshares refused the application key"
            );
            return Err(UpstreamError::CredentialsRefused { status: 403 });
        }
        Ok(answer)
    }

    /// `POST /token` with the service account (CONTRACT.md §4).
    async fn login(&self, request_id: &str) -> Result<SecretString, UpstreamError> {
        let settings = &self.shared.settings;
        let request = self
            .client
            .post(format!("{}/token", settings.base_url))
            .insert_header(("Et-App-Key", settings.app_key.expose_secret()))
            .insert_header(("Username", settings.username.as_str()))
            .insert_header(("Password", settings.password.expose_secret()))
            .insert_header(("X-Request-Id", request_id));
        let answer = self.send("token", request).await?;
        let parsed: Option<wire::TokenAnswer> = serde_json::from_slice(&answer.body).ok();
        let state = parsed
            .as_ref()
            .map_or_else(|| "unreadable".to_owned(), |p| printable(&p.state));
        if answer.status == StatusCode::OK
            && state == "Succeeded"
            && let Some(token) = parsed.and_then(|p| p.token).filter(|t| !t.is_empty())
        {
            tracing::info!("autoshares login succeeded");
            self.shared.metrics.login("succeeded");
            return Ok(SecretString::from(token));
        }
        // Whatever did not succeed is an operator's problem (CONTRACT.md §4): 503 to callers.
        let outcome = if answer.status.is_server_error() {
            "failed"
        } else {
            "refused"
        };
        self.shared.metrics.login(outcome);
        tracing::error!(
            status = answer.status.as_u16(),
            state = %state,
            "autoshares login refused; check upstream.username, upstream.password and upstream.app_key"
        );
        Err(UpstreamError::LoginRefused)
    }

    /// Sends through the circuit and reads the whole (bounded) answer.
    async fn send(
        &self,
        endpoint: &'static str,
        request: awc::ClientRequest,
    ) -> Result<Answer, UpstreamError> {
        let breaker = &self.shared.breaker;
        let metrics = &self.shared.metrics;
        if !breaker.admit(Instant::now()) {
            metrics.upstream(endpoint, "circuit_open", None);
            return Err(UpstreamError::CircuitOpen);
        }
        let started = Instant::now();
        let result = read_answer(request).await;
        let success = matches!(&result, Ok(answer) if !answer.status.is_server_error());
        breaker.record(success, Instant::now());
        let took = started.elapsed();
        let latency_ms = took.as_millis() as u64;
        match &result {
            Ok(answer) => metrics.upstream(endpoint, answer.status.as_str(), Some(took)),
            Err(UpstreamError::Timeout) => metrics.upstream(endpoint, "timeout", None),
            Err(_) => metrics.upstream(endpoint, "unreachable", None),
        }
        match &result {
            Ok(answer) => tracing::debug!(
                upstream_endpoint = endpoint,
                status = answer.status.as_u16(),
                latency_ms,
                "autoshares answered"
            ),
            Err(error) => tracing::warn!(
                upstream_endpoint = endpoint,
                latency_ms,
                error = %error,
                "autoshares call failed"
            ),
        }
        result
    }
}

async fn read_answer(request: awc::ClientRequest) -> Result<Answer, UpstreamError> {
    let mut response = request.send().await.map_err(|error| match error {
        awc::error::SendRequestError::Timeout => UpstreamError::Timeout,
        _ => UpstreamError::Unreachable,
    })?;
    let status = response.status();
    let body = response
        .body()
        .limit(MAX_ANSWER_BYTES)
        .await
        // A body that is cut off or too large is a partial answer (CONTRACT.md §2: 502).
        .map_err(|_| UpstreamError::BadAnswer)?;
    Ok(Answer { status, body })
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

/// Upstream text for a log line: short, and without control characters.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}
