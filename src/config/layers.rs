//! The layers of docs/configuration.md merged into one tree, and the typed reads every section
//! makes of it. Each read names its dotted key and its default in one call, turns a bad
//! value into one line naming the key, and is recorded, so a test can hold the documented
//! defaults in `config/default.toml` to what the code really uses.

use std::cell::RefCell;
use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::quota::Quota;
use super::{ConfigError, SealingKey, Sources};

/// The merged layers, ready to be read key by key.
pub struct Layers {
    merged: config::Config,
    /// Every key read so far, with its default as written in TOML (`None`: no default).
    reads: RefCell<Vec<(String, Option<String>)>>,
}

/// A list given either as a TOML array or as one comma-separated string (environment).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringList {
    One(String),
    Many(Vec<String>),
}

impl Layers {
    /// Reads the layers, later ones winning: `sources.defaults`, `config/default.toml`,
    /// `config/{BFF_ENV}.toml`, the `--config` file, the environment (and `RUST_LOG` for
    /// `log.level`), then `sources.overrides`.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let env_name = std::env::var("BFF_ENV").unwrap_or_else(|_| "local".to_owned());
        let mut builder = config::Config::builder()
            .add_source(config::File::with_name("config/default").required(false))
            .add_source(config::File::with_name(&format!("config/{env_name}")).required(false));
        for (key, value) in &sources.defaults {
            builder = builder
                .set_default(key.as_str(), value.as_str())
                .map_err(|e| ConfigError(e.to_string()))?;
        }
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
            if let Ok(filter) = std::env::var("RUST_LOG")
                && !filter.trim().is_empty()
            {
                builder = builder
                    .set_override("log.level", filter)
                    .map_err(|e| ConfigError(e.to_string()))?;
            }
        }
        for (key, value) in &sources.overrides {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        let merged = builder.build().map_err(|e| ConfigError(e.to_string()))?;
        Ok(Self {
            merged,
            reads: RefCell::default(),
        })
    }

    /// Every key read so far and its default, in the order read.
    pub fn reads(&self) -> Vec<(String, Option<String>)> {
        self.reads.borrow().clone()
    }

    fn record(&self, key: &str, default: Option<String>) {
        self.reads.borrow_mut().push((key.to_owned(), default));
    }

    /// The raw value of `key`; `None` when no layer sets it or it is blank.
    fn value<T: DeserializeOwned>(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        let blank = self
            .merged
            .get::<String>(key)
            .is_ok_and(|text| text.trim().is_empty());
        if blank {
            return Ok(None);
        }
        match self.merged.get::<T>(key) {
            Ok(value) => Ok(Some(value)),
            Err(config::ConfigError::NotFound(_)) => Ok(None),
            Err(_) => Err(ConfigError::key(key, &format!("must be {expected}"))),
        }
    }

    /// Text with a default.
    pub fn text(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        self.record(key, Some(toml_string(default)));
        Ok(self.text_value(key)?.unwrap_or_else(|| default.to_owned()))
    }

    /// Text with no default: `None` when unset.
    pub fn optional_text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.record(key, None);
        self.text_value(key)
    }

    /// Text that must be set.
    pub fn required_text(&self, key: &str) -> Result<String, ConfigError> {
        self.optional_text(key)?
            .ok_or_else(|| ConfigError::key(key, "is required"))
    }

    fn text_value(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self
            .value::<String>(key, "text")?
            .map(|text| text.trim().to_owned()))
    }

    /// `true` or `false`, with a default.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        self.record(key, Some(default.to_string()));
        Ok(self.value(key, "true or false")?.unwrap_or(default))
    }

    /// A flag another section reads and checks: its value here, `false` if unset or bad,
    /// without recording a second read.
    pub fn peek_flag(&self, key: &str) -> bool {
        self.value::<bool>(key, "true or false")
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// One of `choices`; the first is the default.
    pub fn choice(&self, key: &str, choices: &[&'static str]) -> Result<&'static str, ConfigError> {
        let text = self.text(key, choices[0])?;
        choices
            .iter()
            .find(|choice| **choice == text)
            .copied()
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
                ConfigError::key(key, &format!("must be {}", names.join(" or ")))
            })
    }

    /// A whole number with a default.
    pub fn number<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: DeserializeOwned + Display,
    {
        self.record(key, Some(default.to_string()));
        Ok(self.value(key, "a whole number")?.unwrap_or(default))
    }

    /// A whole number above zero with a default.
    pub fn positive<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: DeserializeOwned + Display + PartialEq + From<u8>,
    {
        let value = self.number(key, default)?;
        if value == T::from(0) {
            return Err(ConfigError::key(key, "must be positive"));
        }
        Ok(value)
    }

    /// `key` (ending in `_s`) as a duration of whole seconds, with no default.
    pub fn optional_seconds(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.record(key, None);
        Ok(self
            .value::<u64>(key, "a whole number")?
            .map(Duration::from_secs))
    }

    /// `key` (ending in `_s`) as a duration of whole seconds.
    pub fn seconds(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        self.number(key, default).map(Duration::from_secs)
    }

    /// `key` (ending in `_ms`) as a positive duration of milliseconds.
    pub fn positive_millis(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(key, default).map(Duration::from_millis)
    }

    /// `key` (ending in `_s`) as a positive duration of whole seconds.
    pub fn positive_seconds(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(key, default).map(Duration::from_secs)
    }

    /// A socket address such as `0.0.0.0:8080`.
    pub fn address(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        let text = self.text(key, default)?;
        text.parse::<std::net::SocketAddr>()
            .map_err(|_| ConfigError::key(key, "must be an address like 0.0.0.0:8080"))?;
        Ok(text)
    }

    /// A quota such as `5/hour` (docs/configuration.md).
    pub fn quota(&self, key: &str, default: &str) -> Result<Quota, ConfigError> {
        Quota::parse(&self.text(key, default)?).map_err(|e| ConfigError::key(key, &e.to_string()))
    }

    /// A quota with no default: `None` (off) when unset or `off`.
    pub fn optional_quota(&self, key: &str) -> Result<Option<Quota>, ConfigError> {
        let text = self.optional_text(key)?;
        off_or_quota(key, text.as_deref())
    }

    /// A quota with a default that may be `off`.
    pub fn quota_or_off(&self, key: &str, default: &str) -> Result<Option<Quota>, ConfigError> {
        let text = self.text(key, default)?;
        off_or_quota(key, Some(&text))
    }

    /// A fraction from 0 to 1 with a default.
    pub fn ratio(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        self.record(key, Some(format!("{default:?}")));
        let value = self
            .value::<f64>(key, "a number from 0 to 1")?
            .unwrap_or(default);
        if !(0.0..=1.0).contains(&value) {
            return Err(ConfigError::key(key, "must be a number from 0 to 1"));
        }
        Ok(value)
    }

    /// A table of text values (`{ ES = "100/hour" }`), with no default.
    pub fn table(&self, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
        self.record(key, None);
        let table = self
            .value::<std::collections::BTreeMap<String, String>>(key, "a table of text values")?
            .unwrap_or_default();
        Ok(table.into_iter().collect())
    }

    /// A file path with no default.
    pub fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.optional_text(key)?.map(PathBuf::from))
    }

    /// A list, as a TOML array or a comma-separated string; `None` when unset or empty.
    pub fn list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.record(key, None);
        let items: Vec<String> = match self.value::<StringList>(key, "a list")? {
            None => return Ok(None),
            Some(StringList::One(text)) => text.split(',').map(str::to_owned).collect(),
            Some(StringList::Many(items)) => items,
        };
        let items: Vec<String> = items
            .iter()
            .map(|item| item.trim())
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect();
        Ok((!items.is_empty()).then_some(items))
    }

    /// A secret from `key`, or from the file its `key_file` form names (trimmed).
    pub fn secret(&self, key: &str) -> Result<Option<SecretString>, ConfigError> {
        self.record(key, None);
        self.secret_value(key)
    }

    /// A secret with a default, such as a database URL that may hold a password.
    pub fn secret_or(&self, key: &str, default: &str) -> Result<SecretString, ConfigError> {
        self.record(key, Some(toml_string(default)));
        Ok(self
            .secret_value(key)?
            .unwrap_or_else(|| SecretString::from(default)))
    }

    fn secret_value(&self, key: &str) -> Result<Option<SecretString>, ConfigError> {
        let file_key = format!("{key}_file");
        match (self.text_value(key)?, self.text_value(&file_key)?) {
            (Some(_), Some(_)) => Err(ConfigError::key(
                key,
                &format!("and {file_key} are both set; use one"),
            )),
            (Some(text), None) => Ok(Some(SecretString::from(text))),
            (None, Some(path)) => read_secret_file(&file_key, &path).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// A list that may hold secrets (URLs with passwords): from `key`, or from the file
    /// its `key_file` form names (items separated by commas or lines).
    pub fn secret_list(&self, key: &str) -> Result<Option<Vec<SecretString>>, ConfigError> {
        let file_key = format!("{key}_file");
        let from_file = match self.text_value(&file_key)? {
            Some(path) => Some(read_secret_file(&file_key, &path)?),
            None => None,
        };
        let items = match (self.list(key)?, from_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    key,
                    &format!("and {file_key} are both set; use one"),
                ));
            }
            (Some(items), None) => items,
            (None, Some(text)) => text
                .expose_secret()
                .split([',', '\n'])
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
            (None, None) => return Ok(None),
        };
        let items: Vec<SecretString> = items.into_iter().map(SecretString::from).collect();
        Ok((!items.is_empty()).then_some(items))
    }

    /// A secret that must be set, directly or through its `_file` form.
    pub fn required_secret(&self, key: &str) -> Result<SecretString, ConfigError> {
        self.secret(key)?
            .ok_or_else(|| ConfigError::key(key, "is required"))
    }
}

fn off_or_quota(key: &str, text: Option<&str>) -> Result<Option<Quota>, ConfigError> {
    match text {
        None | Some("off") => Ok(None),
        Some(text) => Quota::parse(text)
            .map(Some)
            .map_err(|e| ConfigError::key(key, &e.to_string())),
    }
}

fn read_secret_file(key: &str, path: &str) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::key(key, &format!("cannot be read: {}", e.kind())))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::key(key, "names an empty file"));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// A 32-byte key written as base64, as `verification.token_secret` is.
pub fn sealing_key(key: &str, text: &str) -> Result<SealingKey, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ConfigError::key(key, "must be base64"))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ConfigError::key(key, "must decode to exactly 32 bytes"))?;
    Ok(SecretBox::new(Box::new(array)))
}

fn toml_string(text: &str) -> String {
    format!("{text:?}")
}
