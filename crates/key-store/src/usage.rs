//! Writing usage: a flushed batch of per-minute counts becomes additive upserts into the
//! `minute`, `hour` and `day` rows of `usage_buckets`, in one transaction that also moves the
//! keys' `last_used_at` forward and reports what changed for the alert rules.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Alias, Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use crate::{
    Error, FlushReport, KeyActivity, Store,
    entity::{
        api_key,
        usage_bucket::{self, Column, Entity as UsageBuckets},
    },
};

/// The width of a usage bucket. Every count is stored at all three, so each can be read on
/// its own and pruned on its own schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Resolution {
    /// Every resolution, narrowest first.
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    /// The bucket's width in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    /// The start of the bucket that `seconds` (since the Unix epoch) falls in.
    pub const fn bucket_start(self, seconds: i64) -> i64 {
        seconds.div_euclid(self.seconds()) * self.seconds()
    }
}

/// What a usage count is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// The outcome: `valid` or a platform error code. Every verification has one, so these
    /// rows are also the request counts.
    Code,
    /// The client's country (ISO 3166-1 alpha-2), for verifications that had one.
    Country,
    /// The route or operation, for verifications that had one.
    Tag,
}

impl Dimension {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::Code => "code",
            Dimension::Country => "country",
            Dimension::Tag => "tag",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Dimension> {
        match name {
            "code" => Some(Dimension::Code),
            "country" => Some(Dimension::Country),
            "tag" => Some(Dimension::Tag),
            _ => None,
        }
    }
}

/// Verifications of one key in one minute with one value of one dimension, to be added to
/// what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    /// The key.
    pub key_id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Start of the minute, seconds since the Unix epoch.
    pub minute_start: i64,
    /// What `value` is.
    pub dimension: Dimension,
    /// The code, the country or the tag.
    pub value: String,
    /// How many verifications to add.
    pub count: i64,
}

/// One key's use in a flushed batch: when, and from which countries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The key.
    pub key_id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// The earliest verification in the batch.
    pub first_used_at: DateTime<Utc>,
    /// The latest verification in the batch; `last_used_at` moves forward to it.
    pub last_used_at: DateTime<Utc>,
    /// Countries (ISO 3166-1 alpha-2) the key was used from in the batch.
    pub countries: Vec<String>,
}

/// Rows per `INSERT`: 7 parameters each, under SQLite's oldest limit of 999 parameters.
const ROWS_PER_INSERT: usize = 140;
/// Ids per `IN (…)` list, under the same limit.
const IDS_PER_QUERY: usize = 500;

/// A stored row's primary key, in the order rows are written.
type RowKey<'a> = (Uuid, Resolution, i64, Dimension, &'a str);

impl Store {
    /// Adds `counts` to the minute, hour and day rows of their keys (`count = count + n`) and
    /// moves each key of `uses` forward to its latest use (never backward), all in one
    /// transaction, so several writers (replicas) sum correctly. Rows are written in primary
    /// key order, so two writers flushing at once take their row locks in the same order.
    ///
    /// Before writing, the same transaction reads each key's previous `last_used_at` and which
    /// of the batch's countries its stored daily usage has never seen; the returned report
    /// carries both, for the alert rules.
    pub async fn record_usage_batch(
        &self,
        counts: &[UsageCount],
        uses: &[KeyUse],
    ) -> Result<FlushReport, Error> {
        if counts.is_empty() && uses.is_empty() {
            return Ok(FlushReport::default());
        }
        let rows = roll_up(counts);
        let mut uses: Vec<&KeyUse> = uses.iter().collect();
        uses.sort_by_key(|key_use| key_use.key_id);

        // The transaction reads before it writes: `begin_write` says why that needs the write
        // lock from the start on SQLite.
        let txn = self.begin_write().await?;
        let previous = previous_last_used(&txn, &uses).await?;
        let known_countries = known_countries(&txn, &uses).await?;
        write_rows(&txn, &rows).await?;
        for key_use in &uses {
            let at = key_use.last_used_at;
            api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(at))
                .filter(api_key::Column::Id.eq(key_use.key_id))
                .filter(
                    sea_orm::Condition::any()
                        .add(api_key::Column::LastUsedAt.is_null())
                        .add(api_key::Column::LastUsedAt.lt(at)),
                )
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;

        let keys = uses
            .iter()
            .map(|key_use| {
                let mut new_countries: Vec<String> = key_use
                    .countries
                    .iter()
                    .filter(|country| {
                        !known_countries.contains(&(key_use.key_id, (*country).clone()))
                    })
                    .cloned()
                    .collect();
                new_countries.sort();
                new_countries.dedup();
                KeyActivity {
                    key_id: key_use.key_id,
                    organization_id: key_use.organization_id,
                    previously_used_at: previous.get(&key_use.key_id).copied().flatten(),
                    first_used_at: key_use.first_used_at,
                    last_used_at: key_use.last_used_at,
                    new_countries,
                }
            })
            .collect();
        Ok(FlushReport { keys })
    }
}

/// Each per-minute count added to its minute, hour and day rows, summed per row and sorted by
/// primary key. One `INSERT … ON CONFLICT DO UPDATE` may not touch a row twice (PostgreSQL
/// refuses), so every row appears once.
fn roll_up(counts: &[UsageCount]) -> BTreeMap<RowKey<'_>, (Uuid, i64)> {
    let mut rows: BTreeMap<RowKey<'_>, (Uuid, i64)> = BTreeMap::new();
    for count in counts {
        for resolution in Resolution::ALL {
            let key = (
                count.key_id,
                resolution,
                resolution.bucket_start(count.minute_start),
                count.dimension,
                count.value.as_str(),
            );
            rows.entry(key).or_insert((count.organization_id, 0)).1 += count.count;
        }
    }
    rows
}

async fn write_rows(
    txn: &DatabaseTransaction,
    rows: &BTreeMap<RowKey<'_>, (Uuid, i64)>,
) -> Result<(), Error> {
    let rows: Vec<_> = rows.iter().collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let models = chunk.iter().map(
            |&(
                &(key_id, resolution, bucket_start, dimension, value),
                &(organization_id, count),
            )| {
                usage_bucket::ActiveModel {
                    key_id: Set(key_id),
                    resolution: Set(resolution.as_str().to_owned()),
                    bucket_start: Set(bucket_start),
                    dimension: Set(dimension.as_str().to_owned()),
                    value: Set(value.to_owned()),
                    organization_id: Set(organization_id),
                    count: Set(count),
                }
            },
        );
        let add_to_stored = OnConflict::columns([
            Column::KeyId,
            Column::Resolution,
            Column::BucketStart,
            Column::Dimension,
            Column::Value,
        ])
        .value(
            Column::Count,
            Expr::col((UsageBuckets, Column::Count))
                .add(Expr::col((Alias::new("excluded"), Column::Count))),
        )
        .to_owned();
        UsageBuckets::insert_many(models)
            .on_conflict(add_to_stored)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// The `last_used_at` of each key of `uses` before this batch.
async fn previous_last_used(
    db: &impl ConnectionTrait,
    uses: &[&KeyUse],
) -> Result<HashMap<Uuid, Option<DateTime<Utc>>>, Error> {
    let ids: Vec<Uuid> = uses.iter().map(|key_use| key_use.key_id).collect();
    let mut previous = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = api_key::Entity::find()
            .select_only()
            .column(api_key::Column::Id)
            .column(api_key::Column::LastUsedAt)
            .filter(api_key::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        previous.extend(rows);
    }
    Ok(previous)
}

/// Which (key, country) pairs of `uses` already have stored daily usage: the countries each
/// key had been seen from before this batch, as far back as daily rows are kept.
async fn known_countries(
    db: &impl ConnectionTrait,
    uses: &[&KeyUse],
) -> Result<HashSet<(Uuid, String)>, Error> {
    let with_countries: Vec<&KeyUse> = uses
        .iter()
        .copied()
        .filter(|key_use| !key_use.countries.is_empty())
        .collect();
    let countries: BTreeSet<&str> = with_countries
        .iter()
        .flat_map(|key_use| key_use.countries.iter().map(String::as_str))
        .collect();
    let mut known = HashSet::new();
    if with_countries.is_empty() {
        return Ok(known);
    }
    let ids: Vec<Uuid> = with_countries
        .iter()
        .map(|key_use| key_use.key_id)
        .collect();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let rows: Vec<(Uuid, String)> = UsageBuckets::find()
            .select_only()
            .column(Column::KeyId)
            .column(Column::Value)
            .distinct()
            .filter(Column::Resolution.eq(Resolution::Day.as_str()))
            .filter(Column::Dimension.eq(Dimension::Country.as_str()))
            .filter(Column::KeyId.is_in(chunk.iter().copied()))
            .filter(Column::Value.is_in(countries.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        known.extend(rows);
    }
    Ok(known)
}
