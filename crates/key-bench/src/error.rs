//! What can stop a benchmark run before it has figures to report.

use std::path::PathBuf;

/// Why `key-bench` could not run or report.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("invalid server address {address:?}: {source}")]
    Address {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadPem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key given with --key or KEYRACK_BENCH_KEY is not a well-formed Keyrack key")]
    MalformedKey,
    #[error("the server does not accept the benchmark key for scope {scope:?}: {reason}")]
    KeyRejected { scope: String, reason: String },
    #[error(
        "the token given with --token or KEYRACK_BENCH_TOKEN is not a well-formed OAuth access token (oat_…)"
    )]
    MalformedToken,
    #[error("the server does not accept the access token for scope {scope:?}: {reason}")]
    TokenRejected { scope: String, reason: String },
    #[error(
        "ext_authz Check did not allow the key (does --ext-authz-routes map the --ext-authz path to --scope?): {0}"
    )]
    CheckRefused(String),
    #[error("the server's health check failed: {0}")]
    Unhealthy(String),
    #[error("--flood must be a fraction between 0 and 1, got {0}")]
    FloodFraction(f64),
    #[error("open-loop mode needs a positive --rate")]
    MissingRate,
    #[error("cannot read the server's CPU time from {path}: {source}")]
    ServerCpu {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    WriteJson {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create a latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    #[error("cannot encode the results as JSON: {0}")]
    EncodeJson(#[from] serde_json::Error),
}
