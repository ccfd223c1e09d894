//! The audit trail (docs/operations.md "Audit trail"): every bind, completion and unbind that passed
//! authentication and the link lookup, with its outcome, the masked number, its country,
//! the client address and the request id.
//!
//! A request about to be sent to AutoShares first has its event committed, with the
//! outcome `unknown` ([`Audit::before_call`], a group commit): a process killed at any
//! moment leaves every call that may have reached AutoShares in the table. Everything
//! else is only queued ([`Audit::record`]), and one task writes the queue in batches: the
//! events of requests refused before that point, and the outcomes of the calls, each its
//! event written again over `unknown`. While the database cannot take them, queued events
//! wait in a bounded queue; when it is full the oldest is forced out and counted in
//! `bff_audit_dropped_total`. At shutdown the queue is written before the process exits;
//! a subject's history written here first shows this process's queued events.

mod group;
mod store;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::Notify;

use crate::client_address::ClientAddress;
use crate::identity::{LinkStore, StoreError};
use crate::ids::{AutosharesUserId, Subject};
use crate::metrics::Metrics;
use crate::phone::{Country, PhoneNumber};

pub use store::{AuditStore, StoredEvent};

use group::GroupCommit;

/// The outcome of an event written before its call, until AutoShares has answered; an
/// event still `unknown` after its request ended belongs to a process that was killed.
pub const UNKNOWN: &str = "unknown";

/// Events written in one transaction at most.
pub const BATCH: usize = 500;
/// How long the writer waits, once something is queued, for a whole batch before it writes
/// what it has: under a steady trickle, about one transaction per `LINGER`.
pub const LINGER: Duration = Duration::from_millis(200);
/// The first wait after a failed write; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often events past `audit.retention_days` are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Bind,
    Complete,
    Unbind,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Complete => "complete",
            Self::Unbind => "unbind",
        }
    }
}

/// The id of an event written before its call, by which its outcome is written after:
/// 96 random bits drawn once per process, then the process's count of ids. Unique across
/// replicas, and rising within a process, so each new id goes to the end of the index
/// (random ids would land on a random page of it each time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId(String);

impl EventId {
    fn new() -> Self {
        static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let process = PROCESS.get_or_init(|| {
            let mut bytes = [0u8; 12];
            aws_lc_rs::rand::fill(&mut bytes).expect("the system random source is available");
            URL_SAFE_NO_PAD.encode(bytes)
        });
        let count = COUNT.fetch_add(1, Ordering::Relaxed);
        let mut digits = [0u8; 16];
        hex::encode_to_slice(count.to_be_bytes(), &mut digits).expect("8 bytes are 16 hex digits");
        let mut id = String::with_capacity(process.len() + digits.len());
        id.push_str(process);
        id.push_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"));
        Self(id)
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

/// One audited request.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: SystemTime,
    pub subject: Subject,
    pub user: AutosharesUserId,
    pub action: Action,
    /// `ok`, or the problem's `code`.
    pub outcome: String,
    /// Masked as in logs.
    pub phone_number: Option<String>,
    pub country: Option<Country>,
    pub client_address: ClientAddress,
    pub request_id: String,
    /// Set once the event is in the database ahead of its call.
    id: Option<EventId>,
}

impl Event {
    pub fn new(
        subject: &Subject,
        user: AutosharesUserId,
        action: Action,
        client: ClientAddress,
        request_id: &str,
    ) -> Self {
        Self {
            at: SystemTime::now(),
            subject: subject.clone(),
            user,
            action,
            outcome: String::new(),
            phone_number: None,
            country: None,
            client_address: client,
            request_id: request_id.to_owned(),
            id: None,
        }
    }

    /// The number the request was about; only its masked form is kept.
    pub fn number(&mut self, number: &PhoneNumber) {
        self.phone_number = Some(number.masked());
        self.country = Some(number.country());
    }
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

struct Queue {
    events: VecDeque<(u64, Event)>,
}

/// The queue and its writer.
pub struct Audit {
    store: AuditStore,
    /// The order of writes in this process, kept with each event (the table's `seq`).
    next_seq: AtomicU64,
    group: GroupCommit,
    queue: Mutex<Queue>,
    /// Held while a batch is written, so the writer and a shutdown flush never write
    /// the same events twice.
    writing: tokio::sync::Mutex<()>,
    capacity: usize,
    wake: Notify,
    retention: Duration,
    metrics: Arc<Metrics>,
}

impl Audit {
    pub fn new(
        links: &LinkStore,
        capacity: usize,
        retention: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let store = AuditStore::new(links);
        Self {
            group: GroupCommit::new(&store),
            store,
            next_seq: AtomicU64::new(0),
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
            }),
            writing: tokio::sync::Mutex::new(()),
            capacity,
            wake: Notify::new(),
            retention,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Commits `event` with the outcome `unknown`, ahead of its call to AutoShares, in a
    /// transaction shared with the requests that arrive meanwhile. On an error the call
    /// must not be made; the event is then an ordinary one again. Either way, the event
    /// with its outcome goes to [`Audit::record`] once the request has one.
    pub async fn before_call(&self, event: &mut Event) -> Result<(), StoreError> {
        let mut ahead = event.clone();
        ahead.id = Some(EventId::new());
        ahead.outcome = UNKNOWN.to_owned();
        let id = ahead.id.clone();
        self.group
            .commit(&self.store, &self.metrics, self.seq(), ahead)
            .await?;
        event.id = id;
        Ok(())
    }

    /// Queues `event`, whose outcome is known, for the writer; never waits for the database.
    /// One written ahead of its call reads `unknown` until the batch that takes it commits
    /// (within `LINGER` while the database takes writes), which then replaces `unknown` on
    /// its row.
    pub fn record(&self, event: Event) {
        let queued = {
            let mut queue = self.lock();
            // Numbered under the lock, so the queue is in the order of its numbers.
            let seq = self.seq();
            queue.events.push_back((seq, event));
            while queue.events.len() > self.capacity {
                queue.events.pop_front();
                self.metrics.audit_dropped();
            }
            queue.events.len()
        };
        self.metrics.audit_queued(queued);
        // The writer waits for the first event and for a whole batch, nothing in between:
        // waking it per event would cost a thread wake-up per request.
        if queued == 1 || queued == BATCH {
            self.wake.notify_one();
        }
    }

    /// How many events wait to be written.
    pub fn queued(&self) -> usize {
        self.lock().events.len()
    }

    /// Writes the oldest batch; answers how many events it wrote.
    async fn write_batch(&self) -> Result<usize, StoreError> {
        let _writing = self.writing.lock().await;
        let batch: Vec<(u64, Event)> = self.lock().events.iter().take(BATCH).cloned().collect();
        let Some((last, _)) = batch.last() else {
            return Ok(0);
        };
        let last = *last;
        let events: Vec<(u64, &Event)> = batch.iter().map(|(seq, e)| (*seq, e)).collect();
        self.store.write(&events).await?;
        self.metrics.audit_batch(batch.len());
        let left = {
            let mut queue = self.lock();
            // Events forced out meanwhile are gone from the front already.
            while queue.events.front().is_some_and(|(seq, _)| *seq <= last) {
                queue.events.pop_front();
            }
            queue.events.len()
        };
        self.metrics.audit_queued(left);
        Ok(batch.len())
    }

    /// The writer: batches what is queued, backing off while the database fails.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            self.gather().await;
            match self.write_batch().await {
                Ok(_) => backoff = FIRST_BACKOFF,
                Err(error) => {
                    tracing::warn!(%error, queued = self.queued(), "audit events not written yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Waits until a batch is worth a transaction: a whole one is queued, or something is
    /// and `LINGER` has passed.
    async fn gather(&self) {
        while self.queued() == 0 {
            self.wake.notified().await;
        }
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while self.queued() < BATCH {
            tokio::select! {
                () = &mut linger => return,
                () = self.wake.notified() => {}
            }
        }
    }

    /// Writes everything queued, trying until `within` has passed (at shutdown, once no
    /// request is left). Answers how many events could not be written.
    pub async fn flush(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        while self.queued() > 0 && Instant::now() < deadline {
            if let Err(error) = self.write_batch().await {
                tracing::warn!(%error, "audit events not written at shutdown yet");
                tokio::time::sleep(FIRST_BACKOFF).await;
            }
        }
        let left = self.queued();
        if left > 0 {
            tracing::error!(
                left,
                "audit events lost at shutdown: the database did not take them"
            );
        }
        left
    }

    /// Deletes events past `audit.retention_days`, now and then every hour.
    pub async fn prune_forever(self: Arc<Self>) {
        loop {
            let before = unix_millis(SystemTime::now() - self.retention);
            match self.store.delete_before(before).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "audit events past retention deleted"),
                Err(error) => tracing::warn!(%error, "audit retention could not run"),
            }
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    }

    /// A subject's events, newest first: this process's events queued until now are
    /// written first, so the history read from the replica that answered a request shows
    /// its outcome. If they cannot be written, what is stored is read all the same.
    pub async fn history(
        &self,
        subject: &Subject,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.write_queued_before(self.next_seq.load(Ordering::Relaxed))
            .await;
        self.store.history(subject, limit).await
    }

    /// Writes the queued events numbered below `end`, batch by batch, until one fails.
    async fn write_queued_before(&self, end: u64) {
        while self
            .lock()
            .events
            .front()
            .is_some_and(|(seq, _)| *seq < end)
        {
            if self.write_batch().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_share_the_processs_part_and_end_in_its_count_as_16_hex_digits() {
        let first = EventId::new();
        let second = EventId::new();
        let (head, count) = first.as_str().split_at(first.as_str().len() - 16);
        let (next_head, next_count) = second.as_str().split_at(second.as_str().len() - 16);
        assert_eq!(head.len(), 16, "96 random bits in base64url: {first:?}");
        assert_eq!(head, next_head, "one process, one random part");
        let count = u64::from_str_radix(count, 16).unwrap();
        let next = u64::from_str_radix(next_count, 16).unwrap();
        assert!(next > count, "rising: {first:?}, {second:?}");
        assert_eq!(
            second.as_str(),
            format!("{head}{next:016x}"),
            "lower-case, zero-padded"
        );
    }
}
