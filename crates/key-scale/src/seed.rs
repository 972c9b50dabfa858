//! `key-scale seed`: many organization keys into a store, as fast as the store takes them.

use std::{io::Write, time::Instant};

use anyhow::Context;
use chrono::Utc;
use key_core::{
    ActorType, ApiKey, AuditAction, AuditEvent, AuditOutcome, Environment, KeyType, Pepper,
    RateLimits, Scope, ScopeSet,
};
use key_store::NewKey;
use ring::rand::SystemRandom;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{cli::SeedArgs, keys_file, setup};

/// The organization the keys belong to: the one `keyrack serve` creates on first start, so a
/// server started on the seeded store creates nothing.
const ORGANIZATION: &str = "default";

/// A batch ready to store: the rows, and the plaintexts of their keys in the same order.
struct Batch {
    rows: Vec<(NewKey, AuditEvent)>,
    plaintexts: Vec<String>,
}

pub(crate) async fn run(args: SeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let pepper = setup::pepper(&args.store)?;
    let (store, opened) = setup::open_store(&args.store).await?;
    let app = setup::application(store.clone(), setup::pepper(&args.store)?, true);
    // The bootstrap admin key is not needed here (`keyrack admin-key create` mints one); it
    // is dropped unseen.
    app.keys.bootstrap(ORGANIZATION).await?;
    let organization = store
        .find_organization_by_name(ORGANIZATION)
        .await?
        .context("organization \"default\" vanished after it was created")?;
    let mut out = keys_file::create(&args.keys_out)?;
    eprintln!(
        "store opened and migrated in {:.1} ms; seeding {} keys in batches of {}",
        opened.as_secs_f64() * 1e3,
        args.count,
        args.batch
    );

    // Keys are drawn and hashed on a thread of their own while the previous batch is written.
    let (batches, mut ready) = mpsc::channel::<anyhow::Result<Batch>>(2);
    let (count, batch_size, organization_id) = (args.count, args.batch, organization.id);
    let generator = tokio::task::spawn_blocking(move || {
        let rng = SystemRandom::new();
        let mut left = count;
        while left > 0 {
            let size = left.min(batch_size as u64);
            left -= size;
            let batch = draw_batch(size, organization_id, &pepper, &rng);
            if batches.blocking_send(batch).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut stored: u64 = 0;
    let mut next_progress = 100_000;
    while let Some(batch) = ready.recv().await {
        let batch = batch?;
        stored += store.insert_keys_bulk(batch.rows).await?;
        // Written after the commit: every key in the file is in the store.
        for plaintext in &batch.plaintexts {
            writeln!(out, "{plaintext}")?;
        }
        if stored >= next_progress {
            eprintln!(
                "  {stored} keys, {:.0} keys/s",
                stored as f64 / started.elapsed().as_secs_f64()
            );
            next_progress += 100_000;
        }
    }
    generator.await?;
    out.flush()?;
    let elapsed = started.elapsed();
    println!(
        "seeded {stored} keys in {:.1} s: {:.0} keys/s (each with its key.create audit event)",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64()
    );
    store.close().await?;
    Ok(())
}

fn draw_batch(
    size: u64,
    organization_id: Uuid,
    pepper: &Pepper,
    rng: &SystemRandom,
) -> anyhow::Result<Batch> {
    let scopes: ScopeSet = [Scope::parse("chat")?].into_iter().collect();
    let capacity = usize::try_from(size)?;
    let mut rows = Vec::with_capacity(capacity);
    let mut plaintexts = Vec::with_capacity(capacity);
    for _ in 0..size {
        let key = ApiKey::generate(Environment::Live, rng)?;
        let now = Utc::now();
        let id = Uuid::now_v7();
        let new_key = NewKey {
            id,
            organization_id,
            name: "scale".to_owned(),
            scopes,
            redacted: key.redacted(),
            digest: pepper.digest(&key),
            created_at: now,
            expires_at: None,
            created_by: None,
            key_type: KeyType::Organization,
            member_id: None,
            operator: false,
            rate_limits: RateLimits::NONE,
            metadata: None,
            ip_allowlist: key_core::IpAllowlist::EMPTY,
            credits: None,
            oauth: None,
        };
        // The event `Keys::issue` writes for an operator's key.
        let event = AuditEvent {
            id: Uuid::now_v7(),
            time: now,
            organization_id: Some(organization_id),
            actor_key_id: None,
            actor_member_id: None,
            actor_type: ActorType::Operator,
            action: AuditAction::KeyCreate,
            target: id.to_string(),
            outcome: AuditOutcome::Success,
            reason: None,
            client_address: None,
            request_id: None,
        };
        rows.push((new_key, event));
        plaintexts.push(key.expose().to_owned());
    }
    Ok(Batch { rows, plaintexts })
}
