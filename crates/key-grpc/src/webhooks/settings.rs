//! How webhooks behave in this process: whether plain http URLs are allowed, the retry
//! schedule, how often the worker looks for due deliveries, and the HTTP client it POSTs with.

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use key_core::{Error, RetrySchedule, USER_AGENT};
use tokio::sync::OnceCell;

/// Webhook settings of a server. The defaults suit production: https only, retries from 30 s
/// up to hourly for 25 h, a poll every second.
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
    /// At most this many deliveries are attempted per poll.
    pub batch_size: u64,
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
        }
    }
}

/// The settings and the HTTP client, shared by a manager's clones. The client is built on
/// first use, so a manager that never delivers never loads TLS roots.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebhookRuntime {
    pub(crate) settings: WebhookSettings,
    client: Arc<OnceCell<reqwest::Client>>,
}

impl WebhookRuntime {
    pub(crate) fn new(settings: WebhookSettings) -> WebhookRuntime {
        WebhookRuntime {
            settings,
            client: Arc::default(),
        }
    }

    /// The client deliveries are POSTed with: rustls, a timeout, no redirects (a receiver
    /// answers itself; following a redirect could send signed events somewhere else).
    pub(crate) async fn client(&self) -> Result<&reqwest::Client, Error> {
        self.client
            .get_or_try_init(|| async {
                reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .timeout(self.settings.request_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|error| {
                        Error::Internal(format!("cannot build the webhook HTTP client: {error}"))
                    })
            })
            .await
    }
}
