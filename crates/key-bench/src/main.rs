//! `key-bench`: a load generator for Keyrack. It drives a running server over real gRPC, with
//! several HTTP/2 connections, and measures `keyrack.v1.KeyService/VerifyKey` against the
//! server's own `grpc.health.v1.Health/Check` in the same run, alternating rounds, so that the
//! ratio of the two is what a shared machine's noise affects least; with `--ext-authz`, Envoy's
//! ext_authz Check too, against VerifyKey. See BENCHMARKS.md.

mod cli;
mod error;
mod load;
mod record;
mod report;
mod server_cpu;
mod target;

use std::{path::Path, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use key_core::ApiKey;
use key_proto::{
    envoy::{Address, AttributeContext, CheckRequest, SocketAddress, address, attribute_context},
    v1::VerifyKeyRequest,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{
    cli::{Args, Mode},
    error::Error,
    load::Phase,
    record::Recorder,
    report::{Report, Setup},
    target::{Client, Target},
};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(report) => {
            if report.has_errors() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("key-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<Report, Error> {
    let flood = match args.flood {
        Some(fraction) if !(0.0..=1.0).contains(&fraction) => {
            return Err(Error::FloodFraction(fraction));
        }
        flood => flood,
    };
    let rate = match (args.mode, args.rate) {
        (Mode::Open, Some(rate)) if rate > 0.0 && rate.is_finite() => Some(rate),
        (Mode::Open, _) => return Err(Error::MissingRate),
        (Mode::Closed, _) => None,
    };
    ApiKey::parse(&args.key).map_err(|_| Error::MalformedKey)?;

    let channels = connect(&args.addr, args.connections, args).await?;
    let valid = VerifyKeyRequest {
        key: args.key.clone(),
        required_scopes: vec![args.scope.clone()],
        client_ip: args.client_ip.clone(),
        country: args.country.clone(),
        tag: args.tag.clone(),
        cost: 0,
    };
    let check = args
        .ext_authz
        .as_deref()
        .map(|path| check_request(path, &args.key, &args.client_ip));
    let client = Arc::new(Client::new(&channels, valid, check, flood.unwrap_or(0.0)));
    preflight(&client, &args.scope, args.ext_authz.is_some()).await?;

    let mut targets = vec![Target::Health, Target::Verify];
    if flood.is_some() {
        targets.push(Target::Flood);
    }
    if args.ext_authz.is_some() {
        targets.push(Target::ExtAuthz);
    }
    let empty = Recorder::new()?;
    let run_phase = |target: Target, duration: Duration| {
        let client = Arc::clone(&client);
        let empty = &empty;
        async move {
            match rate {
                Some(rate) => load::open_loop(empty, &client, target, rate, duration).await,
                None => load::closed_loop(empty, &client, target, args.concurrency, duration).await,
            }
        }
    };

    if !args.warmup.is_zero() {
        for &target in &targets {
            run_phase(target, args.warmup).await;
        }
    }
    let mut recorder = empty.clone();
    let mut elapsed = [Duration::ZERO; 4];
    // The server's CPU nanoseconds and the calls of each target, summed over its phases.
    let mut server_cpu = [(0_u64, 0_u64); 4];
    for _ in 0..args.rounds {
        for &target in &targets {
            let before = args.server_pid.map(server_cpu::cpu_nanos).transpose()?;
            let Phase {
                recorder: phase,
                elapsed: took,
            } = run_phase(target, args.duration).await;
            if let (Some(pid), Some(before)) = (args.server_pid, before) {
                let used = server_cpu::cpu_nanos(pid)?.saturating_sub(before);
                let calls: u64 = phase.rows.iter().map(|row| row.ok + row.errors).sum();
                server_cpu[target as usize].0 += used;
                server_cpu[target as usize].1 += calls;
            }
            recorder.merge(&phase);
            elapsed[target as usize] += took;
        }
    }

    let setup = Setup {
        mode: args.mode,
        connections: args.connections,
        concurrency: args.concurrency,
        rate,
        duration: args.duration,
        rounds: args.rounds,
        flood,
        ext_authz: args.ext_authz.is_some(),
    };
    let report = Report::new(setup, &recorder, |target| elapsed[target as usize]);
    print!("{}", report.table(&args.addr));
    if let Some(pid) = args.server_pid {
        print!("{}", server_cpu_table(pid, &targets, &server_cpu));
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").map_err(|source| Error::WriteJson {
            path: path.clone(),
            source,
        })?;
    }
    Ok(report)
}

/// The server's CPU time per call of each target, and each against Health/Check's.
fn server_cpu_table(pid: u32, targets: &[Target], cpu: &[(u64, u64); 4]) -> String {
    let per_call = |target: Target| {
        let (nanos, calls) = cpu[target as usize];
        (calls > 0).then(|| nanos as f64 / calls as f64 / 1000.0)
    };
    let baseline = per_call(Target::Health);
    let mut table =
        format!("\nserver CPU per call (pid {pid}, /proc/{pid}/task/*/schedstat, all rounds)\n");
    for &target in targets {
        let Some(micros) = per_call(target) else {
            continue;
        };
        let ratio = match (target, baseline) {
            (Target::Health, _) | (_, None) => String::new(),
            (_, Some(base)) => format!("  ({:.2}× Health/Check)", micros / base),
        };
        let name = match target {
            Target::Health => "grpc.health.v1.Health/Check",
            Target::Verify => "keyrack.v1.KeyService/VerifyKey",
            Target::Flood => "VerifyKey under flood (both rows)",
            Target::ExtAuthz => "ext_authz Authorization/Check",
        };
        table.push_str(&format!("  {name:<34} {micros:>7.1} µs{ratio}\n"));
    }
    table
}

/// Opens `count` separate HTTP/2 connections to `address`, over TLS if `args` name a CA.
async fn connect(address: &str, count: u16, args: &Args) -> Result<Vec<Channel>, Error> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| Error::ReadPem {
            path: path.to_owned(),
            source,
        })
    };
    let mut endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|source| Error::Address {
            address: address.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(ca) = &args.tls_ca {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&args.tls_client_cert, &args.tls_client_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint.tls_config(tls).map_err(|source| Error::Address {
            address: address.to_owned(),
            source,
        })?;
    }
    let mut channels = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let channel = endpoint.connect().await.map_err(|source| Error::Connect {
            address: address.to_owned(),
            source,
        })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Checks, once, that the server is healthy and accepts the key, so that a wrong key or address
/// is a clear error rather than a table full of failures.
async fn preflight(client: &Client, scope: &str, ext_authz: bool) -> Result<(), Error> {
    if let (_, Err(error)) = client.call(Target::Health, 0).await {
        return Err(Error::Unhealthy(error));
    }
    if let (_, Err(reason)) = client.call(Target::Verify, 0).await {
        return Err(Error::KeyRejected {
            scope: scope.to_owned(),
            reason,
        });
    }
    if ext_authz && let (_, Err(reason)) = client.call(Target::ExtAuthz, 0).await {
        return Err(Error::CheckRefused(reason));
    }
    Ok(())
}

/// The Check request Envoy's ext_authz filter would send for a GET of `path` by the client at
/// `client_ip` presenting `key`: only what Keyrack reads (the request line, the Authorization
/// header, the source address).
fn check_request(path: &str, key: &str, client_ip: &str) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: client_ip.to_owned(),
                        ..SocketAddress::default()
                    })),
                }),
                ..attribute_context::Peer::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "GET".to_owned(),
                    host: "bench.keyrack".to_owned(),
                    path: path.to_owned(),
                    headers: [("authorization".to_owned(), format!("Bearer {key}"))].into(),
                    ..attribute_context::HttpRequest::default()
                }),
                ..attribute_context::Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}
