//! The error table (docs/api.md "Problems"): one row per `code`, with its
//! status, title and detail, and the problem document those rows fill in.

use actix_web::http::StatusCode as S;
use serde::Serialize;
use utoipa::ToSchema;

/// The stable `code` of a problem: the contract's table, plus the codes of the admin API
/// and of routes that do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    MalformedRequest,
    Unauthenticated,
    StepUpRequired,
    UserNotLinked,
    NoPhoneNumber,
    LinkNotFound,
    BlockNotFound,
    SafeEntryNotFound,
    NotFound,
    MethodNotAllowed,
    OriginNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidPhoneNumber,
    PhoneNumberRejected,
    InvalidVerificationToken,
    VerificationTokenExpired,
    InvalidCode,
    RateLimited,
    TooManyRequests,
    TooManyAttempts,
    SmsBudgetExhausted,
    DestinationBlocked,
    IdempotencyKeyReused,
    RequestInProgress,
    InternalError,
    UpstreamError,
    UpstreamUnavailable,
    RateLimiterUnavailable,
    AuditUnavailable,
    UpstreamTimeout,
}

impl std::fmt::Display for ProblemCode {
    /// The serde name, e.g. `rate_limited`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.serialize(f)
    }
}

/// One row of the contract's error table.
pub struct Row {
    pub status: S,
    pub title: &'static str,
    /// A sentence for a person; never upstream text.
    pub detail: &'static str,
}

impl ProblemCode {
    /// This code's row: the only place a status is chosen for it.
    pub const fn row(self) -> Row {
        const fn row(status: S, title: &'static str, detail: &'static str) -> Row {
            Row {
                status,
                title,
                detail,
            }
        }
        use ProblemCode as C;
        match self {
            C::MalformedRequest => row(
                S::BAD_REQUEST,
                "Malformed request",
                "The request body is not the JSON this route takes.",
            ),
            C::Unauthenticated => row(
                S::UNAUTHORIZED,
                "Unauthenticated",
                "Send a valid bearer token issued for this service.",
            ),
            C::StepUpRequired => row(
                S::UNAUTHORIZED,
                "Step-up required",
                "Changing the phone number needs a more recent or stronger login; sign in again.",
            ),
            C::UserNotLinked => row(
                S::FORBIDDEN,
                "User not linked",
                "Your account is not linked to an AutoShares user.",
            ),
            C::NoPhoneNumber => row(
                S::NOT_FOUND,
                "No phone number",
                "No phone number is bound to this user.",
            ),
            C::LinkNotFound => row(
                S::NOT_FOUND,
                "Link not found",
                "This subject is not linked to an AutoShares user.",
            ),
            C::BlockNotFound => row(
                S::NOT_FOUND,
                "Block not found",
                "No such country or prefix is blocked now.",
            ),
            C::SafeEntryNotFound => row(
                S::NOT_FOUND,
                "Safe-list entry not found",
                "That number or prefix is not on the safe-list.",
            ),
            C::NotFound => row(S::NOT_FOUND, "Not found", "There is no such route."),
            C::RequestTimeout => row(
                S::REQUEST_TIMEOUT,
                "Request timeout",
                "The request did not arrive in time; send it again.",
            ),
            C::OriginNotAllowed => row(
                S::FORBIDDEN,
                "Origin not allowed",
                "This web origin may not call the API.",
            ),
            C::MethodNotAllowed => row(
                S::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "This route does not take that method.",
            ),
            C::PayloadTooLarge => row(
                S::PAYLOAD_TOO_LARGE,
                "Payload too large",
                "The request body is larger than 16 KiB.",
            ),
            C::UnsupportedMediaType => row(
                S::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                "Send the request body as application/json.",
            ),
            C::InvalidPhoneNumber => row(
                S::UNPROCESSABLE_ENTITY,
                "Invalid phone number",
                "Give a mobile number in international form, starting with + and the country code.",
            ),
            C::PhoneNumberRejected => row(
                S::UNPROCESSABLE_ENTITY,
                "Phone number rejected",
                "AutoShares did not accept this phone number.",
            ),
            C::InvalidVerificationToken => row(
                S::UNPROCESSABLE_ENTITY,
                "Invalid verification token",
                "The verification token is not valid for this user, or was already used.",
            ),
            C::VerificationTokenExpired => row(
                S::UNPROCESSABLE_ENTITY,
                "Verification token expired",
                "The verification token has expired; bind the number again to get a new code.",
            ),
            C::InvalidCode => row(
                S::UNPROCESSABLE_ENTITY,
                "Invalid code",
                "The code does not match the one sent by SMS.",
            ),
            C::RateLimited => row(
                S::TOO_MANY_REQUESTS,
                "Too many requests",
                "Too many attempts to bind a phone number; try again later.",
            ),
            C::TooManyRequests => row(
                S::TOO_MANY_REQUESTS,
                "Too many requests",
                "Too many requests in a short time; try again after the time in Retry-After.",
            ),
            C::TooManyAttempts => row(
                S::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many wrong codes for this verification token; bind the number again.",
            ),
            C::SmsBudgetExhausted => row(
                S::TOO_MANY_REQUESTS,
                "SMS budget exhausted",
                "The service is sending too many SMS right now; try again later.",
            ),
            C::DestinationBlocked => row(
                S::FORBIDDEN,
                "Destination blocked",
                "SMS to this number's destination are blocked for now; try again later.",
            ),
            C::IdempotencyKeyReused => row(
                S::UNPROCESSABLE_ENTITY,
                "Idempotency key reused",
                "This Idempotency-Key was already used with another phone number.",
            ),
            C::RequestInProgress => row(
                S::CONFLICT,
                "Request in progress",
                "A bind with this Idempotency-Key is still in progress; try again in a second.",
            ),
            C::InternalError => row(
                S::INTERNAL_SERVER_ERROR,
                "Internal error",
                "Something went wrong on our side; it has been logged.",
            ),
            C::UpstreamError => row(
                S::BAD_GATEWAY,
                "AutoShares error",
                "AutoShares could not handle the request.",
            ),
            C::UpstreamUnavailable => row(
                S::SERVICE_UNAVAILABLE,
                "AutoShares unavailable",
                "AutoShares cannot be reached right now; try again later.",
            ),
            C::RateLimiterUnavailable => row(
                S::SERVICE_UNAVAILABLE,
                "Rate limiter unavailable",
                "The service cannot check its limits right now; try again shortly.",
            ),
            C::AuditUnavailable => row(
                S::SERVICE_UNAVAILABLE,
                "Audit trail unavailable",
                "The service cannot record the change right now, so it did not make it; try again shortly.",
            ),
            C::UpstreamTimeout => row(
                S::GATEWAY_TIMEOUT,
                "AutoShares timed out",
                "AutoShares did not answer in time; try again.",
            ),
        }
    }
}

/// The problem document of docs/api.md (RFC 9457).
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
    /// The rule that refused (docs/abuse.md), on `sms_budget_exhausted` and
    /// `destination_blocked`; never a threshold, a count or another user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The same id as the `X-Request-Id` header and the log lines.
    pub request_id: String,
}
