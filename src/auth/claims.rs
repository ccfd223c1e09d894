//! The registered claims every token must carry (docs/api.md "Authentication"): `exp`,
//! `iss`, `aud` and a `sub` that is not blank present, `exp` not past and `nbf` (when
//! sent) reached, both with `auth.leeway_s`, `iss` the configured issuer and `aud` naming
//! the configured audience. They are checked on the claims as read once for the caller, with
//! jsonwebtoken's rules: a time is a number of seconds (a fraction is rounded), `iss` and
//! `aud` a string or an array of strings of which one must match, and a claim of another
//! type counts as missing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::ids::Subject;

use super::AuthError;

pub struct ClaimRules {
    issuer: String,
    audience: String,
    leeway_s: u64,
}

impl ClaimRules {
    pub fn new(issuer: &str, audience: &str, leeway: Duration) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_s: leeway.as_secs(),
        }
    }

    /// The subject of `claims`, if they pass at `now`. The refusals come in the order a
    /// missing claim, an unreadable time, expiry, `nbf`, issuer, audience, a blank subject.
    pub fn check(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<Subject, AuthError> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claim = |name| claims.get(name).filter(|value: &&Value| !value.is_null());
        let exp = claim("exp").and_then(seconds);
        let issuer = claim("iss").and_then(|iss| names(iss, &self.issuer));
        let audience = claim("aud").and_then(|aud| names(aud, &self.audience));
        let sub = claim("sub").and_then(Value::as_str);
        let (Some(exp), Some(issuer), Some(audience), Some(sub)) = (exp, issuer, audience, sub)
        else {
            return Err(AuthError::BadClaims);
        };
        let nbf = match claim("nbf") {
            None => None,
            Some(nbf) => Some(seconds(nbf).ok_or(AuthError::BadClaims)?),
        };
        if exp < now.saturating_sub(self.leeway_s) {
            return Err(AuthError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway_s)) {
            return Err(AuthError::NotYetValid);
        }
        if !issuer || !audience || sub.trim().is_empty() {
            return Err(AuthError::BadClaims);
        }
        Ok(Subject::new(sub))
    }
}

/// A NumericDate as whole seconds: a non-negative number, a fraction rounded.
fn seconds(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(whole) = number.as_u64() {
        return Some(whole);
    }
    let fractional = number.as_f64().filter(|f| f.is_finite())?;
    (fractional >= 0.0 && fractional < u64::MAX as f64).then(|| fractional.round() as u64)
}

/// Whether `value`, a string or an array of strings (`iss`, `aud`), names `wanted`;
/// `None` when it is neither.
fn names(value: &Value, wanted: &str) -> Option<bool> {
    match value {
        Value::String(one) => Some(one == wanted),
        Value::Array(many) => many.iter().try_fold(false, |found, item| {
            let item = item.as_str()?;
            Some(found || item == wanted)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn check(claims: Value) -> Result<(), AuthError> {
        let rules = ClaimRules::new("issuer", "audience", Duration::from_secs(30));
        rules
            .check(
                claims.as_object().unwrap(),
                UNIX_EPOCH + Duration::from_secs(NOW),
            )
            .map(drop)
    }

    /// Good claims with `changes` laid over them (`null` removes one).
    fn with(changes: Value) -> Value {
        let mut claims = json!({"sub": "s", "iss": "issuer", "aud": "audience", "exp": NOW + 60});
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn each_registered_claim_is_checked_as_jsonwebtoken_checks_it() {
        use AuthError::{BadClaims, Expired, NotYetValid};
        let cases = [
            (json!({}), Ok(()), "good"),
            (
                json!({"aud": ["other", "audience"]}),
                Ok(()),
                "aud among several",
            ),
            (json!({"iss": ["issuer"]}), Ok(()), "iss as an array"),
            (
                json!({"exp": (NOW + 60) as f64 + 0.4}),
                Ok(()),
                "exp with a fraction",
            ),
            (
                json!({"exp": NOW - 20}),
                Ok(()),
                "expired within the leeway",
            ),
            (json!({"exp": NOW - 31}), Err(Expired), "expired"),
            (json!({"nbf": NOW + 20}), Ok(()), "nbf within the leeway"),
            (json!({"nbf": NOW + 31}), Err(NotYetValid), "nbf ahead"),
            (json!({"exp": null}), Err(BadClaims), "no exp"),
            (json!({"exp": "soon"}), Err(BadClaims), "exp a string"),
            (json!({"exp": -5}), Err(BadClaims), "exp negative"),
            (json!({"nbf": "now"}), Err(BadClaims), "nbf a string"),
            (json!({"iss": null}), Err(BadClaims), "no iss"),
            (json!({"iss": "other"}), Err(BadClaims), "another issuer"),
            (json!({"aud": null}), Err(BadClaims), "no aud"),
            (json!({"aud": "other"}), Err(BadClaims), "another audience"),
            (json!({"aud": []}), Err(BadClaims), "an empty aud"),
            (
                json!({"aud": ["audience", 7]}),
                Err(BadClaims),
                "aud not all strings",
            ),
            (json!({"sub": null}), Err(BadClaims), "no sub"),
            (json!({"sub": 42}), Err(BadClaims), "sub a number"),
            (
                json!({"exp": NOW - 31, "iss": "other"}),
                Err(Expired),
                "expiry before the issuer",
            ),
        ];
        for (changes, expected, what) in cases {
            assert_eq!(check(with(changes)), expected, "{what}");
        }
        let explicit_null = json!({"sub": "s", "iss": "issuer", "aud": "audience",
            "exp": NOW + 60, "nbf": null});
        assert_eq!(check(explicit_null), Ok(()), "nbf null");
    }
}
