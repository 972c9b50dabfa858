//! The delivery worker: claims due deliveries, POSTs each (signed) to its endpoint, records the
//! attempt, and schedules the next one or settles the delivery.
//!
//! Several replicas may run it on one database: a delivery is claimed by a compare-and-set in
//! the store (see `key_store::Store::claim_due_webhook_deliveries`), so in the normal case one
//! replica makes each attempt. If a replica dies mid-attempt, its lease runs out and another
//! makes the attempt again: delivery is at least once, and receivers deduplicate on
//! `Keyrack-Event-Id`.
//!
//! One tenant must not starve the others: each round claims fairly between organizations (see
//! the store), an organization with [`WebhookSettings::per_organization`] attempts already
//! under way here waits for the next round, and the job does not wait for a round's slowest
//! attempt before starting the next: attempts run on their own, at most
//! [`WebhookSettings::batch_size`] at once.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{
    Clock, DeliveryState, Error, Pepper, RandomSource, RetrySchedule, WebhookSecretCipher,
    WebhookSigning, is_public_address,
};
use key_store::{ClaimedDelivery, DeliveryAttempt, DeliveryClaim, Store};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::{sync::OnceCell, task::JoinSet};
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::Metrics;

/// The header carrying the signature (`t=…,v1=…`, see `key_core::SigningSecret`).
const SIGNATURE_HEADER: &str = "Keyrack-Signature";
/// The header carrying the event id: the idempotency id, the same on every retry.
const EVENT_ID_HEADER: &str = "Keyrack-Event-Id";
/// The header carrying the delivery id (one per event and endpoint).
const DELIVERY_ID_HEADER: &str = "Keyrack-Delivery-Id";
/// The header carrying the attempt number, from 1.
const ATTEMPT_HEADER: &str = "Keyrack-Attempt";
/// Standard Webhooks' message id: the event id, the same on every retry and every endpoint.
const STANDARD_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks' timestamp, in unix seconds.
const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks' signature (`v1,<base64>`, see `key_core::SigningSecret`).
const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
/// The User-Agent of every delivery.
const USER_AGENT: &str = "Keyrack-Webhooks/1";

/// Webhook settings. The defaults suit production: https only, retries from 30 s up to hourly
/// for 25 h, a poll every second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Accept `http://` endpoint URLs (local development and tests only).
    pub allow_http: bool,
    /// When failed deliveries are tried again.
    pub retry: RetrySchedule,
    /// How often the worker looks for due deliveries.
    pub poll_interval: Duration,
    /// How long one POST may take before it counts as failed.
    pub request_timeout: Duration,
    /// How long a claimed delivery is reserved for its worker. A worker that dies mid-attempt
    /// leaves it to another after this; it must exceed `request_timeout`.
    pub lease: TimeDelta,
    /// At most this many attempts are under way at once (in this process).
    pub batch_size: u64,
    /// At most this many of them for one organization.
    pub per_organization: u64,
    /// Deliver to private, loopback and link-local addresses too (an endpoint on the
    /// deployment's own network). Off by default: a tenant's endpoint must not reach inside.
    pub allow_private: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_http: false,
            retry: RetrySchedule::default(),
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            lease: TimeDelta::minutes(2),
            batch_size: 32,
            per_organization: 4,
            allow_private: false,
        }
    }
}

/// The delivery worker. Cheap to clone; clones share the HTTP client.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    store: Store,
    clock: Arc<dyn Clock>,
    pepper: Arc<Pepper>,
    random: Arc<dyn RandomSource>,
    metrics: Metrics,
    settings: WebhookSettings,
    /// Built on first use, so a process that never delivers never loads TLS roots.
    client: Arc<OnceCell<reqwest::Client>>,
    /// The attempts under way, by organization.
    in_flight: Arc<Mutex<InFlight>>,
    /// The attempts the job started, which a stop waits for.
    running: TaskTracker,
}

/// How many attempts are under way, in all and per organization.
#[derive(Debug, Default)]
struct InFlight {
    total: u64,
    by_organization: HashMap<Uuid, u64>,
}

/// One attempt's place in [`InFlight`], given back when the attempt ends however it ends.
struct Slot {
    in_flight: Arc<Mutex<InFlight>>,
    organization_id: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.in_flight);
        in_flight.total = in_flight.total.saturating_sub(1);
        if let Some(count) = in_flight.by_organization.get_mut(&self.organization_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.by_organization.remove(&self.organization_id);
            }
        }
    }
}

fn lock(in_flight: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    // Counters only: a panic elsewhere leaves them usable.
    in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WebhookDelivery {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        pepper: Arc<Pepper>,
        random: Arc<dyn RandomSource>,
        metrics: Metrics,
        settings: WebhookSettings,
    ) -> WebhookDelivery {
        WebhookDelivery {
            store,
            clock,
            pepper,
            random,
            metrics,
            settings,
            client: Arc::default(),
            in_flight: Arc::default(),
            running: TaskTracker::new(),
        }
    }

    /// How often the job looks for due deliveries.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    /// The client deliveries are POSTed with: rustls, a timeout, no redirects (a receiver
    /// answers itself; following a redirect could send signed events somewhere else).
    async fn client(&self) -> Result<&reqwest::Client, Error> {
        self.client
            .get_or_try_init(|| async {
                let mut builder = reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .timeout(self.settings.request_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    // No proxy from the environment: the address checks below are the ones
                    // that decide where a delivery goes.
                    .no_proxy();
                if !self.settings.allow_private {
                    builder = builder.dns_resolver(Arc::new(PublicOnly));
                }
                builder.build().map_err(|error| {
                    Error::Internal(format!("cannot build the webhook HTTP client: {error}"))
                })
            })
            .await
    }

    /// Claims the deliveries due now (on the clock) that fit beside the attempts under way,
    /// each with its [`Slot`].
    async fn claim(&self, now: DateTime<Utc>) -> Result<Vec<(ClaimedDelivery, Slot)>, Error> {
        let settings = self.settings;
        let (room, under_way) = {
            let in_flight = lock(&self.in_flight);
            (
                settings.batch_size.saturating_sub(in_flight.total),
                in_flight.by_organization.clone(),
            )
        };
        let claim = DeliveryClaim {
            limit: room,
            per_organization: settings.per_organization,
            under_way: &under_way,
        };
        let claimed = self
            .store
            .claim_due_webhook_deliveries(now, now + settings.lease, &claim)
            .await?;
        let mut in_flight = lock(&self.in_flight);
        Ok(claimed
            .into_iter()
            .map(|delivery| {
                in_flight.total += 1;
                *in_flight
                    .by_organization
                    .entry(delivery.organization_id)
                    .or_default() += 1;
                let slot = Slot {
                    in_flight: Arc::clone(&self.in_flight),
                    organization_id: delivery.organization_id,
                };
                (delivery, slot)
            })
            .collect())
    }

    /// Claims the deliveries due now (on the clock), makes one attempt of each, waits for
    /// them, and returns how many attempts were made. Tests call this to drive deliveries step
    /// by step; the job starts attempts without waiting ([`WebhookDelivery::run`]).
    pub async fn deliver_due(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let claimed = self.claim(now).await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?.clone();
        let cipher = Arc::new(WebhookSecretCipher::new(&self.pepper)?);
        let mut attempts = JoinSet::new();
        for (delivery, slot) in claimed {
            let worker = self.clone();
            let client = client.clone();
            let cipher = Arc::clone(&cipher);
            attempts.spawn(async move {
                let _slot = slot;
                attempt(&worker, &client, &cipher, delivery, now).await
            });
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

    /// One run of the job: starts an attempt of each delivery claimed now and returns without
    /// waiting for them, so a slow endpoint holds up nothing but its own attempt.
    pub(crate) async fn run(&self) {
        if let Err(error) = self.start_due().await {
            tracing::warn!(%error, "webhook deliveries failed; they are retried after their lease");
        }
    }

    async fn start_due(&self) -> Result<(), Error> {
        let now = self.clock.now();
        // The backlog before this run's claim: what waits for a free slot or a turn.
        let due = self.store.count_due_webhook_deliveries(now).await?;
        self.metrics.set_webhook_backlog(due);
        let claimed = self.claim(now).await?;
        if claimed.is_empty() {
            return Ok(());
        }
        let client = self.client().await?.clone();
        let cipher = Arc::new(WebhookSecretCipher::new(&self.pepper)?);
        for (delivery, slot) in claimed {
            let worker = self.clone();
            let client = client.clone();
            let cipher = Arc::clone(&cipher);
            // Each attempt is a trace of its own, which the endpoint may continue: its
            // request carries the span's `traceparent`.
            let span = if key_telemetry::root_sampled("webhook.deliver") {
                tracing::info_span!(
                    "webhook.deliver",
                    otel.kind = "client",
                    webhook.delivery_id = %delivery.id,
                    webhook.attempt = delivery.attempt_number,
                )
            } else {
                tracing::Span::none()
            };
            self.running.spawn(
                async move {
                    let _slot = slot;
                    if let Err(error) = attempt(&worker, &client, &cipher, delivery, now).await {
                        // The delivery stays claimed until its lease ends; then it is
                        // attempted again.
                        tracing::warn!(%error, "webhook attempt not made or not recorded");
                    }
                }
                .instrument(span),
            );
        }
        Ok(())
    }

    /// Waits for the attempts the job started: each is made and recorded before a stop
    /// completes.
    pub(crate) async fn idle(&self) {
        self.running.close();
        self.running.wait().await;
    }
}

/// Makes one attempt of `delivery` at `now` and records it.
async fn attempt(
    worker: &WebhookDelivery,
    client: &reqwest::Client,
    cipher: &WebhookSecretCipher,
    delivery: ClaimedDelivery,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let secret = cipher.open(&delivery.sealed_secret, delivery.endpoint_id)?;
    let timestamp = now.timestamp();
    let body = delivery.payload.as_bytes();
    let event_id = delivery.event_id.to_string();
    let mut signature_headers = reqwest::header::HeaderMap::new();
    let mut put = |name: &'static str, value: String| -> Result<(), Error> {
        let value = reqwest::header::HeaderValue::try_from(value)
            .map_err(|_| Error::Internal("a webhook signature is no header value".to_owned()))?;
        signature_headers.insert(name, value);
        Ok(())
    };
    match delivery.signing {
        WebhookSigning::Keyrack => put(SIGNATURE_HEADER, secret.signature_header(timestamp, body))?,
        WebhookSigning::Standard => {
            let signature = secret
                .standard_signature(&event_id, timestamp, body)
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "webhook endpoint {} signs in the standard mode without a standard secret",
                        delivery.endpoint_id
                    ))
                })?;
            put(STANDARD_ID_HEADER, event_id.clone())?;
            put(STANDARD_TIMESTAMP_HEADER, timestamp.to_string())?;
            put(STANDARD_SIGNATURE_HEADER, signature)?;
        }
    }
    let started = Instant::now();
    // A name is checked when it is resolved (`PublicOnly`); an address in the URL never is.
    let literal_refused = !worker.settings.allow_private
        && reqwest::Url::parse(&delivery.url)
            .ok()
            .and_then(|url| {
                let host = url.host_str()?;
                // An IPv6 literal comes bracketed.
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()
            })
            .is_some_and(|ip| !is_public_address(ip));
    let sent = if literal_refused {
        Err(Refusal::Private)
    } else {
        let mut trace_context = reqwest::header::HeaderMap::new();
        key_telemetry::inject_current(&mut trace_context);
        client
            .post(&delivery.url)
            .headers(trace_context)
            .headers(signature_headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id)
            .header(DELIVERY_ID_HEADER, delivery.id.to_string())
            .header(ATTEMPT_HEADER, delivery.attempt_number.to_string())
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(Refusal::Transport)
    };
    let (status_code, error) = match sent {
        Ok(response) if response.status().is_success() => (response.status().as_u16(), None),
        Ok(response) => {
            let status = response.status();
            (
                status.as_u16(),
                Some(format!("the endpoint answered HTTP {status}")),
            )
        }
        Err(refusal) => (0, Some(refusal.class().to_owned())),
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let succeeded = error.is_none();
    worker.metrics.webhook_attempt(succeeded);
    let (state, next_attempt_at) = if succeeded {
        (DeliveryState::Succeeded, None)
    } else {
        let mut jitter = [0_u8; 4];
        worker.random.fill(&mut jitter)?;
        let attempts_made = u32::try_from(delivery.attempt_number).unwrap_or(u32::MAX);
        match worker.settings.retry.next_attempt(
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
    worker
        .store
        .record_webhook_attempt(&delivery, &attempt, state, next_attempt_at)
        .await?;
    Ok(())
}

/// Why an attempt got no answer.
enum Refusal {
    /// The endpoint's address is not public (and `allow_private` is off).
    Private,
    /// The request failed on the way.
    Transport(reqwest::Error),
}

impl Refusal {
    /// What the attempt's record says: a class, never the operating system's detail. A stored
    /// "connection refused" against "timed out" for each address and port a tenant names would
    /// map the deployment's internal network for it; the URL is left out too (its query string
    /// may hold the receiver's own token).
    fn class(&self) -> &'static str {
        match self {
            Refusal::Private => PRIVATE_ADDRESS,
            Refusal::Transport(error) if is_private_refusal(error) => PRIVATE_ADDRESS,
            Refusal::Transport(error) if error.is_timeout() => "timed out",
            Refusal::Transport(error) if error.is_connect() => "connection failed",
            Refusal::Transport(_) => "request failed",
        }
    }
}

/// The record of an attempt refused for its address.
const PRIVATE_ADDRESS: &str =
    "refused: the endpoint's address is not public (--webhook-allow-private allows it)";

/// Whether `error` comes from [`PublicOnly`] refusing a name.
fn is_private_refusal(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<NotPublic>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A name that resolved to at least one address that is not public.
#[derive(Debug)]
struct NotPublic;

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the name resolves to an address that is not public")
    }
}

impl std::error::Error for NotPublic {}

/// Resolves a name as the system does, then refuses it if any of its addresses is not public:
/// checked after resolution, so a name cannot point inside however it is spelled.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses
                .iter()
                .any(|address| !is_public_address(address.ip()))
            {
                return Err(Box::new(NotPublic) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}
