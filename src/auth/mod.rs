//! End-user authentication (docs/api.md `401`): the first party's JWT, checked against
//! an HS256 secret, a PEM public key, or a JWKS. `exp`, `iss`, `aud` and a non-empty `sub`
//! are required, `nbf` is honoured, and `auth.leeway_s` applies to both. A token is read
//! once: its header (header.rs), then the signature over its first two parts with the key
//! the header names (keys.rs), then its claims (claims.rs).

mod claims;
mod header;
mod jwks;
mod keys;
mod mint;
mod step_up;

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use secrecy::ExposeSecret;

use crate::config::{AuthSettings, KeySource};
use crate::ids::Subject;

use claims::ClaimRules;
pub use claims::Claims;
use header::TokenHeader;
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
    #[error("bearer token asks for an extension (crit)")]
    CriticalExtension,
    #[error("bearer token is not of an accepted type")]
    WrongType,
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
    /// The claims that step-up and the identity mapping read.
    pub claims: Claims,
}

enum Keys {
    Static(VerifyingKey),
    Jwks(Arc<Jwks>),
}

pub struct Authenticator {
    keys: Keys,
    claims: ClaimRules,
    /// The claim that carries the caller's AutoShares user id, when one does.
    user_id_claim: Option<String>,
    /// `auth.token_types`: the accepted `typ` values, when set.
    token_types: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("auth.public_key_file cannot be read")]
    KeyFileUnreadable,
    #[error("auth.public_key_file is not an RSA, P-256, P-384 or Ed25519 public key in PEM")]
    KeyFileInvalid,
    #[error("auth.ca_file cannot be read as PEM certificates")]
    CaFile,
}

impl Authenticator {
    /// Builds the checks; with a JWKS source, also hands back the set to refresh. A token's
    /// claim `user_id_claim` is kept for the identity mapping.
    pub fn new(
        settings: &AuthSettings,
        user_id_claim: Option<&str>,
    ) -> Result<(Self, Option<Arc<Jwks>>), AuthSetupError> {
        let claims = ClaimRules::new(&settings.issuer, &settings.audience, settings.leeway);
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
                let tls = crate::net::tls_config(settings.ca_file.as_deref())
                    .map_err(|_| AuthSetupError::CaFile)?;
                let jwks = Arc::new(Jwks::new(JwksSource::Url(url.clone(), tls)));
                (Keys::Jwks(Arc::clone(&jwks)), Some(jwks))
            }
            KeySource::JwksFile(path) => {
                let jwks = Arc::new(Jwks::new(JwksSource::File(path.clone())));
                (Keys::Jwks(Arc::clone(&jwks)), Some(jwks))
            }
        };
        let token_types = settings.token_types.clone();
        Ok((
            Self {
                keys,
                claims,
                user_id_claim: user_id_claim.map(str::to_owned),
                token_types,
            },
            jwks,
        ))
    }

    /// Checks the value of an `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let token = bearer_token(authorization)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = TokenHeader::read(token)?;
        if let Some(accepted) = &self.token_types
            && !header.has_type_of(accepted)
        {
            return Err(AuthError::WrongType);
        }
        match &self.keys {
            Keys::Static(key) => self.decode(token, &header, key),
            Keys::Jwks(jwks) => {
                let key = jwks
                    .key_for(header.kid.as_deref())
                    .await
                    .ok_or(AuthError::UnknownKey)?;
                self.decode(token, &header, &key)
            }
        }
    }

    /// The token's caller, if the algorithm its header names is one `key` verifies, the
    /// signature holds and the claims pass.
    fn decode(
        &self,
        token: &str,
        header: &TokenHeader,
        key: &VerifyingKey,
    ) -> Result<Caller, AuthError> {
        let mut parts = token.split('.');
        let (Some(protected), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signature = base64.decode(signature).map_err(|_| AuthError::Malformed)?;
        let message = &token.as_bytes()[..protected.len() + 1 + payload.len()];
        if !key.verifies(header.algorithm, message, signature) {
            return Err(AuthError::BadSignature);
        }
        let payload = base64.decode(payload).map_err(|_| AuthError::Malformed)?;
        let claims = Claims::read(&payload, self.user_id_claim.as_deref())
            .map_err(|_| AuthError::Malformed)?;
        let subject = self.claims.check(&claims, SystemTime::now())?;
        Ok(Caller { subject, claims })
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
            token_types: None,
            ca_file: None,
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
        let (authenticator, _) = Authenticator::new(settings, None).unwrap();
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

    fn pem(label: &str, der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    /// A signing key of each type, the settings of its public key as a PEM file in `dir`,
    /// and the algorithms it signs with.
    fn keys(dir: &tempfile::TempDir) -> Vec<(AuthSettings, Vec<(Algorithm, EncodingKey)>)> {
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        use aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let secret = "a shared secret of the first party";
        let hs256 = settings(KeySource::Hs256(SecretString::from(secret)));
        let hs256_key = EncodingKey::from_secret(secret.as_bytes());

        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_public = AsDer::<PublicKeyX509Der>::as_der(ed.public_key()).unwrap();
        let ed_private = AsDer::<Pkcs8V1Der>::as_der(&ed).unwrap();

        let ec = |curve| {
            let pair = EcdsaKeyPair::generate(curve).unwrap();
            let public = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
            let private = pair.to_pkcs8v1().unwrap();
            (public.as_ref().to_vec(), private.as_ref().to_vec())
        };
        let (p256_public, p256_private) = ec(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let (p384_public, p384_private) = ec(&ECDSA_P384_SHA384_FIXED_SIGNING);

        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let rsa_public = AsDer::<PublicKeyX509Der>::as_der(rsa.public_key()).unwrap();
        let rsa_private = AsDer::<Pkcs8V1Der>::as_der(&rsa).unwrap();
        let rsa_pem = pem("PRIVATE KEY", rsa_private.as_ref());
        let rsa_key = || EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap();

        vec![
            (hs256, vec![(Algorithm::HS256, hs256_key)]),
            (
                with_public_key(ed_public.as_ref(), dir, "ed25519.pem"),
                vec![(
                    Algorithm::EdDSA,
                    EncodingKey::from_ed_der(ed_private.as_ref()),
                )],
            ),
            (
                with_public_key(&p256_public, dir, "p256.pem"),
                vec![(Algorithm::ES256, EncodingKey::from_ec_der(&p256_private))],
            ),
            (
                with_public_key(&p384_public, dir, "p384.pem"),
                vec![(Algorithm::ES384, EncodingKey::from_ec_der(&p384_private))],
            ),
            (
                with_public_key(rsa_public.as_ref(), dir, "rsa.pem"),
                keys::rsa()
                    .iter()
                    .map(|algorithm| (*algorithm, rsa_key()))
                    .collect(),
            ),
        ]
    }

    #[test]
    fn every_key_type_verifies_its_own_algorithms_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(&dir);
        for (verifier, own) in &keys {
            for (signer, signed) in &keys {
                for (algorithm, key) in signed {
                    let answer = check(verifier, &token(*algorithm, key));
                    if std::ptr::eq(verifier, signer) {
                        assert_eq!(answer, Ok("sub-1".into()), "{algorithm:?}");
                    } else {
                        assert_eq!(
                            answer,
                            Err(AuthError::BadSignature),
                            "{algorithm:?} against a key of {:?}",
                            own[0].0
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_signature_over_other_claims_is_refused_by_every_key_type() {
        let dir = tempfile::tempdir().unwrap();
        let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for (verifier, signed) in keys(&dir) {
            for (algorithm, key) in signed {
                let genuine = token(algorithm, &key);
                let (header, rest) = genuine.split_once('.').unwrap();
                let (payload, signature) = rest.split_once('.').unwrap();
                let mut claims: serde_json::Value =
                    serde_json::from_slice(&base64.decode(payload).unwrap())
                        .expect("the payload is JSON");
                claims["sub"] = "sub-2".into();
                let forged = format!("{header}.{}.{signature}", base64.encode(claims.to_string()));
                assert_eq!(
                    check(&verifier, &forged),
                    Err(AuthError::BadSignature),
                    "{algorithm:?}"
                );
            }
        }
    }

    #[test]
    fn a_crit_header_or_a_type_not_accepted_is_refused() {
        let secret = "a shared secret of the first party";
        let key = EncodingKey::from_secret(secret.as_bytes());
        let mut typed = settings(KeySource::Hs256(SecretString::from(secret)));
        typed.token_types = Some(vec!["at+jwt".to_owned()]);
        let claims = |header: Header| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let claims = serde_json::json!({
                "sub": "sub-1", "iss": "issuer", "aud": "audience", "exp": now.as_secs() + 600,
            });
            encode(&header, &claims, &key).unwrap()
        };
        let mut access = Header::new(Algorithm::HS256);
        access.typ = Some("at+jwt".to_owned());
        assert_eq!(check(&typed, &claims(access)), Ok("sub-1".into()));
        let id_token = Header::new(Algorithm::HS256); // typ JWT
        assert_eq!(check(&typed, &claims(id_token)), Err(AuthError::WrongType));

        // jsonwebtoken writes no `crit`: put one in the header by hand.
        let plain = claims(Header::new(Algorithm::HS256));
        let (_, rest) = plain.split_once('.').unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"HS256","typ":"JWT","crit":["x-extension"],"x-extension":1}"#);
        let with_crit = format!("{header}.{rest}");
        let any = settings(KeySource::Hs256(SecretString::from(secret)));
        assert_eq!(check(&any, &with_crit), Err(AuthError::CriticalExtension));
    }

    #[test]
    fn jwk_metadata_decides_what_a_key_verifies() {
        let point = |curve| {
            let pair = EcdsaKeyPair::generate(curve).unwrap();
            let public = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
            let half = (public.len() - 1) / 2;
            let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            (b64(&public[1..=half]), b64(&public[1 + half..]))
        };
        let (x, y) = point(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let (x3, y3) = point(&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING);
        let ec = |kid: &str, extra: serde_json::Value| {
            let mut jwk =
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid});
            jwk.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            jwk
        };
        let set = serde_json::json!({"keys": [
            ec("plain", serde_json::json!({})),
            ec("signing", serde_json::json!({"use": "sig", "alg": "ES256", "key_ops": ["verify"]})),
            ec("encrypting", serde_json::json!({"use": "enc"})),
            ec("sign-only", serde_json::json!({"key_ops": ["sign"]})),
            ec("wrong-alg", serde_json::json!({"alg": "ES384"})),
            {"kty": "EC", "crv": "P-384", "x": x3, "y": y3, "kid": "p384"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},
            {"kty": "OKP", "crv": "X25519", "x": x, "kid": "x25519"},
        ]});
        let set = KeySet::parse(set.to_string().as_bytes()).unwrap();
        let algorithms = |kid| set.find(Some(kid)).map(|k| k.algorithms.clone());
        assert_eq!(algorithms("plain"), Some(vec![Algorithm::ES256]));
        assert_eq!(algorithms("signing"), Some(vec![Algorithm::ES256]));
        assert_eq!(algorithms("p384"), Some(vec![Algorithm::ES384]));
        let skipped: Vec<&str> = set
            .skipped()
            .iter()
            .map(|s| s.kid.as_deref().unwrap())
            .collect();
        assert_eq!(
            skipped,
            [
                "encrypting",
                "sign-only",
                "wrong-alg",
                "symmetric",
                "x25519"
            ]
        );
        assert!(set.skipped().iter().all(|s| !s.reason.is_empty()));
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
