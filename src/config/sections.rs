//! One typed struct per section of docs/configuration.md, each with the one function that reads
//! its keys: every key is named once, with its default beside it, and checked where it is
//! read. Nothing here knows which command runs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::ConfigError;
use super::layers::{Layers, sealing_key};
use super::quota::Quota;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: String,
    pub admin_listen: String,
    pub shutdown_grace: Duration,
    /// The longest a caller may take to send a whole request, head and body.
    pub request_timeout: Duration,
    /// The proxies in front whose forwarding header is believed (docs/operations.md "The
    /// client's address behind the ingress").
    pub trusted_proxies: Vec<IpNet>,
    /// The one header those proxies write: `x-forwarded-for` or `forwarded`.
    pub client_address_header: &'static str,
    /// The IPv6 prefix length that counts as one client (48–64).
    pub client_ipv6_prefix: u8,
}

impl ServerSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: l.address("server.listen", "0.0.0.0:8080")?,
            admin_listen: l.address("server.admin_listen", "0.0.0.0:9090")?,
            shutdown_grace: l.seconds("server.shutdown_grace_s", 10)?,
            request_timeout: l.positive_millis("server.request_timeout_ms", 10_000)?,
            trusted_proxies: networks(l, "server.trusted_proxies")?,
            client_address_header: l.choice(
                "server.client_address_header",
                &["x-forwarded-for", "forwarded"],
            )?,
            client_ipv6_prefix: {
                const KEY: &str = "server.client_ipv6_prefix";
                let prefix = l.number(KEY, 64u8)?;
                if !(48..=64).contains(&prefix) {
                    return Err(ConfigError::key(KEY, "must be from 48 to 64"));
                }
                prefix
            },
        })
    }
}

/// A list of CIDR networks; a bare address is a network of one.
fn networks(l: &Layers, key: &str) -> Result<Vec<IpNet>, ConfigError> {
    let items = l.list(key)?.unwrap_or_default();
    items
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::key(key, "must be CIDR networks, e.g. 10.0.0.0/8"))
        })
        .collect()
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
    /// Calls in flight to AutoShares at most, across the process; more wait their turn
    /// within `timeout`.
    pub max_connections: usize,
    /// Extra CA certificates (PEM) trusted for AutoShares beside the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl UpstreamSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        let base_url = l.required_text("upstream.base_url")?;
        let allow_plain_http = l.flag("upstream.allow_plain_http", false)?;
        check_url("upstream.base_url", &base_url, allow_plain_http)?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_version: l.text("upstream.api_version", "1.0")?,
            app_key: l.required_secret("upstream.app_key")?,
            username: l.required_text("upstream.username")?,
            password: l.required_secret("upstream.password")?,
            timeout: l.positive_millis("upstream.timeout_ms", 5000)?,
            circuit_failures: l.positive("upstream.circuit_failures", 5u32)?,
            max_connections: l.positive("upstream.max_connections", 1024usize)?,
            circuit_open: l.seconds("upstream.circuit_open_s", 30)?,
            ca_file: l.path("upstream.ca_file")?,
        })
    }
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
    /// Step-up (docs/api.md): a bind or unbind needs a login at most this old.
    pub bind_max_age: Option<Duration>,
    /// Step-up: a bind or unbind needs one of these `acr` values.
    pub bind_acr_values: Option<Vec<String>>,
    /// The JWT `typ` values accepted (`at+jwt` for RFC 9068 access tokens); any when `None`.
    pub token_types: Option<Vec<String>>,
    /// Extra CA certificates (PEM) trusted for `auth.jwks_url` beside the usual roots.
    pub ca_file: Option<PathBuf>,
}

impl AuthSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        let issuer = l.required_text("auth.issuer");
        let audience = l.required_text("auth.audience");
        let hs256 = l.secret("auth.hs256_secret")?;
        if let Some(secret) = &hs256
            && secret.expose_secret().len() < 32
        {
            return Err(ConfigError::key(
                "auth.hs256_secret",
                "must be at least 32 bytes",
            ));
        }
        let jwks_url = l.optional_text("auth.jwks_url")?;
        if let Some(url) = &jwks_url {
            // allow_plain_http is read (and recorded) with the upstream section.
            let plain = l.peek_flag("upstream.allow_plain_http");
            check_url("auth.jwks_url", url, plain)?;
        }
        let mut sources: Vec<KeySource> = [
            hs256.map(KeySource::Hs256),
            l.path("auth.public_key_file")?
                .map(KeySource::PublicKeyFile),
            jwks_url.map(KeySource::JwksUrl),
            l.path("auth.jwks_file")?.map(KeySource::JwksFile),
        ]
        .into_iter()
        .flatten()
        .collect();
        let jwks_refresh = l
            .seconds("auth.jwks_refresh_s", 300)?
            .max(Duration::from_secs(1));
        let leeway = l.seconds("auth.leeway_s", 30)?;
        let bind_max_age = l.optional_seconds("auth.bind_max_age_s")?;
        let bind_acr_values = l.list("auth.bind_acr_values")?;
        let token_types = l.list("auth.token_types")?;
        let ca_file = l.path("auth.ca_file")?;
        if sources.len() != 1 {
            return Err(ConfigError(
                "auth.hs256_secret: set exactly one of auth.hs256_secret, auth.public_key_file, \
                 auth.jwks_url, auth.jwks_file"
                    .to_owned(),
            ));
        }
        Ok(Self {
            issuer: issuer?,
            audience: audience?,
            key: sources.remove(0),
            jwks_refresh,
            leeway,
            bind_max_age,
            bind_acr_values,
            token_types,
            ca_file,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    Database,
    /// The name of the claim that carries the AutoShares user id.
    Claim(String),
}

impl IdentitySource {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        let source = l.choice("identity.source", &["database", "claim"])?;
        let claim = l.text("identity.claim", "autoshares_user_id")?;
        Ok(match source {
            "claim" => Self::Claim(claim),
            _ => Self::Database,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    /// What `migrate` uses, when not `url` (the database directly, behind a pooler).
    pub migration_url: Option<SecretString>,
}

impl DatabaseSettings {
    /// The URL migrations are applied through.
    pub fn migration_url(&self) -> &SecretString {
        self.migration_url.as_ref().unwrap_or(&self.url)
    }

    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        let url = l.secret_or("database.url", "sqlite://data/autoshares-bff.db?mode=rwc")?;
        let migration_url = l.secret("database.migration_url")?;
        for (key, url) in [
            ("database.url", Some(&url)),
            ("database.migration_url", migration_url.as_ref()),
        ] {
            let Some(text) = url.map(ExposeSecret::expose_secret) else {
                continue;
            };
            if !(text.starts_with("sqlite:")
                || text.starts_with("postgres://")
                || text.starts_with("postgresql://"))
            {
                return Err(ConfigError::key(
                    key,
                    "must start with sqlite: or postgres://",
                ));
            }
        }
        Ok(Self { url, migration_url })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    Deny,
    Allow,
}

#[derive(Debug, Clone)]
pub enum LimitBackend {
    Memory,
    Redis(RedisSettings),
}

/// Which Redis deployment holds the shared limits (docs/operations.md "Redis").
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// One server (`redis.url`).
    Single(SecretString),
    /// A Redis Cluster, reached through any of these seed nodes (`redis.cluster_nodes`).
    Cluster(Vec<SecretString>),
    /// The primary that these sentinels name `master` (`redis.sentinel_nodes`).
    Sentinel {
        nodes: Vec<SecretString>,
        master: String,
    },
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub topology: RedisTopology,
    /// Put before every key, so deployments (and tests) can share one Redis.
    pub key_prefix: String,
    /// Extra CA certificates (PEM) trusted for `rediss://` beside the usual roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl RedisSettings {
    /// The `redis.*` keys; `None` when no server of any kind is named.
    fn read(l: &Layers) -> Result<Option<Self>, ConfigError> {
        let url = l.secret("redis.url")?;
        let cluster = l.secret_list("redis.cluster_nodes")?;
        let sentinel = l.secret_list("redis.sentinel_nodes")?;
        let master = l.text("redis.sentinel_master", "mymaster")?;
        let key_prefix = l.text("redis.key_prefix", "autoshares-bff:")?;
        let ca_file = l.path("redis.ca_file")?;
        let client_cert = match (
            l.path("redis.client_cert_file")?,
            l.path("redis.client_key_file")?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::key(
                    "redis.client_cert_file",
                    "and redis.client_key_file go together: set both or neither",
                ));
            }
        };
        let topology = match (url, cluster, sentinel) {
            (None, None, None) => return Ok(None),
            (Some(url), None, None) => RedisTopology::Single(url),
            (None, Some(nodes), None) => RedisTopology::Cluster(nodes),
            (None, None, Some(nodes)) => RedisTopology::Sentinel { nodes, master },
            _ => {
                return Err(ConfigError::key(
                    "redis.url",
                    "redis.cluster_nodes and redis.sentinel_nodes: set exactly one",
                ));
            }
        };
        Ok(Some(Self {
            topology,
            key_prefix,
            ca_file,
            client_cert,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub backend: LimitBackend,
    pub bind_per_user: Quota,
    pub bind_per_phone: Quota,
    /// Per client address (docs/operations.md "The client's address behind the ingress"); `None` when `off`.
    pub bind_per_client: Option<Quota>,
    /// Every `/v1` call per AutoShares user, in this process; `None` when `off`.
    pub requests_per_user: Option<Quota>,
    /// Every `/v1` call per client address, in this process; `None` when `off`.
    pub requests_per_client: Option<Quota>,
    pub verify_attempts: u32,
    pub on_backend_error: OnBackendError,
    /// How long a bind's answer is kept for its `Idempotency-Key` (`idempotency.ttl_s`).
    pub idempotency_ttl: Duration,
}

impl RateLimitSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        let backend = l.choice("rate_limit.backend", &["memory", "redis"])?;
        let redis = RedisSettings::read(l)?;
        let backend = match (backend, redis) {
            ("redis", Some(redis)) => LimitBackend::Redis(redis),
            ("redis", None) => {
                return Err(ConfigError::key(
                    "redis.url",
                    "(or redis.cluster_nodes or redis.sentinel_nodes) is required when \
                     rate_limit.backend is redis",
                ));
            }
            _ => LimitBackend::Memory,
        };
        Ok(Self {
            backend,
            bind_per_user: l.quota("rate_limit.bind_per_user", "5/hour")?,
            bind_per_phone: l.quota("rate_limit.bind_per_phone", "10/day")?,
            bind_per_client: l.quota_or_off("rate_limit.bind_per_client", "60/hour")?,
            requests_per_user: l.quota_or_off("rate_limit.requests_per_user", "10/second")?,
            requests_per_client: l.quota_or_off("rate_limit.requests_per_client", "off")?,
            verify_attempts: l.positive("rate_limit.verify_attempts", 5u32)?,
            on_backend_error: match l.choice("rate_limit.on_backend_error", &["deny", "allow"])? {
                "allow" => OnBackendError::Allow,
                _ => OnBackendError::Deny,
            },
            idempotency_ttl: l.positive_seconds("idempotency.ttl_s", 86_400)?,
        })
    }
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

impl VerificationSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        const KEY: &str = "verification.token_secret";
        const PREVIOUS: &str = "verification.previous_token_secrets";
        let current = l.required_secret(KEY)?;
        let previous = l.list(PREVIOUS)?.unwrap_or_default();
        Ok(Self {
            token_secret: sealing_key(KEY, current.expose_secret())?,
            previous_token_secrets: previous
                .iter()
                .map(|text| sealing_key(PREVIOUS, text))
                .collect::<Result<_, _>>()?,
            token_ttl: l.positive_seconds("verification.token_ttl_s", 600)?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct PhoneSettings {
    /// ISO 3166 alpha-2 codes, upper case; `None` allows every country.
    pub allowed_countries: Option<Vec<String>>,
}

impl PhoneSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        const KEY: &str = "phone.allowed_countries";
        let Some(items) = l.list(KEY)? else {
            return Ok(Self::default());
        };
        let countries = items
            .iter()
            .map(|item| {
                let code = item.to_ascii_uppercase();
                if is_region(&code) {
                    Ok(code)
                } else {
                    Err(ConfigError::key(
                        KEY,
                        &format!("has an unknown country code `{item}`"),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed_countries: Some(countries),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Events older than this are deleted.
    pub retention: Duration,
    /// Events that wait for the database at most; past it the oldest are dropped.
    pub queue_capacity: usize,
}

impl AuditSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        let days: u64 = l.positive("audit.retention_days", 400u64)?;
        Ok(Self {
            retention: Duration::from_secs(days.saturating_mul(86_400)),
            queue_capacity: l.positive("audit.queue_capacity", 10_000usize)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP traces URL (`…/v1/traces`); `None` exports nothing.
    pub otlp_traces_url: Option<String>,
    pub service_name: String,
}

impl TelemetrySettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        const KEY: &str = "telemetry.otlp_endpoint";
        let endpoint = l.optional_text(KEY)?;
        let otlp_traces_url = match endpoint {
            None => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                let base = url.trim_end_matches('/');
                Some(if base.ends_with("/v1/traces") {
                    base.to_owned()
                } else {
                    format!("{base}/v1/traces")
                })
            }
            Some(_) => {
                return Err(ConfigError::key(
                    KEY,
                    "must be an http:// or https:// URL, e.g. http://otel-collector:4318",
                ));
            }
        };
        Ok(Self {
            otlp_traces_url,
            service_name: l.text("telemetry.service_name", "autoshares-bff")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

impl LogSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            format: match l.choice("log.format", &["json", "pretty"])? {
                "pretty" => LogFormat::Pretty,
                _ => LogFormat::Json,
            },
            level: l.text("log.level", "info")?,
        })
    }
}

/// Browsers (docs/api.md "Browsers (CORS)").
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    /// Exact origins such as `https://app.example.com`; empty: no CORS.
    pub allowed_origins: Vec<String>,
    pub max_age_s: u64,
}

impl CorsSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        const KEY: &str = "cors.allowed_origins";
        let allowed_origins = l.list(KEY)?.unwrap_or_default();
        for origin in &allowed_origins {
            if origin.contains('*') {
                return Err(ConfigError::key(KEY, "must list exact origins, not *"));
            }
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if rest.is_none_or(|host| host.is_empty() || host.contains('/')) {
                return Err(ConfigError::key(
                    KEY,
                    &format!("has `{origin}`, which is not an origin like https://app.example.com"),
                ));
            }
        }
        Ok(Self {
            allowed_origins,
            max_age_s: l.number("cors.max_age_s", 600u64)?,
        })
    }
}

/// The admin API's bearer token; the API is absent without one.
pub fn admin_token(l: &Layers) -> Result<Option<SecretString>, ConfigError> {
    let token = l.secret("admin.token")?;
    if token
        .as_ref()
        .is_some_and(|t| t.expose_secret().chars().count() < 32)
    {
        return Err(ConfigError::key(
            "admin.token",
            "must be at least 32 characters",
        ));
    }
    Ok(token)
}

/// An `http://` or `https://` URL; plain HTTP only to a loopback host as written
/// (`localhost`, 127.0.0.0/8, `[::1]`; names are not resolved) unless `allow_plain_http`.
fn check_url(key: &str, url: &str, allow_plain_http: bool) -> Result<(), ConfigError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(ConfigError::key(key, "must be an http:// or https:// URL"));
    };
    if allow_plain_http || is_loopback_authority(rest) {
        return Ok(());
    }
    Err(ConfigError::key(
        key,
        "must be https:// for a host that is not loopback (or set upstream.allow_plain_http)",
    ))
}

fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
        || host
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where the sandbox of `dev` and `sandbox` listens.
pub fn sandbox_listen(l: &Layers) -> Result<String, ConfigError> {
    l.address("sandbox.listen", "127.0.0.1:8081")
}

/// How an abuse rule acts (docs/abuse.md `abuse.modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMode {
    Enforce,
    /// Logs and counts what it would refuse, and lets the bind through.
    Shadow,
    Off,
}

impl RuleMode {
    fn read(l: &Layers, key: &str) -> Result<Self, ConfigError> {
        Ok(match l.choice(key, &["enforce", "shadow", "off"])? {
            "shadow" => Self::Shadow,
            "off" => Self::Off,
            _ => Self::Enforce,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Shadow => "shadow",
            Self::Off => "off",
        }
    }
}

/// The pumping breaker: blocks a country or prefix whose sends rarely complete.
#[derive(Debug, Clone)]
pub struct ConversionSettings {
    pub window: Duration,
    pub min_ratio: f64,
    pub min_sends_country: u32,
    pub min_sends_prefix: u32,
    pub block: Duration,
    pub mode: RuleMode,
}

/// What the fleet may spend on SMS (docs/abuse.md).
#[derive(Debug, Clone)]
pub struct AbuseSettings {
    pub global_budget: Option<Quota>,
    pub global_mode: RuleMode,
    /// ISO 3166 alpha-2 code (upper case) -> quota; `*` is every country not listed.
    pub country_budgets: Vec<(String, Quota)>,
    pub country_mode: RuleMode,
    pub prefix_budget: Option<Quota>,
    pub prefix_mode: RuleMode,
    /// A prefix is the E.164 number without this many last digits.
    pub prefix_drop_digits: usize,
    pub conversion: ConversionSettings,
    /// E.164 numbers and prefixes that these rules neither count nor refuse.
    pub safe: Vec<String>,
}

impl AbuseSettings {
    pub fn read(l: &Layers) -> Result<Self, ConfigError> {
        const COUNTRIES: &str = "abuse.country_budgets";
        let country_budgets = l
            .table(COUNTRIES)?
            .into_iter()
            .map(|(country, quota)| {
                let code = country.trim().to_ascii_uppercase();
                if code != "*" && !is_region(&code) {
                    return Err(ConfigError::key(
                        COUNTRIES,
                        &format!("has an unknown country code `{country}`"),
                    ));
                }
                let quota = Quota::parse(&quota).map_err(|e| {
                    ConfigError::key(&format!("{COUNTRIES}.{country}"), &e.to_string())
                })?;
                Ok((code, quota))
            })
            .collect::<Result<_, _>>()?;
        let prefix_drop_digits = l.number("abuse.prefix_drop_digits", 4usize)?;
        if prefix_drop_digits > 10 {
            return Err(ConfigError::key(
                "abuse.prefix_drop_digits",
                "must be at most 10",
            ));
        }
        let safe = l.list("abuse.safe")?.unwrap_or_default();
        if let Some(bad) = safe.iter().find(|entry| !is_e164_prefix(entry)) {
            return Err(ConfigError::key(
                "abuse.safe",
                &format!("has `{bad}`, which is not + and 1 to 15 digits"),
            ));
        }
        Ok(Self {
            global_budget: l.optional_quota("abuse.global_budget")?,
            global_mode: RuleMode::read(l, "abuse.modes.global_budget")?,
            country_budgets,
            country_mode: RuleMode::read(l, "abuse.modes.country_budget")?,
            // On by default, below the breaker's min_sends_prefix (docs/abuse.md).
            prefix_budget: l.quota_or_off("abuse.prefix_budget", "3/hour")?,
            prefix_mode: RuleMode::read(l, "abuse.modes.prefix_budget")?,
            prefix_drop_digits,
            conversion: ConversionSettings {
                window: l.positive_seconds("abuse.conversion.window_s", 3600)?,
                min_ratio: l.ratio("abuse.conversion.min_ratio", 0.2)?,
                min_sends_country: l.positive("abuse.conversion.min_sends_country", 50u32)?,
                min_sends_prefix: l.positive("abuse.conversion.min_sends_prefix", 10u32)?,
                block: l.positive_seconds("abuse.conversion.block_s", 3600)?,
                mode: RuleMode::read(l, "abuse.modes.conversion")?,
            },
            safe,
        })
    }
}

/// An ISO 3166 alpha-2 region libphonenumber has numbering rules for (`US`, `ES`), upper
/// case. The regions are read from a copy of the library that is then dropped: the
/// library's tables of rules take about 5 MiB, which the phone module does without.
fn is_region(code: &str) -> bool {
    static REGIONS: LazyLock<Vec<rlibphonenumber::Region>> = LazyLock::new(|| {
        rlibphonenumber::PhoneNumberUtil::new()
            .map(|library| library.get_supported_regions().collect())
            .unwrap_or_default()
    });
    code.len() == 2
        && code
            .parse::<rlibphonenumber::Region>()
            .is_ok_and(|region| REGIONS.contains(&region))
}

/// `+` and 1 to 15 digits: an E.164 number or a prefix of one.
pub fn is_e164_prefix(text: &str) -> bool {
    text.strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}
