//! How one AutoShares call travels (docs/operations.md "The AutoShares client"): under one deadline that covers the
//! login and the retry, with the service token (one re-login after a 401), holding one of
//! `upstream.max_connections` permits, through the shared circuit, counted in the
//! metrics; and how its answer is read, bounded.
//!
//! A timeout is an AutoShares failure only when the call was sent with most of its time
//! still ahead: a call that waited out its deadline for a permit, or that the service's
//! own queueing (busy cores, a burst) held back until more than half of it was gone,
//! says nothing about AutoShares, so it never opens the circuit.

use std::cell::Cell;
use std::time::{Duration, Instant};

use awc::http::header::{self, HeaderName, HeaderValue};
use awc::http::{Method, StatusCode};
use secrecy::ExposeSecret;

use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::net::REQUEST_ID_HEADER;
use crate::telemetry;

use super::breaker::{Admitted, Breaker};
use super::{AutoShares, ServiceToken, UpstreamError, wire};

/// The header of the application key every call carries, named once rather than parsed
/// on each call.
const APP_KEY: HeaderName = HeaderName::from_static("et-app-key");
/// Largest AutoShares body we read; its documented answers are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// `bff_upstream_logins_total{outcome}`.
pub(super) const LOGIN_SUCCEEDED: &str = "succeeded";
pub(super) const LOGIN_FAILED: &str = "failed";
pub(super) const LOGIN_REFUSED: &str = "refused";

pub(super) struct Call {
    pub endpoint: &'static str,
    pub method: Method,
    /// The whole URL, its query included: parsed once, by the client.
    pub url: String,
}

pub(super) struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

/// When one call's requests went out, for judging its timeout.
struct Sending {
    started: Instant,
    /// The last time a request of this call was handed to the connection.
    sent_at: Cell<Option<Instant>>,
}

impl AutoShares {
    /// One call under the whole-request deadline, logins and the retry included.
    pub(super) async fn call(
        &self,
        call: &Call,
        request_id: &str,
    ) -> Result<Answer, UpstreamError> {
        let deadline = self.shared.settings.timeout;
        let sending = Sending {
            started: Instant::now(),
            sent_at: Cell::new(None),
        };
        // Boxed: the HTTP client's futures take kilobytes, and every future that awaits a
        // call is moved whole at least once (a request's, when it is spawned).
        let attempt = Box::pin(self.call_with_login(call, request_id, &sending));
        match tokio::time::timeout(deadline, attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(call.endpoint, deadline, &sending)),
        }
    }

    /// Counts a timeout against the circuit only when the call went out in time.
    fn timed_out(
        &self,
        endpoint: &'static str,
        deadline: Duration,
        sending: &Sending,
    ) -> UpstreamError {
        let waited = sending.sent_at.get().map(|at| at - sending.started);
        let timeout_ms = deadline.as_millis() as u64;
        match waited {
            None => {
                self.shared.metrics.upstream(endpoint, "not_sent", None);
                tracing::warn!(
                    upstream_endpoint = endpoint,
                    timeout_ms,
                    "autoshares call waited out its time before it was sent"
                );
                UpstreamError::NotSent
            }
            Some(waited) => {
                let in_time = waited < deadline / 2;
                if in_time {
                    self.shared.breaker.record(false, Instant::now());
                }
                self.shared.metrics.upstream(endpoint, "timeout", None);
                tracing::warn!(
                    upstream_endpoint = endpoint,
                    timeout_ms,
                    waited_ms = waited.as_millis() as u64,
                    counted = in_time,
                    "autoshares call timed out"
                );
                UpstreamError::Timeout
            }
        }
    }

    async fn call_with_login(
        &self,
        call: &Call,
        request_id: &str,
        sending: &Sending,
    ) -> Result<Answer, UpstreamError> {
        let token = self.token(request_id, sending).await?;
        let answer = self.exchange(call, &token, request_id, sending).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        tracing::info!(
            upstream_endpoint = call.endpoint,
            "autoshares refused the service token; logging in again"
        );
        self.shared.session.invalidate(&token);
        let token = self.token(request_id, sending).await?;
        let answer = self.exchange(call, &token, request_id, sending).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(UpstreamError::CredentialsRefused { status: 401 });
        }
        Ok(answer)
    }

    async fn token(
        &self,
        request_id: &str,
        sending: &Sending,
    ) -> Result<ServiceToken, UpstreamError> {
        self.shared
            .session
            .token(|| self.login(request_id, sending))
            .await
    }

    async fn exchange(
        &self,
        call: &Call,
        token: &ServiceToken,
        request_id: &str,
        sending: &Sending,
    ) -> Result<Answer, UpstreamError> {
        let settings = &self.shared.settings;
        let request = self
            .request(call.method.clone(), &call.url)
            .insert_header((APP_KEY, settings.app_key.expose_secret()))
            .insert_header((header::AUTHORIZATION, HeaderValue::clone(token)))
            .insert_header((REQUEST_ID_HEADER, request_id));
        let answer = self.send(call.endpoint, request, sending).await?;
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

    /// `POST /token` with the service account (docs/operations.md "The AutoShares client").
    async fn login(
        &self,
        request_id: &str,
        sending: &Sending,
    ) -> Result<HeaderValue, UpstreamError> {
        let settings = &self.shared.settings;
        let request = self
            .request(Method::POST, &format!("{}/token", settings.base_url))
            .insert_header((APP_KEY, settings.app_key.expose_secret()))
            .insert_header(("Username", settings.username.as_str()))
            .insert_header(("Password", settings.password.expose_secret()))
            .insert_header((REQUEST_ID_HEADER, request_id));
        let answer = self.send("token", request, sending).await?;
        let parsed: Option<wire::TokenAnswer> = serde_json::from_slice(&answer.body).ok();
        let state = parsed
            .as_ref()
            .map_or_else(|| "unreadable".to_owned(), |p| printable(&p.state));
        if answer.status == StatusCode::OK
            && state == "Succeeded"
            && let Some(bearer) = parsed.and_then(|p| p.token).and_then(|t| bearer(&t))
        {
            tracing::info!("autoshares login succeeded");
            self.shared.metrics.login(LOGIN_SUCCEEDED);
            return Ok(bearer);
        }
        // Whatever did not succeed is an operator's problem (docs/operations.md "The AutoShares client"): 503 to callers.
        let outcome = if answer.status.is_server_error() {
            LOGIN_FAILED
        } else {
            LOGIN_REFUSED
        };
        self.shared.metrics.login(outcome);
        tracing::error!(
            status = answer.status.as_u16(),
            state = %state,
            "autoshares login refused; check upstream.username, upstream.password and upstream.app_key"
        );
        Err(UpstreamError::LoginRefused)
    }

    /// A request to `url`, with its `Host` as the client would write it.
    fn request(&self, method: Method, url: &str) -> awc::ClientRequest {
        let request = self.client.request(method, url);
        match &self.shared.host {
            Some(host) => request.insert_header((header::HOST, HeaderValue::clone(host))),
            None => request,
        }
    }

    /// Waits for a connection permit, then sends through the circuit and reads the whole
    /// (bounded) answer.
    async fn send(
        &self,
        endpoint: &'static str,
        request: awc::ClientRequest,
        sending: &Sending,
    ) -> Result<Answer, UpstreamError> {
        let breaker = &self.shared.breaker;
        let metrics = &self.shared.metrics;
        let _permit = self
            .shared
            .connections
            .acquire()
            .await
            .map_err(|_| UpstreamError::NotSent)?;
        let Some(admitted) = breaker.admit(Instant::now()) else {
            metrics.upstream(endpoint, "circuit_open", None);
            return Err(UpstreamError::CircuitOpen);
        };
        let mut trial = TrialGuard {
            breaker,
            armed: admitted == Admitted::Trial,
        };
        // Exported only: the lines about the call are written after it, with its fields.
        // Without an exporter the span is not made, and the call's `traceparent` names the
        // request's span.
        let span = tracing::info_span!(
            target: telemetry::EXPORTED_ONLY,
            "autoshares",
            "otel.kind" = "client",
            "otel.name" = endpoint,
            upstream_endpoint = endpoint,
        );
        let headers = if span.is_disabled() {
            telemetry::trace_headers(&Span::current())
        } else {
            telemetry::trace_headers(&span)
        };
        let request = headers
            .into_iter()
            .fold(request, |request, header| request.insert_header(header));
        let started = Instant::now();
        sending.sent_at.set(Some(started));
        // The span is not entered while the call runs: nothing in it is ours to log or
        // trace, and each poll would enter and leave it.
        let result = read_answer(request).await;
        if let Ok(answer) = &result {
            // For the exported span only: no log line is written within it.
            span.set_attribute(
                "http.response.status_code",
                i64::from(answer.status.as_u16()),
            );
        }
        trial.armed = false;
        let success = matches!(&result, Ok(answer) if !answer.status.is_server_error());
        breaker.record(success, Instant::now());
        let took = started.elapsed();
        let latency_ms = took.as_millis() as u64;
        match &result {
            Ok(answer) => {
                metrics.upstream(endpoint, answer.status.as_str(), Some(took));
                tracing::debug!(
                    upstream_endpoint = endpoint,
                    status = answer.status.as_u16(),
                    latency_ms,
                    "autoshares answered"
                );
            }
            Err(error) => {
                let status = match error {
                    UpstreamError::Timeout => "timeout",
                    _ => "unreachable",
                };
                metrics.upstream(endpoint, status, None);
                tracing::warn!(
                    upstream_endpoint = endpoint,
                    latency_ms,
                    error = %error,
                    "autoshares call failed"
                );
            }
        }
        result
    }
}

/// Decides a trial call whose request goes away before the call ends (docs/operations.md "The AutoShares client").
struct TrialGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.trial_dropped(Instant::now());
        }
    }
}

async fn read_answer(request: awc::ClientRequest) -> Result<Answer, UpstreamError> {
    let mut response = request.send().await.map_err(|error| match error {
        awc::error::SendRequestError::Timeout => UpstreamError::Timeout,
        awc::error::SendRequestError::Connect(_) => UpstreamError::ConnectFailed,
        _ => UpstreamError::Unreachable,
    })?;
    let status = response.status();
    let body = response
        .body()
        .limit(MAX_ANSWER_BYTES)
        .await
        // A body that is cut off or too large is a partial answer (docs/api.md: 502).
        .map_err(|_| UpstreamError::BadAnswer)?;
    Ok(Answer { status, body })
}

/// The `Authorization` value of a service token, marked sensitive; none for a token that is
/// empty or that a header cannot carry, which is no token.
fn bearer(token: &str) -> Option<HeaderValue> {
    if token.is_empty() {
        return None;
    }
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Upstream text for a log line: short, and without control characters.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_token_is_sent_as_a_sensitive_bearer_value_or_not_at_all() {
        let value = bearer("abc.def").unwrap();
        assert_eq!(value, "Bearer abc.def");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("abc"), "{value:?}");
        for no_token in ["", "line\nbreak", "nul\0"] {
            assert!(bearer(no_token).is_none(), "{no_token:?}");
        }
    }
}
