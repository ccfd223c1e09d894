//! Verification keys and the algorithms each one allows. The algorithm follows from the
//! key, never from the token: an HS256 token is refused against an RSA or EC key, and
//! `none` is never allowed.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A key with the one algorithm it verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

impl VerifyingKey {
    /// Every algorithm a key of this type may verify.
    pub const ALGORITHMS: [Algorithm; 4] = [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ];

    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
        }
    }

    /// A PEM public key: RSA gives RS256, P-256 gives ES256, Ed25519 gives EdDSA.
    pub fn from_pem(pem: &[u8]) -> Option<Self> {
        let with = |algorithm| move |key| Self { key, algorithm };
        DecodingKey::from_rsa_pem(pem)
            .map(with(Algorithm::RS256))
            .or_else(|_| DecodingKey::from_ec_pem(pem).map(with(Algorithm::ES256)))
            .or_else(|_| DecodingKey::from_ed_pem(pem).map(with(Algorithm::EdDSA)))
            .ok()
    }

    /// A JWK of a supported type; `None` for the rest (they are skipped, not fatal).
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(Self { key, algorithm })
    }
}

/// The keys of one JWKS document, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<(Option<String>, VerifyingKey)>,
}

impl KeySet {
    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        let set: JwkSet = serde_json::from_slice(json)?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone(), VerifyingKey::from_jwk(jwk)?)))
            .collect();
        Ok(Self { keys })
    }

    /// The key named `kid`; a token without `kid` may use the only key of a one-key set.
    pub fn find(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid))
                .map(|(_, key)| key),
            None if self.keys.len() == 1 => Some(&self.keys[0].1),
            None => None,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
