//! The periodic sweep: keys expiring within 7 days, and keys due for rotation. Neither depends
//! on usage, so neither can wait for a flush; both fire once per key (per expiry, for an
//! expiring key), however many sweeps or replicas see them.

use std::time::Duration;

use key_core::{Alert, EXPIRY_NOTICE, Error};
use key_store::Store;
use uuid::Uuid;

use crate::alerting::{Alerting, Firing};

/// How often, by default, the sweep runs. Not at start: a notice days ahead loses nothing by
/// waiting minutes, and a server that just started makes no query of its own (tests count
/// them).
pub const DEFAULT_ALERT_SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Keys read per query.
const KEYS_PER_PAGE: u64 = 500;

/// Pages read per kind per sweep at most: a bound on one sweep's work, the next sweep goes on.
const MAX_PAGES: usize = 100;

/// The sweep. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertSweep {
    store: Store,
    alerting: Alerting,
}

impl AlertSweep {
    pub(crate) fn new(store: Store, alerting: Alerting) -> AlertSweep {
        AlertSweep { store, alerting }
    }

    /// Fires `key_expiring` for every live key that expires within 7 days and `rotation_due`
    /// for every key older than its organization's maximum key age, unless already fired.
    /// The job runs it every sweep interval; tests call it directly. Returns how many alerts
    /// it stored.
    pub async fn sweep(&self) -> Result<usize, Error> {
        Ok(self.sweep_expiring().await? + self.sweep_rotation_due().await?)
    }

    async fn sweep_expiring(&self) -> Result<usize, Error> {
        let now = self.alerting.now();
        let mut fired = 0;
        let mut after: Option<Uuid> = None;
        for _ in 0..MAX_PAGES {
            let keys = self
                .store
                .keys_expiring(now, now + EXPIRY_NOTICE, after, KEYS_PER_PAGE)
                .await?;
            let firings: Vec<Firing<'_>> = keys
                .iter()
                .filter_map(|key| {
                    let expires_at = key.expires_at?;
                    Some(Firing {
                        organization_id: key.organization_id,
                        key_name: Some(&key.name),
                        alert: Alert::key_expiring(key.id, &key.name, expires_at),
                    })
                })
                .collect();
            fired += self.alerting.fire_new(firings).await?;
            if (keys.len() as u64) < KEYS_PER_PAGE {
                break;
            }
            after = keys.last().map(|key| key.id);
        }
        Ok(fired)
    }

    async fn sweep_rotation_due(&self) -> Result<usize, Error> {
        let now = self.alerting.now();
        let mut fired = 0;
        // Each page reads only keys not alerted for yet, and fires them all, so the next page
        // starts where this one ended.
        for _ in 0..MAX_PAGES {
            let due = self.store.keys_due_for_rotation(now, KEYS_PER_PAGE).await?;
            let firings: Vec<Firing<'_>> = due
                .iter()
                .map(|(key, max_age)| Firing {
                    organization_id: key.organization_id,
                    key_name: Some(&key.name),
                    alert: Alert::rotation_due(key.id, &key.name, key.created_at, *max_age),
                })
                .collect();
            let page_fired = self.alerting.fire_new(firings).await?;
            fired += page_fired;
            if (due.len() as u64) < KEYS_PER_PAGE || page_fired == 0 {
                break;
            }
        }
        Ok(fired)
    }

    /// One run of the job: sweeps, and logs a failure.
    pub(crate) async fn run(&self) {
        if let Err(error) = self.sweep().await {
            tracing::warn!(%error, "alert sweep failed; the next one tries again");
        }
    }
}
