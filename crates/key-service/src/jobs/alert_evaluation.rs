//! Alert evaluation after each usage flush: the rules of the keys used are judged on a task of
//! their own, one at a time per process, so alerting never slows verification or the flush.
//! The evaluations handed to tasks are counted, so the shutdown (and a test) can wait for them.

use std::sync::Arc;

use key_store::FlushReport;
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::alerting::Alerting;

/// At most this many evaluations wait for their turn; a flush beyond them is not evaluated.
pub(crate) const MAX_PENDING_EVALUATIONS: usize = 64;

/// Evaluates flushed batches. Cheap to clone; clones share the queue.
#[derive(Debug, Clone)]
pub struct AlertEvaluator {
    alerting: Alerting,
    queue: EvaluationQueue,
}

/// The evaluations handed to tasks: counted, and run one at a time.
#[derive(Debug, Clone)]
struct EvaluationQueue {
    /// How many evaluations were handed to a task and have not ended.
    pending: Arc<watch::Sender<usize>>,
    /// Evaluations run one at a time: they are small, and two at once would only race to
    /// insert the same alerts (which the store's dedup key would settle anyway).
    evaluating: Arc<Mutex<()>>,
}

/// Counts one evaluation as pending until dropped, even if its task panics.
#[derive(Debug)]
struct PendingEvaluation {
    pending: Arc<watch::Sender<usize>>,
}

impl Drop for PendingEvaluation {
    fn drop(&mut self) {
        self.pending
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

impl AlertEvaluator {
    pub(crate) fn new(alerting: Alerting) -> AlertEvaluator {
        AlertEvaluator {
            alerting,
            queue: EvaluationQueue::default(),
        }
    }

    /// Called after every successful usage flush with what it wrote; evaluates the alert rules
    /// of the keys used. It does not block the flush: the evaluation runs in a task of its own
    /// (one at a time per process), counted until it ends, so [`AlertEvaluator::idle`] can wait
    /// for it.
    pub(crate) fn usage_flushed(&self, report: FlushReport) {
        if report.keys.is_empty() {
            return;
        }
        let Some(pending) = self.queue.start_evaluation() else {
            // The thresholds are judged again at the key's next flush; this batch's new
            // countries and dormant uses are not.
            tracing::warn!(
                keys = report.keys.len(),
                "alert evaluations are backed up; this flush is not evaluated"
            );
            return;
        };
        let evaluator = self.clone();
        tokio::spawn(async move {
            let _pending = pending;
            let _one_at_a_time = evaluator.queue.evaluation_lock().await;
            if let Err(error) = evaluator.alerting.evaluate_flush(&report).await {
                // The thresholds are judged again at the next flush of the key; a new country
                // or a dormant key of this batch is not.
                tracing::warn!(%error, keys = report.keys.len(), "alert evaluation failed");
            }
        });
    }

    /// Waits until every evaluation handed off so far has ended, so its alerts are stored.
    /// After a flush, this makes the evaluation of what that flush wrote deterministic.
    pub async fn idle(&self) {
        let mut pending = self.queue.pending.subscribe();
        // The sender lives as long as `self`.
        let _ = pending.wait_for(|count| *count == 0).await;
    }
}

impl Default for EvaluationQueue {
    fn default() -> Self {
        EvaluationQueue {
            pending: Arc::new(watch::Sender::new(0)),
            evaluating: Arc::new(Mutex::new(())),
        }
    }
}

impl EvaluationQueue {
    /// Counts an evaluation as pending, before its task is spawned; `None` when
    /// [`MAX_PENDING_EVALUATIONS`] are already waiting, so a slow database cannot make the
    /// queue of evaluations grow without bound.
    fn start_evaluation(&self) -> Option<PendingEvaluation> {
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
    async fn evaluation_lock(&self) -> MutexGuard<'_, ()> {
        self.evaluating.lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_evaluations_are_bounded_and_released_on_drop() {
        let runtime = EvaluationQueue::default();
        let held: Vec<PendingEvaluation> = (0..MAX_PENDING_EVALUATIONS)
            .map(|_| runtime.start_evaluation().unwrap())
            .collect();
        assert!(runtime.start_evaluation().is_none());
        drop(held);
        assert_eq!(*runtime.pending.borrow(), 0);
        assert!(runtime.start_evaluation().is_some());
    }
}
