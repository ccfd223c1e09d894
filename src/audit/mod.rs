//! The audit trail (docs/operations.md "Audit trail"): every bind, completion and unbind that passed
//! authentication and the link lookup, with its outcome, the masked number, its country,
//! the client address and the request id. Requests only queue an event; one task writes
//! the queue in batches. While the database cannot take them, events wait in a bounded
//! queue; when it is full the oldest is forced out and counted in `bff_audit_dropped_total`.
//! At shutdown the queue is written before the process exits.

mod store;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::client_address::ClientAddress;
use crate::identity::LinkStore;
use crate::ids::{AutosharesUserId, Subject};
use crate::metrics::Metrics;
use crate::phone::{Country, PhoneNumber};

pub use store::{AuditStore, StoredEvent};

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
        }
    }

    /// The number the request was about; only its masked form is kept.
    pub fn number(&mut self, number: &PhoneNumber) {
        self.phone_number = Some(number.to_string());
        self.country = Some(number.country());
    }
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

struct Queue {
    events: VecDeque<(u64, Event)>,
    next_seq: u64,
}

/// The queue and its writer.
pub struct Audit {
    store: AuditStore,
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
        Self {
            store: AuditStore::new(links),
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                next_seq: 0,
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

    /// Queues `event` for the writer; never waits for the database.
    pub fn record(&self, event: Event) {
        let queued = {
            let mut queue = self.lock();
            let seq = queue.next_seq;
            queue.next_seq += 1;
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
    async fn write_batch(&self) -> Result<usize, crate::identity::StoreError> {
        let _writing = self.writing.lock().await;
        let batch: Vec<(u64, Event)> = self.lock().events.iter().take(BATCH).cloned().collect();
        let Some((last, _)) = batch.last() else {
            return Ok(0);
        };
        let last = *last;
        self.store.insert(&batch).await?;
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

    /// A subject's events, newest first.
    pub async fn history(
        &self,
        subject: &Subject,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, crate::identity::StoreError> {
        self.store.history(subject, limit).await
    }
}
