//! The checks that turn raw layers into `Settings`, one section at a time, each error
//! naming its dotted key. `migrate`, `users` and `token` check only the sections they use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::limits::Quota;

use super::raw::StringList;
use super::{
    AuthSettings, ConfigError, DatabaseSettings, IdentitySource, KeySource, LimitBackend,
    LogFormat, LogSettings, OnBackendError, PhoneSettings, RateLimitSettings, RawSettings,
    SealingKey, ServerSettings, Settings, UpstreamSettings, VerificationSettings,
};

impl RawSettings {
    /// Checks everything `serve` needs.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        Ok(Settings {
            server: self.server()?,
            upstream: self.upstream()?,
            auth: self.auth()?,
            identity: self.identity()?,
            database: self.database()?,
            rate_limit: self.rate_limit()?,
            verification: self.verification()?,
            phone: self.phone()?,
            admin_token: secret("admin.token", &self.admin.token, &self.admin.token_file)?,
            log: self.log()?,
        })
    }

    pub fn server(&self) -> Result<ServerSettings, ConfigError> {
        let s = &self.server;
        Ok(ServerSettings {
            listen: address("server.listen", &s.listen, "0.0.0.0:8080")?,
            admin_listen: address("server.admin_listen", &s.admin_listen, "0.0.0.0:9090")?,
            shutdown_grace: Duration::from_secs(s.shutdown_grace_s.unwrap_or(10)),
        })
    }

    pub fn upstream(&self) -> Result<UpstreamSettings, ConfigError> {
        let u = &self.upstream;
        let base_url = required("upstream.base_url", &u.base_url)?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::key(
                "upstream.base_url",
                "must be an http:// or https:// URL",
            ));
        }
        let timeout_ms = u.timeout_ms.unwrap_or(5000);
        if timeout_ms == 0 {
            return Err(ConfigError::key("upstream.timeout_ms", "must be positive"));
        }
        let circuit_failures = u.circuit_failures.unwrap_or(5);
        if circuit_failures == 0 {
            return Err(ConfigError::key(
                "upstream.circuit_failures",
                "must be positive",
            ));
        }
        Ok(UpstreamSettings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_version: u.api_version.clone().unwrap_or_else(|| "1.0".to_owned()),
            app_key: required_secret("upstream.app_key", &u.app_key, &u.app_key_file)?,
            username: required("upstream.username", &u.username)?,
            password: required_secret("upstream.password", &u.password, &u.password_file)?,
            timeout: Duration::from_millis(timeout_ms),
            circuit_failures,
            circuit_open: Duration::from_secs(u.circuit_open_s.unwrap_or(30)),
        })
    }

    pub fn auth(&self) -> Result<AuthSettings, ConfigError> {
        let a = &self.auth;
        let hs256 = secret("auth.hs256_secret", &a.hs256_secret, &a.hs256_secret_file)?;
        let mut sources = Vec::new();
        if let Some(secret) = hs256 {
            sources.push(KeySource::Hs256(secret));
        }
        if let Some(path) = &a.public_key_file {
            sources.push(KeySource::PublicKeyFile(path.clone()));
        }
        if let Some(url) = non_empty(&a.jwks_url) {
            sources.push(KeySource::JwksUrl(url));
        }
        if let Some(path) = &a.jwks_file {
            sources.push(KeySource::JwksFile(path.clone()));
        }
        if sources.len() != 1 {
            return Err(ConfigError(
                "auth.hs256_secret: set exactly one of auth.hs256_secret, auth.public_key_file, \
                 auth.jwks_url, auth.jwks_file"
                    .to_owned(),
            ));
        }
        Ok(AuthSettings {
            issuer: required("auth.issuer", &a.issuer)?,
            audience: required("auth.audience", &a.audience)?,
            key: sources.remove(0),
            jwks_refresh: Duration::from_secs(a.jwks_refresh_s.unwrap_or(300).max(1)),
            leeway: Duration::from_secs(a.leeway_s.unwrap_or(30)),
        })
    }

    pub fn identity(&self) -> Result<IdentitySource, ConfigError> {
        match self.identity.source.as_deref().unwrap_or("database") {
            "database" => Ok(IdentitySource::Database),
            "claim" => Ok(IdentitySource::Claim(
                non_empty(&self.identity.claim).unwrap_or_else(|| "autoshares_user_id".to_owned()),
            )),
            _ => Err(ConfigError::key(
                "identity.source",
                "must be `database` or `claim`",
            )),
        }
    }

    pub fn database(&self) -> Result<DatabaseSettings, ConfigError> {
        let d = &self.database;
        let url = secret("database.url", &d.url, &d.url_file)?.unwrap_or_else(|| {
            SecretString::from("sqlite://data/autoshares-bff.db?mode=rwc".to_owned())
        });
        let text = url.expose_secret();
        if !(text.starts_with("sqlite:")
            || text.starts_with("postgres://")
            || text.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url",
                "must start with sqlite: or postgres://",
            ));
        }
        Ok(DatabaseSettings { url })
    }

    pub fn rate_limit(&self) -> Result<RateLimitSettings, ConfigError> {
        let r = &self.rate_limit;
        let quota = |key: &str, value: &Option<String>, default: &str| {
            Quota::parse(value.as_deref().unwrap_or(default))
                .map_err(|e| ConfigError::key(key, &e.to_string()))
        };
        let backend = match r.backend.as_deref().unwrap_or("memory") {
            "memory" => LimitBackend::Memory,
            "redis" => LimitBackend::Redis {
                url: secret("redis.url", &self.redis.url, &self.redis.url_file)?.ok_or_else(
                    || {
                        ConfigError::key(
                            "redis.url",
                            "is required when rate_limit.backend is redis",
                        )
                    },
                )?,
                key_prefix: self
                    .redis
                    .key_prefix
                    .clone()
                    .unwrap_or_else(|| "autoshares-bff:".to_owned()),
            },
            _ => {
                return Err(ConfigError::key(
                    "rate_limit.backend",
                    "must be `memory` or `redis`",
                ));
            }
        };
        let on_backend_error = match r.on_backend_error.as_deref().unwrap_or("deny") {
            "deny" => OnBackendError::Deny,
            "allow" => OnBackendError::Allow,
            _ => {
                return Err(ConfigError::key(
                    "rate_limit.on_backend_error",
                    "must be `deny` or `allow`",
                ));
            }
        };
        let verify_attempts = r.verify_attempts.unwrap_or(5);
        if verify_attempts == 0 {
            return Err(ConfigError::key(
                "rate_limit.verify_attempts",
                "must be positive",
            ));
        }
        Ok(RateLimitSettings {
            backend,
            bind_per_user: quota("rate_limit.bind_per_user", &r.bind_per_user, "5/hour")?,
            bind_per_phone: quota("rate_limit.bind_per_phone", &r.bind_per_phone, "10/day")?,
            verify_attempts,
            on_backend_error,
        })
    }

    pub fn verification(&self) -> Result<VerificationSettings, ConfigError> {
        let v = &self.verification;
        let current = required_secret(
            "verification.token_secret",
            &v.token_secret,
            &v.token_secret_file,
        )?;
        let previous = v
            .previous_token_secrets
            .as_ref()
            .map(StringList::items)
            .unwrap_or_default();
        let ttl = v.token_ttl_s.unwrap_or(600);
        if ttl == 0 {
            return Err(ConfigError::key(
                "verification.token_ttl_s",
                "must be positive",
            ));
        }
        Ok(VerificationSettings {
            token_secret: sealing_key("verification.token_secret", current.expose_secret())?,
            previous_token_secrets: previous
                .iter()
                .map(|text| sealing_key("verification.previous_token_secrets", text))
                .collect::<Result<_, _>>()?,
            token_ttl: Duration::from_secs(ttl),
        })
    }

    pub fn phone(&self) -> Result<PhoneSettings, ConfigError> {
        let Some(list) = &self.phone.allowed_countries else {
            return Ok(PhoneSettings::default());
        };
        let mut countries = Vec::new();
        for item in list.items() {
            let code = item.to_ascii_uppercase();
            if code.parse::<phonenumber::country::Id>().is_err() {
                return Err(ConfigError::key(
                    "phone.allowed_countries",
                    &format!("has an unknown country code `{item}`"),
                ));
            }
            countries.push(code);
        }
        Ok(PhoneSettings {
            allowed_countries: (!countries.is_empty()).then_some(countries),
        })
    }

    pub fn sandbox_listen(&self) -> String {
        non_empty(&self.sandbox.listen).unwrap_or_else(|| "127.0.0.1:8081".to_owned())
    }

    pub fn log(&self) -> Result<LogSettings, ConfigError> {
        let format = match self.log.format.as_deref().unwrap_or("json") {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            _ => return Err(ConfigError::key("log.format", "must be `json` or `pretty`")),
        };
        Ok(LogSettings {
            format,
            level: non_empty(&self.log.level).unwrap_or_else(|| "info".to_owned()),
        })
    }
}

pub(super) fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

pub(super) fn required(key: &str, value: &Option<String>) -> Result<String, ConfigError> {
    non_empty(value).ok_or_else(|| ConfigError::key(key, "is required"))
}

pub(super) fn address(
    key: &str,
    value: &Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let text = non_empty(value).unwrap_or_else(|| default.to_owned());
    text.parse::<std::net::SocketAddr>()
        .map_err(|_| ConfigError::key(key, "must be an address like 0.0.0.0:8080"))?;
    Ok(text)
}

/// A secret from its key or from the file its `_file` form names (trimmed).
pub(super) fn secret(
    key: &str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<SecretString>, ConfigError> {
    match (non_empty(value), file) {
        (Some(_), Some(_)) => Err(ConfigError::key(
            key,
            &format!("and {key}_file are both set; use one"),
        )),
        (Some(text), None) => Ok(Some(SecretString::from(text))),
        (None, Some(path)) => read_secret_file(&format!("{key}_file"), path).map(Some),
        (None, None) => Ok(None),
    }
}

pub(super) fn required_secret(
    key: &str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<SecretString, ConfigError> {
    secret(key, value, file)?.ok_or_else(|| ConfigError::key(key, "is required"))
}

pub(super) fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::key(key, &format!("cannot be read: {}", e.kind())))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::key(key, "names an empty file"));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

pub(super) fn sealing_key(key: &str, text: &str) -> Result<SealingKey, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ConfigError::key(key, "must be base64"))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ConfigError::key(key, "must decode to exactly 32 bytes"))?;
    Ok(SecretBox::new(Box::new(array)))
}
