//! Limits shared by every replica, in Redis (CONTRACT.md §6 `rate_limit.backend = redis`).
//! Each decision is one atomic script: for a bind, every quota, budget and breaker (the
//! same GCRA and rules as the memory backend, all checked before any is taken); for a code
//! attempt, a counter per verification token. Every key expires once it no longer
//! matters; numbers and prefixes appear in keys only as keyed hashes.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, Script};
use secrecy::{ExposeSecret, SecretString};

use crate::ids::AutosharesUserId;
use crate::verification::AttemptKey;

use super::idempotency::{IN_FLIGHT_TTL, Record};
use super::keyed_hash::{Digest, encoded};
use super::rules::{
    BindFacts, Budget, Decision, PER_CLIENT, PER_PHONE, PER_USER, Policy, Refusal, Scope,
};
use super::{Attempt, BlockView};

/// How long one Redis round trip (or connecting) may take before the check fails.
const TIMEOUT: Duration = Duration::from_millis(500);

/// One bind: every §6 quota and §8 rule, checked before anything is taken (CONTRACT.md §2).
/// KEYS: 1 user, 2 phone, 3 global, 4 country and 5 prefix GCRA arrival times; 6 country
/// and 7 prefix breaker hashes; 8 the safe-list; 9 the block list; 10 the client's arrival
/// time. ARGV: see `admit_bind`. Answers {code, wait ms, shadowed rules}: code 0 admitted,
/// 1 user, 2 phone, 8 client, 3 country blocked, 4 prefix blocked, 5 global, 6 country and
/// 7 prefix budget spent. Time comes
/// from the Redis server, so replicas with skewed clocks agree.
const BIND_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local DAY = 86400000
local function step(key, interval, burst)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then return nil, allow_at - now end
  return new_tat, 0
end
local takes = {}
local function quota(key, interval, burst)
  local tat, wait = step(key, interval, burst)
  if tat then takes[#takes + 1] = {key, tat} end
  return tat, wait
end
local shadow = {}
local tat, wait = quota(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if not tat then return {1, wait, ''} end
tat, wait = quota(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if not tat then return {2, wait, ''} end
if tonumber(ARGV[25]) > 0 then
  tat, wait = quota(KEYS[10], tonumber(ARGV[25]), tonumber(ARGV[26]))
  if not tat then return {8, wait, ''} end
end

local safe = ARGV[20] == '1'
if not safe and redis.call('HLEN', KEYS[8]) > 0 then
  for i = 27, #ARGV do
    if redis.call('HEXISTS', KEYS[8], ARGV[i]) == 1 then safe = true break end
  end
end

local conversion = ARGV[14]
local window, min_ratio, block_ms = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[19])
local counting = (not safe) and conversion ~= 'off'
local function breaker(key, min_sends, rule, label, field)
  local s = redis.call('HMGET', key, 'ws', 's', 'c', 'bu', 'lt', 'll')
  local ws, sends, done = tonumber(s[1]), tonumber(s[2] or 0), tonumber(s[3] or 0)
  local bu, lt, ll = tonumber(s[4]), tonumber(s[5]), tonumber(s[6])
  if bu then
    if bu > now then return true end
    ws, sends, done, bu = now, 0, 0, nil
    redis.call('HDEL', key, 'bu')
  end
  if not ws or now >= ws + window then ws, sends, done = now, 0, 0 end
  local tripped = sends >= min_sends and done < min_ratio * sends
  if tripped then ws, sends, done = now, 0, 0 end
  redis.call('HSET', key, 'ws', ws, 's', sends, 'c', done)
  -- Kept for the window, and for a day after a trip so that a repeat trip doubles.
  local keep = window
  if lt then keep = math.max(keep, lt + DAY - now) end
  if tripped and conversion == 'shadow' then
    shadow[#shadow + 1] = rule
  elseif tripped then
    local length = block_ms
    if lt and ll and now - lt < DAY then length = math.min(ll * 2, DAY) end
    length = math.min(length, DAY)
    redis.call('HSET', key, 'bu', now + length, 'lt', now, 'll', length)
    redis.call('HSET', KEYS[9], field, label .. '|' .. (now + length))
    redis.call('PEXPIRE', KEYS[9], DAY)
    keep = DAY
  end
  redis.call('PEXPIRE', key, keep)
  return tripped and conversion ~= 'shadow'
end
if counting then
  if breaker(KEYS[6], tonumber(ARGV[17]), 'conversion_country', ARGV[21], ARGV[22]) then return {3, 0, ''} end
  if breaker(KEYS[7], tonumber(ARGV[18]), 'conversion_prefix', ARGV[23], ARGV[24]) then return {4, 0, ''} end
end

if not safe then
  local budgets = {
    {KEYS[3], 5, 'global_budget', 5},
    {KEYS[4], 8, 'country_budget', 6},
    {KEYS[5], 11, 'prefix_budget', 7},
  }
  for _, b in ipairs(budgets) do
    local interval, burst, mode = tonumber(ARGV[b[2]]), tonumber(ARGV[b[2] + 1]), ARGV[b[2] + 2]
    if interval > 0 and mode ~= 'off' then
      local new_tat, budget_wait = step(b[1], interval, burst)
      if new_tat then
        takes[#takes + 1] = {b[1], new_tat}
      elseif mode == 'shadow' then
        shadow[#shadow + 1] = b[3]
      else
        return {b[4], budget_wait, ''}
      end
    end
  end
end

for _, take in ipairs(takes) do
  redis.call('SET', take[1], take[2], 'PX', math.max(take[2] - now, 1))
end
if counting then
  redis.call('HINCRBY', KEYS[6], 's', 1)
  redis.call('HINCRBY', KEYS[7], 's', 1)
end
return {0, 0, table.concat(shadow, ',')}
";

/// A completed binding: KEYS = country and prefix breaker hashes; ARGV = window ms.
const COMPLETION_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, key in ipairs(KEYS) do
  local ws = tonumber(redis.call('HGET', key, 'ws'))
  if ws and now < ws + tonumber(ARGV[1]) then redis.call('HINCRBY', key, 'c', 1) end
end
return 0
";

/// Operators: KEYS = breaker hash, block list; ARGV = block-list field. Lifts a block and
/// starts its window afresh; answers 1 when there was one.
const LIFT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HDEL', KEYS[2], ARGV[1])
local bu = tonumber(redis.call('HGET', KEYS[1], 'bu'))
if not bu or bu <= now then return 0 end
redis.call('HDEL', KEYS[1], 'bu')
redis.call('HSET', KEYS[1], 'ws', now, 's', 0, 'c', 0)
return 1
";

/// Operators: KEYS = block list. Answers {now ms, field, value, …}.
const BLOCKS_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local answer = {tostring(now)}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do answer[#answer + 1] = all[i] end
return answer
";

/// Idempotency: KEYS = record; ARGV = in-flight marker, its ttl ms. Answers the record, or
/// nil after setting the marker.
const BEGIN_RECORD_SCRIPT: &str = r"
local record = redis.call('GET', KEYS[1])
if record then return record end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// Idempotency: KEYS = record; ARGV = in-flight marker. Deletes the record if it is still
/// that marker.
const ABANDON_RECORD_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

/// The user's quota as it stands: KEYS = the user's arrival time. Answers {tat or -1, now}.
const QUOTA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {tonumber(redis.call('GET', KEYS[1]) or -1), now}
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
    bind: Script,
    completion: Script,
    lift: Script,
    blocks: Script,
    quota: Script,
    begin_record: Script,
    abandon_record: Script,
    attempt: Script,
}

/// One bind's keys share the hash tag `{bind}`, so the one script that decides them all
/// also runs on a Redis Cluster.
const TAG: &str = "{bind}";

impl RedisLimits {
    /// Parses the URL; connects on first use, so `serve` starts while Redis is down.
    pub fn new(url: &SecretString, prefix: &str) -> Result<Self, RedisLimitError> {
        let client = Client::open(url.expose_secret()).map_err(|_| RedisLimitError::BadUrl)?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            connection: tokio::sync::Mutex::new(None),
            bind: Script::new(BIND_SCRIPT),
            completion: Script::new(COMPLETION_SCRIPT),
            lift: Script::new(LIFT_SCRIPT),
            blocks: Script::new(BLOCKS_SCRIPT),
            quota: Script::new(QUOTA_SCRIPT),
            begin_record: Script::new(BEGIN_RECORD_SCRIPT),
            abandon_record: Script::new(ABANDON_RECORD_SCRIPT),
            attempt: Script::new(ATTEMPT_SCRIPT),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{TAG}:{name}", self.prefix)
    }

    fn scope_key(&self, scope: Scope, digest_or_country: &str) -> String {
        self.key(&format!("breaker:{}:{digest_or_country}", scope.name()))
    }

    fn scope_keys(&self, facts: &BindFacts<'_>) -> [String; 2] {
        [
            self.scope_key(Scope::Country, facts.country.as_str()),
            self.scope_key(Scope::Prefix, &encoded(&facts.prefix_digest)),
        ]
    }

    /// Decides one bind in one round trip (see `BIND_SCRIPT`).
    pub async fn admit_bind(
        &self,
        facts: &BindFacts<'_>,
        policy: &Policy,
    ) -> Result<Decision, RedisLimitError> {
        let abuse = &policy.abuse;
        let [country_scope, prefix_scope] = self.scope_keys(facts);
        let mut call = self.bind.prepare_invoke();
        call.key(self.key(&format!("user:{}", facts.user)))
            .key(self.key(&format!("phone:{}", encoded(&facts.phone_digest))))
            .key(self.key("budget:global"))
            .key(self.key(&format!("budget:country:{}", facts.country)))
            .key(self.key(&format!("budget:prefix:{}", encoded(&facts.prefix_digest))))
            .key(&country_scope)
            .key(&prefix_scope)
            .key(self.key("safe"))
            .key(self.key("blocks"))
            .key(self.key(&match &facts.client_digest {
                Some(digest) => format!("client:{}", encoded(digest)),
                None => "client:off".to_owned(),
            }));
        for quota in [policy.per_user, policy.per_phone] {
            call.arg(millis(quota.refill_interval()))
                .arg(quota.burst.get());
        }
        for (_, quota, mode) in policy.budgets(facts.country) {
            let (interval, burst) =
                quota.map_or((0, 0), |q| (millis(q.refill_interval()), q.burst.get()));
            call.arg(interval).arg(burst).arg(mode.name());
        }
        let conversion = &abuse.conversion;
        call.arg(conversion.mode.name())
            .arg(millis(conversion.window))
            .arg(conversion.min_ratio)
            .arg(conversion.min_sends_country)
            .arg(conversion.min_sends_prefix)
            .arg(millis(conversion.block))
            .arg(if is_safe(&abuse.safe, facts.phone.as_e164()) {
                "1"
            } else {
                "0"
            })
            .arg(facts.country.as_str())
            .arg(format!("country:{}", facts.country))
            .arg(facts.prefix)
            .arg(format!("prefix:{}", encoded(&facts.prefix_digest)));
        let client = policy.per_client.filter(|_| facts.client_digest.is_some());
        let (interval, burst) =
            client.map_or((0, 0), |q| (millis(q.refill_interval()), q.burst.get()));
        call.arg(interval).arg(burst);
        let e164 = facts.phone.as_e164();
        for end in 2..=e164.len() {
            call.arg(encoded(&facts.hash.digest("safe", &e164[..end])));
        }
        let mut connection = self.connection().await?;
        let (code, wait_ms, shadowed): (u8, u64, String) =
            timed(call.invoke_async(&mut connection)).await?;
        let retry_after = Duration::from_millis(wait_ms);
        let refusal = match code {
            0 => None,
            1 => Some(Refusal::Quota {
                limit: PER_USER,
                retry_after,
            }),
            2 => Some(Refusal::Quota {
                limit: PER_PHONE,
                retry_after,
            }),
            8 => Some(Refusal::Quota {
                limit: PER_CLIENT,
                retry_after,
            }),
            3 => Some(Refusal::Blocked {
                rule: Scope::Country.rule(),
            }),
            4 => Some(Refusal::Blocked {
                rule: Scope::Prefix.rule(),
            }),
            5 => Some(Refusal::Budget {
                rule: Budget::Global.rule(),
                retry_after,
            }),
            6 => Some(Refusal::Budget {
                rule: Budget::Country.rule(),
                retry_after,
            }),
            _ => Some(Refusal::Budget {
                rule: Budget::Prefix.rule(),
                retry_after,
            }),
        };
        let shadowed = policy
            .rules()
            .into_iter()
            .map(|(rule, _)| rule)
            .filter(|rule| shadowed.split(',').any(|s| s == *rule))
            .collect();
        Ok(Decision { refusal, shadowed })
    }

    fn record_key(&self, name: &Digest) -> String {
        format!("{}{{idempotency:{}}}", self.prefix, encoded(name))
    }

    /// The record `name`, or `None` after marking it in flight with `fingerprint`.
    pub async fn begin_record(
        &self,
        name: &Digest,
        fingerprint: &Digest,
    ) -> Result<Option<Record>, RedisLimitError> {
        let mut call = self.begin_record.prepare_invoke();
        call.key(self.record_key(name))
            .arg(Record::InFlight(*fingerprint).to_bytes())
            .arg(millis(IN_FLIGHT_TTL));
        let mut connection = self.connection().await?;
        let stored: Option<Vec<u8>> = timed(call.invoke_async(&mut connection)).await?;
        Ok(stored.and_then(|bytes| Record::from_bytes(&bytes)))
    }

    pub async fn finish_record(
        &self,
        name: &Digest,
        sealed: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), RedisLimitError> {
        let mut connection = self.connection().await?;
        let _: () = timed(
            redis::cmd("SET")
                .arg(self.record_key(name))
                .arg(Record::Done(sealed).to_bytes())
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut connection),
        )
        .await?;
        Ok(())
    }

    pub async fn abandon_record(
        &self,
        name: &Digest,
        fingerprint: &Digest,
    ) -> Result<(), RedisLimitError> {
        let mut call = self.abandon_record.prepare_invoke();
        call.key(self.record_key(name))
            .arg(Record::InFlight(*fingerprint).to_bytes());
        let mut connection = self.connection().await?;
        timed(call.invoke_async::<i64>(&mut connection))
            .await
            .map(drop)
    }

    /// The arrival time of `user`'s quota and the server's time, in ms.
    pub async fn user_quota(
        &self,
        user: AutosharesUserId,
    ) -> Result<(Option<Duration>, Duration), RedisLimitError> {
        let mut call = self.quota.prepare_invoke();
        call.key(self.key(&format!("user:{user}")));
        let mut connection = self.connection().await?;
        let (tat, now): (i64, u64) = timed(call.invoke_async(&mut connection)).await?;
        let tat = u64::try_from(tat).ok().map(Duration::from_millis);
        Ok((tat, Duration::from_millis(now)))
    }

    /// Counts a completed binding for its country and prefix.
    pub async fn record_completion(
        &self,
        facts: &BindFacts<'_>,
        window: Duration,
    ) -> Result<(), RedisLimitError> {
        let mut call = self.completion.prepare_invoke();
        for key in self.scope_keys(facts) {
            call.key(key);
        }
        call.arg(millis(window));
        let mut connection = self.connection().await?;
        timed(call.invoke_async::<i64>(&mut connection))
            .await
            .map(drop)
    }

    /// Active blocks and the safe-list entries added through the admin API, with those
    /// of `abuse.safe`.
    pub async fn abuse_state(
        &self,
        policy: &Policy,
    ) -> Result<(Vec<BlockView>, Vec<String>), RedisLimitError> {
        let mut connection = self.connection().await?;
        let mut call = self.blocks.prepare_invoke();
        call.key(self.key("blocks"));
        let answer: Vec<String> = timed(call.invoke_async(&mut connection)).await?;
        let now: u64 = answer.first().and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut blocks: Vec<BlockView> = answer[1.min(answer.len())..]
            .chunks(2)
            .filter_map(|pair| {
                let (field, value) = (pair.first()?, pair.get(1)?);
                let scope = Scope::parse(field.split(':').next()?)?;
                let (label, until) = value.rsplit_once('|')?;
                let until: u64 = until.parse().ok()?;
                (until > now).then(|| BlockView {
                    scope,
                    key: label.to_owned(),
                    remaining: Duration::from_millis(until - now),
                })
            })
            .collect();
        blocks.sort_by(|a, b| a.key.cmp(&b.key));
        let added: Vec<String> = timed(
            redis::cmd("HVALS")
                .arg(self.key("safe"))
                .query_async(&mut connection),
        )
        .await?;
        let mut safe: Vec<String> = policy.abuse.safe.iter().cloned().chain(added).collect();
        safe.sort();
        safe.dedup();
        Ok((blocks, safe))
    }

    /// Lifts the block of `scope` named `label` (`ES`, `+3463595`).
    pub async fn lift_block(
        &self,
        scope: Scope,
        label: &str,
        hash: &super::KeyedHash,
        _policy: &Policy,
    ) -> Result<bool, RedisLimitError> {
        let name = match scope {
            Scope::Country => label.to_owned(),
            Scope::Prefix => encoded(&hash.digest("prefix", label)),
        };
        let mut call = self.lift.prepare_invoke();
        call.key(self.scope_key(scope, &name))
            .key(self.key("blocks"))
            .arg(format!("{}:{name}", scope.name()));
        let mut connection = self.connection().await?;
        let lifted: i64 = timed(call.invoke_async(&mut connection)).await?;
        Ok(lifted == 1)
    }

    /// Adds or removes a safe-list entry for every replica; answers whether it changed.
    pub async fn set_safe(
        &self,
        entry: &str,
        digest: &str,
        safe: bool,
    ) -> Result<bool, RedisLimitError> {
        let mut connection = self.connection().await?;
        let key = self.key("safe");
        let changed: i64 = if safe {
            timed(
                redis::cmd("HSET")
                    .arg(&key)
                    .arg(digest)
                    .arg(entry)
                    .query_async::<i64>(&mut connection),
            )
            .await?;
            1
        } else {
            timed(
                redis::cmd("HDEL")
                    .arg(&key)
                    .arg(digest)
                    .query_async(&mut connection),
            )
            .await?
        };
        Ok(safe || changed > 0)
    }

    pub async fn begin_attempt(
        &self,
        token_key: &AttemptKey,
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
        token_key: &AttemptKey,
        keep: Duration,
    ) -> Result<(), RedisLimitError> {
        self.attempt_action(token_key, 0, keep, "refund")
            .await
            .map(drop)
    }

    pub async fn mark_used(
        &self,
        token_key: &AttemptKey,
        keep: Duration,
    ) -> Result<(), RedisLimitError> {
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
        token_key: &AttemptKey,
        max: u32,
        keep: Duration,
        action: &str,
    ) -> Result<i64, RedisLimitError> {
        let mut connection = self.connection().await?;
        let mut call = self.attempt.prepare_invoke();
        call.key(format!("{}{{verify:{token_key}}}", self.prefix))
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

/// Whether `e164`, or a prefix of it, is in `entries`.
fn is_safe(entries: &[String], e164: &str) -> bool {
    entries.iter().any(|entry| e164.starts_with(entry.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(RedisLimits::new(&url, "p:").is_ok(), accepted, "{what}");
        }
    }
}
