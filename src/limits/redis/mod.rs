//! Limits shared by every replica, in Redis (docs/configuration.md `rate_limit.backend`):
//! one server, a Redis Cluster or Sentinel (`connection.rs`). Each decision is one atomic
//! script (`scripts.rs`): for a bind, every quota, budget and breaker (the
//! same GCRA and rules as the memory backend, all checked before any is taken); for a code
//! attempt, a counter per verification token. Every key expires once it no longer
//! matters; numbers and prefixes appear in keys only as keyed hashes.

use std::time::Duration;

use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::config::RedisSettings;

use crate::ids::AutosharesUserId;
use crate::verification::AttemptKey;

use super::idempotency::{IN_FLIGHT_TTL, Record};
use super::keyed_hash::{Digest, encoded};
use super::rules::{
    BindFacts, Budget, Decision, PER_CLIENT, PER_PHONE, PER_USER, Policy, Refusal, Scope, Taken,
};
use super::{Attempt, BlockView};

mod connection;
mod scripts;

use connection::{Connection, Connector, TIMEOUT};
use scripts::*;

#[derive(Debug, thiserror::Error)]
pub enum RedisLimitError {
    #[error("redis.url (or a node of the cluster or sentinel list) is not a Redis URL")]
    BadUrl,
    #[error("{0} cannot be read")]
    File(&'static str),
    #[error("{0}")]
    Tls(&'static str),
    #[error("redis did not answer in time")]
    Timeout,
    #[error("redis failed: {0}")]
    Redis(#[from] redis::RedisError),
}

pub struct RedisLimits {
    connector: Connector,
    prefix: String,
    bind: Script,
    completion: Script,
    lift: Script,
    blocks: Script,
    quota: Script,
    begin_record: Script,
    abandon_record: Script,
    attempt: Script,
    ready: Script,
    give_back: Script,
}

/// One bind's keys share the hash tag `{bind}`, so the one script that decides them all
/// also runs on a Redis Cluster.
const TAG: &str = "{bind}";

impl RedisLimits {
    /// Checks the settings; connects on first use, so `serve` starts while Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisLimitError> {
        Ok(Self {
            connector: Connector::new(settings)?,
            prefix: settings.key_prefix.clone(),
            bind: Script::new(BIND_SCRIPT),
            completion: Script::new(COMPLETION_SCRIPT),
            lift: Script::new(LIFT_SCRIPT),
            blocks: Script::new(BLOCKS_SCRIPT),
            quota: Script::new(QUOTA_SCRIPT),
            begin_record: Script::new(BEGIN_RECORD_SCRIPT),
            abandon_record: Script::new(ABANDON_RECORD_SCRIPT),
            attempt: Script::new(ATTEMPT_SCRIPT),
            ready: Script::new(READY_SCRIPT),
            give_back: Script::new(GIVE_BACK_SCRIPT),
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
        self.decide_bind(facts, policy, &call_id()).await
    }

    /// `admit_bind` as the call named `call`: the same call run again answers the same
    /// and takes nothing again.
    async fn decide_bind(
        &self,
        facts: &BindFacts<'_>,
        policy: &Policy,
        call: &str,
    ) -> Result<Decision, RedisLimitError> {
        let abuse = &policy.abuse;
        let [country_scope, prefix_scope] = self.scope_keys(facts);
        let [user, phone, global, country, prefix] = self.quota_keys(facts);
        let mut invocation = self.bind.prepare_invoke();
        invocation
            .key(user)
            .key(phone)
            .key(global)
            .key(country)
            .key(prefix)
            .key(&country_scope)
            .key(&prefix_scope)
            .key(self.key("safe"))
            .key(self.key("blocks"))
            .key(self.client_key(facts))
            .key(self.key(&format!("call:{call}")));
        for quota in [policy.per_user, policy.per_phone] {
            invocation
                .arg(millis(quota.refill_interval()))
                .arg(quota.burst.get());
        }
        for (_, quota, mode) in policy.budgets(facts.country) {
            let (interval, burst) =
                quota.map_or((0, 0), |q| (millis(q.refill_interval()), q.burst.get()));
            invocation.arg(interval).arg(burst).arg(mode.name());
        }
        let conversion = &abuse.conversion;
        invocation
            .arg(conversion.mode.name())
            .arg(millis(conversion.window))
            .arg(conversion.min_ratio)
            .arg(conversion.min_sends_country)
            .arg(conversion.min_sends_prefix)
            .arg(millis(conversion.block))
            .arg(safe_flag(policy, facts))
            .arg(facts.country.as_str())
            .arg(format!("country:{}", facts.country))
            .arg(facts.prefix)
            .arg(format!("prefix:{}", encoded(&facts.prefix_digest)));
        let client = policy.per_client.filter(|_| facts.client_digest.is_some());
        let (interval, burst) =
            client.map_or((0, 0), |q| (millis(q.refill_interval()), q.burst.get()));
        invocation.arg(interval).arg(burst);
        for name in safe_names(facts) {
            invocation.arg(name);
        }
        let (code, wait_ms, shadowed, taken): (u8, u64, String, u8) =
            self.invoke(&invocation).await?;
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
        Ok(Decision {
            refusal,
            shadowed,
            taken: Taken(taken),
        })
    }

    /// The arrival-time keys of a bind's user, number, and global, country and prefix
    /// budgets.
    fn quota_keys(&self, facts: &BindFacts<'_>) -> [String; 5] {
        [
            self.key(&format!("user:{}", facts.user)),
            self.key(&format!("phone:{}", encoded(&facts.phone_digest))),
            self.key("budget:global"),
            self.key(&format!("budget:country:{}", facts.country)),
            self.key(&format!("budget:prefix:{}", encoded(&facts.prefix_digest))),
        ]
    }

    fn client_key(&self, facts: &BindFacts<'_>) -> String {
        self.key(&match &facts.client_digest {
            Some(digest) => format!("client:{}", encoded(digest)),
            None => "client:off".to_owned(),
        })
    }

    /// Gives back what an admitted bind `taken` (see `GIVE_BACK_SCRIPT`).
    pub async fn give_back(
        &self,
        facts: &BindFacts<'_>,
        policy: &Policy,
        taken: Taken,
    ) -> Result<(), RedisLimitError> {
        let [user, phone, global, country, prefix] = self.quota_keys(facts);
        let [country_scope, prefix_scope] = self.scope_keys(facts);
        let mut invocation = self.give_back.prepare_invoke();
        invocation
            .key(user)
            .key(phone)
            .key(self.client_key(facts))
            .key(global)
            .key(country)
            .key(prefix)
            .key(country_scope)
            .key(prefix_scope)
            .key(self.key(&format!("call:{}", call_id())));
        let mut quotas = vec![
            (Taken::USER, Some(policy.per_user)),
            (Taken::PHONE, Some(policy.per_phone)),
            (Taken::CLIENT, policy.per_client),
        ];
        for (budget, quota, _) in policy.budgets(facts.country) {
            quotas.push((Taken::of_budget(budget), quota));
        }
        for (bit, quota) in quotas {
            let interval = quota
                .filter(|_| taken.has(bit))
                .map_or(0, |q| millis(q.refill_interval()));
            invocation.arg(interval);
        }
        invocation.arg(if taken.has(Taken::SEND) { "1" } else { "0" });
        self.invoke::<i64>(&invocation).await.map(drop)
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
        let stored: Option<Vec<u8>> = self.invoke(&call).await?;
        Ok(stored.and_then(|bytes| Record::from_bytes(&bytes)))
    }

    pub async fn finish_record(
        &self,
        name: &Digest,
        sealed: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), RedisLimitError> {
        self.query::<()>(
            redis::cmd("SET")
                .arg(self.record_key(name))
                .arg(Record::Done(sealed).to_bytes())
                .arg("PX")
                .arg(millis(ttl)),
        )
        .await
    }

    pub async fn abandon_record(
        &self,
        name: &Digest,
        fingerprint: &Digest,
    ) -> Result<(), RedisLimitError> {
        let mut call = self.abandon_record.prepare_invoke();
        call.key(self.record_key(name))
            .arg(Record::InFlight(*fingerprint).to_bytes());
        self.invoke::<i64>(&call).await.map(drop)
    }

    /// The arrival time of `user`'s quota and the server's time, in ms.
    pub async fn user_quota(
        &self,
        user: AutosharesUserId,
    ) -> Result<(Option<Duration>, Duration), RedisLimitError> {
        let mut call = self.quota.prepare_invoke();
        call.key(self.key(&format!("user:{user}")));
        let (tat, now): (i64, u64) = self.invoke(&call).await?;
        let tat = u64::try_from(tat).ok().map(Duration::from_millis);
        Ok((tat, Duration::from_millis(now)))
    }

    /// Counts a completed binding for its country and prefix.
    pub async fn record_completion(
        &self,
        facts: &BindFacts<'_>,
        policy: &Policy,
    ) -> Result<(), RedisLimitError> {
        let mut call = self.completion.prepare_invoke();
        for key in self.scope_keys(facts) {
            call.key(key);
        }
        call.key(self.key("safe"))
            .arg(millis(policy.abuse.conversion.window))
            .arg(safe_flag(policy, facts));
        for name in safe_names(facts) {
            call.arg(name);
        }
        self.invoke::<i64>(&call).await.map(drop)
    }

    /// Active blocks and the safe-list entries added through the admin API, with those
    /// of `abuse.safe`.
    pub async fn abuse_state(
        &self,
        policy: &Policy,
    ) -> Result<(Vec<BlockView>, Vec<String>), RedisLimitError> {
        let mut call = self.blocks.prepare_invoke();
        call.key(self.key("blocks"));
        let answer: Vec<String> = self.invoke(&call).await?;
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
        let added: Vec<String> = self
            .query(redis::cmd("HVALS").arg(self.key("safe")))
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
        let lifted: i64 = self.invoke(&call).await?;
        Ok(lifted == 1)
    }

    /// Adds or removes a safe-list entry for every replica; answers whether it changed.
    pub async fn set_safe(
        &self,
        entry: &str,
        digest: &str,
        safe: bool,
    ) -> Result<bool, RedisLimitError> {
        let key = self.key("safe");
        let changed: i64 = if safe {
            self.query::<i64>(redis::cmd("HSET").arg(&key).arg(digest).arg(entry))
                .await?;
            1
        } else {
            self.query(redis::cmd("HDEL").arg(&key).arg(digest)).await?
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

    /// Answers once a bind could be decided now: a write on the node that owns the
    /// bind's keys, the path a bind takes (not a PING to whichever node answers).
    pub async fn check_ready(&self) -> Result<(), RedisLimitError> {
        let mut call = self.ready.prepare_invoke();
        call.key(self.key("ready"));
        self.invoke::<i64>(&call).await.map(drop)
    }

    async fn attempt_action(
        &self,
        token_key: &AttemptKey,
        max: u32,
        keep: Duration,
        action: &str,
    ) -> Result<i64, RedisLimitError> {
        let mut call = self.attempt.prepare_invoke();
        call.key(format!("{}{{verify:{token_key}}}", self.prefix))
            .key(format!(
                "{}{{verify:{token_key}}}:call:{}",
                self.prefix,
                call_id()
            ))
            .arg(max)
            .arg(millis(keep).max(1000))
            .arg(action);
        self.invoke(&call).await
    }

    /// Runs a script within the bound.
    async fn invoke<T: FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
    ) -> Result<T, RedisLimitError> {
        self.on_connection(async |connection| call.invoke_async(connection).await)
            .await
    }

    /// Runs one command within the bound.
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, RedisLimitError> {
        self.on_connection(async |connection| command.query_async(connection).await)
            .await
    }

    /// Runs `work` on the connection within the bound. After a failure the connector may
    /// look for its node anew (a Sentinel failover).
    ///
    /// The Redis client's futures take kilobytes: boxed here, every future that awaits a
    /// limit stays small, and so does each request's (moved whole when it is spawned).
    async fn on_connection<T>(
        &self,
        work: impl AsyncFnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisLimitError> {
        Box::pin(async {
            let mut connection = self.connector.connection().await?;
            let result = timed(work(&mut connection)).await;
            if result.is_err() {
                self.connector.failed().await;
            }
            result
        })
        .await
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

/// A name for one call of a script that decides once per call (see `BIND_SCRIPT`).
fn call_id() -> String {
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `1` when `abuse.safe` holds the number or a prefix of it.
fn safe_flag(policy: &Policy, facts: &BindFacts<'_>) -> &'static str {
    if is_safe(&policy.abuse.safe, facts.phone.as_e164()) {
        "1"
    } else {
        "0"
    }
}

/// The names the safe-list hash would file the number and each of its prefixes under.
fn safe_names(facts: &BindFacts<'_>) -> Vec<String> {
    let e164 = facts.phone.as_e164();
    (2..=e164.len())
        .map(|end| encoded(&facts.hash.digest("safe", &e164[..end])))
        .collect()
}

/// Whether `e164`, or a prefix of it, is in `entries`.
fn is_safe(entries: &[String], e164: &str) -> bool {
    entries.iter().any(|entry| e164.starts_with(entry.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisTopology;
    use crate::limits::testing::{hash, policy};
    use crate::phone::PhoneNumber;

    /// Runs against the Redis of `BFF_TEST_REDIS_URL`; says it skipped without one.
    #[tokio::test]
    async fn the_same_call_run_again_is_decided_once() {
        let Some(url) = std::env::var("BFF_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: BFF_TEST_REDIS_URL is not set");
            return;
        };
        let limits = RedisLimits::new(&RedisSettings {
            topology: RedisTopology::Single(url.into()),
            key_prefix: format!("bff-unit-{}:", call_id()),
            ca_file: None,
            client_cert: None,
        })
        .unwrap();
        let (policy, hash) = (policy("1/hour", "10/day"), hash());
        let phone = PhoneNumber::from_trusted_e164("+34635952910".to_owned());
        let facts = BindFacts::new(AutosharesUserId(1), &phone, None, &policy, &hash);

        // As when the client resends a call whose answer a dropped connection lost.
        let first = limits.decide_bind(&facts, &policy, "call-1").await.unwrap();
        let again = limits.decide_bind(&facts, &policy, "call-1").await.unwrap();
        assert!(first.refusal.is_none(), "admitted");
        assert!(again.refusal.is_none(), "the same call answers the same");
        let next = limits.decide_bind(&facts, &policy, "call-2").await.unwrap();
        assert!(next.refusal.is_some(), "a quota of one was taken once");
    }

    #[test]
    fn plain_and_tls_urls_are_accepted_and_others_refused() {
        let cases = [
            ("redis://127.0.0.1:6379/0", true, "plain"),
            ("rediss://cache.example.com:6380", true, "TLS"),
            ("redis://:secret@127.0.0.1:6379", true, "with a password"),
            ("redis://user:secret@127.0.0.1:6379", true, "an ACL user"),
            ("http://127.0.0.1:6379", false, "another scheme"),
            ("not a url", false, "garbage"),
        ];
        for (url, accepted, what) in cases {
            let url = secrecy::SecretString::from(url.to_owned());
            let topologies = [
                RedisTopology::Single(url.clone()),
                RedisTopology::Cluster(vec![url.clone()]),
                RedisTopology::Sentinel {
                    nodes: vec![url],
                    master: "mymaster".to_owned(),
                },
            ];
            for topology in topologies {
                let settings = RedisSettings {
                    topology,
                    key_prefix: "p:".to_owned(),
                    ca_file: None,
                    client_cert: None,
                };
                assert_eq!(RedisLimits::new(&settings).is_ok(), accepted, "{what}");
            }
        }
    }
}
