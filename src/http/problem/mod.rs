//! `ApiError` and the RFC 9457 problem answer (docs/api.md "Problems"): the only place that
//! picks status codes. Every module error maps to a [`ProblemCode`] through one `match` with
//! no catch-all, so a new variant does not compile until it has a `code`; each code's status,
//! title and detail are its row in `code.rs`; `routes.rs` lists each route's codes for the
//! OpenAPI document.

mod code;
mod routes;

use std::time::Duration;

use actix_web::http::StatusCode as S;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::{AuthError, StepUpRequired};
use crate::identity::LinkError;
use crate::limits::LimitError;
use crate::phone::PhoneError;
use crate::upstream::UpstreamError as U;
use crate::verification::TokenError;

use super::request_id;

pub use code::{Problem, ProblemCode, Row};
pub use routes::{BindProblems, CompleteProblems, ReadProblems, UnbindProblems};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    StepUp(#[from] StepUpRequired),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Upstream(#[from] U),
    #[error("autoshares rejected the phone number")]
    PhoneNumberRejected,
    #[error("autoshares rejected the code")]
    InvalidCode,
    #[error("the user has no phone number")]
    NoPhoneNumber,
    #[error("no link for this subject")]
    LinkNotFound,
    #[error("no such abuse block")]
    BlockNotFound,
    #[error("no such safe-list entry")]
    SafeEntryNotFound,
    #[error("request body is not the JSON this route takes")]
    Malformed,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("the request did not arrive in time")]
    RequestTimeout,
    #[error("request body is not application/json")]
    UnsupportedMediaType,
    #[error("no such route")]
    NotFound,
    #[error("origin not allowed")]
    OriginNotAllowed,
    #[error("method not allowed on this route")]
    MethodNotAllowed {
        /// The methods the route takes, for the `Allow` header.
        allow: &'static str,
    },
    #[error("the audit event could not be written before the call")]
    AuditUnavailable(#[source] crate::identity::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The documented `code` for this error (docs/api.md "Problems").
    pub fn code(&self) -> ProblemCode {
        use ProblemCode as C;
        match self {
            Self::Auth(_) => C::Unauthenticated,
            Self::StepUp(_) => C::StepUpRequired,
            Self::Link(LinkError::NotLinked) => C::UserNotLinked,
            Self::Link(LinkError::Store(_)) | Self::Internal(_) => C::InternalError,
            Self::Phone(_) => C::InvalidPhoneNumber,
            Self::Token(TokenError::Expired) => C::VerificationTokenExpired,
            Self::Token(TokenError::Malformed | TokenError::Tampered | TokenError::OtherUser)
            | Self::Limit(LimitError::TokenUsed) => C::InvalidVerificationToken,
            Self::Limit(LimitError::Exceeded { .. }) => C::RateLimited,
            Self::Limit(LimitError::BudgetExhausted { .. }) => C::SmsBudgetExhausted,
            Self::Limit(LimitError::DestinationBlocked { .. }) => C::DestinationBlocked,
            Self::Limit(LimitError::IdempotencyKeyReused) => C::IdempotencyKeyReused,
            Self::Limit(LimitError::RequestInProgress) => C::RequestInProgress,
            Self::Limit(LimitError::AttemptsExhausted { .. }) => C::TooManyAttempts,
            Self::Limit(LimitError::Unavailable) => C::RateLimiterUnavailable,
            Self::Limit(LimitError::TooManyRequests { .. }) => C::TooManyRequests,
            Self::AuditUnavailable(_) => C::AuditUnavailable,
            Self::PhoneNumberRejected => C::PhoneNumberRejected,
            Self::InvalidCode => C::InvalidCode,
            Self::NoPhoneNumber => C::NoPhoneNumber,
            Self::LinkNotFound => C::LinkNotFound,
            Self::BlockNotFound => C::BlockNotFound,
            Self::SafeEntryNotFound => C::SafeEntryNotFound,
            Self::Malformed => C::MalformedRequest,
            Self::PayloadTooLarge => C::PayloadTooLarge,
            Self::RequestTimeout => C::RequestTimeout,
            Self::UnsupportedMediaType => C::UnsupportedMediaType,
            Self::NotFound => C::NotFound,
            Self::OriginNotAllowed => C::OriginNotAllowed,
            Self::MethodNotAllowed { .. } => C::MethodNotAllowed,
            Self::Upstream(U::Timeout | U::NotSent) => C::UpstreamTimeout,
            Self::Upstream(
                U::ConnectFailed
                | U::Unreachable
                | U::CircuitOpen
                | U::LoginRefused
                | U::CredentialsRefused { .. },
            ) => C::UpstreamUnavailable,
            Self::Upstream(U::ServerError { .. } | U::BadAnswer | U::Rejected { .. }) => {
                C::UpstreamError
            }
        }
    }

    /// The problem body for the current request.
    pub fn problem(&self) -> Problem {
        let code = self.code();
        let row = code.row();
        Problem {
            kind: format!("urn:problem-type:autoshares-bff:{code}"),
            title: row.title,
            status: row.status.as_u16(),
            detail: row.detail,
            code,
            reason: match self {
                Self::Limit(
                    LimitError::BudgetExhausted { rule, .. }
                    | LimitError::DestinationBlocked { rule },
                ) => Some(rule),
                _ => None,
            },
            request_id: request_id::current().unwrap_or_default(),
        }
    }

    /// The problem body as sent, for an answer stored to be sent again.
    pub fn problem_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.problem()).expect("a problem always serialises")
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Limit(LimitError::RequestInProgress) => Some(Duration::from_secs(1)),
            Self::Limit(
                LimitError::Exceeded { retry_after, .. }
                | LimitError::BudgetExhausted { retry_after, .. }
                | LimitError::AttemptsExhausted { retry_after }
                | LimitError::TooManyRequests { retry_after },
            ) => Some(*retry_after),
            _ => None,
        }
    }
}

/// Whole seconds, rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> S {
        self.code().row().status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        if problem.status >= 500 {
            log_failure(self);
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Self::Auth(error) = self {
            let challenge = if error.token_was_sent() {
                r#"Bearer realm="autoshares-bff", error="invalid_token""#
            } else {
                r#"Bearer realm="autoshares-bff""#
            };
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            ));
        }
        if let Self::StepUp(refusal) = self
            && let Ok(challenge) = HeaderValue::from_str(&refusal.challenge)
        {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if let Self::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, *allow));
        }
        if let Some(wait) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, retry_after_seconds(wait)));
        }
        let mut response =
            response.body(serde_json::to_string(&problem).expect("a problem always serialises"));
        response.extensions_mut().insert(self.code());
        response
    }
}

/// What an answer says of its request, for the audit trail: `ok`, or the problem's `code`.
pub fn outcome(response: &HttpResponse) -> String {
    if response.status().is_success() {
        return "ok".to_owned();
    }
    let code = response.extensions().get::<ProblemCode>().copied();
    code.map_or_else(|| response.status().as_u16().to_string(), |c| c.to_string())
}

/// Logs a 5xx once, with its cause chain; the client sees only the problem.
fn log_failure(error: &ApiError) {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    match error {
        ApiError::Upstream(_) | ApiError::Limit(_) => {
            tracing::warn!(error = %error, causes = ?causes, "request failed")
        }
        _ => tracing::error!(error = %error, causes = ?causes, "request failed"),
    }
}

impl From<actix_web::error::JsonPayloadError> for ApiError {
    fn from(error: actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as J;
        match error {
            J::Overflow { .. } | J::OverflowKnownLength { .. } => Self::PayloadTooLarge,
            J::ContentType => Self::UnsupportedMediaType,
            J::Payload(actix_web::error::PayloadError::Overflow) => Self::PayloadTooLarge,
            _ => Self::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_row_has_its_status_and_code() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Malformed, 400, "malformed_request"),
            (AuthError::Missing.into(), 401, "unauthenticated"),
            (LinkError::NotLinked.into(), 403, "user_not_linked"),
            (ApiError::NoPhoneNumber, 404, "no_phone_number"),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (PhoneError::Invalid.into(), 422, "invalid_phone_number"),
            (ApiError::PhoneNumberRejected, 422, "phone_number_rejected"),
            (
                TokenError::Tampered.into(),
                422,
                "invalid_verification_token",
            ),
            (
                TokenError::Expired.into(),
                422,
                "verification_token_expired",
            ),
            (ApiError::InvalidCode, 422, "invalid_code"),
            (
                LimitError::Exceeded {
                    limit: "bind_per_user",
                    retry_after: Duration::from_secs(3),
                }
                .into(),
                429,
                "rate_limited",
            ),
            (
                LimitError::AttemptsExhausted {
                    retry_after: Duration::from_secs(3),
                }
                .into(),
                429,
                "too_many_attempts",
            ),
            (ApiError::Internal("x".into()), 500, "internal_error"),
            (U::ServerError { status: 500 }.into(), 502, "upstream_error"),
            (U::BadAnswer.into(), 502, "upstream_error"),
            (U::Unreachable.into(), 503, "upstream_unavailable"),
            (U::ConnectFailed.into(), 503, "upstream_unavailable"),
            (U::CircuitOpen.into(), 503, "upstream_unavailable"),
            (U::LoginRefused.into(), 503, "upstream_unavailable"),
            (
                LimitError::Unavailable.into(),
                503,
                "rate_limiter_unavailable",
            ),
            (U::Timeout.into(), 504, "upstream_timeout"),
        ];
        for (error, status, code) in cases {
            let problem = error.problem();
            assert_eq!(
                (problem.status, problem.code.to_string().as_str()),
                (status, code),
                "{error:?}"
            );
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let cases = [(0, 1), (1, 1), (1_001, 2), (720_000, 720)];
        for (millis, seconds) in cases {
            assert_eq!(
                retry_after_seconds(Duration::from_millis(millis)),
                seconds,
                "{millis} ms"
            );
        }
    }

    /// Every variant of ApiError, one of each shape.
    fn every_error() -> Vec<ApiError> {
        let wait = Duration::from_secs(7);
        vec![
            AuthError::Expired.into(),
            crate::auth::StepUpRequired {
                challenge: "Bearer x".into(),
            }
            .into(),
            LinkError::NotLinked.into(),
            PhoneError::Invalid.into(),
            TokenError::Tampered.into(),
            TokenError::Expired.into(),
            LimitError::Exceeded {
                limit: "bind_per_user",
                retry_after: wait,
            }
            .into(),
            LimitError::BudgetExhausted {
                rule: "global_budget",
                retry_after: wait,
            }
            .into(),
            LimitError::DestinationBlocked {
                rule: "conversion_prefix",
            }
            .into(),
            LimitError::AttemptsExhausted { retry_after: wait }.into(),
            LimitError::TokenUsed.into(),
            LimitError::Unavailable.into(),
            LimitError::IdempotencyKeyReused.into(),
            LimitError::RequestInProgress.into(),
            U::Timeout.into(),
            U::ConnectFailed.into(),
            U::Unreachable.into(),
            U::CircuitOpen.into(),
            U::LoginRefused.into(),
            U::CredentialsRefused { status: 403 }.into(),
            U::Rejected { status: 400 }.into(),
            U::ServerError { status: 500 }.into(),
            U::BadAnswer.into(),
            ApiError::PhoneNumberRejected,
            ApiError::InvalidCode,
            ApiError::NoPhoneNumber,
            ApiError::LinkNotFound,
            ApiError::BlockNotFound,
            ApiError::SafeEntryNotFound,
            ApiError::Malformed,
            ApiError::PayloadTooLarge,
            ApiError::RequestTimeout,
            ApiError::UnsupportedMediaType,
            ApiError::NotFound,
            ApiError::OriginNotAllowed,
            ApiError::MethodNotAllowed { allow: "GET" },
            ApiError::Internal("x".into()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn every_error_renders_a_problem_that_parses_with_its_status(
            pick in proptest::prelude::any::<proptest::sample::Index>()
        ) {
            let errors = every_error();
            let error = &errors[pick.index(errors.len())];
            let response = error.error_response();
            let body: serde_json::Value = serde_json::from_slice(&error.problem_body()).unwrap();
            proptest::prop_assert_eq!(body["status"].as_u64(), Some(u64::from(response.status().as_u16())));
            let code = error.code().to_string();
            proptest::prop_assert_eq!(body["code"].as_str(), Some(code.as_str()));
            proptest::prop_assert_eq!(
                response.headers().get("content-type").unwrap(),
                "application/problem+json"
            );
            for key in ["type", "title", "detail"] {
                proptest::prop_assert!(body[key].is_string(), "{key}");
            }
            if response.status() == 429 || response.status() == 409 {
                proptest::prop_assert!(response.headers().contains_key("retry-after"));
            }
        }
    }
}
