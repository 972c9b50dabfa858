//! `keyrack serve`'s usage options: the country database and how long usage is kept.

use std::path::PathBuf;

use anyhow::Context;
use chrono::TimeDelta;
use clap::Args;
use key_grpc::{CountryDb, KeyManager, UsageRetention};

/// Usage metering options of `serve`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// A MaxMind DB file (GeoIP2/GeoLite2 Country or City) to derive a verification's country
    /// from its client_ip when the request names none. Read once at start.
    #[arg(long, env = "KEYRACK_GEOIP_DB", value_name = "PATH")]
    geoip_db: Option<PathBuf>,
    /// How long per-minute usage is kept, e.g. `48h`.
    #[arg(long, env = "KEYRACK_USAGE_RETENTION_MINUTE", default_value = "48h", value_parser = humantime::parse_duration)]
    usage_retention_minute: std::time::Duration,
    /// How long hourly usage is kept, e.g. `90d`.
    #[arg(long, env = "KEYRACK_USAGE_RETENTION_HOUR", default_value = "90d", value_parser = humantime::parse_duration)]
    usage_retention_hour: std::time::Duration,
    /// How long daily usage is kept, e.g. `400d`.
    #[arg(long, env = "KEYRACK_USAGE_RETENTION_DAY", default_value = "400d", value_parser = humantime::parse_duration)]
    usage_retention_day: std::time::Duration,
    /// `off` stops counting verifications: no usage, no last-used times, no usage alerts. Meant
    /// for measuring what metering costs (bench/metering.sh).
    #[arg(long, env = "KEYRACK_METERING", default_value = "on", value_parser = ["on", "off"])]
    metering: String,
}

impl UsageArgs {
    /// `manager` with these options applied. A country database that cannot be read stops
    /// the start: running silently without the countries the operator asked for would hide it.
    pub(crate) fn apply(&self, manager: KeyManager) -> anyhow::Result<KeyManager> {
        let delta = |duration: std::time::Duration, flag: &str| {
            TimeDelta::from_std(duration).with_context(|| format!("--{flag} is too long"))
        };
        let retention = UsageRetention {
            minute: delta(self.usage_retention_minute, "usage-retention-minute")?,
            hour: delta(self.usage_retention_hour, "usage-retention-hour")?,
            day: delta(self.usage_retention_day, "usage-retention-day")?,
        };
        let mut manager = manager
            .with_usage_retention(retention)
            .with_metering(self.metering == "on");
        if self.metering == "off" {
            tracing::warn!("metering is off: verifications are not counted");
        }
        if let Some(path) = &self.geoip_db {
            manager = manager.with_country_db(CountryDb::open(path)?);
            tracing::info!(path = %path.display(), "country database loaded");
        }
        Ok(manager)
    }
}
