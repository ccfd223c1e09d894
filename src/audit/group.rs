//! Group commit: the events that must be in the database before their request goes on
//! wait for a statement that writes them, and the events that arrive while the statements
//! the database takes at once are running share the next one. No task of its own: a
//! waiter that finds a statement free to run writes what is pending (its own event and
//! those of the others, up to one statement's worth), and each other waiter is answered
//! when the statement that took its event commits. One request alone costs one statement
//! and no thread hop; many at once cost about one statement per round trip, whatever
//! their number.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::identity::StoreError;
use crate::metrics::Metrics;

use super::Event;
use super::store::{AuditStore, ROWS_PER_STATEMENT};

type Answer = Result<(), Arc<StoreError>>;
/// A write, its sequence number, and where its answer goes.
type Waiting = (u64, Event, oneshot::Sender<Answer>);

pub(super) struct GroupCommit {
    pending: Mutex<Vec<Waiting>>,
    /// One permit per statement that may run at once: while they all run, the writes
    /// that arrive gather for the next.
    committing: tokio::sync::Semaphore,
}

impl GroupCommit {
    pub(super) fn new(store: &AuditStore) -> Self {
        Self {
            pending: Mutex::default(),
            committing: tokio::sync::Semaphore::new(store.concurrent_writes()),
        }
    }

    /// Writes `event` in a statement shared with every event pending with it; answers
    /// once that statement committed or failed.
    pub(super) async fn commit(
        &self,
        store: &AuditStore,
        metrics: &Metrics,
        seq: u64,
        event: Event,
    ) -> Result<(), StoreError> {
        let (done, mut answer) = oneshot::channel();
        self.lock().push((seq, event, done));
        loop {
            // The answer may come from another's statement while this waits for its turn
            // to lead one: then it returns at once, and leaves its place in the line.
            let turn = tokio::select! {
                biased;
                answered = &mut answer => return answered_with(answered.ok()),
                turn = self.committing.acquire() => turn,
            };
            if let Some(answered) = ready(&mut answer) {
                return answered;
            }
            let taken: Vec<_> = {
                let mut pending = self.lock();
                let count = pending.len().min(ROWS_PER_STATEMENT);
                pending.drain(..count).collect()
            };
            if taken.is_empty() {
                // Another statement running at once took this write: its answer will come.
                drop(turn);
                return answered_with(answer.await.ok());
            }
            let events: Vec<(u64, &Event)> = taken.iter().map(|(seq, e, _)| (*seq, e)).collect();
            // Boxed: the database client's future is kilobytes, and only a leader needs it.
            let result = Box::pin(store.write(&events)).await.map_err(Arc::new);
            drop(turn);
            if result.is_ok() {
                metrics.audit_batch(events.len());
            }
            drop(events);
            for (_, _, waiter) in taken {
                // A waiter is gone only if its request was cancelled; nothing to tell it.
                let _ = waiter.send(result.clone());
            }
            // This write was in the statement unless a whole one was pending before it.
            if let Some(answered) = ready(&mut answer) {
                return answered;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The answer to a write, once a statement took it.
fn ready(answer: &mut oneshot::Receiver<Answer>) -> Option<Result<(), StoreError>> {
    match answer.try_recv() {
        Ok(answer) => Some(answered_with(Some(answer))),
        Err(oneshot::error::TryRecvError::Closed) => Some(answered_with(None)),
        Err(oneshot::error::TryRecvError::Empty) => None,
    }
}

fn answered_with(answered: Option<Answer>) -> Result<(), StoreError> {
    match answered {
        Some(Ok(())) => Ok(()),
        Some(Err(error)) => Err(StoreError::Shared(error)),
        // The statement that took this write was cancelled: what it wrote is unknown.
        None => Err(StoreError::Timeout),
    }
}
