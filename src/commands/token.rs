//! `autoshares-bff token mint`: an HS256 JWT signed with `auth.hs256_secret`, for tests and
//! local use. Prints the token alone on stdout.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::auth::mint_hs256;
use crate::cli::TokenCommand;
use crate::config::{AuthSettings, KeySource, Layers, Sources};

pub fn run(sources: Sources, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Mint {
        sub,
        ttl,
        claims,
        auth_age,
        acr,
    } = command;
    let auth = AuthSettings::read(&Layers::load(&sources)?)?;
    let KeySource::Hs256(secret) = &auth.key else {
        bail!("configuration: auth.hs256_secret is required to mint tokens");
    };
    let ttl = humantime::parse_duration(&ttl)
        .context("token mint: --ttl must look like 1h, 30m or 90s")?;
    let auth_age = humantime::parse_duration(&auth_age)
        .context("token mint: --auth-age must look like 0s, 20m or 2h")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut body = Map::new();
    for claim in &claims {
        let (key, value) = claim
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .context("token mint: --claim must look like key=value")?;
        body.insert(key.to_owned(), claim_value(value));
    }
    body.insert(
        "auth_time".into(),
        now.saturating_sub(auth_age.as_secs()).into(),
    );
    if let Some(acr) = acr {
        body.insert("acr".into(), acr.into());
    }
    body.insert("sub".into(), sub.into());
    body.insert("iss".into(), auth.issuer.into());
    body.insert("aud".into(), auth.audience.into());
    body.insert("iat".into(), now.into());
    body.insert("exp".into(), (now + ttl.as_secs()).into());
    let token = mint_hs256(secret.expose_secret().as_bytes(), &body)?;
    println!("{token}");
    Ok(())
}

/// Digits only make an integer; anything else stays a string.
fn claim_value(text: &str) -> Value {
    if !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && let Ok(number) = text.parse::<u64>()
    {
        return number.into();
    }
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_claims_become_integers() {
        let cases = [
            ("1925", Value::from(1925u64), "digits"),
            ("19a", Value::from("19a"), "mixed"),
            ("-5", Value::from("-5"), "a sign is not a digit"),
            ("", Value::from(""), "empty"),
        ];
        for (input, expected, what) in cases {
            assert_eq!(claim_value(input), expected, "{what}");
        }
    }
}
