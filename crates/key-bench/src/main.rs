//! `key-bench`: a load generator for Keyrack. It drives a running server over real gRPC, with
//! several HTTP/2 connections, and measures `keyrack.v1.KeyService/VerifyKey` against the
//! server's own `grpc.health.v1.Health/Check` in the same run, alternating rounds, so that the
//! ratio of the two is what a shared machine's noise affects least; with `--ext-authz`, Envoy's
//! ext_authz Check too, and with `--token`, VerifyKey with an OAuth access token, each against
//! VerifyKey with the key. See BENCHMARKS.md.

mod cli;
mod error;
mod load;
mod record;
mod report;
mod server_cpu;
mod target;

use std::{path::Path, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use key_core::{ApiKey, CredentialKind};
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
    if let Some(token) = &args.token {
        check_access_token(token)?;
    }
    if let Some(limited) = &args.limited_key {
        ApiKey::parse(limited).map_err(|_| Error::MalformedKey)?;
    }

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
    let token = args.token.as_ref().map(|token| VerifyKeyRequest {
        key: token.clone(),
        ..valid.clone()
    });
    let limited = args.limited_key.as_ref().map(|key| VerifyKeyRequest {
        key: key.clone(),
        ..valid.clone()
    });
    let client = Arc::new(Client::new(
        &channels,
        valid,
        check,
        token,
        limited,
        flood.unwrap_or(0.0),
    ));

    let mut targets = vec![Target::Health, Target::Verify];
    if flood.is_some() {
        targets.push(Target::Flood);
    }
    if args.ext_authz.is_some() {
        targets.push(Target::ExtAuthz);
    }
    if args.token.is_some() {
        targets.push(Target::Token);
    }
    if args.malformed {
        targets.push(Target::Malformed);
    }
    if args.limited_key.is_some() {
        targets.push(Target::Limited);
    }
    preflight(&client, &args.scope, &targets).await?;
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
    // The generator's own CPU time too: an open loop whose generator needs more than its
    // cores measures the generator (read where it is cheap: warmup and setup excluded).
    let generator_before = server_cpu::cpu_nanos(std::process::id()).ok();
    let mut elapsed = [Duration::ZERO; Target::COUNT];
    // The server's CPU nanoseconds and the calls of each target, summed over its phases.
    let mut server_cpu = [(0_u64, 0_u64); Target::COUNT];
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
                server_cpu[target.index()].0 += used;
                server_cpu[target.index()].1 += calls;
            }
            recorder.merge(&phase);
            elapsed[target.index()] += took;
        }
    }

    let generator_used = generator_before.and_then(|before| {
        Some(
            server_cpu::cpu_nanos(std::process::id())
                .ok()?
                .saturating_sub(before),
        )
    });
    let setup = Setup {
        mode: args.mode,
        connections: args.connections,
        concurrency: args.concurrency,
        rate,
        duration: args.duration,
        rounds: args.rounds,
        flood,
        ext_authz: args.ext_authz.is_some(),
        token: args.token.is_some(),
        malformed: args.malformed,
        limited: args.limited_key.is_some(),
    };
    let report = Report::new(setup, &recorder, |target| elapsed[target.index()]);
    print!("{}", report.table(&args.addr));
    let calls: u64 = recorder.rows.iter().map(|row| row.ok + row.errors).sum();
    if let (Some(used), true) = (generator_used, calls > 0) {
        println!(
            "generator (key-bench) CPU per call: {:.1} µs",
            used as f64 / calls as f64 / 1000.0
        );
    }
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

/// The server's CPU time per call of each target, and each against Health/Check's; the access
/// token's, the malformed key's and the rate-limited key's against the valid key's too, the
/// comparison their targets exist for.
fn server_cpu_table(pid: u32, targets: &[Target], cpu: &[(u64, u64); Target::COUNT]) -> String {
    let per_call = |target: Target| {
        let (nanos, calls) = cpu[target.index()];
        (calls > 0).then(|| nanos as f64 / calls as f64 / 1000.0)
    };
    let baseline = per_call(Target::Health);
    let key = per_call(Target::Verify);
    let mut table =
        format!("\nserver CPU per call (pid {pid}, /proc/{pid}/task/*/schedstat, all rounds)\n");
    for &target in targets {
        let Some(micros) = per_call(target) else {
            continue;
        };
        let ratio = match (target, baseline, key) {
            (Target::Health, _, _) | (_, None, _) => String::new(),
            (Target::Token | Target::Limited | Target::Malformed, Some(base), Some(key)) => {
                format!(
                    "  ({:.2}× Health/Check, {:.2}× VerifyKey with the key)",
                    micros / base,
                    micros / key
                )
            }
            (_, Some(base), _) => format!("  ({:.2}× Health/Check)", micros / base),
        };
        // A target's CPU covers all its rows; only the flood has two.
        let name = match target {
            Target::Flood => "VerifyKey under flood (both rows)",
            other => other.row().name(),
        };
        table.push_str(&format!("  {name:<36} {micros:>7.1} µs{ratio}\n"));
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

/// Checks, once, that the server is healthy and accepts the key (and the token, if that target
/// runs), so that a wrong key, token or address is a clear error rather than a table full of
/// failures.
async fn preflight(client: &Client, scope: &str, targets: &[Target]) -> Result<(), Error> {
    if let (_, Err(error)) = client.call(Target::Health, 0).await {
        return Err(Error::Unhealthy(error));
    }
    if let (_, Err(reason)) = client.call(Target::Verify, 0).await {
        return Err(Error::KeyRejected {
            scope: scope.to_owned(),
            reason,
        });
    }
    if targets.contains(&Target::ExtAuthz)
        && let (_, Err(reason)) = client.call(Target::ExtAuthz, 0).await
    {
        return Err(Error::CheckRefused(reason));
    }
    if targets.contains(&Target::Token)
        && let (_, Err(reason)) = client.call(Target::Token, 0).await
    {
        return Err(Error::TokenRejected {
            scope: scope.to_owned(),
            reason,
        });
    }
    for target in [Target::Malformed, Target::Limited] {
        if targets.contains(&target)
            && let (_, Err(reason)) = client.call(target, 0).await
        {
            return Err(Error::KeyRejected {
                scope: scope.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

/// Whether `text` is an OAuth access token: well formed and `oat_…`. An API key there would
/// measure the key against itself, and a refresh token is refused without a lookup, so either
/// would make a ratio that means nothing.
fn check_access_token(text: &str) -> Result<(), Error> {
    match ApiKey::parse(text) {
        Ok(token) if token.kind() == CredentialKind::AccessToken => Ok(()),
        _ => Err(Error::MalformedToken),
    }
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use key_core::{ApiKey, CredentialKind, Environment};
    use ring::rand::SystemRandom;

    use super::*;
    use crate::target::Row;

    fn credential(kind: CredentialKind) -> String {
        ApiKey::generate_kind(kind, Environment::Live, &SystemRandom::new())
            .unwrap()
            .expose()
            .to_owned()
    }

    #[test]
    fn only_an_access_token_is_taken_as_the_token() {
        assert!(check_access_token(&credential(CredentialKind::AccessToken)).is_ok());
        for other in [
            credential(CredentialKind::ApiKey),
            credential(CredentialKind::RefreshToken),
            "oat_live_not-a-token".to_owned(),
        ] {
            assert!(matches!(
                check_access_token(&other),
                Err(Error::MalformedToken)
            ));
        }
    }

    #[test]
    fn the_token_comes_from_its_flag_and_its_environment_value_is_never_shown() {
        let token = credential(CredentialKind::AccessToken);
        let args = Args::try_parse_from(["key-bench", "--key", "k", "--token", &token]).unwrap();
        assert_eq!(args.token.as_deref(), Some(token.as_str()));
        let args = Args::try_parse_from(["key-bench", "--key", "k"]).unwrap();
        assert_eq!(args.token, None);
        let command = Args::command();
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_id() == "token")
            .unwrap();
        assert_eq!(
            flag.get_env().and_then(|name| name.to_str()),
            Some("KEYRACK_BENCH_TOKEN")
        );
        assert!(flag.is_hide_env_values_set());
    }

    #[test]
    fn every_row_belongs_to_a_target_with_a_tally_of_its_own() {
        for row in Row::ALL {
            assert!(row.target().index() < Target::COUNT, "{row:?}");
        }
        assert_eq!(Row::Token.target(), Target::Token);
        assert_eq!(Row::Limited.target(), Target::Limited);
        assert_eq!(Target::Limited.index(), Target::COUNT - 1);
    }
}
