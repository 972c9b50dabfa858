//! The command line.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

/// Keyrack at a million keys: seed a store, then measure cold misses, a full key cache's
/// memory and a real server's start.
#[derive(Debug, Parser)]
#[command(name = "key-scale")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2, global = true)]
    pub(crate) worker_threads: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Migrates the store, then stores COUNT organization keys with scope `chat` in
    /// organization "default" (created, with its bootstrap admin key, when absent), and writes
    /// their plaintexts to the keys file.
    Seed(SeedArgs),
    /// Verifies keys drawn at random from the keys file, each for the first time (a key cache
    /// miss: one store read), one at a time, then the same keys again (cache hits), and prints
    /// the latency percentiles of both.
    Cold(ColdArgs),
    /// Verifies every key of the keys file once, so the key cache holds them all, and prints
    /// the process's memory before and after and the time it took.
    Fill(FillArgs),
    /// Waits until a server answers Health/Check with SERVING and prints how long that took.
    Health(HealthArgs),
    /// Sends VerifyKey for every key of the keys file to a server and counts the verdicts.
    Touch(TouchArgs),
}

/// The store and how its keys are hashed: the same as the server's.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// `sqlite://path?mode=rwc` or `postgres://…`.
    #[arg(long, env = "KEYRACK_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,
    /// The server's pepper file (at least 32 bytes; a trailing newline is ignored).
    #[arg(long, env = "KEYRACK_PEPPER_FILE")]
    pub(crate) pepper_file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SeedArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// How many keys to store.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) count: u64,
    /// Where the plaintexts go, one a line (created or truncated, readable by the owner only).
    #[arg(long)]
    pub(crate) keys_out: PathBuf,
    /// Keys per transaction.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) batch: usize,
}

#[derive(Debug, Args)]
pub(crate) struct ColdArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The keys file written by `seed`.
    #[arg(long)]
    pub(crate) keys_file: PathBuf,
    /// How many distinct keys to verify.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) samples: usize,
    /// Skip the second (warm, cache hit) pass.
    #[arg(long)]
    pub(crate) no_warm: bool,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct FillArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The keys file written by `seed`.
    #[arg(long)]
    pub(crate) keys_file: PathBuf,
    /// Verifications in flight at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Count the verifications in memory as the service does (off by default: the service
    /// writes those counts to the store every second, so they are not part of what a full
    /// cache holds; left on here, nothing would flush them).
    #[arg(long)]
    pub(crate) metering: bool,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The server's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub(crate) addr: SocketAddr,
    /// How long to wait at most, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct TouchArgs {
    /// The server's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub(crate) addr: SocketAddr,
    /// The keys file written by `seed`.
    #[arg(long)]
    pub(crate) keys_file: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Process whose memory (VmRSS, VmHWM) to print before and after, e.g. the server's.
    #[arg(long)]
    pub(crate) pid: Option<u32>,
}
