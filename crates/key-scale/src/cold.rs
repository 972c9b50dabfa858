//! `key-scale cold`: what a key cache miss costs on a big store, next to a hit.

use std::{path::Path, time::Instant};

use key_core::{RandomSource, Scope};
use key_service::{Mode, Verifier, VerifyContext};
use ring::rand::SystemRandom;

use crate::{
    cli::ColdArgs,
    keys_file,
    latency::{Latencies, Summary},
    setup,
};

pub(crate) async fn run(args: ColdArgs) -> anyhow::Result<()> {
    let keys = keys_file::read_all(&args.keys_file)?;
    let (store, opened) = setup::open_store(&args.store).await?;
    let verifier = setup::application(store, setup::pepper(&args.store)?, true).verifier;
    let samples = sample(&keys, args.samples)?;
    println!(
        "{} keys in the file; {} drawn at random; store opened and migrated in {:.1} ms",
        keys.len(),
        samples.len(),
        opened.as_secs_f64() * 1e3
    );

    let cold = pass(&verifier, &samples).await?;
    let (cached, _) = verifier.cached_keys();
    let warm = if args.no_warm {
        None
    } else {
        Some(pass(&verifier, &samples).await?)
    };

    println!("{}", Summary::header());
    println!(
        "{}",
        cold.latencies.row("VerifyKey, cache miss (store read)")
    );
    if let Some(warm) = &warm {
        println!("{}", warm.latencies.row("VerifyKey, cache hit"));
    }
    let errors = cold.errors + warm.as_ref().map_or(0, |warm| warm.errors);
    println!("errors: {errors}; keys cached after the cold pass: {cached}");
    if let Some(reason) = cold
        .first_error
        .as_ref()
        .or(warm.as_ref().and_then(|w| w.first_error.as_ref()))
    {
        println!("first error: {reason}");
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "keys_in_file": keys.len(),
            "store_open_ms": opened.as_secs_f64() * 1e3,
            "cold": cold.latencies.json(),
            "warm": warm.as_ref().map(|warm| warm.latencies.json()),
            "errors": errors,
            "cached_after_cold": cached,
        });
        write_json(path, &json)?;
    }
    anyhow::ensure!(errors == 0, "{errors} verifications were not VALID");
    Ok(())
}

/// The figures of one pass over the samples.
struct Pass {
    latencies: Summary,
    errors: u64,
    first_error: Option<String>,
}

/// Verifies each of `samples` once, one at a time, timing each verification.
async fn pass(verifier: &Verifier, samples: &[&str]) -> anyhow::Result<Pass> {
    let required = [Scope::parse("chat")?];
    let context = VerifyContext::default();
    let mut latencies = Latencies::new()?;
    let mut errors = 0;
    let mut first_error = None;
    for key in samples {
        let started = Instant::now();
        let verification = verifier
            .verify(key, &required, &context, Mode::Request)
            .await;
        latencies.record(started.elapsed());
        let refused = match verification {
            Ok(verification) => verification
                .error()
                .map(|error| error.code().reason().to_owned()),
            Err(error) => Some(error.to_string()),
        };
        if let Some(reason) = refused {
            errors += 1;
            first_error.get_or_insert(reason);
        }
    }
    Ok(Pass {
        latencies: latencies.summary(),
        errors,
        first_error,
    })
}

/// `count` distinct keys of `keys` (all of them, if fewer), in random order: a partial
/// Fisher–Yates shuffle of their indices.
fn sample(keys: &[String], count: usize) -> anyhow::Result<Vec<&str>> {
    let rng = SystemRandom::new();
    let mut indices: Vec<usize> = (0..keys.len()).collect();
    let count = count.min(keys.len());
    for position in 0..count {
        let mut bytes = [0_u8; 8];
        rng.fill(&mut bytes)?;
        // The modulo bias over a u64 is below 2^-40 for a million keys: irrelevant here.
        let span = (keys.len() - position) as u64;
        let offset = usize::try_from(u64::from_le_bytes(bytes) % span)?;
        indices.swap(position, position + offset);
    }
    Ok(indices[..count]
        .iter()
        .map(|&index| keys[index].as_str())
        .collect())
}

pub(crate) fn write_json(path: &Path, json: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(json)?)?;
    Ok(())
}
