//! End-user authentication (CONTRACT.md §2 `401`): the first party's JWT, checked against
//! an HS256 secret, a PEM public key, or a JWKS. `exp`, `iss`, `aud` and a non-empty `sub`
//! are required, `nbf` is honoured, and `auth.leeway_s` applies to both.

mod jwks;
mod keys;
mod mint;
mod step_up;

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::config::{AuthSettings, KeySource};
use crate::ids::Subject;

pub use jwks::{Jwks, JwksError, JwksSource};
pub use keys::{KeySet, VerifyingKey};
pub use mint::mint_hs256;
pub use step_up::{StepUp, StepUpRequired};

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("bearer token is too large")]
    TooLarge,
    #[error("bearer token is malformed")]
    Malformed,
    #[error("no key for this token")]
    UnknownKey,
    #[error("bearer token signature or algorithm is not accepted")]
    BadSignature,
    #[error("bearer token has expired")]
    Expired,
    #[error("bearer token is not valid yet")]
    NotYetValid,
    #[error("bearer token claims are not accepted")]
    BadClaims,
}

impl AuthError {
    /// Whether a token was sent at all (RFC 6750 `error="invalid_token"`).
    pub fn token_was_sent(&self) -> bool {
        *self != Self::Missing
    }
}

/// The authenticated end user.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The JWT's non-empty `sub`.
    pub subject: Subject,
    /// Every claim, for identity mapping by claim.
    pub claims: Map<String, Value>,
}

enum Keys {
    Static(VerifyingKey),
    Jwks(Arc<Jwks>),
}

pub struct Authenticator {
    keys: Keys,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("auth.public_key_file cannot be read")]
    KeyFileUnreadable,
    #[error("auth.public_key_file is not an RSA, P-256 or Ed25519 public key in PEM")]
    KeyFileInvalid,
}

impl Authenticator {
    /// Builds the checks; with a JWKS source, also hands back the set to refresh.
    pub fn new(settings: &AuthSettings) -> Result<(Self, Option<Arc<Jwks>>), AuthSetupError> {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        let (keys, jwks) = match &settings.key {
            KeySource::Hs256(secret) => (
                Keys::Static(VerifyingKey::hs256(secret.expose_secret().as_bytes())),
                None,
            ),
            KeySource::PublicKeyFile(path) => {
                let pem = std::fs::read(path).map_err(|_| AuthSetupError::KeyFileUnreadable)?;
                let key = VerifyingKey::from_pem(&pem).ok_or(AuthSetupError::KeyFileInvalid)?;
                (Keys::Static(key), None)
            }
            KeySource::JwksUrl(url) => {
                let jwks = Arc::new(Jwks::new(JwksSource::Url(url.clone())));
                (Keys::Jwks(Arc::clone(&jwks)), Some(jwks))
            }
            KeySource::JwksFile(path) => {
                let jwks = Arc::new(Jwks::new(JwksSource::File(path.clone())));
                (Keys::Jwks(Arc::clone(&jwks)), Some(jwks))
            }
        };
        Ok((Self { keys, validation }, jwks))
    }

    /// Checks the value of an `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let token = bearer_token(authorization)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match &self.keys {
            Keys::Static(key) => key.clone(),
            Keys::Jwks(jwks) => jwks
                .key_for(header.kid.as_deref())
                .await
                .ok_or(AuthError::UnknownKey)?,
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.algorithm];
        let data = decode::<Map<String, Value>>(token, &key.key, &validation).map_err(classify)?;
        let subject = match data.claims.get("sub") {
            Some(Value::String(sub)) if !sub.trim().is_empty() => Subject::new(sub.as_str()),
            _ => return Err(AuthError::BadClaims),
        };
        Ok(Caller {
            subject,
            claims: data.claims,
        })
    }
}

fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

fn classify(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => AuthError::BadSignature,
        ErrorKind::InvalidIssuer
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_) => AuthError::BadClaims,
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_taken_from_the_header() {
        let cases = [
            (None, Err(AuthError::Missing), "no header"),
            (Some("Basic abc"), Err(AuthError::Missing), "another scheme"),
            (Some("Bearer"), Err(AuthError::Missing), "no token"),
            (Some("Bearer   "), Err(AuthError::Missing), "blank token"),
            (Some("Bearer abc"), Ok("abc"), "a token"),
            (Some("bearer abc"), Ok("abc"), "scheme in lower case"),
        ];
        for (header, expected, what) in cases {
            assert_eq!(bearer_token(header), expected, "{what}");
        }
    }
}
