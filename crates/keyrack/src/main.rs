//! `keyrack`: the API-key service. A thin shell over the libraries: it reads configuration,
//! opens the store, and runs the server or a maintenance command.

mod cache_args;
mod cli;
mod limiter_args;
mod metrics_endpoint;
mod proxy_args;
mod setup;
mod usage_args;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    setup::init_logging(&cli.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli.run())
}
