//! The claims of a token (docs/api.md "Authentication"), read once for the caller, and the
//! registered claims every token must carry: `exp`, `iss`, `aud` and a `sub` that is not
//! blank present, `exp` not past and `nbf` (when sent) reached, both with `auth.leeway_s`,
//! `iss` the configured issuer and `aud` naming the configured audience. They are checked
//! with jsonwebtoken's rules: a time is a number of seconds (a fraction is rounded), `iss`
//! and `aud` a string or an array of strings of which one must match, and a claim of
//! another type counts as missing.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::ids::Subject;

use super::AuthError;

/// The claims of a token that a check reads: the registered ones, step-up's, and the claim
/// that carries the caller's AutoShares user id when the identity comes from a claim.
/// Every other member is parsed and skipped, never kept: a claim no check reads costs no
/// allocation. A name sent twice keeps its last value, as a JSON object read whole would.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    exp: Option<Value>,
    nbf: Option<Value>,
    iss: Option<Value>,
    aud: Option<Value>,
    sub: Option<Value>,
    pub auth_time: Option<Value>,
    pub acr: Option<Value>,
    /// The claim `identity.source` names, when it names one.
    pub user_id: Option<Value>,
}

impl Claims {
    /// The claims of a JSON payload, the member named `user_id_claim` kept as the user id.
    pub fn read(payload: &[u8], user_id_claim: Option<&str>) -> serde_json::Result<Self> {
        let mut json = serde_json::Deserializer::from_slice(payload);
        let claims = ClaimsOf { user_id_claim }.deserialize(&mut json)?;
        json.end()?;
        Ok(claims)
    }

    /// The field of a claim a check reads, by its name.
    fn read_by_check(&mut self, name: &str) -> Option<&mut Option<Value>> {
        Some(match name {
            "exp" => &mut self.exp,
            "nbf" => &mut self.nbf,
            "iss" => &mut self.iss,
            "aud" => &mut self.aud,
            "sub" => &mut self.sub,
            "auth_time" => &mut self.auth_time,
            "acr" => &mut self.acr,
            _ => return None,
        })
    }
}

/// A member's name, borrowed from the payload unless it holds an escape.
#[derive(Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

/// Reads [`Claims`] from a JSON object.
struct ClaimsOf<'n> {
    user_id_claim: Option<&'n str>,
}

impl<'de> DeserializeSeed<'de> for ClaimsOf<'_> {
    type Value = Claims;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Claims, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsOf<'_> {
    type Value = Claims;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Claims, A::Error> {
        let mut claims = Claims::default();
        while let Some(Name(name)) = members.next_key()? {
            if self.user_id_claim == Some(&*name) {
                let value: Value = members.next_value()?;
                if let Some(field) = claims.read_by_check(&name) {
                    *field = Some(value.clone());
                }
                claims.user_id = Some(value);
            } else if let Some(field) = claims.read_by_check(&name) {
                *field = Some(members.next_value()?);
            } else {
                members.next_value::<IgnoredAny>()?;
            }
        }
        Ok(claims)
    }
}

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
    pub fn check(&self, claims: &Claims, now: SystemTime) -> Result<Subject, AuthError> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let exp = claim(&claims.exp).and_then(seconds);
        let issuer = claim(&claims.iss).and_then(|iss| names(iss, &self.issuer));
        let audience = claim(&claims.aud).and_then(|aud| names(aud, &self.audience));
        let sub = claim(&claims.sub).and_then(Value::as_str);
        let (Some(exp), Some(issuer), Some(audience), Some(sub)) = (exp, issuer, audience, sub)
        else {
            return Err(AuthError::BadClaims);
        };
        let nbf = match claim(&claims.nbf) {
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

/// A claim's value, unless it is missing or `null`.
fn claim(value: &Option<Value>) -> Option<&Value> {
    value.as_ref().filter(|value| !value.is_null())
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
                &Claims::read(claims.to_string().as_bytes(), None).unwrap(),
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

    #[test]
    fn claims_are_read_as_a_whole_object_would_be_and_the_rest_skipped() {
        let read = |json: &str, user_id: Option<&str>| Claims::read(json.as_bytes(), user_id);
        let claims = read(
            r#"{"sub":"a","iat":1,"scope":["x",{"y":null}],"\u0073ub":"b","acr":"mfa","uid":7}"#,
            Some("uid"),
        )
        .unwrap();
        assert_eq!(
            claims.sub,
            Some(json!("b")),
            "an escaped name, and the last value"
        );
        assert_eq!(claims.acr, Some(json!("mfa")));
        assert_eq!(claims.user_id, Some(json!(7)));
        assert_eq!(claims.auth_time, None);

        let by_sub = read(r#"{"sub":"1925"}"#, Some("sub")).unwrap();
        assert_eq!(
            by_sub.sub,
            Some(json!("1925")),
            "a claim that a check reads"
        );
        assert_eq!(
            by_sub.user_id,
            Some(json!("1925")),
            "and that names the user"
        );
        assert_eq!(read(r#"{"uid":7}"#, None).unwrap().user_id, None);

        for malformed in [
            r#"["sub"]"#,
            r#"{"sub":"a"} x"#,
            r#"{"iat":[1,}"#,
            "",
            "null",
        ] {
            assert!(read(malformed, None).is_err(), "{malformed}");
        }
    }
}
