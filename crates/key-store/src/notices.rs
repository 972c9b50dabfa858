//! Cache notices between replicas on PostgreSQL: what other processes changed, so each
//! replica drops exactly the cached keys the change can make wrong.
//!
//! The notices are sent by triggers (migration `m20261206_000010_cache_notices`) in the
//! change's own transaction, so they arrive only for changes that committed, whichever process
//! or tool made them. [`NoticeListener`] receives them on one dedicated connection, named
//! `keyrack-listener-<pid>` in `pg_stat_activity` so an operator can tell it apart.
//!
//! A notice can be missed only while the listener has no connection. The listener cannot tell
//! a quiet channel from a dead connection on its own (a network that drops packets closes no
//! socket), so it sends itself a heartbeat through a second connection whenever the channel
//! has been quiet for [`HEARTBEAT_INTERVAL`], and gives the connection up when nothing arrives
//! within [`HEARTBEAT_DEADLINE`]. The caller hears of every loss ([`NoticeListener::next`]
//! fails) and must treat whatever it cached as suspect.

use std::{fmt, process, time::Duration};

use key_core::KeyDigest;
use sea_orm::sqlx::{
    self,
    postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions},
};
use uuid::Uuid;

/// The channel the triggers notify.
pub(crate) const CHANNEL: &str = "keyrack_cache";

/// The payload of a heartbeat: a notice that names nothing.
const HEARTBEAT: &str = "p";

/// How long the channel may be quiet before the listener checks its connection with a
/// heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// How long a heartbeat may take to come back before the connection is given up: a lost
/// connection that closed nothing is noticed within `HEARTBEAT_INTERVAL + HEARTBEAT_DEADLINE`.
pub const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(2);

/// How long connecting (and subscribing) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a committed change can make wrong in a cache of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheNotice {
    /// The key stored under this digest was created, changed or deleted.
    Key(KeyDigest),
    /// This member's role changed or the member was removed: their personal keys' scopes.
    Member(Uuid),
    /// This organization's policy changed (role scopes, default limits, …): all its keys.
    Organization(Uuid),
    /// A marker a listener sent itself ([`crate::Store::send_cache_marker`]): every notice of
    /// a change committed before it was sent has arrived before it.
    Marker(String),
}

impl CacheNotice {
    /// The notice a trigger's payload names; `None` for a heartbeat or a payload this version
    /// does not know.
    fn parse(payload: &str) -> Option<CacheNotice> {
        let (kind, subject) = payload.split_once(':')?;
        match kind {
            "k" => KeyDigest::from_slice(&decode_hex(subject)?).map(CacheNotice::Key),
            "m" => Uuid::parse_str(subject).ok().map(CacheNotice::Member),
            "o" => Uuid::parse_str(subject).ok().map(CacheNotice::Organization),
            "p" => Some(CacheNotice::Marker(subject.to_owned())),
            _ => None,
        }
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// Why the listener has no connection now.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ListenerError(String);

impl From<sqlx::Error> for ListenerError {
    fn from(error: sqlx::Error) -> Self {
        ListenerError(error.to_string())
    }
}

/// Where the listener connects: the store's database, under its own application name.
#[derive(Clone)]
pub(crate) struct ListenerOptions(PgConnectOptions);

impl ListenerOptions {
    pub(crate) fn new(options: PgConnectOptions) -> ListenerOptions {
        ListenerOptions(options.application_name(&format!("keyrack-listener-{}", process::id())))
    }
}

impl fmt::Debug for ListenerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The options hold the database password.
        f.write_str("ListenerOptions")
    }
}

/// Receives the cache notices of one database ([`crate::Store::notice_listener`]).
#[derive(Debug)]
pub struct NoticeListener {
    options: ListenerOptions,
    connected: Option<Connected>,
}

struct Connected {
    listener: PgListener,
    /// Two connections: the listener's, and one that sends the heartbeats.
    pool: PgPool,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connected")
    }
}

impl NoticeListener {
    pub(crate) fn new(options: ListenerOptions) -> NoticeListener {
        NoticeListener {
            options,
            connected: None,
        }
    }

    /// Connects and subscribes, dropping the previous connection if any. Every notice
    /// committed after this returns `Ok` is received; those committed while the listener had
    /// no connection are not.
    pub async fn subscribe(&mut self) -> Result<(), ListenerError> {
        self.connected = None;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(self.options.0.clone());
        let subscribing = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // sqlx would reconnect on its own and carry on as if nothing was missed; a loss
            // must reach the caller instead.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, ListenerError>(listener)
        };
        let listener = tokio::time::timeout(CONNECT_TIMEOUT, subscribing)
            .await
            .map_err(|_| ListenerError("timed out connecting to the database".to_owned()))??;
        self.connected = Some(Connected { listener, pool });
        Ok(())
    }

    /// The next notice. An error means the connection is gone (and notices may have been
    /// missed): call [`NoticeListener::subscribe`] again.
    ///
    /// Cancel-safe: sqlx's receive keeps a partly read message for the next call.
    pub async fn next(&mut self) -> Result<CacheNotice, ListenerError> {
        let result = self.receive().await;
        if result.is_err() {
            self.connected = None;
        }
        result
    }

    async fn receive(&mut self) -> Result<CacheNotice, ListenerError> {
        let connected = self
            .connected
            .as_mut()
            .ok_or_else(|| ListenerError("not subscribed".to_owned()))?;
        loop {
            let payload =
                match tokio::time::timeout(HEARTBEAT_INTERVAL, connected.listener.try_recv()).await
                {
                    Ok(received) => received,
                    Err(_quiet) => tokio::time::timeout(HEARTBEAT_DEADLINE, async {
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(CHANNEL)
                            .bind(HEARTBEAT)
                            .execute(&connected.pool)
                            .await?;
                        connected.listener.try_recv().await
                    })
                    .await
                    .map_err(|_| ListenerError("no heartbeat came back in time".to_owned()))?,
                }?
                .ok_or_else(|| ListenerError("the connection was closed".to_owned()))?;
            if let Some(notice) = CacheNotice::parse(payload.payload()) {
                return Ok(notice);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_into_what_they_name() {
        let digest = "ab".repeat(32);
        assert_eq!(
            CacheNotice::parse(&format!("k:{digest}")),
            KeyDigest::from_slice(&[0xab; 32]).map(CacheNotice::Key)
        );
        let id = Uuid::from_u128(7);
        assert_eq!(
            CacheNotice::parse(&format!("m:{id}")),
            Some(CacheNotice::Member(id))
        );
        assert_eq!(
            CacheNotice::parse(&format!("o:{id}")),
            Some(CacheNotice::Organization(id))
        );
        assert_eq!(
            CacheNotice::parse("p:a:1"),
            Some(CacheNotice::Marker("a:1".to_owned()))
        );
        for ignored in [HEARTBEAT, "k:abc", "k:zz", "x:1", "m:not-a-uuid", "k:"] {
            assert_eq!(CacheNotice::parse(ignored), None, "{ignored}");
        }
    }
}
