//! Alerts: the rules of organizations and keys, the usage counts their evaluation reads (a few
//! grouped queries for a whole flushed batch), and alert events, stored once each and queued
//! for the webhook endpoints in the same transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{AlertPeriod, AlertRules, AlertType, AuditEvent};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict, Query},
};
use uuid::Uuid;

use crate::{
    Dimension, Error, Resolution, Store,
    audit::insert_audit_event_in,
    entity::{
        alert_event::{self, Entity as AlertEvents},
        alerting_key::{self, Entity as AlertingKeys},
        alerting_organization::{self, Entity as AlertingOrganizations},
        usage_bucket::{self, Entity as UsageBuckets},
    },
    webhooks::enqueue_webhook_deliveries,
};

/// Ids (or other values) per `IN (…)` list, under SQLite's oldest limit of 999 parameters.
const VALUES_PER_QUERY: usize = 500;

/// A key as alerting sees it: enough to name it, tell whether it is alive, and find its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertKey {
    /// The key.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The first instant it no longer works, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its own rules, replacing its organization's; `None`: it follows its organization.
    pub rules: Option<AlertRules>,
}

impl AlertKey {
    /// Whether the key works at `now`: neither revoked nor expired. Only such keys raise
    /// alerts.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// An alert event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    /// UUIDv7; also the idempotency id of its webhook deliveries.
    pub id: Uuid,
    /// The organization.
    pub organization_id: Uuid,
    /// The key concerned; `None` for a test alert.
    pub key_id: Option<Uuid>,
    /// What it is about.
    pub alert_type: AlertType,
    /// A sentence for people.
    pub message: String,
    /// When it fired.
    pub created_at: DateTime<Utc>,
    /// The start of the period it is about.
    pub period_start: DateTime<Utc>,
    /// The count observed, for thresholds and spikes.
    pub observed: i64,
    /// The threshold crossed, for thresholds and spikes.
    pub threshold: i64,
    /// The new country, for `new_country`.
    pub country: Option<String>,
}

/// Verifications of one key in one period: all of them, and those that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodCount {
    /// The key.
    pub key_id: Uuid,
    /// An hour or a day.
    pub period: AlertPeriod,
    /// Its start, seconds since the Unix epoch.
    pub period_start: i64,
    /// Every verification.
    pub requests: i64,
    /// Verifications whose outcome was not `valid`.
    pub failures: i64,
}

/// Which alert events a listing returns; every field narrows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertEventFilter {
    /// Only events about this key.
    pub key_id: Option<Uuid>,
    /// Only events of this type.
    pub alert_type: Option<AlertType>,
}

fn parse_rules(
    table: &'static str,
    id: Uuid,
    text: Option<&str>,
) -> Result<Option<AlertRules>, Error> {
    text.map(|text| {
        AlertRules::parse_stored(text).map_err(|detail| Error::Corrupt {
            table,
            detail: format!("{id}: {detail}"),
        })
    })
    .transpose()
}

fn alert_key(model: alerting_key::Model) -> Result<AlertKey, Error> {
    Ok(AlertKey {
        rules: parse_rules("api_keys", model.id, model.alert_rules.as_deref())?,
        id: model.id,
        organization_id: model.organization_id,
        name: model.name,
        created_at: model.created_at,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
    })
}

fn alert_event(model: alert_event::Model) -> Result<AlertEvent, Error> {
    let alert_type = AlertType::parse(&model.r#type).ok_or_else(|| Error::Corrupt {
        table: "alert_events",
        detail: format!("event {} has the unknown type {:?}", model.id, model.r#type),
    })?;
    Ok(AlertEvent {
        id: model.id,
        organization_id: model.organization_id,
        key_id: model.key_id,
        alert_type,
        message: model.message,
        created_at: model.created_at,
        period_start: model.period_start,
        observed: model.observed,
        threshold: model.threshold,
        country: model.country,
    })
}

/// Rules: the organization's and each key's, read and replaced.
impl Store {
    /// The alert rules `organization_id` set; `None` when it set none (Keyrack's defaults
    /// apply) or does not exist.
    pub async fn organization_alert_rules(
        &self,
        organization_id: Uuid,
    ) -> Result<Option<AlertRules>, Error> {
        let model = AlertingOrganizations::find_by_id(organization_id)
            .one(&self.db)
            .await?;
        match model {
            Some(model) => parse_rules("organizations", model.id, model.alert_rules.as_deref()),
            None => Ok(None),
        }
    }

    /// Replaces the alert rules of `organization_id`; `None` returns it to Keyrack's defaults.
    /// The change and `audit` are written in one transaction.
    pub async fn set_organization_alert_rules(
        &self,
        organization_id: Uuid,
        rules: Option<&AlertRules>,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin_write().await?;
        AlertingOrganizations::update_many()
            .col_expr(
                alerting_organization::Column::AlertRules,
                Expr::value(rules.map(AlertRules::format)),
            )
            .filter(alerting_organization::Column::Id.eq(organization_id))
            .exec(&txn)
            .await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The key `id` of `organization_id` as alerting sees it; `None` if it does not exist or
    /// belongs to another organization.
    pub async fn alert_key(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<AlertKey>, Error> {
        AlertingKeys::find_by_id(id)
            .filter(alerting_key::Column::OrganizationId.eq(organization_id))
            .one(&self.db)
            .await?
            .map(alert_key)
            .transpose()
    }

    /// Sets (or, with `None`, removes) the own alert rules of the key `id` of
    /// `organization_id`, and writes `audit` in the same transaction. Returns whether there is
    /// such a key; when there is none, nothing is written, not even the event.
    pub async fn set_key_alert_rules(
        &self,
        organization_id: Uuid,
        id: Uuid,
        rules: Option<&AlertRules>,
        audit: &AuditEvent,
    ) -> Result<bool, Error> {
        let txn = self.begin_write().await?;
        let updated = AlertingKeys::update_many()
            .col_expr(
                alerting_key::Column::AlertRules,
                Expr::value(rules.map(AlertRules::format)),
            )
            .filter(alerting_key::Column::Id.eq(id))
            .filter(alerting_key::Column::OrganizationId.eq(organization_id))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// The keys `ids` (of any organization) as alerting sees them, in one query per 500.
    pub async fn alert_keys(&self, ids: &[Uuid]) -> Result<Vec<AlertKey>, Error> {
        let mut keys = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(VALUES_PER_QUERY) {
            let models = AlertingKeys::find()
                .filter(alerting_key::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?;
            for model in models {
                keys.push(alert_key(model)?);
            }
        }
        Ok(keys)
    }

    /// The alert rules each of `organization_ids` set (`None`: Keyrack's defaults).
    pub async fn organizations_alert_rules(
        &self,
        organization_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<AlertRules>>, Error> {
        let mut rules = HashMap::with_capacity(organization_ids.len());
        for chunk in organization_ids.chunks(VALUES_PER_QUERY) {
            let models = AlertingOrganizations::find()
                .filter(alerting_organization::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?;
            for model in models {
                let parsed = parse_rules("organizations", model.id, model.alert_rules.as_deref())?;
                rules.insert(model.id, parsed);
            }
        }
        Ok(rules)
    }
}

/// Usage as the rules count it: requests and failures per key and period, from the `code`
/// rows of `usage_buckets` (every verification has exactly one code).
impl Store {
    /// For every key of `key_ids`, its requests and failures in each hour starting at one of
    /// `hours` and each day starting at one of `days` (seconds since the epoch); one grouped
    /// query per 500 keys. Periods without verifications have no entry.
    pub async fn period_counts(
        &self,
        key_ids: &[Uuid],
        hours: &[i64],
        days: &[i64],
    ) -> Result<Vec<PeriodCount>, Error> {
        use usage_bucket::Column;
        let periods = Condition::any()
            .add(
                Condition::all()
                    .add(Column::Resolution.eq(Resolution::Hour.as_str()))
                    .add(Column::BucketStart.is_in(hours.iter().copied())),
            )
            .add(
                Condition::all()
                    .add(Column::Resolution.eq(Resolution::Day.as_str()))
                    .add(Column::BucketStart.is_in(days.iter().copied())),
            );
        let mut counts = Vec::new();
        for chunk in key_ids.chunks(VALUES_PER_QUERY) {
            let rows: Vec<(Uuid, String, i64, i64, i64)> = UsageBuckets::find()
                .select_only()
                .column(Column::KeyId)
                .column(Column::Resolution)
                .column(Column::BucketStart)
                // PostgreSQL sums BIGINT into NUMERIC; cast back so both backends return a
                // 64-bit integer.
                .column_as(Expr::cust("CAST(SUM(count) AS BIGINT)"), "requests")
                .column_as(
                    Expr::cust(
                        "CAST(SUM(CASE WHEN value <> 'valid' THEN count ELSE 0 END) AS BIGINT)",
                    ),
                    "failures",
                )
                .filter(Column::Dimension.eq(Dimension::Code.as_str()))
                .filter(Column::KeyId.is_in(chunk.iter().copied()))
                .filter(periods.clone())
                .group_by(Column::KeyId)
                .group_by(Column::Resolution)
                .group_by(Column::BucketStart)
                .into_tuple()
                .all(&self.db)
                .await?;
            for (key_id, resolution, period_start, requests, failures) in rows {
                let period = if resolution == Resolution::Day.as_str() {
                    AlertPeriod::Daily
                } else {
                    AlertPeriod::Hourly
                };
                counts.push(PeriodCount {
                    key_id,
                    period,
                    period_start,
                    requests,
                    failures,
                });
            }
        }
        Ok(counts)
    }

    /// For every key of `key_ids`, its requests in the `hours` hours before the hour starting
    /// at `hour_start` (seconds since the epoch); one grouped query per 500 keys. Keys without
    /// any have no entry.
    pub async fn trailing_requests(
        &self,
        key_ids: &[Uuid],
        hour_start: i64,
        hours: i64,
    ) -> Result<HashMap<Uuid, i64>, Error> {
        use usage_bucket::Column;
        let from = hour_start - hours * Resolution::Hour.seconds();
        let mut totals = HashMap::new();
        for chunk in key_ids.chunks(VALUES_PER_QUERY) {
            let rows: Vec<(Uuid, i64)> = UsageBuckets::find()
                .select_only()
                .column(Column::KeyId)
                .column_as(Expr::cust("CAST(SUM(count) AS BIGINT)"), "requests")
                .filter(Column::Dimension.eq(Dimension::Code.as_str()))
                .filter(Column::Resolution.eq(Resolution::Hour.as_str()))
                .filter(Column::KeyId.is_in(chunk.iter().copied()))
                .filter(Column::BucketStart.gte(from))
                .filter(Column::BucketStart.lt(hour_start))
                .group_by(Column::KeyId)
                .into_tuple()
                .all(&self.db)
                .await?;
            totals.extend(rows);
        }
        Ok(totals)
    }
}

/// Events: stored once, queued for the webhooks in the same transaction, listed.
impl Store {
    /// Which of `dedup_keys` are already stored: the alerts that already fired.
    pub async fn stored_alert_dedup_keys(
        &self,
        dedup_keys: &[String],
    ) -> Result<HashSet<String>, Error> {
        let mut stored = HashSet::new();
        for chunk in dedup_keys.chunks(VALUES_PER_QUERY) {
            let rows: Vec<String> = AlertEvents::find()
                .select_only()
                .column(alert_event::Column::DedupKey)
                .filter(alert_event::Column::DedupKey.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.db)
                .await?;
            stored.extend(rows);
        }
        Ok(stored)
    }

    /// Stores `event` under `dedup_key` unless an event with that key exists, and in the same
    /// transaction queues one webhook delivery of `payload` per live endpoint of its
    /// organization. Returns whether it was stored: of two evaluations (or replicas) raising
    /// the same alert, exactly one gets `true`, and only its deliveries exist.
    pub async fn insert_alert_event(
        &self,
        event: &AlertEvent,
        dedup_key: &str,
        payload: &str,
    ) -> Result<bool, Error> {
        let model = alert_event::ActiveModel {
            id: Set(event.id),
            organization_id: Set(event.organization_id),
            key_id: Set(event.key_id),
            r#type: Set(event.alert_type.as_str().to_owned()),
            message: Set(event.message.clone()),
            created_at: Set(event.created_at),
            period_start: Set(event.period_start),
            observed: Set(event.observed),
            threshold: Set(event.threshold),
            country: Set(event.country.clone()),
            dedup_key: Set(dedup_key.to_owned()),
        };
        let txn = self.begin_write().await?;
        let inserted = AlertEvents::insert(model)
            .on_conflict(
                OnConflict::column(alert_event::Column::DedupKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        enqueue_webhook_deliveries(
            &txn,
            event.organization_id,
            event.id,
            payload,
            event.created_at,
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Up to `limit` events of `organization_id`, newest first, after the event `after`.
    pub async fn list_alert_events(
        &self,
        organization_id: Uuid,
        filter: AlertEventFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<AlertEvent>, Error> {
        use alert_event::Column;
        let mut query = AlertEvents::find().filter(Column::OrganizationId.eq(organization_id));
        if let Some(after) = after {
            query = query.filter(Column::Id.lt(after));
        }
        if let Some(key_id) = filter.key_id {
            query = query.filter(Column::KeyId.eq(key_id));
        }
        if let Some(alert_type) = filter.alert_type {
            query = query.filter(Column::Type.eq(alert_type.as_str()));
        }
        query
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(alert_event)
            .collect()
    }
}

/// The sweep's reads: keys about to expire, and keys due for rotation not yet alerted for.
impl Store {
    /// Up to `limit` live keys (of every organization) that expire after `now` and at or
    /// before `until`, in id order after `after`.
    pub async fn keys_expiring(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<AlertKey>, Error> {
        use alerting_key::Column;
        let mut query = AlertingKeys::find()
            .filter(Column::RevokedAt.is_null())
            .filter(Column::ExpiresAt.gt(now))
            .filter(Column::ExpiresAt.lte(until));
        if let Some(after) = after {
            query = query.filter(Column::Id.gt(after));
        }
        query
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(alert_key)
            .collect()
    }

    /// Up to `limit` keys due for rotation at `now` that no `rotation_due` alert names yet,
    /// each with its organization's maximum key age: live, not rotated, and at least that old
    /// (the rule of `KeyRecord::rotation_due`). One query per distinct maximum age.
    pub async fn keys_due_for_rotation(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(AlertKey, TimeDelta)>, Error> {
        use alerting_key::Column;
        let ages: Vec<i32> = AlertingOrganizations::find()
            .select_only()
            .column(alerting_organization::Column::MaxKeyAgeDays)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut due = Vec::new();
        for days in ages {
            let max_age = TimeDelta::days(i64::from(days));
            let organizations = Query::select()
                .column(alerting_organization::Column::Id)
                .from(AlertingOrganizations)
                .and_where(alerting_organization::Column::MaxKeyAgeDays.eq(days))
                .to_owned();
            let alerted = Query::select()
                .column(alert_event::Column::KeyId)
                .from(AlertEvents)
                .and_where(alert_event::Column::Type.eq(AlertType::RotationDue.as_str()))
                .and_where(alert_event::Column::KeyId.is_not_null())
                .to_owned();
            let remaining = limit.saturating_sub(due.len() as u64);
            if remaining == 0 {
                break;
            }
            let models = AlertingKeys::find()
                .filter(Column::OrganizationId.in_subquery(organizations))
                .filter(Column::Id.not_in_subquery(alerted))
                .filter(Column::RevokedAt.is_null())
                .filter(Column::RotatedTo.is_null())
                .filter(Column::CreatedAt.lte(now - max_age))
                .filter(
                    Condition::any()
                        .add(Column::ExpiresAt.is_null())
                        .add(Column::ExpiresAt.gt(now)),
                )
                .order_by_asc(Column::Id)
                .limit(remaining)
                .all(&self.db)
                .await?;
            for model in models {
                due.push((alert_key(model)?, max_age));
            }
        }
        Ok(due)
    }
}
