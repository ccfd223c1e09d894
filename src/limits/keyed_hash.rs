//! The keyed hash that names numbers and prefixes in stored state (docs/configuration.md): an
//! HMAC-SHA-256 under a key derived from `verification.token_secret`, which every replica
//! shares, so stored keys cannot be reversed over the number space without it.

use aws_lc_rs::{hkdf, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;

use crate::config::SealingKey;

/// A 128-bit name for a number or prefix.
pub type Digest = [u8; 16];

pub struct KeyedHash(hmac::Key);

impl KeyedHash {
    /// Derives the hashing key from the sealing secret (HKDF-SHA-256, its own label), so
    /// the two keys never coincide.
    pub fn derive(secret: &SealingKey) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"autoshares-bff");
        let info: &[&[u8]] = &[b"autoshares-bff/state-keys/v1"];
        let prk = salt.extract(secret.expose_secret());
        let okm = prk
            .expand(info, hmac::HMAC_SHA256)
            .expect("HKDF can expand one SHA-256 length");
        Self(hmac::Key::from(okm))
    }

    /// The name of `text` within `domain` (`phone`, `prefix`, …).
    pub fn digest(&self, domain: &str, text: &str) -> Digest {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(domain.as_bytes());
        context.update(b"\0");
        context.update(text.as_bytes());
        let tag = context.sign();
        tag.as_ref()[..16]
            .try_into()
            .expect("a SHA-256 tag is longer than 16 bytes")
    }
}

/// A digest as it appears in a Redis key: 22 characters of base64url.
pub fn encoded(digest: &Digest) -> String {
    URL_SAFE_NO_PAD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretBox;

    #[test]
    fn names_depend_on_the_key_and_the_domain() {
        let one = KeyedHash::derive(&SecretBox::new(Box::new([1; 32])));
        let two = KeyedHash::derive(&SecretBox::new(Box::new([2; 32])));
        let number = "+34635952910";
        assert_eq!(one.digest("phone", number), one.digest("phone", number));
        assert_ne!(
            one.digest("phone", number),
            two.digest("phone", number),
            "key"
        );
        assert_ne!(
            one.digest("phone", number),
            one.digest("prefix", number),
            "domain"
        );
        assert!(!encoded(&one.digest("phone", number)).contains("635952910"));
    }
}
