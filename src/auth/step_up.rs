//! Step-up for the routes that change a second factor (docs/api.md "Step-up", RFC 9470):
//! with `auth.bind_max_age_s` the JWT's `auth_time` must be that recent, with
//! `auth.bind_acr_values` its `acr` must be one of them. The refusal carries the RFC's
//! challenge. Time is an argument.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::config::AuthSettings;

use super::Claims;

/// A login too old, or not strong enough, for this route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a more recent or stronger login is required")]
pub struct StepUpRequired {
    /// The `WWW-Authenticate` value of the refusal.
    pub challenge: String,
}

pub struct StepUp {
    max_age: Option<Duration>,
    acr_values: Option<Vec<String>>,
    leeway: Duration,
    challenge: String,
}

impl StepUp {
    pub fn new(settings: &AuthSettings) -> Self {
        let mut challenge = String::from(
            r#"Bearer error="insufficient_user_authentication", error_description="A more recent or stronger login is required""#,
        );
        if let Some(max_age) = settings.bind_max_age {
            challenge.push_str(&format!(", max_age={}", max_age.as_secs()));
        }
        if let Some(values) = &settings.bind_acr_values {
            challenge.push_str(&format!(r#", acr_values="{}""#, values.join(" ")));
        }
        Self {
            max_age: settings.bind_max_age,
            acr_values: settings.bind_acr_values.clone(),
            leeway: settings.leeway,
            challenge,
        }
    }

    /// Whether a caller with these `claims` may bind or unbind at `now`.
    pub fn check(&self, claims: &Claims, now: SystemTime) -> Result<(), StepUpRequired> {
        let recent = self.max_age.is_none_or(|max_age| {
            let now = now
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            claims
                .auth_time
                .as_ref()
                .and_then(Value::as_f64)
                // A login in the future (a skewed clock, an IdP that sends milliseconds)
                // is no recent login.
                .is_some_and(|at| {
                    let leeway = self.leeway.as_secs_f64();
                    at <= now + leeway && now - at <= max_age.as_secs_f64() + leeway
                })
        });
        let strong = self.acr_values.as_ref().is_none_or(|values| {
            claims
                .acr
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|acr| values.iter().any(|v| v == acr))
        });
        if recent && strong {
            Ok(())
        } else {
            Err(StepUpRequired {
                challenge: self.challenge.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySource;
    use serde_json::json;

    fn step_up(max_age: Option<u64>, acr: Option<&[&str]>) -> StepUp {
        StepUp::new(&AuthSettings {
            issuer: "i".into(),
            audience: "a".into(),
            key: KeySource::JwksUrl("http://127.0.0.1:1".into()),
            jwks_refresh: Duration::from_secs(300),
            leeway: Duration::from_secs(30),
            bind_max_age: max_age.map(Duration::from_secs),
            bind_acr_values: acr.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
            token_types: None,
            ca_file: None,
        })
    }

    fn claims(value: Value) -> Claims {
        Claims::read(value.to_string().as_bytes(), None).unwrap()
    }

    #[test]
    fn logins_are_judged_by_age_and_strength() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let both = step_up(Some(300), Some(&["mfa"]));
        let cases = [
            (
                json!({"auth_time": 9_900, "acr": "mfa"}),
                true,
                "recent and strong",
            ),
            (
                json!({"auth_time": 9_670, "acr": "mfa"}),
                true,
                "within the leeway",
            ),
            (json!({"auth_time": 9_600, "acr": "mfa"}), false, "too old"),
            (
                json!({"auth_time": 13_600, "acr": "mfa"}),
                false,
                "an hour in the future",
            ),
            (
                json!({"auth_time": 10_020, "acr": "mfa"}),
                true,
                "ahead within the leeway",
            ),
            (
                json!({"auth_time": 9_900_000, "acr": "mfa"}),
                false,
                "in milliseconds",
            ),
            (json!({"acr": "mfa"}), false, "no auth_time"),
            (
                json!({"auth_time": "9900", "acr": "mfa"}),
                false,
                "auth_time not a number",
            ),
            (
                json!({"auth_time": 9_900, "acr": "pwd"}),
                false,
                "another acr",
            ),
            (json!({"auth_time": 9_900}), false, "no acr"),
        ];
        for (value, ok, what) in cases {
            assert_eq!(both.check(&claims(value), now).is_ok(), ok, "{what}");
        }
        assert!(
            step_up(None, None).check(&Claims::default(), now).is_ok(),
            "off"
        );
    }

    #[test]
    fn the_challenge_is_rfc_9470s() {
        let error = step_up(Some(300), Some(&["mfa", "hwk"]))
            .check(&Claims::default(), SystemTime::now())
            .unwrap_err();
        assert_eq!(
            error.challenge,
            r#"Bearer error="insufficient_user_authentication", error_description="A more recent or stronger login is required", max_age=300, acr_values="mfa hwk""#
        );
    }
}
