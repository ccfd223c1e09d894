//! Subject -> AutoShares user id (docs/api.md, after authentication): from a claim of the JWT,
//! or from the `user_links` table with a short cache in front.

mod cache;
mod loader;
mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ids::{AutosharesUserId, Subject};
use crate::metrics::Metrics;

use cache::LinkCache;
use loader::LinkLoader;
pub use store::{LinkStore, Placeholders, StoreError};

/// How long a mapping may be served from memory (docs/api.md "The operations API").
pub const CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("subject has no AutoShares user id")]
    NotLinked,
    #[error("link store failed")]
    Store(#[from] StoreError),
}

pub enum Identity {
    /// The id is in this claim of the JWT.
    Claim(String),
    Database {
        loader: Arc<LinkLoader>,
        cache: Arc<LinkCache>,
        metrics: Arc<Metrics>,
    },
}

impl Identity {
    pub fn database(store: LinkStore, metrics: Arc<Metrics>) -> Self {
        Self::Database {
            loader: LinkLoader::new(store, Arc::clone(&metrics)),
            cache: Arc::new(LinkCache::new(CACHE_TTL)),
            metrics,
        }
    }

    /// The claim of a token that carries the caller's AutoShares user id, if one does: the
    /// authenticator keeps it, and hands its value to [`Identity::resolve`].
    pub fn claim(&self) -> Option<&str> {
        match self {
            Self::Claim(name) => Some(name),
            Self::Database { .. } => None,
        }
    }

    /// The AutoShares user id of the caller `subject`, whose JWT carries `claimed` in the
    /// claim of `Identity::claim`.
    pub async fn resolve(
        &self,
        subject: &Subject,
        claimed: Option<&Value>,
    ) -> Result<AutosharesUserId, LinkError> {
        match self {
            Self::Claim(_) => claimed
                .and_then(user_id_from_claim)
                .ok_or(LinkError::NotLinked),
            Self::Database {
                loader,
                cache,
                metrics,
            } => {
                let cached = cache.get(subject);
                metrics.link_cache(cached.is_some());
                let found = match cached {
                    Some(hit) => {
                        if hit.refresh {
                            read_again(loader, cache, subject);
                        }
                        hit.user
                    }
                    None => {
                        let read_at = Instant::now();
                        let found = loader.fetch(subject).await?;
                        cache.put(subject, found, read_at);
                        found
                    }
                };
                found.ok_or(LinkError::NotLinked)
            }
        }
    }

    /// Drops any cached answer for `subject` after this process changed its link.
    pub fn forget(&self, subject: &Subject) {
        if let Self::Database { cache, .. } = self {
            cache.forget(subject);
        }
    }
}

/// Reads `subject`'s link again while its entry is still served, with the others due
/// about now (`LinkLoader::fetch_again`). A task of this worker, like the loader's readers;
/// a failed read leaves the entry to expire, and the next lookup after that waits for the
/// database as any miss does. The entry read again lives from before the loader's wait.
fn read_again(loader: &Arc<LinkLoader>, cache: &Arc<LinkCache>, subject: &Subject) {
    let (loader, cache, subject) = (Arc::clone(loader), Arc::clone(cache), subject.clone());
    tokio::task::spawn_local(async move {
        let read_at = Instant::now();
        if let Ok(found) = loader.fetch_again(&subject).await {
            cache.refresh(&subject, found, read_at);
        }
    });
}

/// A positive integer, as a JSON number or a string of digits.
fn user_id_from_claim(value: &Value) -> Option<AutosharesUserId> {
    let id = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()?
        }
        _ => return None,
    };
    (id > 0).then_some(AutosharesUserId(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_values_are_read_as_positive_integers() {
        let cases = [
            (json!(1925), Some(1925), "a number"),
            (json!("1925"), Some(1925), "a numeric string"),
            (json!(0), None, "zero"),
            (json!(-4), None, "negative"),
            (json!(1.5), None, "a fraction"),
            (json!("12a"), None, "not digits"),
            (json!(""), None, "empty string"),
            (json!(null), None, "null"),
            (json!("99999999999999999999"), None, "too large"),
        ];
        for (value, expected, what) in cases {
            assert_eq!(user_id_from_claim(&value).map(|u| u.0), expected, "{what}");
        }
    }
}
