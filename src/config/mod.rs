//! Settings (docs/configuration.md): the typed configuration. `layers.rs` merges the layers and
//! reads keys; `sections.rs` has one struct per section with the one function that reads
//! its keys and their defaults; `quota.rs` parses `N/unit`. A bad value stops start-up
//! with one line naming its dotted key.
//!
//! Other modules receive the typed pieces they need from `startup`; none reads the
//! configuration itself, and this module imports none of theirs.

mod layers;
mod quota;
mod sections;

use std::path::PathBuf;

use secrecy::SecretString;

pub use layers::Layers;
pub use quota::{Quota, QuotaError};
pub use sections::{
    AbuseSettings, AuditSettings, AuthSettings, ConversionSettings, CorsSettings, DatabaseSettings,
    IdentitySource, KeySource, LimitBackend, LogFormat, LogSettings, OnBackendError, PhoneSettings,
    RateLimitSettings, RedisSettings, RedisTopology, RuleMode, SealingKey, ServerSettings,
    TelemetrySettings, UpstreamSettings, VerificationSettings, admin_token, is_e164_prefix,
    sandbox_listen,
};

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
    /// Dotted keys under every file, e.g. the loopback listeners of `dev`.
    pub defaults: Vec<(String, String)>,
    /// Dotted keys applied last, e.g. what `dev` sets.
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    /// The layers `serve` uses: files, then the environment.
    pub fn standard(file: Option<PathBuf>) -> Self {
        Self {
            file,
            environment: true,
            ..Self::default()
        }
    }

    /// Adds an override (later ones win).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.overrides.push((key.to_owned(), value.into()));
        self
    }

    /// Adds a default that any layer may change.
    pub fn with_default(mut self, key: &str, value: impl Into<String>) -> Self {
        self.defaults.push((key.to_owned(), value.into()));
        self
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
    pub abuse: AbuseSettings,
    pub verification: VerificationSettings,
    pub phone: PhoneSettings,
    pub cors: CorsSettings,
    pub admin_token: Option<SecretString>,
    pub audit: AuditSettings,
    pub telemetry: TelemetrySettings,
    pub log: LogSettings,
}

impl Settings {
    /// Reads and checks the whole configuration.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        Self::read(&Layers::load(sources)?)
    }

    /// Checks every section `serve` needs.
    pub fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerSettings::read(layers)?,
            upstream: UpstreamSettings::read(layers)?,
            auth: AuthSettings::read(layers)?,
            identity: IdentitySource::read(layers)?,
            database: DatabaseSettings::read(layers)?,
            rate_limit: RateLimitSettings::read(layers)?,
            abuse: AbuseSettings::read(layers)?,
            verification: VerificationSettings::read(layers)?,
            phone: PhoneSettings::read(layers)?,
            cors: CorsSettings::read(layers)?,
            admin_token: admin_token(layers)?,
            audit: AuditSettings::read(layers)?,
            telemetry: TelemetrySettings::read(layers)?,
            log: LogSettings::read(layers)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::time::Duration;

    fn minimal() -> Sources {
        Sources::default()
            .with("upstream.base_url", "http://127.0.0.1:1/api")
            .with("upstream.app_key", "k")
            .with("upstream.username", "u")
            .with("upstream.password", "p")
            .with("auth.issuer", "iss")
            .with("auth.audience", "aud")
            .with("auth.hs256_secret", "a-test-signing-secret-of-32-bytes!")
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
            (
                "redis.client_cert_file",
                "/tmp/client.pem",
                "redis.client_key_file",
            ),
            ("upstream.timeout_ms", "soon", "upstream.timeout_ms"),
            ("cors.allowed_origins", "*", "cors.allowed_origins"),
            (
                "cors.allowed_origins",
                "https://a.example, https://*.example",
                "cors.allowed_origins",
            ),
            (
                "cors.allowed_origins",
                "https://a.example/app",
                "cors.allowed_origins",
            ),
            (
                "abuse.conversion.min_ratio",
                "1.5",
                "abuse.conversion.min_ratio",
            ),
            ("abuse.prefix_budget", "3/fortnight", "abuse.prefix_budget"),
            ("abuse.safe", "+34 635", "abuse.safe"),
            ("abuse.modes.conversion", "loud", "abuse.modes.conversion"),
        ];
        for (key, value, named) in cases {
            let message = error_of(minimal().with(key, value));
            assert!(message.contains(named), "{key}={value}: {message}");
        }
    }

    #[test]
    fn weak_settings_are_bad_configuration() {
        let cases = [
            (
                "auth.hs256_secret",
                "31-bytes-is-one-byte-too-short",
                "auth.hs256_secret must be at least 32 bytes",
            ),
            (
                "admin.token",
                "short-admin-token",
                "admin.token must be at least 32 characters",
            ),
            (
                "upstream.base_url",
                "http://autoshares.internal/api",
                "upstream.base_url must be https://",
            ),
            (
                "upstream.base_url",
                "http://10.0.0.7:8080/api",
                "upstream.base_url must be https://",
            ),
            (
                "upstream.base_url",
                "http://localhost.evil.example/api",
                "upstream.base_url must be https://",
            ),
        ];
        for (key, value, expected) in cases {
            let message = error_of(minimal().with(key, value));
            assert!(
                message.starts_with(&format!("configuration: {expected}")),
                "{key}={value}: {message}"
            );
        }
        let jwks = minimal()
            .with("auth.hs256_secret", "")
            .with("auth.jwks_url", "http://idp.example/jwks");
        assert!(error_of(jwks).contains("auth.jwks_url must be https://"));
    }

    #[test]
    fn plain_http_is_fine_to_loopback_or_when_allowed() {
        let loopback = [
            "http://127.0.0.1:8081/api",
            "http://127.9.9.9/api",
            "http://localhost:8081/api",
            "http://[::1]:8081/api",
            "http://user:pw@127.0.0.1/api",
        ];
        for url in loopback {
            assert!(
                Settings::load(&minimal().with("upstream.base_url", url)).is_ok(),
                "{url}"
            );
        }
        let allowed = minimal()
            .with("upstream.base_url", "http://autoshares.mesh/api")
            .with("upstream.allow_plain_http", "true");
        assert!(Settings::load(&allowed).is_ok());
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

    /// The settings of `minimal()` with a file named `name` holding `text` laid over them.
    fn loaded_from_file(name: &str, text: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let mut sources = minimal();
        sources.file = Some(file);
        Settings::load(&sources).unwrap()
    }

    #[test]
    fn a_json_file_is_a_layer_like_a_toml_one() {
        // What the Helm chart renders: its values as JSON, whose numbers stay integers.
        let settings = loaded_from_file(
            "config.json",
            r#"{"upstream": {"timeout_ms": 4000}, "rate_limit": {"verify_attempts": 3},
                "abuse": {"country_budgets": {"*": "100/hour"}}}"#,
        );
        assert_eq!(settings.upstream.timeout, Duration::from_millis(4000));
        assert_eq!(settings.rate_limit.verify_attempts, 3);
    }

    #[test]
    fn whole_numbers_written_as_floats_are_read() {
        // Helm's toToml writes every YAML number as a float: `timeout_ms = 4000.0`.
        let settings = loaded_from_file(
            "helm.toml",
            "[upstream]\ntimeout_ms = 4000.0\n[rate_limit]\nverify_attempts = 3.0\n",
        );
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
            (
                "admin.token_file",
                "an-admin-token-of-at-least-32-characters",
            ),
        ];
        for (key, value) in secrets {
            let path = dir.path().join(key);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            sources = sources.with(key, path.to_str().unwrap());
        }
        let settings = Settings::load(&sources).unwrap();
        assert!(matches!(settings.auth.key, KeySource::JwksUrl(_)));
        assert_eq!(
            settings.telemetry.otlp_traces_url.as_deref(),
            Some("http://otel-collector.observability:4318/v1/traces")
        );
        assert_eq!(settings.cors.allowed_origins, ["https://app.example.com"]);
        assert!(settings.abuse.global_budget.is_some());
        assert!(settings.server.trusted_proxies.len() == 1);
        assert!(matches!(
            settings.rate_limit.backend,
            LimitBackend::Redis(_)
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

    /// `config/default.toml` as documentation: each `# key = value` line under its
    /// `[section]`, with `None` for a key written with nothing after its `=`.
    fn documented(text: &str) -> Vec<(String, Option<toml::Value>)> {
        let mut section = None;
        let mut keys = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.to_owned());
                continue;
            }
            let Some(section) = &section else { continue };
            let Some(entry) = line.strip_prefix("# ") else {
                continue;
            };
            let Some((key, value)) = entry.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                continue;
            }
            let value = value.trim();
            let default = (!value.is_empty() && !value.starts_with('#')).then(|| toml_value(value));
            keys.push((format!("{section}.{key}"), default));
        }
        keys
    }

    fn toml_value(text: &str) -> toml::Value {
        let table: toml::Table = toml::from_str(&format!("v = {text}"))
            .unwrap_or_else(|e| panic!("`{text}` is not a TOML value: {e}"));
        table["v"].clone()
    }

    /// Every key the code reads, with its recorded default.
    fn keys_read() -> Vec<(String, Option<String>)> {
        let layers = Layers::load(&minimal()).unwrap();
        Settings::read(&layers).unwrap();
        sandbox_listen(&layers).unwrap();
        layers.reads()
    }

    #[test]
    fn the_configuration_doc_names_every_key_the_code_reads() {
        let doc = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
        )
        .unwrap();
        for (key, _) in keys_read() {
            // A row names a key, or a group of keys sharing a prefix (`abuse.conversion.*`).
            let group = key.rsplit_once('.').map(|(head, _)| format!("`{head}.*`"));
            assert!(
                doc.contains(&format!("`{key}`")) || group.is_some_and(|g| doc.contains(&g)),
                "docs/configuration.md does not name `{key}`"
            );
        }
    }

    #[test]
    fn default_toml_documents_every_key_the_code_reads_with_the_same_default() {
        let read: Vec<(String, Option<toml::Value>)> = keys_read()
            .into_iter()
            .map(|(key, default)| (key, default.as_deref().map(toml_value)))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for (key, _) in &read {
            assert!(seen.insert(key.clone()), "{key} is read more than once");
        }
        let file = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"),
        )
        .unwrap();
        let mut documented = documented(&file);
        let mut read = read;
        documented.sort_by(|a, b| a.0.cmp(&b.0));
        read.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            documented, read,
            "config/default.toml (left) and the code (right)"
        );
    }
}
