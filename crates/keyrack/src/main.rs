//! `keyrack`: the API-key service. A thin shell over the libraries: it reads configuration,
//! opens the store, builds the application, and runs its front doors and jobs or a maintenance
//! command.

mod cli;
mod config;
mod key_check;
mod metrics_endpoint;
mod setup;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // Otherwise tokio's default: the cores this process may run on (std's
    // available_parallelism, which reads the affinity mask and the cgroup quota).
    if let Some(threads) = cli.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let ran = runtime
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                let telemetry = telemetry::init(&cli.log, cli.log_format)?;
                let deadline = cli.drain_timeout();
                let ran = cli.run().await;
                // Spans still waiting are exported within the drain deadline.
                telemetry.shutdown(deadline).await;
                ran
            })
        });
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The cause chain on one line ("cannot listen on …: Address already in use"), never
            // a backtrace: these are the user's errors to fix, not the program's to debug, even
            // with RUST_BACKTRACE set.
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
