//! Faults, on the real `keyrack serve`: killed with SIGKILL in the middle of a load (nothing it
//! acknowledged is lost; usage loses at most the counts of one flush interval and of the write
//! then under way), and a steady load that must grow neither its memory nor its open files. A
//! webhook receiver down for an hour is in `webhooks.rs`, Redis going away and coming back in
//! `redis_limiter.rs`, a database outage in `outage.rs`.
//!
//! CI kills each backend once after 3 s of load. The long run sets `KEYRACK_FAULT_KILLS` (kills
//! per backend) and `KEYRACK_FAULT_SECONDS` (seconds of load before each), see BENCHMARKS.md:
//!
//! ```sh
//! KEYRACK_FAULT_KILLS=20 KEYRACK_FAULT_SECONDS=5 \
//!   cargo test -p keyrack --test it faults::kill -- --nocapture
//! ```

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use key_proto::v1::{self, key_service_client::KeyServiceClient};
use key_service::FLUSH_INTERVAL;
use tempfile::TempDir;
use tonic::{Status, transport::Channel};

use crate::{
    helpers::{Backend, TestDatabase, authed, backends, fresh_client_ip},
    process::{LoggedChild, TIMEOUT, bootstrap_key, keyrack},
    redis_limiter::logged_address,
};

/// Concurrent clients of the load, each with a key of its own to verify.
const WORKERS: usize = 6;
/// The pepper of the PostgreSQL deployments (SQLite's is generated in the data directory).
const PEPPER: &str = "fault-injection-test-pepper-0123456789abcdef";

/// How long, besides the flush interval, the counts of a killed process may have waited: a kill
/// during a flush's write loses the counts that write took (one interval) and those answered
/// while it ran. Under this test's load on 2 shared cores, a write of 30 to 160 keys' rows took
/// 10 to 470 ms (PostgreSQL the slower); a write longer than an interval would also hold back
/// the next flush.
const FLUSH_WRITE_ALLOWANCE: Duration = FLUSH_INTERVAL;

/// A number from the environment, or `default`.
fn tunable(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a whole number")),
        Err(_) => default,
    }
}

/// What a `keyrack serve` keeps between starts: its data directory and, on PostgreSQL, its
/// database and pepper.
struct Deployment {
    name: &'static str,
    data_dir: TempDir,
    env: Vec<(&'static str, String)>,
    _database: Option<TestDatabase>,
}

impl Deployment {
    async fn new(backend: &Backend) -> Deployment {
        let data_dir = tempfile::tempdir().unwrap();
        let mut env = vec![("KEYRACK_METRICS_LISTEN", "off".to_owned())];
        let (name, database) = match backend {
            Backend::Sqlite => ("SQLite", None),
            Backend::Postgres(base) => {
                let database = TestDatabase::create(base).await;
                env.push(("KEYRACK_DATABASE_URL", database.url()));
                env.push(("KEYRACK_PEPPER", PEPPER.to_owned()));
                ("PostgreSQL", Some(database))
            }
        };
        Deployment {
            name,
            data_dir,
            env,
            _database: database,
        }
    }

    /// Starts `keyrack serve` (gRPC only) and waits until it listens.
    fn serve(&self) -> Serving {
        let mut command = keyrack();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .envs(self.env.iter().map(|(name, value)| (name, value)));
        let mut process = LoggedChild::spawn(command, "serve");
        let addr = process.wait_for_line("gRPC server listening", TIMEOUT, |line| {
            logged_address(line, "gRPC server listening")
        });
        Serving { process, addr }
    }

    fn admin_key(&self) -> String {
        bootstrap_key(self.data_dir.path())
    }
}

struct Serving {
    process: LoggedChild,
    addr: String,
}

impl Serving {
    async fn client(&self) -> KeyServiceClient<Channel> {
        KeyServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// SIGKILL, from a runtime thread allowed to block.
    fn kill(&mut self) {
        tokio::task::block_in_place(|| self.process.kill());
    }
}

/// `call` within [`TIMEOUT`]; a call that takes longer is an error like any other.
async fn bounded<T>(
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(answer) => answer.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(
            "no answer within the test's bound",
        )),
    }
}

async fn create(
    client: &mut KeyServiceClient<Channel>,
    admin: &str,
    name: String,
) -> Result<(String, String), Status> {
    let request = v1::CreateKeyRequest {
        name,
        scopes: vec!["chat".into()],
        ..Default::default()
    };
    let created = bounded(client.create_key(authed(admin, request))).await?;
    Ok((created.api_key.unwrap().id, created.key))
}

async fn verify(
    client: &mut KeyServiceClient<Channel>,
    key: &str,
) -> Result<v1::VerifyKeyResponse, Status> {
    verify_for(client, key, String::new()).await
}

/// Verifies `key` for the end client at `client_ip`.
async fn verify_for(
    client: &mut KeyServiceClient<Channel>,
    key: &str,
    client_ip: String,
) -> Result<v1::VerifyKeyResponse, Status> {
    bounded(client.verify_key(v1::VerifyKeyRequest {
        key: key.to_owned(),
        required_scopes: vec!["chat".into()],
        client_ip,
        ..Default::default()
    }))
    .await
}

/// Verifies a revoked `key` for an end client of its own. The load stands for a service that
/// verifies for many end clients, and each revoked key is presented once, by whoever held it;
/// from one address, the brute-force guard would rightly block the test after 100 refusals
/// (one address's refusals are `brute_force.rs`'s subject, not this one's).
async fn verify_revoked(
    client: &mut KeyServiceClient<Channel>,
    key: &str,
) -> Result<v1::VerifyKeyResponse, Status> {
    verify_for(client, key, fresh_client_ip()).await
}

async fn revoke(
    client: &mut KeyServiceClient<Channel>,
    admin: &str,
    id: String,
) -> Result<(), Status> {
    let request = v1::RevokeKeyRequest {
        id,
        reason: "fault test".into(),
    };
    bounded(client.revoke_key(authed(admin, request))).await?;
    Ok(())
}

/// What one client of the load saw the server acknowledge, and anything wrong before the kill.
#[derive(Debug, Default)]
struct Tally {
    /// When each VALID answer for the worker's own key arrived.
    verified: Vec<Instant>,
    /// Keys whose creation was acknowledged and whose revocation was never asked for.
    live: Vec<(String, String)>,
    /// Keys whose revocation was acknowledged.
    revoked: Vec<String>,
    /// Keys whose revocation was asked for without an answer: either outcome is right.
    unsure: usize,
    /// What went wrong before the kill.
    broken: Vec<String>,
}

/// Creates, verifies and revokes keys until a call fails; a failure before `killing` is set is
/// a defect, recorded in the tally.
async fn work(
    mut client: KeyServiceClient<Channel>,
    admin: String,
    worker: usize,
    own_key: String,
    killing: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let broken = |tally: &mut Tally, what: String| {
        if !killing.load(Ordering::SeqCst) {
            tally.broken.push(what);
        }
    };
    for step in 0_u64.. {
        match verify(&mut client, &own_key).await {
            Ok(answer) if answer.valid => tally.verified.push(Instant::now()),
            Ok(answer) => tally.broken.push(format!("own key refused: {answer:?}")),
            Err(status) => {
                broken(&mut tally, format!("verify: {status:?}"));
                break;
            }
        }
        if step.is_multiple_of(8) {
            let (id, key) = match create(&mut client, &admin, format!("load {worker}/{step}")).await
            {
                Ok(created) => created,
                Err(status) => {
                    broken(&mut tally, format!("create: {status:?}"));
                    break;
                }
            };
            tally.live.push((id, key.clone()));
            match verify(&mut client, &key).await {
                Ok(answer) if answer.valid => {}
                Ok(answer) => tally.broken.push(format!("new key refused: {answer:?}")),
                Err(status) => {
                    broken(&mut tally, format!("verify: {status:?}"));
                    break;
                }
            }
        }
        if step % 16 == 4 && !tally.live.is_empty() {
            let (id, key) = tally.live.remove(0);
            if let Err(status) = revoke(&mut client, &admin, id).await {
                tally.unsure += 1;
                broken(&mut tally, format!("revoke: {status:?}"));
                break;
            }
            tally.revoked.push(key.clone());
            match verify_revoked(&mut client, &key).await {
                Ok(answer) if answer.code() == v1::VerifyCode::InvalidApiKey => {}
                Ok(answer) => tally
                    .broken
                    .push(format!("revoked key answered {answer:?}")),
                Err(status) => {
                    broken(&mut tally, format!("verify: {status:?}"));
                    break;
                }
            }
        }
    }
    tally
}

/// Everything the server acknowledged across the kills so far.
#[derive(Debug, Default)]
struct Ledger {
    live: Vec<String>,
    revoked: Vec<String>,
    unsure: usize,
}

/// One load against `serving`, ended by SIGKILL after `load`: the usage it must find after the
/// restart, how many verifications answered VALID, and how many of them in the flush interval
/// before the kill (and in that interval plus [`FLUSH_WRITE_ALLOWANCE`]).
struct Killed {
    own_key_ids: Vec<String>,
    verified: usize,
    in_last_interval: usize,
    in_last_interval_and_write: usize,
}

async fn load_then_kill(
    serving: &mut Serving,
    admin: &str,
    load: Duration,
    ledger: &mut Ledger,
    round: u64,
) -> Killed {
    // Two connections, shared by the workers as services share theirs.
    let clients = [serving.client().await, serving.client().await];
    let killing = Arc::new(AtomicBool::new(false));
    let mut own_key_ids = Vec::new();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let mut client = clients[worker % clients.len()].clone();
        let (id, key) = create(&mut client, admin, format!("metered {round}/{worker}"))
            .await
            .unwrap();
        own_key_ids.push(id);
        workers.spawn(work(
            client,
            admin.to_owned(),
            worker,
            key,
            Arc::clone(&killing),
        ));
    }
    tokio::time::sleep(load).await;
    killing.store(true, Ordering::SeqCst);
    let killed_at = Instant::now();
    serving.kill();

    let mut verified = 0;
    let mut in_last_interval = 0;
    let mut in_last_interval_and_write = 0;
    let mut broken = Vec::new();
    while let Some(tally) = workers.join_next().await {
        let tally = tally.unwrap();
        verified += tally.verified.len();
        let before_kill = |within: Duration| {
            tally
                .verified
                .iter()
                .filter(|at| killed_at.duration_since(**at) < within)
                .count()
        };
        in_last_interval += before_kill(FLUSH_INTERVAL);
        in_last_interval_and_write += before_kill(FLUSH_INTERVAL + FLUSH_WRITE_ALLOWANCE);
        ledger
            .live
            .extend(tally.live.into_iter().map(|(_, key)| key));
        ledger.revoked.extend(tally.revoked);
        ledger.unsure += tally.unsure;
        broken.extend(tally.broken);
    }
    assert!(broken.is_empty(), "before the kill: {broken:#?}");
    Killed {
        own_key_ids,
        verified,
        in_last_interval,
        in_last_interval_and_write,
    }
}

/// Every key whose creation was acknowledged verifies VALID (unless its revocation was asked
/// for); every key whose revocation was acknowledged is refused as invalid.
async fn check_acknowledged(client: &mut KeyServiceClient<Channel>, ledger: &Ledger) {
    let mut lost = Vec::new();
    for key in &ledger.live {
        let answer = verify(client, key).await.unwrap();
        if !answer.valid {
            lost.push(format!("created key refused: {answer:?}"));
        }
    }
    for key in &ledger.revoked {
        let answer = verify_revoked(client, key).await.unwrap();
        if answer.code() != v1::VerifyCode::InvalidApiKey {
            lost.push(format!("revoked key answered: {answer:?}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:#?}",
        lost.len(),
        ledger.live.len() + ledger.revoked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_acknowledged_write_and_at_most_a_flush_of_usage() {
    let kills = tunable("KEYRACK_FAULT_KILLS", 1);
    let load = Duration::from_secs(tunable("KEYRACK_FAULT_SECONDS", 3));
    for backend in backends() {
        let deployment = Deployment::new(&backend).await;
        let mut serving = deployment.serve();
        let admin = deployment.admin_key();
        let mut ledger = Ledger::default();
        let (mut verified, mut lost, mut worst) = (0, 0, 0);
        for round in 1..=kills {
            let killed = load_then_kill(&mut serving, &admin, load, &mut ledger, round).await;
            let restarted = Instant::now();
            serving = deployment.serve();
            let restart = restarted.elapsed();
            let mut client = serving.client().await;
            check_acknowledged(&mut client, &ledger).await;

            let usage = bounded(client.list_usage(authed(
                &admin,
                v1::ListUsageRequest {
                    key_ids: killed.own_key_ids.clone(),
                    ..Default::default()
                },
            )))
            .await
            .unwrap();
            let counted = usize::try_from(usage.total_succeeded).unwrap();
            // A verification the server counted and flushed may have lost its answer to the
            // kill: at most one in flight per worker.
            assert!(
                counted <= killed.verified + WORKERS,
                "the server counted {counted} verifications, the clients saw {}",
                killed.verified
            );
            let missing = killed.verified.saturating_sub(counted);
            eprintln!(
                "kill -9 #{round} on {}: usage lost {missing} of {} verifications \
                 ({} answered in the last flush interval of {FLUSH_INTERVAL:?}, {} with the \
                 write allowance of {FLUSH_WRITE_ALLOWANCE:?}); \
                 {} keys created and {} revoked so far, all intact; restart took {restart:?}",
                deployment.name,
                killed.verified,
                killed.in_last_interval,
                killed.in_last_interval_and_write,
                ledger.live.len() + ledger.revoked.len() + ledger.unsure,
                ledger.revoked.len(),
            );
            assert!(
                missing <= killed.in_last_interval_and_write,
                "usage lost {missing} verifications, more than the {} of the last flush \
                 interval and a write",
                killed.in_last_interval_and_write
            );
            verified += killed.verified;
            lost += missing;
            worst = worst.max(missing);
        }
        eprintln!(
            "kill -9 on {}: {kills} kill(s), usage lost {lost} of {verified} verifications \
             (at most {worst} at one kill), flush interval {FLUSH_INTERVAL:?}",
            deployment.name
        );
        // After the crashes, a clean shutdown.
        let status = tokio::task::block_in_place(|| serving.process.terminate(TIMEOUT));
        assert!(status.success(), "{status}:\n{}", serving.process.stderr());
    }
}

/// `VmRSS` of process `pid`, in KiB, and how many files it has open.
fn resources(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in:\n{status}"));
    let fds = std::fs::read_dir(Path::new(&format!("/proc/{pid}/fd")))
        .unwrap()
        .count();
    (rss, fds)
}

/// A steady load on the debug binary for 20 s, the CI version of `bench/soak.sh`: 200
/// verifications a second, a key created and one revoked every quarter second, a new
/// connection every second (one the server failed to close would add up). After a warm-up,
/// memory stays within a bound and no file or socket is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_load_grows_neither_memory_nor_open_files() {
    const RUN: Duration = Duration::from_secs(20);
    const WARM_UP: Duration = Duration::from_secs(5);
    const RATE: u32 = 200;
    /// What memory may grow by after the warm-up: about 3 KiB for each of its 3,000 requests.
    const RSS_GROWTH_BOUND_KIB: u64 = 8 * 1024;
    /// Files (database connections the pool opens under load, a connection being replaced)
    /// that may open after the warm-up; a leak of one per connection exceeds it within 5 s.
    const FD_SLACK: usize = 4;
    let deployment = Deployment::new(&Backend::Sqlite).await;
    let serving = deployment.serve();
    let pid = serving.process.id();
    let admin = deployment.admin_key();
    let mut client = serving.client().await;
    let (_, key) = create(&mut client, &admin, "soak".into()).await.unwrap();

    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / RATE);
    // A slow answer is not made up for with a burst: the rate stays steady.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut connected_at = Instant::now();
    let mut next_sample = started;
    let mut samples = Vec::new();
    let mut alive = std::collections::VecDeque::new();
    let mut verified = 0_u64;
    while started.elapsed() < RUN {
        ticks.tick().await;
        if connected_at.elapsed() >= Duration::from_secs(1) {
            client = serving.client().await;
            connected_at = Instant::now();
        }
        let answer = verify(&mut client, &key).await.unwrap();
        assert!(answer.valid, "{answer:?}");
        verified += 1;
        if verified.is_multiple_of(50) {
            let (id, _) = create(&mut client, &admin, format!("soak {verified}"))
                .await
                .unwrap();
            alive.push_back(id);
            if alive.len() > 4 {
                let oldest = alive.pop_front().unwrap();
                revoke(&mut client, &admin, oldest).await.unwrap();
            }
        }
        if Instant::now() >= next_sample {
            samples.push((started.elapsed(), resources(pid)));
            next_sample += Duration::from_secs(1);
        }
    }
    let elapsed = started.elapsed();
    let (_, warm) = *samples
        .iter()
        .find(|(at, _)| *at >= WARM_UP)
        .expect("samples after the warm-up");
    let (_, end) = *samples.last().unwrap();
    // The client leaves; its connection closes.
    drop(client);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = resources(pid);
    eprintln!(
        "soak: {verified} verifications in {:.1} s; after {WARM_UP:?} of warm-up {} KiB RSS and \
         {} open files, at the end {} KiB and {}, {} once the client left",
        elapsed.as_secs_f64(),
        warm.0,
        warm.1,
        end.0,
        end.1,
        after.1
    );
    let peak = samples
        .iter()
        .filter(|(at, _)| *at >= WARM_UP)
        .map(|(_, (rss, fds))| (*rss, *fds))
        .fold((0, 0), |(rss, fds), (r, f)| (rss.max(r), fds.max(f)));
    assert!(
        peak.0 <= warm.0 + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {} KiB to {} KiB: {samples:?}",
        warm.0,
        peak.0
    );
    assert!(
        peak.1 <= warm.1 + FD_SLACK,
        "open files grew from {} to {}: {samples:?}",
        warm.1,
        peak.1
    );
    // The server closes the connection of a client that left (the database pool may have
    // grown after the warm-up, within the slack above, so the count is compared with the end).
    assert!(
        after.1 < end.1,
        "{} files open once the client left, {} while it was connected",
        after.1,
        end.1
    );
}
