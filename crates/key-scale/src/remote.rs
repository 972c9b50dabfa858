//! Measurements of a running server over gRPC: how long it takes to answer, and to verify
//! every seeded key once.

use std::time::{Duration, Instant};

use anyhow::Context;
use key_proto::v1::{VerifyKeyRequest, key_service_client::KeyServiceClient};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    cli::{HealthArgs, TouchArgs},
    keys_file,
    memory::Memory,
    shares::verify_in_shares,
};

/// How often a server that is not serving yet is asked again.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Keys read from the file at a time, shared out among the workers.
const CHUNK: usize = 8_192;
/// HTTP/2 connections the workers share.
const CONNECTIONS: usize = 4;

/// Polls Health/Check until it answers SERVING and prints how long that took.
pub(crate) async fn wait_for_serving(args: HealthArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))?;
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut health = HealthClient::new(channel);
            let answer = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if let Ok(answer) = answer
                && answer.into_inner().status == ServingStatus::Serving as i32
            {
                println!(
                    "SERVING after {:.1} ms of polling",
                    started.elapsed().as_secs_f64() * 1e3
                );
                return Ok(());
            }
        }
        anyhow::ensure!(
            started.elapsed() < args.timeout,
            "{} did not answer SERVING within {:?}",
            args.addr,
            args.timeout
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Sends VerifyKey (scope `chat`) for every key of the file, `concurrency` at a time.
pub(crate) async fn touch(args: TouchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))?;
    let mut channels = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("cannot connect to {}", args.addr))?,
        );
    }
    let before = args.pid.map(Memory::of).transpose()?;
    let started = Instant::now();
    let (mut verified, mut refused) = (0_u64, 0_u64);
    for chunk in keys_file::chunks(&args.keys_file, CHUNK)? {
        let (chunk_verified, chunk_refused) =
            verify_chunk(&channels, chunk?, args.concurrency).await?;
        verified += chunk_verified;
        refused += chunk_refused;
    }
    let elapsed = started.elapsed();
    println!(
        "VerifyKey for {verified} keys in {:.1} s ({:.0}/s, {} in flight); not VALID: {refused}",
        elapsed.as_secs_f64(),
        verified as f64 / elapsed.as_secs_f64(),
        args.concurrency
    );
    if let (Some(pid), Some(before)) = (args.pid, before) {
        let after = Memory::of(pid)?;
        println!(
            "server VmRSS: {:.1} MiB before, {:.1} MiB after (VmHWM {:.1} MiB)",
            before.rss_mib(),
            after.rss_mib(),
            after.peak_mib()
        );
    }
    anyhow::ensure!(refused == 0, "{refused} keys were not VALID");
    Ok(())
}

async fn verify_chunk(
    channels: &[Channel],
    chunk: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<(u64, u64)> {
    verify_in_shares(chunk, concurrency, |worker, share| {
        let mut client = KeyServiceClient::new(channels[worker % channels.len()].clone());
        async move {
            let mut refused = 0_u64;
            for key in share {
                let response = client
                    .verify_key(VerifyKeyRequest {
                        key,
                        required_scopes: vec!["chat".to_owned()],
                        ..VerifyKeyRequest::default()
                    })
                    .await
                    .context("VerifyKey failed")?
                    .into_inner();
                if !response.valid {
                    refused += 1;
                }
            }
            Ok(refused)
        }
    })
    .await
}
