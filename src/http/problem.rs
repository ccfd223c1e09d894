//! `ApiError` and the RFC 9457 problem body (CONTRACT.md §2 "Errors"): the only place that
//! picks status codes. Every module error maps here through one `match` with no catch-all,
//! so a new variant does not compile until it has a status and a `code`.

use std::time::Duration;

use actix_web::http::StatusCode as S;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::identity::LinkError;
use crate::limits::LimitError;
use crate::phone::PhoneError;
use crate::upstream::UpstreamError as U;
use crate::verification::TokenError;

use super::request_id;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
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
    #[error("request body is not the JSON this route takes")]
    Malformed,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("request body is not application/json")]
    UnsupportedMediaType,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("internal error: {0}")]
    Internal(String),
}

/// The stable `code` of a problem: the contract's table, plus the codes of the admin API
/// and of routes that do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    MalformedRequest,
    Unauthenticated,
    UserNotLinked,
    NoPhoneNumber,
    LinkNotFound,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidPhoneNumber,
    PhoneNumberRejected,
    InvalidVerificationToken,
    VerificationTokenExpired,
    InvalidCode,
    RateLimited,
    TooManyAttempts,
    InternalError,
    UpstreamError,
    UpstreamUnavailable,
    RateLimiterUnavailable,
    UpstreamTimeout,
}

impl std::fmt::Display for ProblemCode {
    /// The serde name, e.g. `rate_limited`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.serialize(f)
    }
}

/// The problem document of CONTRACT.md §2 (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:problem-type:autoshares-bff:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    /// A sentence for a person; never upstream text.
    pub detail: &'static str,
    pub code: ProblemCode,
    /// The same id as the `X-Request-Id` header and the log lines.
    pub request_id: String,
}

/// One row of the contract's error table.
struct Row {
    status: S,
    code: ProblemCode,
    title: &'static str,
    detail: &'static str,
}

const fn row(status: S, code: ProblemCode, title: &'static str, detail: &'static str) -> Row {
    Row {
        status,
        code,
        title,
        detail,
    }
}

impl ApiError {
    /// Status, stable `code`, title and detail, from the table in CONTRACT.md §2.
    fn classify(&self) -> Row {
        match self {
            Self::Auth(_) => row(
                S::UNAUTHORIZED,
                ProblemCode::Unauthenticated,
                "Unauthenticated",
                "Send a valid bearer token issued for this service.",
            ),
            Self::Link(LinkError::NotLinked) => row(
                S::FORBIDDEN,
                ProblemCode::UserNotLinked,
                "User not linked",
                "Your account is not linked to an AutoShares user.",
            ),
            Self::Link(LinkError::Store(_)) | Self::Internal(_) => internal(),
            Self::Phone(_) => row(
                S::UNPROCESSABLE_ENTITY,
                ProblemCode::InvalidPhoneNumber,
                "Invalid phone number",
                "Give a mobile number in international form, starting with + and the country code.",
            ),
            Self::Token(TokenError::Expired) => row(
                S::UNPROCESSABLE_ENTITY,
                ProblemCode::VerificationTokenExpired,
                "Verification token expired",
                "The verification token has expired; bind the number again to get a new code.",
            ),
            Self::Token(TokenError::Malformed | TokenError::Tampered | TokenError::OtherUser) => {
                row(
                    S::UNPROCESSABLE_ENTITY,
                    ProblemCode::InvalidVerificationToken,
                    "Invalid verification token",
                    "The verification token is not valid for this user.",
                )
            }
            Self::Token(TokenError::Used) => row(
                S::UNPROCESSABLE_ENTITY,
                ProblemCode::InvalidVerificationToken,
                "Invalid verification token",
                "The verification token has already been used.",
            ),
            Self::Limit(LimitError::Exceeded { .. }) => row(
                S::TOO_MANY_REQUESTS,
                ProblemCode::RateLimited,
                "Too many requests",
                "Too many attempts to bind a phone number; try again later.",
            ),
            Self::Limit(LimitError::AttemptsExhausted { .. }) => row(
                S::TOO_MANY_REQUESTS,
                ProblemCode::TooManyAttempts,
                "Too many attempts",
                "Too many wrong codes for this verification token; bind the number again.",
            ),
            Self::Limit(LimitError::Unavailable) => row(
                S::SERVICE_UNAVAILABLE,
                ProblemCode::RateLimiterUnavailable,
                "Rate limiter unavailable",
                "The service cannot check its limits right now; try again shortly.",
            ),
            Self::PhoneNumberRejected => row(
                S::UNPROCESSABLE_ENTITY,
                ProblemCode::PhoneNumberRejected,
                "Phone number rejected",
                "AutoShares did not accept this phone number.",
            ),
            Self::InvalidCode => row(
                S::UNPROCESSABLE_ENTITY,
                ProblemCode::InvalidCode,
                "Invalid code",
                "The code does not match the one sent by SMS.",
            ),
            Self::NoPhoneNumber => row(
                S::NOT_FOUND,
                ProblemCode::NoPhoneNumber,
                "No phone number",
                "No phone number is bound to this user.",
            ),
            Self::LinkNotFound => row(
                S::NOT_FOUND,
                ProblemCode::LinkNotFound,
                "Link not found",
                "This subject is not linked to an AutoShares user.",
            ),
            Self::Malformed => row(
                S::BAD_REQUEST,
                ProblemCode::MalformedRequest,
                "Malformed request",
                "The request body is not the JSON this route takes.",
            ),
            Self::PayloadTooLarge => row(
                S::PAYLOAD_TOO_LARGE,
                ProblemCode::PayloadTooLarge,
                "Payload too large",
                "The request body is larger than 16 KiB.",
            ),
            Self::UnsupportedMediaType => row(
                S::UNSUPPORTED_MEDIA_TYPE,
                ProblemCode::UnsupportedMediaType,
                "Unsupported media type",
                "Send the request body as application/json.",
            ),
            Self::NotFound => row(
                S::NOT_FOUND,
                ProblemCode::NotFound,
                "Not found",
                "There is no such route.",
            ),
            Self::MethodNotAllowed => row(
                S::METHOD_NOT_ALLOWED,
                ProblemCode::MethodNotAllowed,
                "Method not allowed",
                "This route does not take that method.",
            ),
            Self::Upstream(U::Timeout) => row(
                S::GATEWAY_TIMEOUT,
                ProblemCode::UpstreamTimeout,
                "AutoShares timed out",
                "AutoShares did not answer in time; try again.",
            ),
            Self::Upstream(
                U::Unreachable | U::CircuitOpen | U::LoginRefused | U::CredentialsRefused { .. },
            ) => row(
                S::SERVICE_UNAVAILABLE,
                ProblemCode::UpstreamUnavailable,
                "AutoShares unavailable",
                "AutoShares cannot be reached right now; try again later.",
            ),
            Self::Upstream(U::ServerError { .. } | U::BadAnswer | U::Rejected { .. }) => row(
                S::BAD_GATEWAY,
                ProblemCode::UpstreamError,
                "AutoShares error",
                "AutoShares could not handle the request.",
            ),
        }
    }

    /// The problem body for the current request.
    pub fn problem(&self) -> Problem {
        let row = self.classify();
        Problem {
            kind: format!("urn:problem-type:autoshares-bff:{}", row.code),
            title: row.title,
            status: row.status.as_u16(),
            detail: row.detail,
            code: row.code,
            request_id: request_id::current().unwrap_or_default(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Limit(
                LimitError::Exceeded { retry_after, .. }
                | LimitError::AttemptsExhausted { retry_after },
            ) => Some(*retry_after),
            _ => None,
        }
    }
}

fn internal() -> Row {
    row(
        S::INTERNAL_SERVER_ERROR,
        ProblemCode::InternalError,
        "Internal error",
        "Something went wrong on our side; it has been logged.",
    )
}

/// Whole seconds, rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> S {
        self.classify().status
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
        if let Some(wait) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, retry_after_seconds(wait)));
        }
        response.body(serde_json::to_string(&problem).expect("a problem always serialises"))
    }
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
}
