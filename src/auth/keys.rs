//! Verification keys and the algorithms each one allows (docs/api.md "Authentication").
//! The algorithms follow from the key, never from the token alone: an RSA key verifies the
//! RS and PS algorithms, an EC key the one of its curve, an Ed25519 key EdDSA, a JWK that
//! names its `alg` that one only; an HS256 token is refused against any public key, and
//! `none` is never allowed.

use std::sync::Arc;

use aws_lc_rs::hmac;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// What an RSA key verifies: RS256, RS384, RS512, PS256, PS384 and PS512.
pub fn rsa() -> &'static [Algorithm] {
    AlgorithmFamily::Rsa.algorithms()
}

/// A key with the algorithms it verifies.
pub struct VerifyingKey {
    check: Check,
    pub algorithms: Vec<Algorithm>,
}

/// How a key checks a signature.
enum Check {
    /// HMAC-SHA-256 with the key's state set up once, not for every token (boxed: the
    /// state is 1.2 KiB).
    Hmac(Box<hmac::Key>),
    /// A public key, with jsonwebtoken's verifier for the token's algorithm.
    Public(DecodingKey),
}

impl VerifyingKey {
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            check: Check::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
            algorithms: vec![Algorithm::HS256],
        }
    }

    fn public(key: DecodingKey, algorithms: Vec<Algorithm>) -> Self {
        Self {
            check: Check::Public(key),
            algorithms,
        }
    }

    /// Whether `signature` over `message` holds for `algorithm`, one this key verifies.
    pub fn verifies(&self, algorithm: Algorithm, message: &[u8], signature: Vec<u8>) -> bool {
        if !self.algorithms.contains(&algorithm) {
            return false;
        }
        match &self.check {
            Check::Hmac(key) => hmac::verify(key, message, &signature).is_ok(),
            Check::Public(key) => {
                (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.verifier_factory)(&algorithm, key)
                    .is_ok_and(|verifier| verifier.verify(message, &signature).is_ok())
            }
        }
    }

    /// A PEM public key: RSA gives the RS and PS algorithms, P-256 ES256, P-384 ES384,
    /// Ed25519 EdDSA.
    pub fn from_pem(pem: &[u8]) -> Option<Self> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Some(Self::public(key, rsa().to_vec()));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            let algorithm = ec_curve_of_pem(pem)?;
            return Some(Self::public(key, vec![algorithm]));
        }
        DecodingKey::from_ed_pem(pem)
            .ok()
            .map(|key| Self::public(key, vec![Algorithm::EdDSA]))
    }

    /// A JWK this service can verify signatures with, or why it cannot (it is then skipped,
    /// not fatal).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, &'static str> {
        let common = &jwk.common;
        if let Some(usage) = &common.public_key_use
            && *usage != PublicKeyUse::Signature
        {
            return Err("its use is not sig");
        }
        if let Some(operations) = &common.key_operations
            && !operations.contains(&KeyOperations::Verify)
        {
            return Err("its key_ops do not include verify");
        }
        let of_type: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => rsa(),
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                &[Algorithm::ES256]
            }
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
                &[Algorithm::ES384]
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                &[Algorithm::EdDSA]
            }
            _ => return Err("its key type or curve is not supported"),
        };
        let algorithms = match common.key_algorithm {
            None => of_type.to_vec(),
            Some(named) => {
                let named = signing_algorithm(named).ok_or("its alg is not a signature")?;
                if !of_type.contains(&named) {
                    return Err("its alg does not fit its key type");
                }
                vec![named]
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| "its parameters are malformed")?;
        Ok(Self::public(key, algorithms))
    }
}

/// The signature algorithm a JWK's `alg` names, if it names one this service verifies.
fn signing_algorithm(named: KeyAlgorithm) -> Option<Algorithm> {
    Some(match named {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The ES algorithm of an EC public key in PEM, by its curve's object identifier.
fn ec_curve_of_pem(pem: &[u8]) -> Option<Algorithm> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    // 1.2.840.10045.3.1.7 (P-256) and 1.3.132.0.34 (P-384), DER-encoded.
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    if has(P256) {
        Some(Algorithm::ES256)
    } else if has(P384) {
        Some(Algorithm::ES384)
    } else {
        None
    }
}

/// A JWK that was not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub kid: Option<String>,
    pub reason: &'static str,
}

/// The usable keys of one JWKS document, by `kid`, and those it skipped.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<(Option<String>, Arc<VerifyingKey>)>,
    skipped: Vec<Skipped>,
}

impl KeySet {
    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        // Key by key, so that one a library cannot read (an unknown `kty`) is skipped
        // rather than failing the set.
        let document: Document = serde_json::from_slice(json)?;
        let mut set = Self::default();
        for value in document.keys {
            let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
            let taken = serde_json::from_value::<Jwk>(value)
                .map_err(|_| "it is not a JWK this service reads")
                .and_then(|jwk| VerifyingKey::from_jwk(&jwk));
            match taken {
                Ok(key) => set.keys.push((kid, Arc::new(key))),
                Err(reason) => set.skipped.push(Skipped { kid, reason }),
            }
        }
        Ok(set)
    }

    /// The key named `kid`; a token without `kid` may use the only key of a one-key set.
    pub fn find(&self, kid: Option<&str>) -> Option<&Arc<VerifyingKey>> {
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

    /// The keys of the document that were not taken, with the reason.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }
}
