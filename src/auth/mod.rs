//! End-user authentication (docs/api.md `401`): the first party's JWT, checked against
//! an HS256 secret, a PEM public key, or a JWKS. `exp`, `iss`, `aud` and a non-empty `sub`
//! are required, `nbf` is honoured, and `auth.leeway_s` applies to both.

mod jwks;
mod keys;
mod mint;
mod step_up;

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{TokenData, Validation, decode, decode_header};
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
    /// The checks, one for each algorithm a key may verify, made once.
    validations: Vec<Validation>,
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
        let validations = VerifyingKey::ALGORITHMS
            .into_iter()
            .map(|algorithm| {
                let mut validation = Validation::new(algorithm);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.set_issuer(&[&settings.issuer]);
                validation.set_audience(&[&settings.audience]);
                validation.validate_nbf = true;
                validation.leeway = settings.leeway.as_secs();
                validation
            })
            .collect();
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
        Ok((Self { keys, validations }, jwks))
    }

    /// Checks the value of an `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let token = bearer_token(authorization)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let data = match &self.keys {
            // The library reads the header itself; only a key set needs its `kid` first.
            Keys::Static(key) => self.decode(token, key)?,
            Keys::Jwks(jwks) => {
                let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
                let key = jwks
                    .key_for(header.kid.as_deref())
                    .await
                    .ok_or(AuthError::UnknownKey)?;
                self.decode(token, &key)?
            }
        };
        let subject = match data.claims.get("sub") {
            Some(Value::String(sub)) if !sub.trim().is_empty() => Subject::new(sub.as_str()),
            _ => return Err(AuthError::BadClaims),
        };
        Ok(Caller {
            subject,
            claims: data.claims,
        })
    }

    /// The token's claims, if `key` verifies it with its one algorithm and they pass.
    fn decode(
        &self,
        token: &str,
        key: &VerifyingKey,
    ) -> Result<TokenData<Map<String, Value>>, AuthError> {
        let validation = self
            .validations
            .iter()
            .find(|validation| validation.algorithms == [key.algorithm])
            .ok_or(AuthError::BadSignature)?;
        decode(token, &key.key, validation).map_err(classify)
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
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
    };
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use secrecy::SecretString;

    use super::*;

    fn settings(key: KeySource) -> AuthSettings {
        AuthSettings {
            issuer: "issuer".into(),
            audience: "audience".into(),
            key,
            jwks_refresh: Duration::from_secs(300),
            leeway: Duration::from_secs(30),
            bind_max_age: None,
            bind_acr_values: None,
        }
    }

    fn token(algorithm: Algorithm, key: &EncodingKey) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let claims = serde_json::json!({
            "sub": "sub-1", "iss": "issuer", "aud": "audience", "exp": now.as_secs() + 600,
        });
        encode(&Header::new(algorithm), &claims, key).unwrap()
    }

    /// The subject of `token`, or why it was refused, by an authenticator of `settings`.
    fn check(settings: &AuthSettings, token: &str) -> Result<String, AuthError> {
        let (authenticator, _) = Authenticator::new(settings).unwrap();
        let caller = futures_util::FutureExt::now_or_never(
            authenticator.authenticate(Some(&format!("Bearer {token}"))),
        )
        .expect("a static key needs no fetch");
        caller.map(|caller| caller.subject.as_str().to_owned())
    }

    /// `settings` with a PEM file `name` in `dir` of the public key `der` (X.509
    /// SubjectPublicKeyInfo).
    fn with_public_key(der: &[u8], dir: &tempfile::TempDir, name: &str) -> AuthSettings {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let path = dir.path().join(name);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n");
        std::fs::write(&path, pem).unwrap();
        settings(KeySource::PublicKeyFile(path))
    }

    #[test]
    fn every_key_type_verifies_its_own_algorithm_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "a shared secret of the first party";
        let hs256 = settings(KeySource::Hs256(SecretString::from(secret)));
        let hs256_key = EncodingKey::from_secret(secret.as_bytes());

        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_public = AsDer::<PublicKeyX509Der>::as_der(ed.public_key()).unwrap();
        let eddsa = with_public_key(ed_public.as_ref(), &dir, "ed25519.pem");
        let ed_private = AsDer::<Pkcs8V1Der>::as_der(&ed).unwrap();
        let eddsa_key = EncodingKey::from_ed_der(ed_private.as_ref());

        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let ec_public = AsDer::<PublicKeyX509Der>::as_der(ec.public_key()).unwrap();
        let es256 = with_public_key(ec_public.as_ref(), &dir, "p256.pem");
        let es256_key = EncodingKey::from_ec_der(ec.to_pkcs8v1().unwrap().as_ref());

        let keys = [
            (&hs256, Algorithm::HS256, &hs256_key),
            (&eddsa, Algorithm::EdDSA, &eddsa_key),
            (&es256, Algorithm::ES256, &es256_key),
        ];
        for (settings, algorithm, _) in keys {
            for (_, signed_with, key) in keys {
                let answer = check(settings, &token(signed_with, key));
                if signed_with == algorithm {
                    assert_eq!(answer, Ok("sub-1".into()), "{algorithm:?}");
                } else {
                    assert_eq!(
                        answer,
                        Err(AuthError::BadSignature),
                        "{signed_with:?} against {algorithm:?}"
                    );
                }
            }
        }
    }

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
