//! Webhook endpoints and the deliveries of alert events to them.
//!
//! A delivery is claimed by a compare-and-set on its `claim_count`: a worker that saw a due
//! delivery with claim count `c` sets it to `c + 1` and moves `next_attempt_at` to the end of
//! its lease, in one statement conditional on `claim_count = c`. Only one of two replicas can
//! change that row, so in the normal case one POST is made per attempt; if a worker dies, the
//! lease runs out and another takes the delivery over (at least once, never lost).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use key_core::{AuditEvent, DeliveryState, WebhookSigning};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, Func},
};
use uuid::Uuid;

use crate::{
    Error, Store,
    audit::insert_audit_event_in,
    entity::{
        webhook_delivery::{self, Column as DeliveryColumn, Entity as Deliveries},
        webhook_delivery_attempt::{self, Column as AttemptColumn, Entity as Attempts},
        webhook_endpoint::{self, Column as EndpointColumn, Entity as Endpoints},
    },
};

/// What a worker may claim in one round (see `Store::claim_due_webhook_deliveries`).
#[derive(Debug, Clone, Copy)]
pub struct DeliveryClaim<'a> {
    /// At most this many deliveries in all.
    pub limit: u64,
    /// At most this many of one organization, counting those `under_way`.
    pub per_organization: u64,
    /// How many of each organization's deliveries the worker is attempting already.
    pub under_way: &'a HashMap<Uuid, u64>,
}

impl DeliveryClaim<'_> {
    /// How many more of `organization_id`'s deliveries this round may claim.
    fn room_for(&self, organization_id: Uuid) -> u64 {
        let busy = self.under_way.get(&organization_id).copied().unwrap_or(0);
        self.per_organization.saturating_sub(busy)
    }
}

/// An endpoint to store.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    /// Its id (UUIDv7).
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// The validated URL.
    pub url: String,
    /// The validated description.
    pub description: String,
    /// The signing secret, sealed by `key_core::WebhookSecretCipher` for `id`.
    pub sealed_secret: Vec<u8>,
    /// How its deliveries are signed.
    pub signing: WebhookSigning,
    /// Now.
    pub created_at: DateTime<Utc>,
}

/// A live endpoint, as listed. Its secret stays in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// A note for people.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its signing secret was last set.
    pub secret_rotated_at: DateTime<Utc>,
    /// How its deliveries are signed.
    pub signing: WebhookSigning,
}

/// One POST of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub attempt_number: i32,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status answered; 0 when none.
    pub status_code: i32,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

/// A delivery with its attempts, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Its id.
    pub id: Uuid,
    /// The event delivered.
    pub event_id: Uuid,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// Where it stands.
    pub state: DeliveryState,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its attempts, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// Which deliveries a listing returns; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only deliveries to this endpoint.
    pub endpoint_id: Option<Uuid>,
    /// Only deliveries of this event.
    pub event_id: Option<Uuid>,
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
}

/// A delivery a worker has claimed, with what it needs to make the attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery's id.
    pub id: Uuid,
    /// The event's id (the idempotency id).
    pub event_id: Uuid,
    /// The organization the delivery belongs to.
    pub organization_id: Uuid,
    /// The endpoint's id.
    pub endpoint_id: Uuid,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's sealed signing secret.
    pub sealed_secret: Vec<u8>,
    /// How the endpoint's deliveries are signed.
    pub signing: WebhookSigning,
    /// The JSON body.
    pub payload: String,
    /// The number of the attempt about to be made (1 for the first).
    pub attempt_number: i32,
    /// When the delivery was created (the retry schedule counts from here).
    pub created_at: DateTime<Utc>,
    /// The claim count this worker set; its outcome is written only if it still holds.
    pub claim: i64,
}

/// Stores one pending delivery of the event `event_id` per live endpoint of `organization_id`,
/// due at `now`, and returns how many. `payload` is the JSON body, built once by the caller.
/// Runs on `db`, so the caller can make it part of the transaction that stores the event: an
/// event is never stored without its deliveries.
pub async fn enqueue_webhook_deliveries<C: ConnectionTrait>(
    db: &C,
    organization_id: Uuid,
    event_id: Uuid,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let endpoints: Vec<Uuid> = Endpoints::find()
        .select_only()
        .column(EndpointColumn::Id)
        .filter(EndpointColumn::OrganizationId.eq(organization_id))
        .filter(EndpointColumn::DeletedAt.is_null())
        .order_by_asc(EndpointColumn::Id)
        .into_tuple()
        .all(db)
        .await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let rows = endpoints
        .iter()
        .map(|endpoint_id| webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(organization_id),
            event_id: Set(event_id),
            endpoint_id: Set(*endpoint_id),
            payload: Set(payload.to_owned()),
            state: Set(DeliveryState::Pending.as_str().to_owned()),
            attempt_count: Set(0),
            next_attempt_at: Set(Some(now)),
            created_at: Set(now),
            claim_count: Set(0),
        });
    Deliveries::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(endpoints.len())
}

impl Store {
    /// Stores a new endpoint and `audit`, in one transaction, and returns the endpoint.
    pub async fn insert_webhook_endpoint(
        &self,
        endpoint: NewWebhookEndpoint,
        audit: &AuditEvent,
    ) -> Result<WebhookEndpoint, Error> {
        let model = webhook_endpoint::ActiveModel {
            id: Set(endpoint.id),
            organization_id: Set(endpoint.organization_id),
            url: Set(endpoint.url.clone()),
            description: Set(endpoint.description.clone()),
            sealed_secret: Set(endpoint.sealed_secret),
            created_at: Set(endpoint.created_at),
            secret_rotated_at: Set(endpoint.created_at),
            deleted_at: Set(None),
            signing: Set(endpoint.signing.as_str().to_owned()),
        };
        let txn = self.begin_write().await?;
        Endpoints::insert(model)
            .exec_without_returning(&txn)
            .await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(WebhookEndpoint {
            id: endpoint.id,
            organization_id: endpoint.organization_id,
            url: endpoint.url,
            description: endpoint.description,
            created_at: endpoint.created_at,
            secret_rotated_at: endpoint.created_at,
            signing: endpoint.signing,
        })
    }

    /// Up to `limit` live endpoints of `organization_id`, oldest first, after the endpoint
    /// `after`.
    pub async fn list_webhook_endpoints(
        &self,
        organization_id: Uuid,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<WebhookEndpoint>, Error> {
        let mut query = Endpoints::find()
            .filter(EndpointColumn::OrganizationId.eq(organization_id))
            .filter(EndpointColumn::DeletedAt.is_null());
        if let Some(after) = after {
            query = query.filter(EndpointColumn::Id.gt(after));
        }
        query
            .order_by_asc(EndpointColumn::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(endpoint_from_model)
            .collect()
    }

    /// The live endpoint `id` of `organization_id`, if any.
    pub async fn get_webhook_endpoint(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<WebhookEndpoint>, Error> {
        Endpoints::find_by_id(id)
            .filter(EndpointColumn::OrganizationId.eq(organization_id))
            .filter(EndpointColumn::DeletedAt.is_null())
            .one(&self.db)
            .await?
            .map(endpoint_from_model)
            .transpose()
    }

    /// Deletes the live endpoint `id` of `organization_id` at `now`, marks its pending
    /// deliveries failed and writes `audit`, in one transaction. `false` (and nothing written)
    /// if there is no such endpoint.
    pub async fn delete_webhook_endpoint(
        &self,
        organization_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, Error> {
        let txn = self.begin_write().await?;
        let deleted = Endpoints::update_many()
            .col_expr(EndpointColumn::DeletedAt, Expr::value(now))
            .filter(EndpointColumn::Id.eq(id))
            .filter(EndpointColumn::OrganizationId.eq(organization_id))
            .filter(EndpointColumn::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        abandon_pending_in(&txn, id).await?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Replaces the signing secret of the live endpoint `id` of `organization_id` with
    /// `sealed_secret`, set at `now`, and writes `audit`, in one transaction. `None` (and
    /// nothing written) if there is no such endpoint.
    pub async fn rotate_webhook_secret(
        &self,
        organization_id: Uuid,
        id: Uuid,
        sealed_secret: Vec<u8>,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<WebhookEndpoint>, Error> {
        let txn = self.begin_write().await?;
        let updated = Endpoints::update_many()
            .col_expr(EndpointColumn::SealedSecret, Expr::value(sealed_secret))
            .col_expr(EndpointColumn::SecretRotatedAt, Expr::value(now))
            .filter(EndpointColumn::Id.eq(id))
            .filter(EndpointColumn::OrganizationId.eq(organization_id))
            .filter(EndpointColumn::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let endpoint = Endpoints::find_by_id(id)
            .filter(EndpointColumn::OrganizationId.eq(organization_id))
            .one(&txn)
            .await?
            .map(endpoint_from_model)
            .transpose()?;
        insert_audit_event_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(endpoint)
    }

    /// Up to `limit` deliveries of `organization_id`, newest first, after the delivery `after`,
    /// each with its attempts.
    pub async fn list_webhook_deliveries(
        &self,
        organization_id: Uuid,
        filter: &DeliveryFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        let mut query =
            Deliveries::find().filter(DeliveryColumn::OrganizationId.eq(organization_id));
        if let Some(after) = after {
            query = query.filter(DeliveryColumn::Id.lt(after));
        }
        if let Some(endpoint_id) = filter.endpoint_id {
            query = query.filter(DeliveryColumn::EndpointId.eq(endpoint_id));
        }
        if let Some(event_id) = filter.event_id {
            query = query.filter(DeliveryColumn::EventId.eq(event_id));
        }
        if let Some(state) = filter.state {
            query = query.filter(DeliveryColumn::State.eq(state.as_str()));
        }
        let deliveries = query
            .order_by_desc(DeliveryColumn::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids: Vec<Uuid> = deliveries.iter().map(|delivery| delivery.id).collect();
        let attempts = if ids.is_empty() {
            Vec::new()
        } else {
            Attempts::find()
                .filter(AttemptColumn::DeliveryId.is_in(ids))
                .order_by_asc(AttemptColumn::AttemptedAt)
                .order_by_asc(AttemptColumn::AttemptNumber)
                .all(&self.db)
                .await?
        };
        let mut by_delivery: HashMap<Uuid, Vec<webhook_delivery_attempt::Model>> = HashMap::new();
        for attempt in attempts {
            by_delivery
                .entry(attempt.delivery_id)
                .or_default()
                .push(attempt);
        }
        deliveries
            .into_iter()
            .map(|model| {
                let own = by_delivery.remove(&model.id).unwrap_or_default();
                delivery_from_model(model, own)
            })
            .collect()
    }

    /// How many pending deliveries are due at `now`: the backlog the worker has yet to start.
    pub async fn count_due_webhook_deliveries(&self, now: DateTime<Utc>) -> Result<u64, Error> {
        Ok(Deliveries::find()
            .filter(DeliveryColumn::State.eq(DeliveryState::Pending.as_str()))
            .filter(DeliveryColumn::NextAttemptAt.lte(now))
            .count(&self.db)
            .await?)
    }

    /// Claims up to `claim.limit` pending deliveries due at `now`, leasing each until
    /// `lease_until`: another worker will not take them before then. Deliveries whose endpoint
    /// is gone are marked failed instead.
    ///
    /// Fair between organizations: the organizations with due deliveries take turns, oldest
    /// due first, at most `claim.per_organization` deliveries each under way at once (those
    /// the worker is already attempting count); so one tenant's backlog or slow endpoints
    /// cannot hold up the others' deliveries.
    pub async fn claim_due_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        claim: &DeliveryClaim<'_>,
    ) -> Result<Vec<ClaimedDelivery>, Error> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        let pending_due = || {
            Deliveries::find()
                .filter(DeliveryColumn::State.eq(DeliveryState::Pending.as_str()))
                .filter(DeliveryColumn::NextAttemptAt.lte(now))
        };
        let full = claim
            .under_way
            .keys()
            .copied()
            .filter(|organization_id| claim.room_for(*organization_id) == 0);
        let organizations: Vec<Uuid> = pending_due()
            .filter(DeliveryColumn::OrganizationId.is_not_in(full))
            .select_only()
            .column(DeliveryColumn::OrganizationId)
            .group_by(DeliveryColumn::OrganizationId)
            .order_by_asc(Func::min(Expr::col(DeliveryColumn::NextAttemptAt)))
            .limit(claim.limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut due = Vec::new();
        for organization_id in organizations {
            let room = claim.limit.saturating_sub(due.len() as u64);
            if room == 0 {
                break;
            }
            due.extend(
                pending_due()
                    .filter(DeliveryColumn::OrganizationId.eq(organization_id))
                    .order_by_asc(DeliveryColumn::NextAttemptAt)
                    .limit(room.min(claim.room_for(organization_id)))
                    .all(&self.db)
                    .await?,
            );
        }
        let mut claimed = Vec::with_capacity(due.len());
        for delivery in due {
            let claim = delivery.claim_count + 1;
            let updated = Deliveries::update_many()
                .col_expr(DeliveryColumn::ClaimCount, Expr::value(claim))
                .col_expr(DeliveryColumn::NextAttemptAt, Expr::value(lease_until))
                .filter(DeliveryColumn::Id.eq(delivery.id))
                .filter(DeliveryColumn::State.eq(DeliveryState::Pending.as_str()))
                .filter(DeliveryColumn::ClaimCount.eq(delivery.claim_count))
                .exec(&self.db)
                .await?;
            if updated.rows_affected == 0 {
                // Another worker claimed it first.
                continue;
            }
            let endpoint = Endpoints::find_by_id(delivery.endpoint_id)
                .filter(EndpointColumn::DeletedAt.is_null())
                .one(&self.db)
                .await?;
            let Some(endpoint) = endpoint else {
                abandon_pending_in(&self.db, delivery.endpoint_id).await?;
                continue;
            };
            let signing = signing_from_model(&endpoint)?;
            claimed.push(ClaimedDelivery {
                id: delivery.id,
                event_id: delivery.event_id,
                organization_id: delivery.organization_id,
                endpoint_id: delivery.endpoint_id,
                url: endpoint.url,
                sealed_secret: endpoint.sealed_secret,
                signing,
                payload: delivery.payload,
                attempt_number: delivery.attempt_count + 1,
                created_at: delivery.created_at,
                claim,
            });
        }
        Ok(claimed)
    }

    /// Records `attempt` of the claimed `delivery` and moves the delivery to `state`, due again
    /// at `next_attempt_at` while pending, in one transaction. The attempt is always recorded
    /// (the POST was made); the delivery changes only if the claim still holds and the
    /// delivery is still pending (not abandoned by a deletion meanwhile). Returns whether it
    /// changed.
    pub async fn record_webhook_attempt(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<bool, Error> {
        let txn = self.begin_write().await?;
        let model = webhook_delivery_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            delivery_id: Set(delivery.id),
            attempt_number: Set(attempt.attempt_number),
            attempted_at: Set(attempt.attempted_at),
            status_code: Set(attempt.status_code),
            error: Set(attempt.error.clone()),
            duration_ms: Set(attempt.duration_ms),
        };
        Attempts::insert(model).exec_without_returning(&txn).await?;
        let updated = Deliveries::update_many()
            .col_expr(DeliveryColumn::State, Expr::value(state.as_str()))
            .col_expr(
                DeliveryColumn::AttemptCount,
                Expr::value(attempt.attempt_number),
            )
            .col_expr(DeliveryColumn::NextAttemptAt, Expr::value(next_attempt_at))
            .filter(DeliveryColumn::Id.eq(delivery.id))
            .filter(DeliveryColumn::ClaimCount.eq(delivery.claim))
            .filter(DeliveryColumn::State.eq(DeliveryState::Pending.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(updated.rows_affected == 1)
    }
}

/// Marks every pending delivery to `endpoint_id` failed.
async fn abandon_pending_in(db: &impl ConnectionTrait, endpoint_id: Uuid) -> Result<(), Error> {
    Deliveries::update_many()
        .col_expr(
            DeliveryColumn::State,
            Expr::value(DeliveryState::Failed.as_str()),
        )
        .col_expr(
            DeliveryColumn::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(DeliveryColumn::EndpointId.eq(endpoint_id))
        .filter(DeliveryColumn::State.eq(DeliveryState::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

fn endpoint_from_model(model: webhook_endpoint::Model) -> Result<WebhookEndpoint, Error> {
    let signing = signing_from_model(&model)?;
    Ok(WebhookEndpoint {
        id: model.id,
        organization_id: model.organization_id,
        url: model.url,
        description: model.description,
        created_at: model.created_at,
        secret_rotated_at: model.secret_rotated_at,
        signing,
    })
}

fn signing_from_model(model: &webhook_endpoint::Model) -> Result<WebhookSigning, Error> {
    WebhookSigning::parse(&model.signing).ok_or_else(|| Error::Corrupt {
        table: "webhook_endpoints",
        detail: format!("endpoint {} has an unknown signing mode", model.id),
    })
}

fn delivery_from_model(
    model: webhook_delivery::Model,
    attempts: Vec<webhook_delivery_attempt::Model>,
) -> Result<WebhookDelivery, Error> {
    let state = DeliveryState::parse(&model.state).ok_or_else(|| Error::Corrupt {
        table: "webhook_deliveries",
        detail: format!("delivery {} has an unknown state", model.id),
    })?;
    Ok(WebhookDelivery {
        id: model.id,
        event_id: model.event_id,
        endpoint_id: model.endpoint_id,
        state,
        next_attempt_at: model
            .next_attempt_at
            .filter(|_| state == DeliveryState::Pending),
        created_at: model.created_at,
        attempts: attempts
            .into_iter()
            .map(|attempt| DeliveryAttempt {
                attempt_number: attempt.attempt_number,
                attempted_at: attempt.attempted_at,
                status_code: attempt.status_code,
                error: attempt.error,
                duration_ms: attempt.duration_ms,
            })
            .collect(),
    })
}
