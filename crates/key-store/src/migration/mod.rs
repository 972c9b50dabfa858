//! Schema migrations, applied in order by `keyrack migrate` and at every start of `keyrack serve`.

use sea_orm_migration::prelude::*;

mod m20261128_000001_create_tables;
mod m20261128_000002_rotation_and_audit;
mod m20261128_000003_members_and_key_types;
mod m20261128_000004_rate_limits;
mod m20261128_000005_usage_buckets;
mod m20261128_000006_alerts_and_webhooks;
mod m20261128_000007_webhooks;
mod m20261206_000008_deployment_settings;
mod m20261206_000009_retention_indexes;
mod m20261206_000010_cache_notices;
mod m20261206_000011_sessions;
mod m20261206_000012_key_controls;
mod m20261206_000013_webhooks_standard_and_leaks;
mod m20261206_000014_sign_in_indexes;
mod m20261206_000015_credits;
mod m20261206_000016_oauth;
#[cfg(test)]
mod tests;

pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_tables::Migration),
            Box::new(m20261128_000002_rotation_and_audit::Migration),
            Box::new(m20261128_000003_members_and_key_types::Migration),
            Box::new(m20261128_000004_rate_limits::Migration),
            Box::new(m20261128_000005_usage_buckets::Migration),
            Box::new(m20261128_000006_alerts_and_webhooks::Migration),
            Box::new(m20261128_000007_webhooks::Migration),
            Box::new(m20261206_000008_deployment_settings::Migration),
            Box::new(m20261206_000009_retention_indexes::Migration),
            Box::new(m20261206_000010_cache_notices::Migration),
            Box::new(m20261206_000011_sessions::Migration),
            Box::new(m20261206_000012_key_controls::Migration),
            Box::new(m20261206_000013_webhooks_standard_and_leaks::Migration),
            Box::new(m20261206_000014_sign_in_indexes::Migration),
            Box::new(m20261206_000015_credits::Migration),
            Box::new(m20261206_000016_oauth::Migration),
        ]
    }
}
