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

impl Store {
    /// Records `count` verifications of key `key_id` with outcome `code` at `at`, and moves the
    /// key's `last_used_at` forward to `at`. The count is added to what is stored, so writers
    /// never overwrite each other.
    pub async fn record_verifications(
        &self,
        key_id: Uuid,
        organization_id: Uuid,
        code: &str,
        count: i64,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let hour_start = at.timestamp().div_euclid(SECONDS_PER_HOUR) * SECONDS_PER_HOUR;
        let row = usage_hourly::ActiveModel {
            key_id: Set(key_id),
            bucket_start: Set(hour_start),
            code: Set(code.to_owned()),
            organization_id: Set(organization_id),
            count: Set(count),
        };
        let add_to_stored = OnConflict::columns([Column::KeyId, Column::BucketStart, Column::Code])
            .value(
                Column::Count,
                Expr::col((UsageHourly, Column::Count))
                    .add(Expr::col((Alias::new("excluded"), Column::Count))),
            )
            .to_owned();
        let txn = self.db.begin().await?;
        UsageHourly::insert(row)
            .on_conflict(add_to_stored)
            .exec_without_returning(&txn)
            .await?;
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(at))
            .filter(api_key::Column::Id.eq(key_id))
            .filter(
                sea_orm::Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lt(at)),
            )
            .exec(&txn)
            .await?;
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
