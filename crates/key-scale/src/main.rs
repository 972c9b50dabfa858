//! `key-scale`: Keyrack at a million keys. It seeds a store with many organization keys (their
//! plaintexts go to a file, for this benchmark only), then measures, in process, what a key
//! cache miss costs on that store (`cold`) and how much memory a cache holding every key takes
//! (`fill`), and over gRPC how long a real server takes to answer (`health`) and to touch every
//! key (`touch`). `bench/scale.sh` runs it all; see BENCHMARKS.md.

mod cli;
mod cold;
mod fill;
mod keys_file;
mod latency;
mod memory;
mod remote;
mod seed;
mod setup;
mod shares;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Two workers, like the service on this class of machine: the figures are the service's.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Seed(args) => seed::run(args).await,
            Command::Cold(args) => cold::run(args).await,
            Command::Fill(args) => fill::run(args).await,
            Command::Health(args) => remote::wait_for_serving(args).await,
            Command::Touch(args) => remote::touch(args).await,
        }
    })
}
