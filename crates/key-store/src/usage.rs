use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use crate::{
    Error, Store,
    entity::{
        api_key,
        usage_hourly::{self, Column, Entity as UsageHourly},
    },
};

const SECONDS_PER_HOUR: i64 = 3600;

/// Verifications with one outcome in one hour, summed over the keys asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Start of the hour, seconds since the Unix epoch.
    pub hour_start: i64,
    /// `valid` or a platform error code.
    pub code: String,
    /// How many.
    pub count: i64,
}

/// Verifications of one key with one outcome in one hour, to be added to what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    /// The key.
    pub key_id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Start of the hour, seconds since the Unix epoch.
    pub hour_start: i64,
    /// `valid` or a platform error code.
    pub code: String,
    /// How many verifications to add.
    pub count: i64,
}

/// Rows per `INSERT`: 5 parameters each, well under SQLite's oldest limit of 999 parameters.
const ROWS_PER_INSERT: usize = 150;

/// The start of the hour `at` falls in, in seconds since the Unix epoch.
pub fn hour_start(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(SECONDS_PER_HOUR) * SECONDS_PER_HOUR
}

impl Store {
    /// Adds `counts` to the hourly usage rows and moves each key of `last_used` forward to its
    /// time (never backward), all in one transaction. Counts are added to what is stored
    /// (`count = count + n`), so several writers (replicas) sum correctly. Rows are written in
    /// key order, so two writers flushing at once take their row locks in the same order.
    pub async fn record_usage_batch(
        &self,
        counts: &[UsageCount],
        last_used: &[(Uuid, DateTime<Utc>)],
    ) -> Result<(), Error> {
        if counts.is_empty() && last_used.is_empty() {
            return Ok(());
        }
        let mut counts: Vec<&UsageCount> = counts.iter().collect();
        counts.sort_by(|a, b| {
            (a.key_id, a.hour_start, &a.code).cmp(&(b.key_id, b.hour_start, &b.code))
        });
        let mut last_used: Vec<&(Uuid, DateTime<Utc>)> = last_used.iter().collect();
        last_used.sort_by_key(|(key_id, _)| *key_id);

        let txn = self.db.begin().await?;
        for chunk in counts.chunks(ROWS_PER_INSERT) {
            let rows = chunk.iter().map(|usage| usage_hourly::ActiveModel {
                key_id: Set(usage.key_id),
                bucket_start: Set(usage.hour_start),
                code: Set(usage.code.clone()),
                organization_id: Set(usage.organization_id),
                count: Set(usage.count),
            });
            let add_to_stored =
                OnConflict::columns([Column::KeyId, Column::BucketStart, Column::Code])
                    .value(
                        Column::Count,
                        Expr::col((UsageHourly, Column::Count))
                            .add(Expr::col((Alias::new("excluded"), Column::Count))),
                    )
                    .to_owned();
            UsageHourly::insert_many(rows)
                .on_conflict(add_to_stored)
                .exec_without_returning(&txn)
                .await?;
        }
        for (key_id, at) in last_used {
            api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(*at))
                .filter(api_key::Column::Id.eq(*key_id))
                .filter(
                    sea_orm::Condition::any()
                        .add(api_key::Column::LastUsedAt.is_null())
                        .add(api_key::Column::LastUsedAt.lt(*at)),
                )
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Hourly verification counts by outcome for one key (or, with `key_id` `None`, every key)
    /// of `organization_id`, for hours starting in `[from, to)`; one query, summed in the
    /// database.
    pub async fn usage(
        &self,
        organization_id: Uuid,
        key_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, Error> {
        let mut query = UsageHourly::find()
            .select_only()
            .column(Column::BucketStart)
            .column(Column::Code)
            // PostgreSQL sums BIGINT into NUMERIC; cast back so both backends return a 64-bit integer.
            .column_as(Expr::cust("CAST(SUM(count) AS BIGINT)"), "total")
            .filter(Column::OrganizationId.eq(organization_id))
            .filter(Column::BucketStart.gte(from.timestamp()))
            .filter(Column::BucketStart.lt(to.timestamp()))
            .group_by(Column::BucketStart)
            .group_by(Column::Code);
        if let Some(key_id) = key_id {
            query = query.filter(Column::KeyId.eq(key_id));
        }
        let rows: Vec<(i64, String, i64)> = query.into_tuple().all(&self.db).await?;
        Ok(rows
            .into_iter()
            .map(|(hour_start, code, count)| UsageRow {
                hour_start,
                code,
                count,
            })
            .collect())
    }

    /// The latest `last_used_at` of one key (or of every key) of `organization_id`.
    pub async fn last_used(
        &self,
        organization_id: Uuid,
        key_id: Option<Uuid>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let mut query = api_key::Entity::find()
            .select_only()
            .column(api_key::Column::LastUsedAt)
            .filter(api_key::Column::OrganizationId.eq(organization_id))
            .filter(api_key::Column::LastUsedAt.is_not_null())
            .order_by_desc(api_key::Column::LastUsedAt)
            .limit(1);
        if let Some(key_id) = key_id {
            query = query.filter(api_key::Column::Id.eq(key_id));
        }
        let latest: Option<Option<DateTime<Utc>>> = query.into_tuple().one(&self.db).await?;
        Ok(latest.flatten())
    }
}
