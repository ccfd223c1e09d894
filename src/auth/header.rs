//! A JWT's protected header, read before any key is chosen: the algorithm, the key id, the
//! type, and whether it asks for an extension (`crit`), which this service understands
//! none of (RFC 7515 §4.1.11 wants such a token refused).

use base64::Engine as _;
use jsonwebtoken::Algorithm;

use super::AuthError;

/// What the checks need of a token's header.
#[derive(Debug)]
pub struct TokenHeader {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

#[derive(serde::Deserialize)]
struct Raw {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

impl TokenHeader {
    /// The header of `token`; a token whose header is not JSON of this shape, names an
    /// algorithm this service does not verify, or carries `crit`, is refused.
    pub fn read(token: &str) -> Result<Self, AuthError> {
        let encoded = token.split('.').next().ok_or(AuthError::Malformed)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| AuthError::Malformed)?;
        let raw: Raw = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        if raw.crit.is_some() {
            return Err(AuthError::CriticalExtension);
        }
        let algorithm = raw.alg.parse().map_err(|_| AuthError::BadSignature)?;
        Ok(Self {
            algorithm,
            kid: raw.kid,
            typ: raw.typ,
        })
    }

    /// Whether the header's `typ` is one of `accepted` (without case, with or without
    /// `application/`, as RFC 7515 §4.1.9 allows); a token without `typ` is not.
    pub fn has_type_of(&self, accepted: &[String]) -> bool {
        let Some(typ) = &self.typ else {
            return false;
        };
        let bare = |t: &str| {
            let lower = t.to_ascii_lowercase();
            lower
                .strip_prefix("application/")
                .map(str::to_owned)
                .unwrap_or(lower)
        };
        let typ = bare(typ);
        accepted.iter().any(|a| bare(a) == typ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> String {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
        format!("{encoded}.e30.c2ln")
    }

    #[test]
    fn the_header_is_read_and_crit_is_refused() {
        let read =
            TokenHeader::read(&token(r#"{"alg":"PS256","kid":"k1","typ":"at+jwt"}"#)).unwrap();
        assert_eq!(read.algorithm, Algorithm::PS256);
        assert_eq!(read.kid.as_deref(), Some("k1"));
        let cases = [
            (
                r#"{"alg":"RS256","crit":["exp"]}"#,
                AuthError::CriticalExtension,
                "crit",
            ),
            (r#"{"alg":"none"}"#, AuthError::BadSignature, "none"),
            (
                r#"{"alg":"ES512"}"#,
                AuthError::BadSignature,
                "an algorithm not verified",
            ),
            (r#"{"kid":"k1"}"#, AuthError::Malformed, "no alg"),
            ("not json", AuthError::Malformed, "not JSON"),
        ];
        for (header, refusal, what) in cases {
            assert_eq!(
                TokenHeader::read(&token(header)).unwrap_err(),
                refusal,
                "{what}"
            );
        }
    }

    #[test]
    fn token_types_compare_without_case_or_media_prefix() {
        let accepted = ["at+jwt".to_owned()];
        let cases = [
            (Some("at+jwt"), true),
            (Some("AT+JWT"), true),
            (Some("application/at+jwt"), true),
            (Some("JWT"), false),
            (None, false),
        ];
        for (typ, expected) in cases {
            let header = TokenHeader {
                algorithm: Algorithm::RS256,
                kid: None,
                typ: typ.map(str::to_owned),
            };
            assert_eq!(header.has_type_of(&accepted), expected, "{typ:?}");
        }
    }
}
