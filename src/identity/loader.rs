//! Link lookups, coalesced: up to [`LANES`] statements read links at a time; a lookup that
//! arrives while all of them are in flight waits, and the lookups that waited go to the
//! database together in the next statement (up to [`MAX_BATCH`] subjects in one `IN`
//! list). An idle service reads a link at once; a busy one makes one round trip for many
//! callers instead of one each, which is what a load of many distinct callers (each a cache
//! miss) costs most. More than one lane keeps one slow statement from holding every lookup.
//!
//! Links read again in the background (their callers are answered from the cache meanwhile)
//! first gather for [`GATHER`], so that the links of the callers who keep calling are read
//! a statement or a few at a time rather than one statement each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::ids::{AutosharesUserId, Subject};
use crate::metrics::Metrics;

use super::store::{CALL_TIMEOUT, LinkStore, StoreError};

/// The most subjects one statement reads.
pub const MAX_BATCH: usize = 64;
/// The most statements reading links at a time (of the pool's five reading connections on SQLite,
/// ten on PostgreSQL).
pub const LANES: usize = 4;
/// How long a link to read again in the background waits for others to share its
/// statement. An entry is read again in the last second of its life and is served
/// meanwhile, so the wait costs its callers nothing.
const GATHER: Duration = Duration::from_millis(100);

type Answer = Result<Option<AutosharesUserId>, Arc<StoreError>>;

pub struct LinkLoader {
    store: LinkStore,
    metrics: Arc<Metrics>,
    queue: Mutex<Queue>,
}

type Waiting = Vec<(Subject, oneshot::Sender<Answer>)>;

#[derive(Default)]
struct Queue {
    waiting: Waiting,
    /// The tasks reading links; each takes what waits before it stops.
    readers: usize,
    /// Links to read again, gathering until [`GATHER`] after the first of them.
    gathering: Waiting,
}

impl Queue {
    /// Whether the caller should start a reader: one more may read.
    fn lead(&mut self) -> bool {
        let lead = self.readers < LANES;
        self.readers += usize::from(lead);
        lead
    }
}

impl LinkLoader {
    pub fn new(store: LinkStore, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            queue: Mutex::default(),
        })
    }

    /// The link of `subject`. The whole wait, the statement in flight before it included,
    /// is bounded by the store's bound on one call.
    pub async fn fetch(
        self: &Arc<Self>,
        subject: &Subject,
    ) -> Result<Option<AutosharesUserId>, StoreError> {
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut queue = self.queue();
            queue.waiting.push((subject.clone(), answer));
            queue.lead()
        };
        if lead {
            // A task of its own, so that a caller who goes away does not take the
            // statement (and every other caller's answer) with it. It is a task of this
            // worker (requests run on actix-web's workers, each a LocalSet): on the
            // runtime's own queue it made the slowest lookups slower under load.
            tokio::task::spawn_local(Arc::clone(self).read_while_waiting());
        }
        wait_for(answered, CALL_TIMEOUT).await
    }

    /// The link of `subject`, read again in the background: with the others asked for
    /// within [`GATHER`] of the first of them, in as few statements as they fit.
    pub async fn fetch_again(
        self: &Arc<Self>,
        subject: &Subject,
    ) -> Result<Option<AutosharesUserId>, StoreError> {
        let (answer, answered) = oneshot::channel();
        let first = {
            let mut queue = self.queue();
            queue.gathering.push((subject.clone(), answer));
            queue.gathering.len() == 1
        };
        if first {
            tokio::task::spawn_local(Arc::clone(self).gather());
        }
        wait_for(answered, GATHER + CALL_TIMEOUT).await
    }

    /// Hands what gathered for [`GATHER`] to the readers, reading it itself when one more
    /// may read.
    async fn gather(self: Arc<Self>) {
        let stop = StopGathering(&self);
        tokio::time::sleep(GATHER).await;
        std::mem::forget(stop);
        let lead = {
            let mut queue = self.queue();
            let gathered = std::mem::take(&mut queue.gathering);
            queue.waiting.extend(gathered);
            queue.lead()
        };
        if lead {
            self.read_while_waiting().await;
        }
    }

    async fn read_while_waiting(self: Arc<Self>) {
        let stop = StopReading(&self);
        loop {
            let batch: Vec<_> = {
                let mut queue = self.queue();
                if queue.waiting.is_empty() {
                    queue.readers -= 1;
                    std::mem::forget(stop);
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let found = {
                let mut subjects: Vec<&Subject> =
                    batch.iter().map(|(subject, _)| subject).collect();
                subjects.sort_unstable();
                subjects.dedup();
                self.metrics.link_batch(subjects.len());
                self.store.fetch_links(&subjects).await.map_err(Arc::new)
            };
            for (subject, answer) in batch {
                let user = match &found {
                    Ok(links) => Ok(links.get(&subject).copied()),
                    Err(error) => Err(Arc::clone(error)),
                };
                // A caller who stopped waiting has dropped its receiver.
                let _ = answer.send(user);
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().expect("link loader lock poisoned")
    }
}

/// The answer a lookup waits for, within `bound`.
async fn wait_for(
    answered: oneshot::Receiver<Answer>,
    bound: Duration,
) -> Result<Option<AutosharesUserId>, StoreError> {
    match tokio::time::timeout(bound, answered).await {
        Ok(Ok(answer)) => answer.map_err(StoreError::Shared),
        // Out of time, or the reader ended without answering (its runtime stopped).
        Ok(Err(_)) | Err(_) => Err(StoreError::Timeout),
    }
}

/// Ends a gathering whose task is dropped before it handed its links over: their lookups
/// fail at once (their entries then expire), and the next link to read again starts a new
/// gathering.
struct StopGathering<'a>(&'a LinkLoader);

impl Drop for StopGathering<'_> {
    fn drop(&mut self) {
        self.0.queue().gathering.clear();
    }
}

/// Ends a reader whose task is dropped or panics. If it was the last, the callers waiting
/// get an error at once; the next lookup starts a new reader.
struct StopReading<'a>(&'a LinkLoader);

impl Drop for StopReading<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        queue.readers -= 1;
        if queue.readers == 0 {
            queue.waiting.clear();
        }
    }
}
