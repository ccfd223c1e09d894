//! Minting HS256 JWTs with the configured secret: what `token mint` and `dev` hand out, and
//! what the tests sign their callers' tokens with. The service itself never mints a token
//! for a request.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Serialize;

/// An HS256 JWT carrying `claims`, signed with `secret`.
pub fn mint_hs256(
    secret: &[u8],
    claims: &impl Serialize,
) -> Result<String, jsonwebtoken::errors::Error> {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
}
