//! The command line.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// Drives a running Keyrack server over gRPC and compares VerifyKey with the server's own
/// Health/Check, in the same run, with the same client and connections.
#[derive(Debug, Parser)]
#[command(name = "key-bench", version)]
pub(crate) struct Args {
    /// The gRPC server, e.g. http://127.0.0.1:50051.
    #[arg(
        long,
        env = "KEYRACK_BENCH_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub(crate) addr: String,

    /// For an `https://` --addr: the CA certificate (PEM) the server's certificate must chain
    /// to. Every connection's handshake happens before the warmup, so rounds measure requests
    /// on established TLS connections.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,

    /// For a server that requires mutual TLS: the client certificate (PEM) to present.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_ca",
        requires = "tls_client_key"
    )]
    pub(crate) tls_client_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-client-cert.
    #[arg(long, value_name = "FILE", requires = "tls_client_cert")]
    pub(crate) tls_client_key: Option<PathBuf>,

    /// A valid key holding the required scope. Never printed.
    #[arg(long, env = "KEYRACK_BENCH_KEY", hide_env_values = true)]
    pub(crate) key: String,

    /// The scope every VerifyKey request requires.
    #[arg(long, default_value = "chat")]
    pub(crate) scope: String,

    /// `closed`: workers send back to back (maximum throughput); `open`: a fixed --rate, with
    /// latency measured from each request's intended send time.
    #[arg(long, value_enum, default_value_t = Mode::Closed)]
    pub(crate) mode: Mode,

    /// HTTP/2 connections, shared round robin by the workers (closed) or requests (open).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) connections: u16,

    /// Concurrent workers in closed-loop mode.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) concurrency: u16,

    /// Requests per second in open-loop mode (every target is driven at this rate).
    #[arg(long)]
    pub(crate) rate: Option<f64>,

    /// How long each target runs in each round, e.g. `5s` or `500ms`.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,

    /// Rounds; each runs every target once, in turn, so drift on the machine hits them alike.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) rounds: u16,

    /// Unrecorded traffic to every target before the first round (connections, caches).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,

    /// Adds a target where this fraction of requests (0 to 1) carry random well-formed keys,
    /// mixed with the valid key, and reports the valid key's latency under that flood.
    #[arg(long)]
    pub(crate) flood: Option<f64>,

    /// Adds a target: Envoy's ext_authz `envoy.service.auth.v3.Authorization/Check` with the
    /// valid key, for a GET of this path (on host `bench.keyrack`, from --client-ip), which the
    /// server's --ext-authz-routes must map to --scope. Reported beside VerifyKey, with the
    /// ratio of their throughputs.
    #[arg(long, value_name = "PATH")]
    pub(crate) ext_authz: Option<String>,

    /// An OAuth access token (`oat_…`) holding --scope. Adds a target: VerifyKey with the
    /// token, judged by the same verifier and key cache as the key, reported beside VerifyKey
    /// with the ratio of their throughputs (issue 16: a token should cost what a key costs).
    /// Never printed.
    #[arg(long, env = "KEYRACK_BENCH_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,

    /// A second valid key holding --scope that carries a rate limit it never reaches (e.g.
    /// 1,000,000 a second). Adds a target: VerifyKey with it, reported beside VerifyKey with the
    /// first key, whose difference is what checking and counting a limit costs. Never printed.
    #[arg(long, env = "KEYRACK_BENCH_LIMITED_KEY", hide_env_values = true)]
    pub(crate) limited_key: Option<String>,

    /// Adds a target: VerifyKey with a malformed key (the valid key with a broken checksum),
    /// which the server refuses as `invalid_api_key` before any lookup.
    #[arg(long)]
    pub(crate) malformed: bool,

    /// The end client's address sent with the valid key (flood requests use distinct ones).
    #[arg(long, default_value = "203.0.113.7")]
    pub(crate) client_ip: String,

    /// The end client's country sent with every VerifyKey request.
    #[arg(long, default_value = "DE")]
    pub(crate) country: String,

    /// The tag sent with every VerifyKey request.
    #[arg(long, default_value = "POST /api/chat")]
    pub(crate) tag: String,

    /// The server's process id, when it runs on this machine: adds the server's own CPU time
    /// per call for each target (from /proc/PID/task/*/schedstat around every phase), the
    /// figure that does not depend on how much of the machine the generator takes.
    #[arg(long, value_name = "PID")]
    pub(crate) server_pid: Option<u32>,

    /// Also writes the figures to this file as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Fixed concurrency, as fast as the server answers.
    Closed,
    /// Fixed arrival rate, whatever the server does.
    Open,
}
