//! In-process limits for a single replica: every quota, budget and breaker of a bind
//! decided under one lock (all checked, then all taken), plus wrong-code counts per
//! verification token. Numbers are kept only as keyed hashes; user ids as integers.
//!
//! Idle state is dropped by [`MemoryLimits::evict_idle`], which `startup` runs on a timer.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::config::{Quota, RuleMode};
use crate::phone::Country;
use crate::verification::AttemptKey;

use super::gcra;
use super::idempotency::{IN_FLIGHT_TTL, Record};
use super::keyed_hash::Digest;
use super::rules::{
    BindFacts, Budget, Decision, PER_CLIENT, PER_PHONE, PER_USER, Policy, Refusal, Scope, Taken,
    block_length, trips,
};
use super::{Attempt, BlockView};

/// At most this many breaker scopes (countries and prefixes) are counted at once; past
/// it, new prefixes go uncounted until idle ones are dropped (the country still counts).
const MAX_SCOPES: usize = 200_000;
/// How long a full scope table waits before it looks for idle scopes again.
const SCOPE_RESCAN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket {
    User(i64),
    Phone(Digest),
    Client(Digest),
    Global,
    Country(Country),
    Prefix(Digest),
}

/// The quotas' arrival times, a table per kind of key so that each entry is two words: a
/// user id or the first 8 bytes of a keyed hash, and nanoseconds on this process's clock.
/// At a million users that is what keeps the limiter small; two numbers sharing 8 bytes
/// of a keyed hash (odds about 1 in 3 * 10^7 at a million numbers) would share a quota.
#[derive(Default)]
struct Tats {
    users: HashMap<i64, u64>,
    phones: HashMap<u64, u64>,
    clients: HashMap<u64, u64>,
    prefixes: HashMap<u64, u64>,
    countries: HashMap<Country, u64>,
    global: Option<u64>,
}

fn short(digest: &Digest) -> u64 {
    let mut head = [0; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(head)
}

fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

impl Tats {
    fn get(&self, bucket: &Bucket) -> Option<Duration> {
        let nanos = match bucket {
            Bucket::User(user) => self.users.get(user),
            Bucket::Phone(digest) => self.phones.get(&short(digest)),
            Bucket::Client(digest) => self.clients.get(&short(digest)),
            Bucket::Prefix(digest) => self.prefixes.get(&short(digest)),
            Bucket::Country(country) => self.countries.get(country),
            Bucket::Global => self.global.as_ref(),
        };
        nanos.copied().map(Duration::from_nanos)
    }

    fn insert(&mut self, bucket: Bucket, tat: Duration) {
        let tat = nanos(tat);
        match bucket {
            Bucket::User(user) => _ = self.users.insert(user, tat),
            Bucket::Phone(digest) => _ = self.phones.insert(short(&digest), tat),
            Bucket::Client(digest) => _ = self.clients.insert(short(&digest), tat),
            Bucket::Prefix(digest) => _ = self.prefixes.insert(short(&digest), tat),
            Bucket::Country(country) => _ = self.countries.insert(country, tat),
            Bucket::Global => self.global = Some(tat),
        }
    }

    /// Forgets every quota that is full again at `now`.
    fn evict_full(&mut self, now: Duration) {
        let now = nanos(now);
        keep_pending(&mut self.users, now);
        keep_pending(&mut self.phones, now);
        keep_pending(&mut self.clients, now);
        keep_pending(&mut self.prefixes, now);
        keep_pending(&mut self.countries, now);
        self.global = self.global.filter(|tat| *tat > now);
    }

    fn len(&self) -> usize {
        self.users.len()
            + self.phones.len()
            + self.clients.len()
            + self.prefixes.len()
            + self.countries.len()
            + usize::from(self.global.is_some())
    }
}

/// The bit of `Taken` that names `bucket`.
fn bit_of(bucket: &Bucket) -> u8 {
    match bucket {
        Bucket::User(_) => Taken::USER,
        Bucket::Phone(_) => Taken::PHONE,
        Bucket::Client(_) => Taken::CLIENT,
        Bucket::Global => Taken::GLOBAL,
        Bucket::Country(_) => Taken::COUNTRY,
        Bucket::Prefix(_) => Taken::PREFIX,
    }
}

/// Every quota and budget a bind of `facts` may take, with its bit and its quota (`None`:
/// off).
fn buckets(facts: &BindFacts<'_>, policy: &Policy) -> Vec<(u8, Bucket, Option<Quota>)> {
    let mut all = vec![
        (
            Taken::USER,
            Bucket::User(facts.user.0),
            Some(policy.per_user),
        ),
        (
            Taken::PHONE,
            Bucket::Phone(facts.phone_digest),
            Some(policy.per_phone),
        ),
    ];
    if let Some(digest) = facts.client_digest {
        all.push((Taken::CLIENT, Bucket::Client(digest), policy.per_client));
    }
    for (budget, quota, _) in policy.budgets(facts.country) {
        let bucket = match budget {
            Budget::Global => Bucket::Global,
            Budget::Country => Bucket::Country(facts.country),
            Budget::Prefix => Bucket::Prefix(facts.prefix_digest),
        };
        all.push((Taken::of_budget(budget), bucket, quota));
    }
    all
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ScopeKey {
    Country(Country),
    Prefix(Digest),
}

struct ScopeState {
    /// `ES` or `+3463595`, for operators.
    label: String,
    window_start: Duration,
    sends: u32,
    completions: u32,
    blocked_until: Option<Duration>,
    /// When the last trip happened and how long its block was.
    last_trip: Option<(Duration, Duration)>,
}

#[derive(Default)]
struct State {
    tats: Tats,
    scopes: HashMap<ScopeKey, ScopeState>,
    safe: BTreeSet<String>,
    attempts: HashMap<AttemptKey, AttemptCount>,
    records: HashMap<Digest, (Record, Instant)>,
    /// At most this many breaker scopes are counted at once.
    max_scopes: usize,
    /// While the scope table is full of live scopes, looking for idle ones again waits
    /// until then: a flood of new prefixes must not cost a scan each.
    scopes_full_until: Duration,
}

struct AttemptCount {
    count: u32,
    used: bool,
    forget_at: Instant,
}

/// Every bind decision and attempt count, in this process only.
pub struct MemoryLimits {
    origin: Instant,
    state: Mutex<State>,
}

impl MemoryLimits {
    /// Limits whose safe-list starts as `abuse.safe`.
    pub fn new(safe: &[String]) -> Self {
        let state = State {
            safe: safe.iter().cloned().collect(),
            max_scopes: MAX_SCOPES,
            ..State::default()
        };
        Self {
            origin: Instant::now(),
            state: Mutex::new(state),
        }
    }

    /// This process's clock as the GCRA reads it.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("limiter lock poisoned")
    }

    /// Decides one bind at `now`: every quota and rule is checked, and only when none
    /// refuses is anything taken (docs/api.md).
    pub fn admit_bind(&self, facts: &BindFacts<'_>, policy: &Policy, now: Duration) -> Decision {
        let mut state = self.lock();
        state.decide(facts, policy, now)
    }

    /// Gives back what an admitted bind `taken` (its call never reached AutoShares): one
    /// unit of each quota and budget, and its send in the breaker's windows.
    pub fn give_back(&self, facts: &BindFacts<'_>, policy: &Policy, taken: Taken) {
        let mut state = self.lock();
        for (bit, bucket, quota) in buckets(facts, policy) {
            if let (true, Some(quota)) = (taken.has(bit), quota)
                && let Some(tat) = state.tats.get(&bucket)
            {
                state
                    .tats
                    .insert(bucket, tat.saturating_sub(quota.refill_interval()));
            }
        }
        if taken.has(Taken::SEND) {
            for key in scope_keys(facts) {
                if let Some(scope) = state.scopes.get_mut(&key) {
                    scope.sends = scope.sends.saturating_sub(1);
                }
            }
        }
    }

    /// Counts a completed binding for the number's country and prefix.
    pub fn record_completion(&self, facts: &BindFacts<'_>, now: Duration, window: Duration) {
        let mut state = self.lock();
        // A safe-listed number counts in neither direction (docs/abuse.md).
        if state.is_safe(facts.phone.as_e164()) {
            return;
        }
        for key in scope_keys(facts) {
            if let Some(scope) = state.scopes.get_mut(&key)
                && now < scope.window_start + window
            {
                scope.completions += 1;
            }
        }
    }

    /// The arrival time of `user`'s quota, if it has one.
    pub fn user_tat(&self, user: i64) -> Option<Duration> {
        self.lock().tats.get(&Bucket::User(user))
    }

    /// Active breaker blocks, as of `now`.
    pub fn blocks(&self, now: Duration) -> Vec<BlockView> {
        let state = self.lock();
        let mut blocks: Vec<BlockView> = state
            .scopes
            .iter()
            .filter_map(|(key, scope)| {
                let until = scope.blocked_until.filter(|until| *until > now)?;
                Some(BlockView {
                    scope: match key {
                        ScopeKey::Country(_) => Scope::Country,
                        ScopeKey::Prefix(_) => Scope::Prefix,
                    },
                    key: scope.label.clone(),
                    remaining: until - now,
                })
            })
            .collect();
        blocks.sort_by(|a, b| a.key.cmp(&b.key));
        blocks
    }

    /// Lifts the block of `scope` named `label` and starts its window afresh.
    pub fn lift_block(&self, scope: Scope, label: &str, now: Duration) -> bool {
        let mut state = self.lock();
        let found = state.scopes.iter_mut().find(|(key, s)| {
            s.label == label
                && matches!(
                    (scope, key),
                    (Scope::Country, ScopeKey::Country(_)) | (Scope::Prefix, ScopeKey::Prefix(_))
                )
        });
        match found {
            Some((_, s)) if s.blocked_until.is_some_and(|until| until > now) => {
                s.blocked_until = None;
                s.window_start = now;
                s.sends = 0;
                s.completions = 0;
                true
            }
            _ => false,
        }
    }

    /// The record `name`, or `None` after marking it in flight with `fingerprint`.
    pub fn begin_record(&self, name: Digest, fingerprint: Digest) -> Option<Record> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some((record, expires)) = state.records.get(&name)
            && *expires > now
        {
            return Some(record.clone());
        }
        let marker = (Record::InFlight(fingerprint), now + IN_FLIGHT_TTL);
        state.records.insert(name, marker);
        None
    }

    pub fn finish_record(&self, name: Digest, sealed: Vec<u8>, ttl: Duration) {
        let entry = (Record::Done(sealed), Instant::now() + ttl);
        self.lock().records.insert(name, entry);
    }

    /// Drops the in-flight marker `name` if it is still this bind's.
    pub fn abandon_record(&self, name: Digest, fingerprint: Digest) {
        let mut state = self.lock();
        if matches!(state.records.get(&name), Some((Record::InFlight(f), _)) if *f == fingerprint) {
            state.records.remove(&name);
        }
    }

    pub fn safe_list(&self) -> Vec<String> {
        self.lock().safe.iter().cloned().collect()
    }

    pub fn add_safe(&self, entry: &str) {
        self.lock().safe.insert(entry.to_owned());
    }

    pub fn remove_safe(&self, entry: &str) -> bool {
        self.lock().safe.remove(entry)
    }

    /// Takes one attempt for `token_key` unless it is used or has had `max` already.
    /// The count is kept for `keep` (the token's remaining lifetime).
    pub fn begin_attempt(&self, token_key: AttemptKey, max: u32, keep: Duration) -> Attempt {
        self.with_attempts(token_key, keep, |entry| {
            if entry.used {
                Attempt::Used
            } else if entry.count >= max {
                Attempt::Exhausted
            } else {
                entry.count += 1;
                Attempt::Allowed
            }
        })
    }

    /// Gives back an attempt that AutoShares never judged (it failed or timed out).
    pub fn refund_attempt(&self, token_key: AttemptKey, keep: Duration) {
        self.with_attempts(token_key, keep, |entry| {
            entry.count = entry.count.saturating_sub(1);
        });
    }

    /// Marks `token_key` as having completed its binding: it cannot be used again.
    pub fn mark_used(&self, token_key: AttemptKey, keep: Duration) {
        self.with_attempts(token_key, keep, |entry| entry.used = true);
    }

    fn with_attempts<T>(
        &self,
        key: AttemptKey,
        keep: Duration,
        f: impl FnOnce(&mut AttemptCount) -> T,
    ) -> T {
        let now = Instant::now();
        let mut state = self.lock();
        let entry = state.attempts.entry(key).or_insert(AttemptCount {
            count: 0,
            used: false,
            forget_at: now + keep,
        });
        if entry.forget_at <= now {
            *entry = AttemptCount {
                count: 0,
                used: false,
                forget_at: now + keep,
            };
        }
        entry.forget_at = entry.forget_at.max(now + keep);
        f(entry)
    }

    /// Forgets quotas that are full again, breaker windows that ended with no block to
    /// remember, and attempt counts past their token's lifetime.
    pub fn evict_idle(&self, window: Duration) {
        let now = self.now();
        let instant = Instant::now();
        let mut state = self.lock();
        state.tats.evict_full(now);
        state.scopes.retain(|_, scope| !scope.idle(now, window));
        shrink_if_sparse(&mut state.scopes);
        state.attempts.retain(|_, entry| entry.forget_at > instant);
        shrink_if_sparse(&mut state.attempts);
        state.records.retain(|_, (_, expires)| *expires > instant);
        shrink_if_sparse(&mut state.records);
    }

    /// How many keys the quotas and the breaker hold now.
    pub fn tracked_keys(&self) -> usize {
        let state = self.lock();
        state.tats.len() + state.scopes.len()
    }
}

/// Keeps the arrival times still after `now`.
fn keep_pending<K: std::hash::Hash + Eq>(table: &mut HashMap<K, u64>, now: u64) {
    table.retain(|_, tat| *tat > now);
    shrink_if_sparse(table);
}

/// Gives memory back only when a table is mostly empty. Under a steady load each pass
/// evicts about as much as the next minute adds, so a table kept at its size is reused;
/// shrinking it every pass would reallocate the largest blocks of the process each
/// minute, and the allocator would keep the freed ones.
fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(table: &mut HashMap<K, V>) {
    if table.len() < table.capacity() / 4 {
        table.shrink_to(table.len() * 2);
    }
}

fn scope_keys(facts: &BindFacts<'_>) -> [ScopeKey; 2] {
    [
        ScopeKey::Country(facts.country),
        ScopeKey::Prefix(facts.prefix_digest),
    ]
}

impl ScopeState {
    fn idle(&self, now: Duration, window: Duration) -> bool {
        let window_over = now >= self.window_start + window;
        let blocked = self.blocked_until.is_some_and(|until| until > now);
        let remembered = self
            .last_trip
            .is_some_and(|(at, _)| now.saturating_sub(at) < super::rules::MAX_BLOCK);
        window_over && !blocked && !remembered
    }
}

impl State {
    fn decide(&mut self, facts: &BindFacts<'_>, policy: &Policy, now: Duration) -> Decision {
        let mut decision = Decision::default();
        let mut takes = Vec::with_capacity(5);
        let client = facts.client_digest.zip(policy.per_client);
        let quotas = [
            Some((Bucket::User(facts.user.0), policy.per_user, PER_USER)),
            Some((
                Bucket::Phone(facts.phone_digest),
                policy.per_phone,
                PER_PHONE,
            )),
            client.map(|(digest, quota)| (Bucket::Client(digest), quota, PER_CLIENT)),
        ];
        for (bucket, quota, limit) in quotas.into_iter().flatten() {
            match gcra::step(self.tats.get(&bucket), now, &quota) {
                Ok(tat) => takes.push((bucket, tat)),
                Err(retry_after) => {
                    decision.refusal = Some(Refusal::Quota { limit, retry_after });
                    return decision;
                }
            }
        }
        let safe = self.is_safe(facts.phone.as_e164());
        let abuse = &policy.abuse;
        let counting = !safe && abuse.conversion.mode != RuleMode::Off;
        if counting {
            for scope in [Scope::Country, Scope::Prefix] {
                if let Some(refusal) = self.breaker(facts, scope, policy, now, &mut decision) {
                    decision.refusal = Some(refusal);
                    return decision;
                }
            }
        }
        if !safe {
            for (budget, quota, mode) in policy.budgets(facts.country) {
                let Some(quota) = quota.filter(|_| mode != RuleMode::Off) else {
                    continue;
                };
                let bucket = match budget {
                    Budget::Global => Bucket::Global,
                    Budget::Country => Bucket::Country(facts.country),
                    Budget::Prefix => Bucket::Prefix(facts.prefix_digest),
                };
                match gcra::step(self.tats.get(&bucket), now, &quota) {
                    Ok(tat) => takes.push((bucket, tat)),
                    Err(_) if mode == RuleMode::Shadow => decision.shadowed.push(budget.rule()),
                    Err(retry_after) => {
                        decision.refusal = Some(Refusal::Budget {
                            rule: budget.rule(),
                            retry_after,
                        });
                        return decision;
                    }
                }
            }
        }
        for (bucket, tat) in takes {
            decision.taken.0 |= bit_of(&bucket);
            self.tats.insert(bucket, tat);
        }
        if counting {
            decision.taken.0 |= Taken::SEND;
            for key in scope_keys(facts) {
                // A scope the breaker could not hold (the table is full) goes uncounted.
                if let Some(state) = self.scopes.get_mut(&key) {
                    state.sends += 1;
                }
            }
        }
        decision
    }

    /// The breaker of one scope before a bind: refuses while blocked, trips on low
    /// conversion, and makes sure the scope is counted.
    fn breaker(
        &mut self,
        facts: &BindFacts<'_>,
        scope: Scope,
        policy: &Policy,
        now: Duration,
        decision: &mut Decision,
    ) -> Option<Refusal> {
        let conversion = &policy.abuse.conversion;
        let key = match scope {
            Scope::Country => ScopeKey::Country(facts.country),
            Scope::Prefix => ScopeKey::Prefix(facts.prefix_digest),
        };
        if !self.scopes.contains_key(&key) {
            if self.scopes.len() >= self.max_scopes && now >= self.scopes_full_until {
                self.scopes.retain(|_, s| !s.idle(now, conversion.window));
                if self.scopes.len() >= self.max_scopes {
                    self.scopes_full_until = now + SCOPE_RESCAN;
                }
            }
            if scope == Scope::Prefix && self.scopes.len() >= self.max_scopes {
                return None;
            }
            self.scopes.insert(
                key,
                ScopeState {
                    label: facts.scope_key(scope).to_owned(),
                    window_start: now,
                    sends: 0,
                    completions: 0,
                    blocked_until: None,
                    last_trip: None,
                },
            );
        }
        let state = self.scopes.get_mut(&key).expect("inserted above");
        if let Some(until) = state.blocked_until {
            if until > now {
                return Some(Refusal::Blocked { rule: scope.rule() });
            }
            // The block ended: its counts start afresh.
            state.blocked_until = None;
            state.window_start = now;
            state.sends = 0;
            state.completions = 0;
        }
        if now >= state.window_start + conversion.window {
            state.window_start = now;
            state.sends = 0;
            state.completions = 0;
        }
        let min_sends = scope.min_sends(&policy.abuse);
        if !trips(
            state.sends,
            state.completions,
            min_sends,
            conversion.min_ratio,
        ) {
            return None;
        }
        state.window_start = now;
        state.sends = 0;
        state.completions = 0;
        if conversion.mode == RuleMode::Shadow {
            decision.shadowed.push(scope.rule());
            return None;
        }
        let length = block_length(state.last_trip, now, conversion.block);
        state.last_trip = Some((now, length));
        state.blocked_until = Some(now + length);
        Some(Refusal::Blocked { rule: scope.rule() })
    }

    /// Whether the number, or any prefix of it, is on the safe-list.
    fn is_safe(&self, e164: &str) -> bool {
        !self.safe.is_empty() && (2..=e164.len()).any(|end| self.safe.contains(&e164[..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AutosharesUserId;
    use crate::limits::testing::{hash, policy};
    use crate::phone::PhoneNumber;

    fn decide(
        limits: &MemoryLimits,
        policy: &Policy,
        user: i64,
        phone: &str,
        now: Duration,
    ) -> Option<Refusal> {
        let hash = hash();
        let phone = PhoneNumber::from_trusted_e164(phone.to_owned());
        let facts = BindFacts::new(AutosharesUserId(user), &phone, None, policy, &hash);
        limits.admit_bind(&facts, policy, now).refusal
    }

    const T0: Duration = Duration::from_secs(10);

    #[test]
    fn a_refused_bind_takes_nothing_from_any_quota() {
        let limits = MemoryLimits::new(&[]);
        let policy = policy("2/hour", "1/day");
        assert_eq!(decide(&limits, &policy, 1, "+34635952910", T0), None);
        let refused = decide(&limits, &policy, 2, "+34635952910", T0);
        assert!(
            matches!(
                refused,
                Some(Refusal::Quota {
                    limit: "bind_per_phone",
                    ..
                })
            ),
            "{refused:?}"
        );
        // User 2's unit was not taken by the refusal: both of its units are still there.
        assert_eq!(decide(&limits, &policy, 2, "+34635952911", T0), None);
        assert_eq!(decide(&limits, &policy, 2, "+34635952912", T0), None);
        assert!(decide(&limits, &policy, 2, "+34635952913", T0).is_some());
    }

    #[test]
    fn the_users_quota_counts_down_and_refills() {
        let limits = MemoryLimits::new(&[]);
        let policy = policy("3/hour", "100/day");
        for i in 0..3 {
            assert_eq!(
                decide(&limits, &policy, 1, &format!("+3463595291{i}"), T0),
                None
            );
        }
        let quota = |now| gcra::remaining(limits.user_tat(1), now, &policy.per_user);
        assert_eq!(quota(T0), (0, Duration::from_secs(1200)));
        assert_eq!(quota(T0 + Duration::from_secs(1200)).0, 1);
    }

    #[test]
    fn breaker_scopes_are_bounded_and_idle_ones_are_evicted() {
        let limits = MemoryLimits::new(&[]);
        limits.lock().max_scopes = 1_000;
        let policy = policy("1000000/second", "1000000/second");
        for i in 0..3_000 {
            // Prefixes of 8 digits: every bind a new one.
            let phone = format!("+1{:010}", 2_000_000_000 + i * 10_000);
            decide(&limits, &policy, 1, &phone, T0);
        }
        // Prefixes stop at the bound; countries (about 250 at most) are always counted.
        let scopes = limits.lock().scopes.len();
        assert!(scopes <= 1_000 + 1, "{scopes} scopes");
        let after_window = policy.abuse.conversion.window + T0;
        limits
            .lock()
            .scopes
            .retain(|_, s| !s.idle(after_window, policy.abuse.conversion.window));
        assert_eq!(limits.lock().scopes.len(), 0, "idle scopes are dropped");
    }
}
