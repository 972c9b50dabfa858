//! The process's alerting state: the sweep interval, and the evaluations handed to tasks and
//! not finished yet.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Mutex, MutexGuard, watch};

use crate::KeyManager;

/// How often, by default, the server sweeps for keys about to expire or due for rotation.
pub const DEFAULT_ALERT_SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// At most this many evaluations wait for their turn; a flush beyond them is not evaluated.
pub(crate) const MAX_PENDING_EVALUATIONS: usize = 64;

/// Cheap to clone; clones share the count and the lock.
#[derive(Debug, Clone)]
pub(crate) struct AlertRuntime {
    sweep_interval: Duration,
    /// How many evaluations were handed to a task and have not ended.
    pending: Arc<watch::Sender<usize>>,
    /// Evaluations run one at a time: they are small, and two at once would only race to
    /// insert the same alerts (which the store's dedup key would settle anyway).
    evaluating: Arc<Mutex<()>>,
}

impl Default for AlertRuntime {
    fn default() -> Self {
        AlertRuntime {
            sweep_interval: DEFAULT_ALERT_SWEEP_INTERVAL,
            pending: Arc::new(watch::Sender::new(0)),
            evaluating: Arc::new(Mutex::new(())),
        }
    }
}

/// Counts one evaluation as pending until dropped, even if its task panics.
#[derive(Debug)]
pub(crate) struct PendingEvaluation {
    pending: Arc<watch::Sender<usize>>,
}

impl Drop for PendingEvaluation {
    fn drop(&mut self) {
        self.pending
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

impl AlertRuntime {
    /// The same state with another sweep interval.
    pub(crate) fn with_sweep_interval(mut self, interval: Duration) -> AlertRuntime {
        self.sweep_interval = interval;
        self
    }

    /// Counts an evaluation as pending, before its task is spawned; `None` when
    /// [`MAX_PENDING_EVALUATIONS`] are already waiting, so a slow database cannot make the
    /// queue of evaluations grow without bound.
    pub(crate) fn start_evaluation(&self) -> Option<PendingEvaluation> {
        let admitted = self.pending.send_if_modified(|count| {
            if *count >= MAX_PENDING_EVALUATIONS {
                return false;
            }
            *count += 1;
            true
        });
        admitted.then(|| PendingEvaluation {
            pending: Arc::clone(&self.pending),
        })
    }

    /// Waits for the evaluations before this one to end.
    pub(crate) async fn evaluation_lock(&self) -> MutexGuard<'_, ()> {
        self.evaluating.lock().await
    }
}

impl KeyManager {
    /// How often the server sweeps for keys about to expire or due for rotation.
    pub fn alert_sweep_interval(&self) -> Duration {
        self.alert_runtime().sweep_interval
    }

    /// Waits until every alert evaluation handed off so far (by [`KeyManager::flush_usage`])
    /// has ended, so its alerts are stored. After `flush_usage().await`, this makes the
    /// evaluation of what that flush wrote deterministic.
    pub async fn alerts_idle(&self) {
        let mut pending = self.alert_runtime().pending.subscribe();
        // The sender lives as long as the runtime, which `self` holds.
        let _ = pending.wait_for(|count| *count == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_evaluations_are_bounded_and_released_on_drop() {
        let runtime = AlertRuntime::default();
        let held: Vec<PendingEvaluation> = (0..MAX_PENDING_EVALUATIONS)
            .map(|_| runtime.start_evaluation().unwrap())
            .collect();
        assert!(runtime.start_evaluation().is_none());
        drop(held);
        assert_eq!(*runtime.pending.borrow(), 0);
        assert!(runtime.start_evaluation().is_some());
    }
}
