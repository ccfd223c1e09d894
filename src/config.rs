//! Settings: the configuration layers of CONTRACT.md §6, the `_file` form of every secret,
//! and the checks that stop start-up with one line naming the offending key.
//!
//! Other modules receive the typed pieces they need from `startup`; none reads the
//! configuration itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;

use crate::limits::Quota;

/// A configuration problem, always naming the dotted key it is about.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, problem: &str) -> Self {
        Self(format!("{key} {problem}"))
    }
}

/// Where the layers come from. `serve` reads the environment; tests pass overrides only.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The file given by `--config`, if any.
    pub file: Option<PathBuf>,
    /// Read `BFF__SECTION__KEY` variables (and `RUST_LOG`).
    pub environment: bool,
    /// Dotted keys applied last, e.g. what `dev` sets.
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    /// The layers `serve` uses: files, then the environment.
    pub fn standard(file: Option<PathBuf>) -> Self {
        Self {
            file,
            environment: true,
            overrides: Vec::new(),
        }
    }

    /// Adds an override (later ones win).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.overrides.push((key.to_owned(), value.into()));
        self
    }
}

/// The configuration exactly as read from the layers, before any check.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSettings {
    server: RawServer,
    upstream: RawUpstream,
    auth: RawAuth,
    identity: RawIdentity,
    database: RawDatabase,
    rate_limit: RawRateLimit,
    redis: RawRedis,
    verification: RawVerification,
    phone: RawPhone,
    admin: RawAdmin,
    sandbox: RawSandbox,
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawServer {
    listen: Option<String>,
    admin_listen: Option<String>,
    shutdown_grace_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawUpstream {
    base_url: Option<String>,
    api_version: Option<String>,
    app_key: Option<String>,
    app_key_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    timeout_ms: Option<u64>,
    circuit_failures: Option<u32>,
    circuit_open_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAuth {
    issuer: Option<String>,
    audience: Option<String>,
    hs256_secret: Option<String>,
    hs256_secret_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    jwks_refresh_s: Option<u64>,
    leeway_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawIdentity {
    source: Option<String>,
    claim: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDatabase {
    url: Option<String>,
    url_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRateLimit {
    backend: Option<String>,
    bind_per_user: Option<String>,
    bind_per_phone: Option<String>,
    verify_attempts: Option<u32>,
    on_backend_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRedis {
    url: Option<String>,
    url_file: Option<PathBuf>,
    key_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawVerification {
    token_secret: Option<String>,
    token_secret_file: Option<PathBuf>,
    previous_token_secrets: Option<StringList>,
    token_ttl_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPhone {
    allowed_countries: Option<StringList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAdmin {
    token: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSandbox {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

/// A list given either as TOML array or as one comma-separated string (environment).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringList {
    One(String),
    Many(Vec<String>),
}

impl StringList {
    fn items(&self) -> Vec<String> {
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

/// The whole, checked configuration of `serve`.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub auth: AuthSettings,
    pub identity: IdentitySource,
    pub database: DatabaseSettings,
    pub rate_limit: RateLimitSettings,
    pub verification: VerificationSettings,
    pub phone: PhoneSettings,
    pub admin_token: Option<SecretString>,
    pub sandbox_listen: String,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: String,
    pub admin_listen: String,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Without a trailing slash.
    pub base_url: String,
    pub api_version: String,
    pub app_key: SecretString,
    pub username: String,
    pub password: SecretString,
    pub timeout: Duration,
    pub circuit_failures: u32,
    pub circuit_open: Duration,
}

/// Where the keys that sign end users' JWTs come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Hs256(SecretString),
    PublicKeyFile(PathBuf),
    JwksUrl(String),
    JwksFile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    pub key: KeySource,
    pub jwks_refresh: Duration,
    pub leeway: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    Database,
    /// The name of the claim that carries the AutoShares user id.
    Claim(String),
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    Deny,
    Allow,
}

#[derive(Debug, Clone)]
pub enum LimitBackend {
    Memory,
    Redis {
        url: SecretString,
        /// Put before every key, so deployments (and tests) can share one Redis.
        key_prefix: String,
    },
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub backend: LimitBackend,
    pub bind_per_user: Quota,
    pub bind_per_phone: Quota,
    pub verify_attempts: u32,
    pub on_backend_error: OnBackendError,
}

/// A 32-byte key for sealing verification tokens.
pub type SealingKey = SecretBox<[u8; 32]>;

#[derive(Debug)]
pub struct VerificationSettings {
    pub token_secret: SealingKey,
    /// Keys that still open tokens sealed before a rotation.
    pub previous_token_secrets: Vec<SealingKey>,
    pub token_ttl: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct PhoneSettings {
    /// ISO 3166 alpha-2 codes, upper case; `None` allows every country.
    pub allowed_countries: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
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
            sandbox_listen: self.sandbox_listen(),
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

impl Settings {
    /// Reads and checks the whole configuration.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        RawSettings::load(sources)?.settings()
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn required(key: &str, value: &Option<String>) -> Result<String, ConfigError> {
    non_empty(value).ok_or_else(|| ConfigError::key(key, "is required"))
}

fn address(key: &str, value: &Option<String>, default: &str) -> Result<String, ConfigError> {
    let text = non_empty(value).unwrap_or_else(|| default.to_owned());
    text.parse::<std::net::SocketAddr>()
        .map_err(|_| ConfigError::key(key, "must be an address like 0.0.0.0:8080"))?;
    Ok(text)
}

/// A secret from its key or from the file its `_file` form names (trimmed).
fn secret(
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

fn required_secret(
    key: &str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<SecretString, ConfigError> {
    secret(key, value, file)?.ok_or_else(|| ConfigError::key(key, "is required"))
}

fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::key(key, &format!("cannot be read: {}", e.kind())))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::key(key, "names an empty file"));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

fn sealing_key(key: &str, text: &str) -> Result<SealingKey, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ConfigError::key(key, "must be base64"))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ConfigError::key(key, "must decode to exactly 32 bytes"))?;
    Ok(SecretBox::new(Box::new(array)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Sources {
        Sources::default()
            .with("upstream.base_url", "http://127.0.0.1:1/api")
            .with("upstream.app_key", "k")
            .with("upstream.username", "u")
            .with("upstream.password", "p")
            .with("auth.issuer", "iss")
            .with("auth.audience", "aud")
            .with("auth.hs256_secret", "s")
            .with(
                "verification.token_secret",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
    }

    fn error_of(sources: Sources) -> String {
        Settings::load(&sources).unwrap_err().to_string()
    }

    #[test]
    fn minimal_settings_load_with_contract_defaults() {
        let settings = Settings::load(&minimal()).unwrap();
        assert_eq!(settings.server.listen, "0.0.0.0:8080");
        assert_eq!(settings.upstream.timeout, Duration::from_millis(5000));
        assert_eq!(settings.upstream.api_version, "1.0");
        assert_eq!(settings.verification.token_ttl, Duration::from_secs(600));
        assert_eq!(settings.identity, IdentitySource::Database);
        assert_eq!(settings.rate_limit.on_backend_error, OnBackendError::Deny);
    }

    #[test]
    fn each_missing_required_key_is_named() {
        let cases = [
            (
                "upstream.base_url",
                "configuration: upstream.base_url is required",
            ),
            (
                "upstream.app_key",
                "configuration: upstream.app_key is required",
            ),
            ("auth.issuer", "configuration: auth.issuer is required"),
            (
                "verification.token_secret",
                "configuration: verification.token_secret is required",
            ),
        ];
        for (key, expected) in cases {
            let sources = minimal().with(key, "");
            assert_eq!(error_of(sources), expected, "blanking {key}");
        }
    }

    #[test]
    fn two_key_sources_are_refused() {
        let message = error_of(minimal().with("auth.jwks_url", "http://127.0.0.1:1/jwks"));
        assert!(message.contains("exactly one"), "{message}");
    }

    #[test]
    fn secret_files_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "  from-file\n").unwrap();
        let sources = minimal()
            .with("upstream.password", "")
            .with("upstream.password_file", path.to_str().unwrap());
        let settings = Settings::load(&sources).unwrap();
        assert_eq!(settings.upstream.password.expose_secret(), "from-file");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let cases = [
            (
                "rate_limit.bind_per_user",
                "5/fortnight",
                "rate_limit.bind_per_user",
            ),
            (
                "verification.token_secret",
                "c2hvcnQ=",
                "verification.token_secret",
            ),
            (
                "phone.allowed_countries",
                "US,XX",
                "phone.allowed_countries",
            ),
            ("server.listen", "nowhere", "server.listen"),
            ("rate_limit.backend", "redis", "redis.url"),
            ("upstream.timeout_ms", "soon", "upstream.timeout_ms"),
        ];
        for (key, value, named) in cases {
            let message = error_of(minimal().with(key, value));
            assert!(message.contains(named), "{key}={value}: {message}");
        }
    }

    #[test]
    fn countries_accept_a_comma_separated_string() {
        let settings =
            Settings::load(&minimal().with("phone.allowed_countries", "us, ES")).unwrap();
        assert_eq!(
            settings.phone.allowed_countries,
            Some(vec!["US".to_owned(), "ES".to_owned()])
        );
    }

    #[test]
    fn whole_numbers_written_as_floats_are_read() {
        // Helm's toToml writes every YAML number as a float: `timeout_ms = 4000.0`.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("helm.toml");
        std::fs::write(
            &file,
            "[upstream]\ntimeout_ms = 4000.0\n[rate_limit]\nverify_attempts = 3.0\n",
        )
        .unwrap();
        let mut sources = minimal();
        sources.file = Some(file);
        let settings = Settings::load(&sources).unwrap();
        assert_eq!(settings.upstream.timeout, Duration::from_millis(4000));
        assert_eq!(settings.rate_limit.verify_attempts, 3);
    }

    #[test]
    fn the_production_file_is_a_complete_configuration_once_secrets_are_mounted() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Sources {
            file: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/production.toml")),
            ..Sources::default()
        };
        let secrets = [
            ("upstream.app_key_file", "app-key"),
            ("upstream.password_file", "password"),
            ("database.url_file", "postgres://bff:pw@db:5432/bff"),
            ("redis.url_file", "rediss://cache:6380"),
            (
                "verification.token_secret_file",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("admin.token_file", "admin"),
        ];
        for (key, value) in secrets {
            let path = dir.path().join(key);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            sources = sources.with(key, path.to_str().unwrap());
        }
        let settings = Settings::load(&sources).unwrap();
        assert!(matches!(settings.auth.key, KeySource::JwksUrl(_)));
        assert!(matches!(
            settings.rate_limit.backend,
            LimitBackend::Redis { .. }
        ));
        assert!(
            settings
                .database
                .url
                .expose_secret()
                .starts_with("postgres://")
        );
        assert!(settings.admin_token.is_some());
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let settings =
            Settings::load(&minimal().with("upstream.password", "hunter2-secret")).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2-secret"));
    }
}
