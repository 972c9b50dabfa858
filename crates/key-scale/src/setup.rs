//! The application built as `keyrack serve` builds it, on the store under test.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use key_core::{Pepper, SystemClock};
use key_service::{Application, KeyCacheSettings, Parts, Settings};
use key_store::Store;
use ring::rand::SystemRandom;

use crate::cli::StoreArgs;

/// How long a cached key is trusted during a measurement: longer than any run, so a key
/// verified once stays a cache hit (the service's default, 5 s, would turn a slow pass into
/// misses and measure the store again).
const MEASUREMENT_CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The pepper in `store.pepper_file`, read as `keyrack serve` reads it.
pub(crate) fn pepper(store: &StoreArgs) -> anyhow::Result<Pepper> {
    let path = &store.pepper_file;
    let material = std::fs::read(path)
        .with_context(|| format!("cannot read the pepper file {}", path.display()))?;
    Pepper::new(material.trim_ascii_end())
        .with_context(|| format!("the pepper file {} is unusable", path.display()))
}

/// Connects to the store and applies pending migrations, as the service does at start.
/// Returns the store and how long that took.
pub(crate) async fn open_store(store: &StoreArgs) -> anyhow::Result<(Store, Duration)> {
    let started = Instant::now();
    let opened = Store::connect(&store.database_url)
        .await
        .context("cannot connect to the database")?;
    opened
        .migrate()
        .await
        .context("cannot apply database migrations")?;
    Ok((opened, started.elapsed()))
}

/// The application over `store` with the service's defaults (metering as `metering` says), but
/// a key cache whose entries outlive the measurement (default capacity: a million keys).
pub(crate) fn application(store: Store, pepper: Pepper, metering: bool) -> Application {
    let parts = Parts::new(
        store,
        pepper,
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
    );
    let settings = Settings {
        key_cache: KeyCacheSettings {
            ttl: MEASUREMENT_CACHE_TTL,
            ..KeyCacheSettings::default()
        },
        metering,
        ..Settings::default()
    };
    Application::build(parts, &settings)
}
