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
    let ran = runtime(cli.worker_threads).and_then(|runtime| {
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

/// The runtime, with `threads` workers, or else tokio's default: the cores this process may
/// run on (std's available_parallelism, which reads the affinity mask and the cgroup quota),
/// unless tokio's own `TOKIO_WORKER_THREADS` says otherwise. That variable is checked here
/// because tokio panics on a value it cannot use.
fn runtime(threads: Option<u16>) -> anyhow::Result<tokio::runtime::Runtime> {
    const TOKIO_WORKER_THREADS: &str = "TOKIO_WORKER_THREADS";
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match (threads, std::env::var_os(TOKIO_WORKER_THREADS)) {
        (Some(threads), _) => {
            builder.worker_threads(usize::from(threads));
        }
        (None, Some(value)) => {
            let threads = value
                .to_str()
                .and_then(|text| text.parse::<usize>().ok())
                .filter(|threads| *threads > 0)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{TOKIO_WORKER_THREADS} must be a positive number of threads, not {value:?}"
                    )
                })?;
            builder.worker_threads(threads);
        }
        (None, None) => {}
    }
    Ok(builder.enable_all().build()?)
}
