//! The two ways of offering load: closed loop (fixed concurrency, maximum throughput) and open
//! loop (fixed arrival rate, latency from the intended send time).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{sync::Notify, task::JoinSet};

use crate::{
    record::Recorder,
    target::{Client, Target},
};

/// The longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one phase recorded, and how long it took from its first request to its last answer.
#[derive(Debug)]
pub(crate) struct Phase {
    pub(crate) recorder: Recorder,
    pub(crate) elapsed: Duration,
}

/// `concurrency` workers send `target` requests back to back for `duration`, worker `i` on
/// connection `i` modulo their number. Each latency runs from the send to the answer.
pub(crate) async fn closed_loop(
    empty: &Recorder,
    client: &Arc<Client>,
    target: Target,
    concurrency: u16,
    duration: Duration,
) -> Phase {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for worker in 0..usize::from(concurrency) {
        let client = Arc::clone(client);
        let mut recorder = empty.clone();
        workers.spawn(async move {
            while Instant::now() < deadline {
                let sent = Instant::now();
                let (row, result) = timed_call(&client, target, worker).await;
                recorder.record(row, sent.elapsed(), result);
            }
            recorder
        });
    }
    let mut recorder = empty.clone();
    while let Some(worker) = workers.join_next().await {
        if let Ok(worker) = worker {
            recorder.merge(&worker);
        }
    }
    Phase {
        recorder,
        elapsed: start.elapsed(),
    }
}

/// Sends `target` requests at `rate` per second for `duration`, whatever the server does:
/// request `n` is due at `start + n / rate`, and its latency runs from that intended time, so a
/// server that stalls is charged for every request that should have been sent meanwhile
/// (no coordinated omission). A dedicated thread schedules the sends: tokio's timer only has
/// millisecond resolution, which would add up to a millisecond to every latency. (A dispatcher
/// task that yields between sends instead cost the generator a third more CPU per call and
/// starved the requests on a generator with one core.)
pub(crate) async fn open_loop(
    empty: &Recorder,
    client: &Arc<Client>,
    target: Target,
    rate: f64,
    duration: Duration,
) -> Phase {
    let shared = Arc::new(Mutex::new(empty.clone()));
    // Requests are spawned detached and counted, not kept in a JoinSet: a set holds every
    // finished task of the phase until it is joined (a million at 60,000/s for 15 s).
    let outstanding = Arc::new(Outstanding::default());
    let runtime = tokio::runtime::Handle::current();
    let dispatcher = {
        let client = Arc::clone(client);
        let shared = Arc::clone(&shared);
        let outstanding = Arc::clone(&outstanding);
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let mut n: u64 = 0;
            loop {
                #[allow(clippy::cast_precision_loss)]
                let due = Duration::from_secs_f64(n as f64 / rate);
                if due >= duration {
                    break;
                }
                let intended = start + due;
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                let lag = intended.elapsed();
                let client = Arc::clone(&client);
                let shared = Arc::clone(&shared);
                let outstanding = Arc::clone(&outstanding);
                let connection = usize::try_from(n).unwrap_or(0);
                outstanding.started();
                runtime.spawn(async move {
                    let (row, result) = timed_call(&client, target, connection).await;
                    let latency = intended.elapsed();
                    if let Ok(mut recorder) = shared.lock() {
                        recorder.record(row, latency, result);
                        recorder.record_send_lag(lag);
                    }
                    outstanding.finished();
                });
                n += 1;
            }
            start
        })
    };
    let elapsed = match dispatcher.await {
        Ok(start) => {
            outstanding.all_finished().await;
            start.elapsed()
        }
        Err(_) => Duration::ZERO,
    };
    let recorder = shared
        .lock()
        .map(|recorder| recorder.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
    Phase { recorder, elapsed }
}

/// How many of an open loop's requests are still under way, and a wakeup when none are.
#[derive(Debug, Default)]
struct Outstanding {
    count: AtomicUsize,
    none: Notify,
}

impl Outstanding {
    fn started(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn finished(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stored if nobody waits yet: the waiter then returns at once.
            self.none.notify_one();
        }
    }

    /// Returns once every started request has finished (call after the last start).
    async fn all_finished(&self) {
        while self.count.load(Ordering::Acquire) > 0 {
            self.none.notified().await;
        }
    }
}

/// One request, failed if it takes longer than [`REQUEST_TIMEOUT`].
async fn timed_call(
    client: &Client,
    target: Target,
    connection: usize,
) -> (crate::target::Row, Result<(), String>) {
    match tokio::time::timeout(REQUEST_TIMEOUT, client.call(target, connection)).await {
        Ok(outcome) => outcome,
        Err(_) => (
            target.row(),
            Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        ),
    }
}
