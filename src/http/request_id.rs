//! `X-Request-Id` (docs/api.md): the caller's id when it is 1–128 characters of
//! `[A-Za-z0-9._:-]`, else a new one; echoed on every response, kept for the problem body
//! and the log span, and forwarded to AutoShares.

use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::net::REQUEST_ID_HEADER as HEADER;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// When the request arrived, for the closing log line.
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// The id of the request this task serves, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// `work` with `id` as its request's id: for a task a request spawns.
pub async fn within<T>(id: String, work: impl Future<Output = T>) -> T {
    CURRENT.scope(id, work).await
}

fn acceptable(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// 32 characters of base64url: all within the accepted set. The bytes come from the
/// thread's generator (a CSPRNG the OS seeds), not a system call per request.
fn mint() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Middleware: assigns the id, runs the rest of the chain inside it, echoes it.
pub async fn assign(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(mint, str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    request.extensions_mut().insert(Arrival(Instant::now()));
    // Handlers and extractors turn their errors into responses inside this scope, so the
    // problem body can read the id; an error that still escapes is left to actix-web.
    let mut response = CURRENT.scope(id.clone(), next.call(request)).await?;
    let value = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    response.headers_mut().insert(HEADER, value);
    Ok(response)
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = request
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(mint()));
        ready(Ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_accepted() {
        let long = "a".repeat(129);
        let cases = [
            ("abc-123_X.y:z", true, "every allowed character"),
            ("", false, "empty"),
            (long.as_str(), false, "129 characters"),
            ("a b", false, "a space"),
            ("a\"b", false, "a quote"),
            ("é", false, "non-ASCII"),
        ];
        for (value, expected, what) in cases {
            assert_eq!(acceptable(value), expected, "{what}");
        }
        assert!(acceptable(&"a".repeat(128)), "128 characters");
        assert!(acceptable(&mint()), "our own ids");
    }

    proptest::proptest! {
        #[test]
        fn only_the_safe_alphabet_is_ever_echoed(value in "\\PC{0,200}") {
            let echoed = if acceptable(&value) { value.clone() } else { mint() };
            let safe = echoed.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b));
            proptest::prop_assert!(safe && (1..=128).contains(&echoed.len()), "{echoed}");
            if acceptable(&value) {
                proptest::prop_assert_eq!(echoed, value);
            }
        }
    }
}
