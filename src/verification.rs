//! Verification tokens (docs/api.md): step 1 seals what step 2 needs — AutoShares'
//! token id, the AutoShares user id, the subject, the number and an expiry — with
//! AES-256-GCM, so a client can carry it but neither read nor change it. Previous keys
//! still open tokens during a key rotation. No I/O here; the time is an argument.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::SealingKey;
use crate::ids::{AutosharesUserId, Subject, UpstreamTokenId};
use crate::phone::PhoneNumber;

const PREFIX: &str = "v1.";
const AAD: &[u8] = b"autoshares-bff/verification-token/v1";
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("verification token is malformed")]
    Malformed,
    #[error("verification token failed authentication")]
    Tampered,
    #[error("verification token belongs to another user")]
    OtherUser,
    #[error("verification token has expired")]
    Expired,
}

/// What a verification token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub token_id: UpstreamTokenId,
    pub user: AutosharesUserId,
    pub phone: PhoneNumber,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Names one verification token's code attempts: two integers, so a process that
/// counts them keeps no string per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    user: AutosharesUserId,
    token: UpstreamTokenId,
}

impl std::fmt::Display for AttemptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.user, self.token)
    }
}

impl Verification {
    /// The key under which wrong codes for this token are counted.
    pub fn attempt_key(&self) -> AttemptKey {
        AttemptKey {
            user: self.user,
            token: self.token_id,
        }
    }

    /// How long the token stays usable after `now`.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(unix_seconds(now)))
    }
}

/// Sealed with borrowed text, opened with text borrowed from the plain bytes where it
/// has nothing to unescape.
#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    tid: i64,
    uid: i64,
    #[serde(borrow)]
    sub: Cow<'a, str>,
    #[serde(borrow)]
    phone: Cow<'a, str>,
    exp: u64,
}

/// Authenticated encryption of bytes under one key (AES-256-GCM, a random nonce each
/// time): `nonce || ciphertext || tag`. The verification tokens use it, and so do the
/// stored idempotent answers, each under its own key.
pub struct Envelope(RandomizedNonceKey);

impl Envelope {
    pub fn new(key: &[u8; 32]) -> Self {
        // The nonces come from AWS-LC's generator, which seeds itself from CPU jitter the
        // first time the process uses it (tens of milliseconds of CPU). One draw here does
        // that while the service starts, not on the thread of the first bind it serves.
        let mut seeded = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut seeded).expect("the system random source is available");
        Self(
            RandomizedNonceKey::new(&AES_256_GCM, key)
                .expect("a 32-byte key is valid for AES-256-GCM"),
        )
    }

    /// A key of its own for `purpose`, derived from a sealing secret (HKDF-SHA-256).
    pub fn derive(secret: &SealingKey, purpose: &str) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"autoshares-bff");
        let prk = salt.extract(secret.expose_secret());
        let info: &[&[u8]] = &[purpose.as_bytes()];
        let mut key = [0u8; 32];
        prk.expand(info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF can fill one SHA-256 length");
        Self::new(&key)
    }

    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        // One buffer, sealed where it lies: the nonce's place, the text, then the tag.
        let mut bytes = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        bytes.extend_from_slice(&[0; NONCE_LEN]);
        bytes.extend_from_slice(plain);
        let (nonce, tag) = self
            .0
            .seal_in_place_separate_tag(Aad::from(aad), &mut bytes[NONCE_LEN..])
            .expect("sealing with a valid key does not fail");
        bytes[..NONCE_LEN].copy_from_slice(nonce.as_ref());
        bytes.extend_from_slice(tag.as_ref());
        bytes
    }

    /// The plain bytes, or `None` when `sealed` was not sealed by this key with `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = sealed.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .ok()?
            .len();
        // The plain text is the start of the buffer it was opened in.
        in_out.truncate(plain);
        Some(in_out)
    }
}

/// Seals with the current key; opens with the current or any previous key.
pub struct Sealer {
    current: Envelope,
    previous: Vec<Envelope>,
    ttl: Duration,
}

impl Sealer {
    pub fn new(current: &SealingKey, previous: &[SealingKey], ttl: Duration) -> Self {
        let key = |secret: &SealingKey| Envelope::new(secret.expose_secret());
        Self {
            current: key(current),
            previous: previous.iter().map(key).collect(),
            ttl,
        }
    }

    /// A token for step 2 that expires `token_ttl_s` after `now`.
    pub fn seal(
        &self,
        token_id: UpstreamTokenId,
        user: AutosharesUserId,
        subject: &Subject,
        phone: &PhoneNumber,
        now: SystemTime,
    ) -> String {
        let payload = Payload {
            tid: token_id.0,
            uid: user.0,
            sub: Cow::Borrowed(subject.as_str()),
            phone: Cow::Borrowed(phone.as_e164()),
            exp: unix_seconds(now) + self.ttl.as_secs(),
        };
        let plain = serde_json::to_vec(&payload).expect("the payload always serialises");
        let bytes = self.current.seal(AAD, &plain);
        let encoded = base64::encoded_len(bytes.len(), false).expect("a token's bytes are few");
        let mut token = String::with_capacity(PREFIX.len() + encoded);
        token.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
        token
    }

    /// Opens `token` for the caller `subject`, whose AutoShares user id is `user`, at `now`.
    /// A token sealed for another subject, or for the same subject before it was linked to
    /// another user, is `OtherUser`.
    pub fn open(
        &self,
        token: &str,
        subject: &Subject,
        user: AutosharesUserId,
        now: SystemTime,
    ) -> Result<Verification, TokenError> {
        let encoded = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let plain = std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|key| key.open(AAD, &bytes))
            .ok_or(TokenError::Tampered)?;
        let payload: Payload = serde_json::from_slice(&plain).map_err(|_| TokenError::Malformed)?;
        if payload.sub != subject.as_str() || payload.uid != user.0 {
            return Err(TokenError::OtherUser);
        }
        if unix_seconds(now) >= payload.exp {
            return Err(TokenError::Expired);
        }
        Ok(Verification {
            token_id: UpstreamTokenId(payload.tid),
            user: AutosharesUserId(payload.uid),
            phone: PhoneNumber::from_trusted_e164(payload.phone.into_owned()),
            expires_at: payload.exp,
        })
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretBox;

    fn key(byte: u8) -> SealingKey {
        SecretBox::new(Box::new([byte; 32]))
    }

    fn number() -> PhoneNumber {
        PhoneNumber::from_trusted_e164("+13108904569".to_owned())
    }

    fn sealed_by(sealer: &Sealer, now: SystemTime) -> String {
        sealer.seal(
            UpstreamTokenId(1925),
            AutosharesUserId(42),
            &"sub-1".into(),
            &number(),
            now,
        )
    }

    #[test]
    fn a_sealed_token_opens_for_its_subject() {
        let sealer = Sealer::new(&key(1), &[], Duration::from_secs(600));
        let now = SystemTime::now();
        let opened = sealer
            .open(
                &sealed_by(&sealer, now),
                &"sub-1".into(),
                AutosharesUserId(42),
                now,
            )
            .unwrap();
        assert_eq!(opened.token_id, UpstreamTokenId(1925));
        assert_eq!(opened.user, AutosharesUserId(42));
        assert_eq!(opened.phone, number());
        assert_eq!(opened.remaining(now), Duration::from_secs(600));
    }

    #[test]
    fn the_token_does_not_show_what_it_carries() {
        let sealer = Sealer::new(&key(1), &[], Duration::from_secs(600));
        let token = sealed_by(&sealer, SystemTime::now());
        assert!(
            !token.contains("3108904569") && !token.contains("sub-1"),
            "{token}"
        );
    }

    #[test]
    fn every_changed_byte_is_detected() {
        let sealer = Sealer::new(&key(1), &[], Duration::from_secs(600));
        let now = SystemTime::now();
        let token = sealed_by(&sealer, now);
        let bytes = URL_SAFE_NO_PAD.decode(&token[PREFIX.len()..]).unwrap();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            let forged = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(changed));
            assert_eq!(
                sealer.open(&forged, &"sub-1".into(), AutosharesUserId(42), now),
                Err(TokenError::Tampered),
                "byte {i}"
            );
        }
    }

    #[test]
    fn failures_are_told_apart() {
        let sealer = Sealer::new(&key(1), &[], Duration::from_secs(600));
        let other_key = Sealer::new(&key(2), &[], Duration::from_secs(600));
        let now = SystemTime::now();
        let token = sealed_by(&sealer, now);
        let later = now + Duration::from_secs(600);
        let cases = [
            (
                token.clone(),
                "sub-2",
                now,
                TokenError::OtherUser,
                "another subject",
            ),
            (
                token.clone(),
                "sub-1",
                later,
                TokenError::Expired,
                "at expiry",
            ),
            (
                "v1.!!!".to_owned(),
                "sub-1",
                now,
                TokenError::Malformed,
                "not base64",
            ),
            (
                "v1.AAAA".to_owned(),
                "sub-1",
                now,
                TokenError::Malformed,
                "too short",
            ),
            (
                "garbage".to_owned(),
                "sub-1",
                now,
                TokenError::Malformed,
                "no prefix",
            ),
            (
                sealed_by(&other_key, now),
                "sub-1",
                now,
                TokenError::Tampered,
                "unknown key",
            ),
        ];
        for (token, subject, at, expected, what) in cases {
            let opened = sealer.open(&token, &subject.into(), AutosharesUserId(42), at);
            assert_eq!(opened, Err(expected), "{what}");
        }
        let relinked = sealer.open(&token, &"sub-1".into(), AutosharesUserId(43), now);
        assert_eq!(
            relinked,
            Err(TokenError::OtherUser),
            "the subject now maps to another user"
        );
    }

    #[test]
    fn previous_keys_still_open_tokens_after_a_rotation() {
        let before = Sealer::new(&key(1), &[], Duration::from_secs(600));
        let after = Sealer::new(&key(2), &[key(1)], Duration::from_secs(600));
        let now = SystemTime::now();
        let token = sealed_by(&before, now);
        assert!(
            after
                .open(&token, &"sub-1".into(), AutosharesUserId(42), now)
                .is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn sealing_round_trips_and_any_changed_byte_is_refused(
            token_id in proptest::prelude::any::<i64>(),
            user in 1i64..i64::MAX,
            // Quotes, backslashes and control characters are escaped in the sealed JSON,
            // which then opens to owned text, where other text is borrowed.
            subject in r#"[a-z0-9|@."\\\n\t é😀-]{1,40}"#,
            flip in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let sealer = Sealer::new(&key(9), &[], Duration::from_secs(600));
            let now = SystemTime::now();
            let subject = Subject::from(subject);
            let sealed = sealer.seal(UpstreamTokenId(token_id), AutosharesUserId(user), &subject, &number(), now);
            let opened = sealer.open(&sealed, &subject, AutosharesUserId(user), now).unwrap();
            proptest::prop_assert_eq!(opened.token_id, UpstreamTokenId(token_id));
            proptest::prop_assert_eq!(opened.phone, number());
            let mut bytes = URL_SAFE_NO_PAD.decode(&sealed[PREFIX.len()..]).unwrap();
            let i = flip.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let forged = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
            proptest::prop_assert_eq!(
                sealer.open(&forged, &subject, AutosharesUserId(user), now),
                Err(TokenError::Tampered)
            );
        }
    }
}
