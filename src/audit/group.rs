//! Group commit: the writes that must be in the database before their request goes on
//! wait for a transaction, and every write that arrived while one ran shares the next.
//! No task of its own: the first waiter to find no transaction running writes what is
//! pending (its own write and those of the others), and each other waiter finds its answer
//! ready when its turn comes. One request alone costs one transaction and no thread hop;
//! many at once cost about one transaction per round trip, whatever their number.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::identity::StoreError;
use crate::metrics::Metrics;

use super::BATCH;
use super::store::{AuditStore, Write};

type Answer = Result<(), Arc<StoreError>>;
/// A write, its sequence number, and where its answer goes.
type Waiting = (u64, Write, oneshot::Sender<Answer>);

#[derive(Default)]
pub(super) struct GroupCommit {
    pending: Mutex<Vec<Waiting>>,
    /// Held while a transaction runs: one at a time, so the writes that arrive meanwhile
    /// gather for the next.
    committing: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Writes `write` in a transaction shared with every write pending with it; answers
    /// once that transaction committed or failed.
    pub(super) async fn commit(
        &self,
        store: &AuditStore,
        metrics: &Metrics,
        seq: u64,
        write: Write,
    ) -> Result<(), StoreError> {
        let (done, mut answer) = oneshot::channel();
        self.lock().push((seq, write, done));
        loop {
            let _turn = self.committing.lock().await;
            if let Some(answered) = ready(&mut answer) {
                return answered;
            }
            let taken: Vec<_> = {
                let mut pending = self.lock();
                let count = pending.len().min(BATCH);
                pending.drain(..count).collect()
            };
            let (writes, waiters): (Vec<_>, Vec<_>) = taken
                .into_iter()
                .map(|(seq, write, done)| ((seq, write), done))
                .unzip();
            let result = store.write(&writes).await.map_err(Arc::new);
            if result.is_ok() {
                metrics.audit_batch(writes.len());
            }
            for waiter in waiters {
                // A waiter is gone only if its request was cancelled; nothing to tell it.
                let _ = waiter.send(result.clone());
            }
            // This write was in the batch unless a whole batch was pending before it.
            if let Some(answered) = ready(&mut answer) {
                return answered;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The answer to a write, once a transaction took it.
fn ready(answer: &mut oneshot::Receiver<Answer>) -> Option<Result<(), StoreError>> {
    match answer.try_recv() {
        Ok(Ok(())) => Some(Ok(())),
        Ok(Err(error)) => Some(Err(StoreError::Shared(error))),
        // The transaction that took this write was cancelled: what it wrote is unknown.
        Err(oneshot::error::TryRecvError::Closed) => Some(Err(StoreError::Timeout)),
        Err(oneshot::error::TryRecvError::Empty) => None,
    }
}
