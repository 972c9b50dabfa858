//! Reading usage: the series and distributions of a key, a set of keys or an organization in
//! one grouped query, and when they were last used.

use chrono::{DateTime, Utc};
use key_core::KeyType;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr};
use uuid::Uuid;

use crate::{
    Dimension, Error, Resolution, Store,
    entity::{
        api_key,
        usage_bucket::{Column, Entity as UsageBuckets},
    },
};

/// Verifications with one value of one dimension in one bucket, summed over the keys asked
/// for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Start of the bucket, seconds since the Unix epoch.
    pub bucket_start: i64,
    /// What `value` is.
    pub dimension: Dimension,
    /// `valid` or a platform error code, a country, or a tag.
    pub value: String,
    /// How many.
    pub count: i64,
}

/// Which keys a usage read covers.
#[derive(Debug, Clone, Copy)]
pub enum UsageKeys<'a> {
    /// Every key of the organization.
    Organization,
    /// These keys (of the organization; others are not counted).
    Keys(&'a [Uuid]),
}

/// A key of a usage request and whose it is, for the permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOwner {
    /// The key.
    pub key_id: Uuid,
    /// Its member, for a personal key; `None` for an organization key.
    pub member_id: Option<Uuid>,
}

impl Store {
    /// Verification counts of `keys` of `organization_id` at `resolution`, for buckets
    /// starting in `[from, to)`, by bucket, dimension and value: one query, summed in the
    /// database, whatever the number of keys.
    pub async fn usage(
        &self,
        organization_id: Uuid,
        keys: UsageKeys<'_>,
        resolution: Resolution,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, Error> {
        let mut query = UsageBuckets::find()
            .select_only()
            .column(Column::BucketStart)
            .column(Column::Dimension)
            .column(Column::Value)
            // PostgreSQL sums BIGINT into NUMERIC; cast back so both backends return a 64-bit integer.
            .column_as(Expr::cust("CAST(SUM(count) AS BIGINT)"), "total")
            .filter(Column::OrganizationId.eq(organization_id))
            .filter(Column::Resolution.eq(resolution.as_str()))
            .filter(Column::BucketStart.gte(from.timestamp()))
            .filter(Column::BucketStart.lt(to.timestamp()))
            .group_by(Column::BucketStart)
            .group_by(Column::Dimension)
            .group_by(Column::Value)
            .order_by_asc(Column::BucketStart);
        if let UsageKeys::Keys(ids) = keys {
            query = query.filter(Column::KeyId.is_in(ids.iter().copied()));
        }
        let rows: Vec<(i64, String, String, i64)> = query.into_tuple().all(&self.db).await?;
        rows.into_iter()
            .map(|(bucket_start, dimension, value, count)| {
                let dimension = Dimension::parse(&dimension).ok_or_else(|| Error::Corrupt {
                    table: "usage_buckets",
                    detail: format!("unknown dimension {dimension:?}"),
                })?;
                Ok(UsageRow {
                    bucket_start,
                    dimension,
                    value,
                    count,
                })
            })
            .collect()
    }

    /// The latest `last_used_at` of `keys` of `organization_id`.
    pub async fn last_used(
        &self,
        organization_id: Uuid,
        keys: UsageKeys<'_>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let mut query = api_key::Entity::find()
            .select_only()
            .column(api_key::Column::LastUsedAt)
            .filter(api_key::Column::OrganizationId.eq(organization_id))
            .filter(api_key::Column::LastUsedAt.is_not_null())
            .order_by_desc(api_key::Column::LastUsedAt)
            .limit(1);
        if let UsageKeys::Keys(ids) = keys {
            query = query.filter(api_key::Column::Id.is_in(ids.iter().copied()));
        }
        let latest: Option<Option<DateTime<Utc>>> = query.into_tuple().one(&self.db).await?;
        Ok(latest.flatten())
    }

    /// The keys among `ids` that belong to `organization_id`, with their owners, in one query.
    /// Ids of other organizations' keys, or of no key, are simply absent.
    pub async fn key_owners(
        &self,
        organization_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<KeyOwner>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String, Option<Uuid>)> = api_key::Entity::find()
            .select_only()
            .column(api_key::Column::Id)
            .column(api_key::Column::KeyType)
            .column(api_key::Column::MemberId)
            .filter(api_key::Column::OrganizationId.eq(organization_id))
            .filter(api_key::Column::Id.is_in(ids.iter().copied()))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(key_id, key_type, member_id)| KeyOwner {
                key_id,
                member_id: match KeyType::parse(&key_type) {
                    Some(KeyType::Personal) => member_id,
                    Some(KeyType::Organization) | None => None,
                },
            })
            .collect())
    }
}
