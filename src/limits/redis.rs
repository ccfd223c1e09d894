//! Limits shared by every replica, in Redis (CONTRACT.md §6 `rate_limit.backend = redis`).
//! Each check is one atomic script: the same GCRA as the memory backend for binds (both
//! quotas checked before either is taken), and a counter per verification token. Every
//! key expires once it no longer matters; phone numbers are stored only as hashes.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::ConnectionManager;
use redis::{Client, Script};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Quota;

use super::{Admission, Attempt};

/// How long one Redis round trip (or connecting) may take before the check fails.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Binds: KEYS = user, phone; ARGV = interval and burst of each (ms, count).
/// Answers {0, 0} when admitted, else {1 (user) or 2 (phone), retry-after ms}.
/// Time comes from the Redis server, so replicas with skewed clocks agree.
const BIND_SCRIPT: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local function next_tat(key, interval, burst)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then return nil, allow_at - now end
  return new_tat, 0
end
local user_tat, user_wait = next_tat(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if not user_tat then return {1, user_wait} end
local phone_tat, phone_wait = next_tat(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if not phone_tat then return {2, phone_wait} end
redis.call('SET', KEYS[1], user_tat, 'PX', user_tat - now)
redis.call('SET', KEYS[2], phone_tat, 'PX', phone_tat - now)
return {0, 0}
";

/// Code attempts: KEYS = token; ARGV = max, keep ms, action (begin | refund | used).
/// `begin` answers -1 when used, -2 when exhausted, else the new count.
const ATTEMPT_SCRIPT: &str = r"
local key, max, keep, action = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if action == 'used' then
  redis.call('HSET', key, 'used', 1)
  redis.call('PEXPIRE', key, keep)
  return 0
end
if action == 'refund' then
  local count = tonumber(redis.call('HGET', key, 'count') or 0)
  if count > 0 then redis.call('HINCRBY', key, 'count', -1) end
  return 0
end
if redis.call('HGET', key, 'used') == '1' then return -1 end
local count = tonumber(redis.call('HGET', key, 'count') or 0)
if count >= max then return -2 end
count = redis.call('HINCRBY', key, 'count', 1)
redis.call('PEXPIRE', key, keep)
return count
";

#[derive(Debug, thiserror::Error)]
pub enum RedisLimitError {
    #[error("redis.url is not a Redis URL")]
    BadUrl,
    #[error("redis did not answer in time")]
    Timeout,
    #[error("redis failed: {0}")]
    Redis(#[from] redis::RedisError),
}

pub struct RedisLimits {
    client: Client,
    prefix: String,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    per_user: Quota,
    per_phone: Quota,
    bind: Script,
    attempt: Script,
}

impl RedisLimits {
    /// Parses the URL; connects on first use, so `serve` starts while Redis is down.
    pub fn new(
        url: &SecretString,
        prefix: &str,
        per_user: Quota,
        per_phone: Quota,
    ) -> Result<Self, RedisLimitError> {
        let client = Client::open(url.expose_secret()).map_err(|_| RedisLimitError::BadUrl)?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            connection: tokio::sync::Mutex::new(None),
            per_user,
            per_phone,
            bind: Script::new(BIND_SCRIPT),
            attempt: Script::new(ATTEMPT_SCRIPT),
        })
    }

    pub async fn admit_bind(
        &self,
        user_key: &str,
        phone_key: &str,
    ) -> Result<Admission, RedisLimitError> {
        let mut connection = self.connection().await?;
        let mut call = self.bind.prepare_invoke();
        call.key(format!("{}bind:user:{user_key}", self.prefix))
            .key(format!("{}bind:phone:{}", self.prefix, hashed(phone_key)))
            .arg(millis(self.per_user.refill_interval()))
            .arg(self.per_user.burst.get())
            .arg(millis(self.per_phone.refill_interval()))
            .arg(self.per_phone.burst.get());
        let (refused_by, wait_ms): (u8, u64) = timed(call.invoke_async(&mut connection)).await?;
        Ok(match refused_by {
            0 => Admission::Allowed,
            1 => Admission::Refused {
                limit: "bind_per_user",
                retry_after: Duration::from_millis(wait_ms),
            },
            _ => Admission::Refused {
                limit: "bind_per_phone",
                retry_after: Duration::from_millis(wait_ms),
            },
        })
    }

    pub async fn begin_attempt(
        &self,
        token_key: &str,
        max: u32,
        keep: Duration,
    ) -> Result<Attempt, RedisLimitError> {
        let answer = self.attempt_action(token_key, max, keep, "begin").await?;
        Ok(match answer {
            -1 => Attempt::Used,
            -2 => Attempt::Exhausted,
            _ => Attempt::Allowed,
        })
    }

    pub async fn refund_attempt(
        &self,
        token_key: &str,
        keep: Duration,
    ) -> Result<(), RedisLimitError> {
        self.attempt_action(token_key, 0, keep, "refund")
            .await
            .map(drop)
    }

    pub async fn mark_used(&self, token_key: &str, keep: Duration) -> Result<(), RedisLimitError> {
        self.attempt_action(token_key, 0, keep, "used")
            .await
            .map(drop)
    }

    /// Answers once Redis does.
    pub async fn ping(&self) -> Result<(), RedisLimitError> {
        let mut connection = self.connection().await?;
        let _: String = timed(redis::cmd("PING").query_async(&mut connection)).await?;
        Ok(())
    }

    async fn attempt_action(
        &self,
        token_key: &str,
        max: u32,
        keep: Duration,
        action: &str,
    ) -> Result<i64, RedisLimitError> {
        let mut connection = self.connection().await?;
        let mut call = self.attempt.prepare_invoke();
        call.key(format!("{}verify:{token_key}", self.prefix))
            .arg(max)
            .arg(millis(keep).max(1000))
            .arg(action);
        timed(call.invoke_async(&mut connection)).await
    }

    /// The shared connection, made on first use; it reconnects by itself afterwards.
    async fn connection(&self) -> Result<ConnectionManager, RedisLimitError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = timed(ConnectionManager::new_with_config(
            self.client.clone(),
            config,
        ))
        .await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

async fn timed<T>(
    future: impl Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, RedisLimitError> {
    match tokio::time::timeout(TIMEOUT * 2, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(RedisLimitError::Timeout),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Phone numbers are personal data: Redis only sees a digest.
fn hashed(text: &str) -> String {
    let digest = digest::digest(&digest::SHA256, text.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota::parse("1/hour").unwrap()
    }

    #[test]
    fn plain_and_tls_urls_are_accepted_and_others_refused() {
        let cases = [
            ("redis://127.0.0.1:6379/0", true, "plain"),
            ("rediss://cache.example.com:6380", true, "TLS"),
            ("redis://:secret@127.0.0.1:6379", true, "with a password"),
            ("http://127.0.0.1:6379", false, "another scheme"),
            ("not a url", false, "garbage"),
        ];
        for (url, accepted, what) in cases {
            let url = SecretString::from(url.to_owned());
            assert_eq!(
                RedisLimits::new(&url, "p:", quota(), quota()).is_ok(),
                accepted,
                "{what}"
            );
        }
    }

    #[test]
    fn phone_keys_are_hashed() {
        let key = hashed("+13108904569");
        assert_eq!(key.len(), 32);
        assert!(!key.contains("3108904569"));
        assert_eq!(key, hashed("+13108904569"), "stable across replicas");
    }
}
