//! Retention: usage rows older than their resolution's retention, alert events (with their
//! deliveries) older than theirs, and audit events when the operator sets a retention for them,
//! are deleted in bounded batches, so pruning a large backlog never holds a long transaction.

use chrono::{DateTime, Utc};
use key_core::DeliveryState;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use crate::{
    Error, Resolution, Store,
    entity::{
        alert_event, audit_event,
        usage_bucket::{Column, Entity as UsageBuckets},
        webhook_delivery as delivery, webhook_delivery_attempt as attempt,
    },
};

impl Store {
    /// Deletes at most `limit` rows of `resolution` whose bucket starts before `before`
    /// (seconds since the Unix epoch), and returns how many it deleted. Fewer than `limit`
    /// means nothing older is left.
    pub async fn prune_usage(
        &self,
        resolution: Resolution,
        before: i64,
        limit: u64,
    ) -> Result<u64, Error> {
        // A DELETE with a LIMIT is not portable; a row-value IN over a limited SELECT is, and
        // uses the (resolution, bucket_start) index.
        let batch = Query::select()
            .columns([
                Column::KeyId,
                Column::Resolution,
                Column::BucketStart,
                Column::Dimension,
                Column::Value,
            ])
            .from(UsageBuckets)
            .and_where(Expr::col(Column::Resolution).eq(resolution.as_str()))
            .and_where(Expr::col(Column::BucketStart).lt(before))
            .limit(limit)
            .to_owned();
        let deleted = UsageBuckets::delete_many()
            .filter(Column::Resolution.eq(resolution.as_str()))
            .filter(
                Expr::tuple([
                    Expr::col(Column::KeyId),
                    Expr::col(Column::Resolution),
                    Expr::col(Column::BucketStart),
                    Expr::col(Column::Dimension),
                    Expr::col(Column::Value),
                ])
                .in_subquery(batch),
            )
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}

impl Store {
    /// Deletes at most `limit` alert events created before `before`, with their webhook
    /// deliveries and the deliveries' attempts, in one transaction; returns how many events it
    /// deleted. An event with a delivery still pending is kept until the delivery settles, so
    /// retention never drops an alert on its way out.
    pub async fn prune_alert_events(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, Error> {
        let txn = self.begin_write().await?;
        let pending = Query::select()
            .column(delivery::Column::EventId)
            .from(delivery::Entity)
            .and_where(Expr::col(delivery::Column::State).eq(DeliveryState::Pending.as_str()))
            .to_owned();
        let ids: Vec<Uuid> = alert_event::Entity::find()
            .select_only()
            .column(alert_event::Column::Id)
            .filter(alert_event::Column::CreatedAt.lt(before))
            .filter(alert_event::Column::Id.not_in_subquery(pending))
            .order_by_asc(alert_event::Column::CreatedAt)
            .limit(limit)
            .into_tuple()
            .all(&txn)
            .await?;
        if ids.is_empty() {
            txn.commit().await?;
            return Ok(0);
        }
        let deliveries = Query::select()
            .column(delivery::Column::Id)
            .from(delivery::Entity)
            .and_where(Expr::col(delivery::Column::EventId).is_in(ids.clone()))
            .to_owned();
        attempt::Entity::delete_many()
            .filter(attempt::Column::DeliveryId.in_subquery(deliveries))
            .exec(&txn)
            .await?;
        delivery::Entity::delete_many()
            .filter(delivery::Column::EventId.is_in(ids.clone()))
            .exec(&txn)
            .await?;
        let deleted = alert_event::Entity::delete_many()
            .filter(alert_event::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(deleted.rows_affected)
    }

    /// Deletes at most `limit` audit events older than `before`; returns how many it deleted.
    /// Only when the operator set an audit retention: by default the log is kept.
    pub async fn prune_audit_events(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, Error> {
        let batch = Query::select()
            .column(audit_event::Column::Id)
            .from(audit_event::Entity)
            .and_where(Expr::col(audit_event::Column::Time).lt(before))
            .order_by(audit_event::Column::Time, sea_orm::Order::Asc)
            .limit(limit)
            .to_owned();
        let deleted = audit_event::Entity::delete_many()
            .filter(audit_event::Column::Id.in_subquery(batch))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}
