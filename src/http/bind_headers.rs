//! HTTP's side of two bind rules (docs/api.md): the `Idempotency-Key` header, and the
//! IETF RateLimit fields that tell a caller its own bind quota.

use actix_web::HttpResponse;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::limits::{PER_USER, UserQuota};

use super::problem::{ApiError, retry_after_seconds};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENCY_REPLAYED: &str = "idempotency-replayed";

/// The `Idempotency-Key` of a request: 1-255 printable ASCII characters, optionally a
/// quoted structured-field string; anything else is 400 `malformed_request`.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::Malformed);
    }
    let text = value.to_str().map_err(|_| ApiError::Malformed)?;
    // A structured-field string: the quotes are not part of the key.
    let key = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|inner| !inner.is_empty())
        .unwrap_or(text);
    let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if key.is_empty() || key.len() > 255 || !printable {
        return Err(ApiError::Malformed);
    }
    Ok(Some(key.to_owned()))
}

/// `RateLimit-Policy: "bind_per_user";q=5;w=3600` and `RateLimit: "bind_per_user";r=4;t=0`.
pub fn insert_rate_limit(response: &mut HttpResponse, quota: &UserQuota) {
    let reset = if quota.remaining > 0 {
        0
    } else {
        retry_after_seconds(quota.reset)
    };
    let policy = per_user_item([("q", quota.limit.into()), ("w", quota.window.as_secs())]);
    let state = per_user_item([("r", quota.remaining.into()), ("t", reset)]);
    let headers = response.headers_mut();
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
        // The value takes the text's bytes; they are not copied.
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// `"bind_per_user";a=1;b=2`, its numbers written with `itoa`: every bind answers two, and
/// `format!` took 1.1 k instructions for each.
fn per_user_item(parameters: [(&str, u64); 2]) -> String {
    let mut digits = itoa::Buffer::new();
    let mut item = String::with_capacity(64);
    item.push('"');
    item.push_str(PER_USER);
    item.push('"');
    for (name, value) in parameters {
        item.push(';');
        item.push_str(name);
        item.push('=');
        item.push_str(digits.format(value));
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn idempotency_keys_are_printable_ascii_of_1_to_255() {
        let long = "k".repeat(255);
        let too_long = "k".repeat(256);
        // (header value, the key it gives or None when refused, what)
        let quoted_long = format!("\"{long}\"");
        let cases: [(&[u8], Option<&str>, &str); 9] = [
            (b"abc-123", Some("abc-123"), "plain"),
            (
                quoted_long.as_bytes(),
                Some(long.as_str()),
                "255 characters in quotes",
            ),
            (b"\"ab", Some("\"ab"), "a lone quote is part of the key"),
            (b"\"a b\"", Some("a b"), "a quoted string"),
            (long.as_bytes(), Some(long.as_str()), "255 characters"),
            (too_long.as_bytes(), None, "256 characters"),
            (b"", None, "empty"),
            (
                b"\"\"",
                Some("\"\""),
                "two quotes are a key of two characters",
            ),
            (b"caf\xc3\xa9", None, "not ASCII"),
        ];
        for (value, expected, what) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                HeaderName::from_static(IDEMPOTENCY_KEY),
                HeaderValue::from_bytes(value).unwrap(),
            );
            let got = idempotency_key(&headers).ok().flatten();
            assert_eq!(got.as_deref(), expected, "{what}");
        }
        assert_eq!(
            idempotency_key(&HeaderMap::new()).ok(),
            Some(None),
            "absent"
        );
    }
}
