//! The configuration exactly as the layers give it (CONTRACT.md §6), before any check:
//! reading the layers, and what `dev` puts in place of the upstream, keys and stores.

use std::path::PathBuf;

use serde::Deserialize;

use super::checks::non_empty;
use super::{ConfigError, Sources};

/// The configuration exactly as read from the layers, before any check.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSettings {
    pub(super) server: RawServer,
    pub(super) upstream: RawUpstream,
    pub(super) auth: RawAuth,
    pub(super) identity: RawIdentity,
    pub(super) database: RawDatabase,
    pub(super) rate_limit: RawRateLimit,
    pub(super) redis: RawRedis,
    pub(super) verification: RawVerification,
    pub(super) phone: RawPhone,
    pub(super) admin: RawAdmin,
    pub(super) sandbox: RawSandbox,
    pub(super) log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) admin_listen: Option<String>,
    pub(super) shutdown_grace_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawUpstream {
    pub(super) base_url: Option<String>,
    pub(super) api_version: Option<String>,
    pub(super) app_key: Option<String>,
    pub(super) app_key_file: Option<PathBuf>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) circuit_failures: Option<u32>,
    pub(super) circuit_open_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAuth {
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) hs256_secret: Option<String>,
    pub(super) hs256_secret_file: Option<PathBuf>,
    pub(super) public_key_file: Option<PathBuf>,
    pub(super) jwks_url: Option<String>,
    pub(super) jwks_file: Option<PathBuf>,
    pub(super) jwks_refresh_s: Option<u64>,
    pub(super) leeway_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawIdentity {
    pub(super) source: Option<String>,
    pub(super) claim: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawDatabase {
    pub(super) url: Option<String>,
    pub(super) url_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawRateLimit {
    pub(super) backend: Option<String>,
    pub(super) bind_per_user: Option<String>,
    pub(super) bind_per_phone: Option<String>,
    pub(super) verify_attempts: Option<u32>,
    pub(super) on_backend_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawRedis {
    pub(super) url: Option<String>,
    pub(super) url_file: Option<PathBuf>,
    pub(super) key_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawVerification {
    pub(super) token_secret: Option<String>,
    pub(super) token_secret_file: Option<PathBuf>,
    pub(super) previous_token_secrets: Option<StringList>,
    pub(super) token_ttl_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawPhone {
    pub(super) allowed_countries: Option<StringList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAdmin {
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSandbox {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLog {
    pub(super) format: Option<String>,
    pub(super) level: Option<String>,
}

/// A list given either as TOML array or as one comma-separated string (environment).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringList {
    One(String),
    Many(Vec<String>),
}

impl StringList {
    pub(super) fn items(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            Self::One(text) => text.split(',').collect(),
            Self::Many(items) => items.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl RawSettings {
    /// Reads the layers: defaults, `config/default.toml`, `config/{BFF_ENV}.toml`, the
    /// `--config` file, the environment, then `sources.overrides`.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let env_name = std::env::var("BFF_ENV").unwrap_or_else(|_| "local".to_owned());
        let mut builder = config::Config::builder()
            .add_source(config::File::with_name("config/default").required(false))
            .add_source(config::File::with_name(&format!("config/{env_name}")).required(false));
        if let Some(file) = &sources.file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "--config file {} does not exist",
                    file.display()
                )));
            }
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }
        if sources.environment {
            builder = builder.add_source(
                config::Environment::with_prefix("BFF")
                    .prefix_separator("__")
                    .separator("__"),
            );
        }
        for (key, value) in &sources.overrides {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        let merged = builder.build().map_err(|e| ConfigError(e.to_string()))?;
        let mut raw: RawSettings = merged
            .try_deserialize()
            .map_err(|e| ConfigError(e.to_string()))?;
        if sources.environment
            && let Ok(filter) = std::env::var("RUST_LOG")
            && !filter.trim().is_empty()
        {
            raw.log.level = Some(filter);
        }
        Ok(raw)
    }
}

/// What `dev` puts in place of the upstream, keys and stores (CONTRACT.md §5).
pub struct DevOverrides {
    pub sandbox_base_url: String,
    pub sandbox_app_key: String,
    pub sandbox_username: String,
    pub sandbox_password: String,
    pub hs256_secret: String,
    /// Base64 of 32 bytes.
    pub sealing_key: String,
}

impl RawSettings {
    /// Points the upstream at the sandbox, uses generated keys, SQLite under `data/` and
    /// in-memory limits; listeners default to loopback unless configured.
    pub fn apply_dev(&mut self, dev: DevOverrides) {
        let u = &mut self.upstream;
        u.base_url = Some(dev.sandbox_base_url);
        u.app_key = Some(dev.sandbox_app_key);
        u.app_key_file = None;
        u.username = Some(dev.sandbox_username);
        u.password = Some(dev.sandbox_password);
        u.password_file = None;
        let a = &mut self.auth;
        a.hs256_secret = Some(dev.hs256_secret);
        a.hs256_secret_file = None;
        a.public_key_file = None;
        a.jwks_url = None;
        a.jwks_file = None;
        a.issuer = non_empty(&a.issuer).or_else(|| Some("autoshares-bff-dev".to_owned()));
        a.audience = non_empty(&a.audience).or_else(|| Some("autoshares-bff".to_owned()));
        self.verification.token_secret = Some(dev.sealing_key);
        self.verification.token_secret_file = None;
        self.verification.previous_token_secrets = None;
        self.database.url = Some("sqlite://data/dev.db".to_owned());
        self.database.url_file = None;
        self.identity.source = Some("database".to_owned());
        self.rate_limit.backend = Some("memory".to_owned());
        let s = &mut self.server;
        s.listen = non_empty(&s.listen).or_else(|| Some("127.0.0.1:8080".to_owned()));
        s.admin_listen = non_empty(&s.admin_listen).or_else(|| Some("127.0.0.1:9090".to_owned()));
        self.log.format = non_empty(&self.log.format).or_else(|| Some("pretty".to_owned()));
    }
}
