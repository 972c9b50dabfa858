//! `key-scale fill`: every key into the key cache, and what that costs in memory and time.

use std::time::Instant;

use key_core::Scope;
use key_service::{Mode, Verifier, VerifyContext};

use crate::{
    cli::FillArgs, cold::write_json, keys_file, memory::Memory, setup, shares::verify_in_shares,
};

/// Keys read from the file at a time, shared out among the workers.
const CHUNK: usize = 4_096;

pub(crate) async fn run(args: FillArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let start = Memory::own()?;
    let (store, opened) = setup::open_store(&args.store).await?;
    let verifier = setup::application(store, setup::pepper(&args.store)?, args.metering).verifier;
    let before = Memory::own()?;
    println!(
        "store opened and migrated in {:.1} ms (a restarted service answers from then on; its \
         cache fills as keys are used)",
        opened.as_secs_f64() * 1e3
    );

    let started = Instant::now();
    let (mut verified, mut errors) = (0_u64, 0_u64);
    for chunk in keys_file::chunks(&args.keys_file, CHUNK)? {
        let (chunk_verified, chunk_errors) =
            verify_chunk(&verifier, chunk?, args.concurrency).await?;
        verified += chunk_verified;
        errors += chunk_errors;
    }
    let elapsed = started.elapsed();
    let after = Memory::own()?;
    let (cached, _) = verifier.cached_keys();

    let grown_kib = after.rss_kib.saturating_sub(before.rss_kib);
    let per_key = if cached > 0 {
        grown_kib as f64 * 1024.0 / cached as f64
    } else {
        0.0
    };
    println!(
        "verified {verified} keys in {:.1} s ({:.0}/s, {} at a time); errors: {errors}; keys cached: {cached}",
        elapsed.as_secs_f64(),
        verified as f64 / elapsed.as_secs_f64(),
        args.concurrency
    );
    println!(
        "VmRSS: {:.1} MiB at start, {:.1} MiB with the store open, {:.1} MiB with every key \
         cached (VmHWM {:.1} MiB); {:.0} bytes per cached key",
        start.rss_mib(),
        before.rss_mib(),
        after.rss_mib(),
        after.peak_mib(),
        per_key
    );
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "store_open_ms": opened.as_secs_f64() * 1e3,
            "fill_seconds": elapsed.as_secs_f64(),
            "verified": verified,
            "errors": errors,
            "cached": cached,
            "rss_start_mib": start.rss_mib(),
            "rss_before_mib": before.rss_mib(),
            "rss_after_mib": after.rss_mib(),
            "hwm_after_mib": after.peak_mib(),
            "bytes_per_cached_key": per_key,
        });
        write_json(path, &json)?;
    }
    anyhow::ensure!(errors == 0, "{errors} verifications were not VALID");
    Ok(())
}

/// Verifies `chunk` with `concurrency` workers, each taking every `concurrency`-th key.
/// Returns how many were verified and how many of those were not VALID.
async fn verify_chunk(
    verifier: &Verifier,
    chunk: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<(u64, u64)> {
    verify_in_shares(chunk, concurrency, |_, share| {
        let verifier = verifier.clone();
        async move {
            let required = [Scope::parse("chat")?];
            let context = VerifyContext::default();
            let mut errors = 0_u64;
            for key in &share {
                let verification = verifier
                    .verify(key, &required, &context, Mode::Request)
                    .await?;
                if verification.error().is_some() {
                    errors += 1;
                }
            }
            Ok(errors)
        }
    })
    .await
}
