//! The delivery worker: claims due deliveries, POSTs each (signed) to its endpoint, records the
//! attempt, and schedules the next one or settles the delivery.
//!
//! Several replicas may run it on one database: a delivery is claimed by a compare-and-set in
//! the store (see `key_store::Store::claim_due_webhook_deliveries`), so in the normal case one
//! replica makes each attempt. If a replica dies mid-attempt, its lease runs out and another
//! makes the attempt again: delivery is at least once, and receivers deduplicate on
//! `Keyrack-Event-Id`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use key_core::{
    ATTEMPT_HEADER, DELIVERY_ID_HEADER, DeliveryState, EVENT_ID_HEADER, Error, SIGNATURE_HEADER,
    WebhookSecretCipher,
};
use key_store::{ClaimedDelivery, DeliveryAttempt};
use tokio::{sync::oneshot, task::JoinSet};

use crate::KeyManager;

/// The longest error text kept for an attempt.
const MAX_ERROR_CHARS: usize = 500;

impl KeyManager {
    /// Claims the deliveries due now (on the manager's clock), makes one attempt of each, and
    /// returns how many attempts were made. The server's worker calls this every poll
    /// interval; tests call it directly to drive deliveries step by step.
    pub async fn deliver_due_webhooks(&self) -> Result<usize, Error> {
        let settings = self.webhook_settings();
        let now = self.now();
        let claimed = self
            .store()
            .claim_due_webhook_deliveries(now, now + settings.lease, settings.batch_size)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let client = self.webhook_runtime().client().await?.clone();
        let cipher = std::sync::Arc::new(WebhookSecretCipher::new(self.pepper())?);
        let mut attempts = JoinSet::new();
        for delivery in claimed {
            let manager = self.clone();
            let client = client.clone();
            let cipher = std::sync::Arc::clone(&cipher);
            attempts.spawn(async move { attempt(&manager, &client, &cipher, delivery, now).await });
        }
        let mut made = 0;
        let mut failure = None;
        while let Some(joined) = attempts.join_next().await {
            let error = match joined {
                Ok(Ok(())) => {
                    made += 1;
                    continue;
                }
                Ok(Err(error)) => error,
                Err(error) => Error::Internal(format!("webhook attempt task: {error}")),
            };
            // The delivery stays claimed until its lease ends; then it is attempted again.
            tracing::warn!(%error, "webhook attempt not made or not recorded");
            failure = Some(error);
        }
        match failure {
            // The attempts that could be recorded were; the others run again after their lease.
            Some(error) if made == 0 => Err(error),
            _ => Ok(made),
        }
    }
}

/// Makes one attempt of `delivery` at `now` and records it.
async fn attempt(
    manager: &KeyManager,
    client: &reqwest::Client,
    cipher: &WebhookSecretCipher,
    delivery: ClaimedDelivery,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let secret = cipher.open(&delivery.sealed_secret, delivery.endpoint_id)?;
    let signature = secret.signature_header(now.timestamp(), delivery.payload.as_bytes());
    let started = Instant::now();
    let sent = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_ID_HEADER, delivery.event_id.to_string())
        .header(DELIVERY_ID_HEADER, delivery.id.to_string())
        .header(ATTEMPT_HEADER, delivery.attempt_number.to_string())
        .body(delivery.payload.clone())
        .send()
        .await;
    let (status_code, error) = match sent {
        Ok(response) if response.status().is_success() => (response.status().as_u16(), None),
        Ok(response) => {
            let status = response.status();
            (
                status.as_u16(),
                Some(format!("the endpoint answered HTTP {status}")),
            )
        }
        Err(error) => (0, Some(describe(&error))),
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let succeeded = error.is_none();
    manager.metrics().webhook_attempt(succeeded);
    let (state, next_attempt_at) = if succeeded {
        (DeliveryState::Succeeded, None)
    } else {
        let mut jitter = [0_u8; 4];
        manager.random().fill(&mut jitter)?;
        let attempts_made = u32::try_from(delivery.attempt_number).unwrap_or(u32::MAX);
        match manager.webhook_settings().retry.next_attempt(
            delivery.created_at,
            attempts_made,
            now,
            u32::from_le_bytes(jitter),
        ) {
            Some(next) => (DeliveryState::Pending, Some(next)),
            None => (DeliveryState::Failed, None),
        }
    };
    tracing::info!(
        webhook_delivery_id = %delivery.id,
        webhook_endpoint_id = %delivery.endpoint_id,
        event_id = %delivery.event_id,
        attempt = delivery.attempt_number,
        status_code,
        state = state.as_str(),
        "webhook delivery attempted"
    );
    let attempt = DeliveryAttempt {
        attempt_number: delivery.attempt_number,
        attempted_at: now,
        status_code: i32::from(status_code),
        error,
        duration_ms,
    };
    manager
        .store()
        .record_webhook_attempt(&delivery, &attempt, state, next_attempt_at)
        .await?;
    Ok(())
}

/// Why a POST got no answer, for the attempt's record. The URL is left out (its query string
/// may hold the receiver's own token); the signing secret is never part of a transport error.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// Delivers due webhooks every poll interval until `stop` resolves. An attempt under way when
/// `stop` resolves finishes (and is recorded) first.
pub(crate) async fn deliver_periodically(manager: KeyManager, mut stop: oneshot::Receiver<()>) {
    let every = manager.webhook_settings().poll_interval;
    // The first poll comes one interval after start, like every other: a server that has just
    // started has nothing more urgent than one that has been running.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {
                if let Err(error) = manager.deliver_due_webhooks().await {
                    tracing::warn!(%error, "webhook deliveries failed; they are retried after their lease");
                }
            }
        }
    }
}
