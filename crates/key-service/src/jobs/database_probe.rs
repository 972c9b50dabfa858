//! Readiness: whether the database answers. A probe every [`PROBE_INTERVAL`], bounded by
//! [`PROBE_TIMEOUT`], publishes the answer for the front doors (the gRPC server turns it into
//! the key service's health, which the gateway's `/readyz` reads): while the database is
//! unreachable, an orchestrator stops sending traffic, and sends it again once it answers. The
//! process stays alive throughout (liveness is not readiness), and cached keys go on verifying.

use std::time::Duration;

use key_store::Store;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How often the database is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one probe waits for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The probe. Cheap to clone; clones share the published state.
#[derive(Debug, Clone)]
pub struct DatabaseProbe {
    store: Store,
    metrics: Metrics,
    up: watch::Sender<bool>,
}

impl DatabaseProbe {
    /// A probe of `store`; the database is taken to be up until a probe says otherwise (the
    /// store was opened and migrated before).
    pub(crate) fn new(store: Store, metrics: Metrics) -> DatabaseProbe {
        metrics.set_database_up(true);
        DatabaseProbe {
            store,
            metrics,
            up: watch::Sender::new(true),
        }
    }

    /// Whether the database answered the last probe, and every change after.
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Probes once, publishes the answer and logs a change; returns whether it answered.
    pub async fn probe(&self) -> bool {
        let up = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.store.ping()).await,
            Ok(Ok(()))
        );
        let changed = self
            .up
            .send_if_modified(|was| std::mem::replace(was, up) != up);
        if changed {
            self.metrics.set_database_up(up);
            if up {
                tracing::info!("the database answers again: ready");
            } else {
                tracing::warn!(
                    timeout = ?PROBE_TIMEOUT,
                    "the database does not answer: not ready until it does; cached keys still verify"
                );
            }
        }
        up
    }

    /// One run of the job: the probe, and the connection pool's state for the metrics.
    pub(crate) async fn run(&self) {
        self.probe().await;
        let (open, idle) = self.store.pool_connections();
        self.metrics.set_database_connections(open, idle);
    }
}
