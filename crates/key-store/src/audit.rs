use chrono::{DateTime, Utc};
use key_core::{ActorType, AuditAction, AuditEvent, AuditOutcome};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::{
    Error, Store,
    entity::audit_event::{self, Column, Entity as AuditEvents},
};

/// Which audit events a listing returns; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events about this target.
    pub target: Option<String>,
    /// Only events by this key.
    pub actor_key_id: Option<Uuid>,
    /// Only events of this action.
    pub action: Option<AuditAction>,
    /// Only events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub to: Option<DateTime<Utc>>,
}

impl Store {
    /// Appends one event on its own. Changes to keys append theirs in the change's own
    /// transaction instead, so a change is never stored without its event.
    pub async fn append_audit_event(&self, event: &AuditEvent) -> Result<(), Error> {
        insert_audit_event_in(&self.db, event).await
    }

    /// Up to `limit` events of `organization_id`, newest first, after the event `after`.
    pub async fn list_audit_events(
        &self,
        organization_id: Uuid,
        filter: &AuditFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, Error> {
        self.list_audit_events_of(Some(organization_id), filter, after, limit)
            .await
    }

    /// Up to `limit` events that belong to no organization, newest first, after the event
    /// `after`: refused calls whose credential was missing or matched no live key. No API
    /// caller can see them; they are for operators (and tests).
    pub async fn list_unattributed_audit_events(
        &self,
        filter: &AuditFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, Error> {
        self.list_audit_events_of(None, filter, after, limit).await
    }

    async fn list_audit_events_of(
        &self,
        organization_id: Option<Uuid>,
        filter: &AuditFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, Error> {
        let mut query = AuditEvents::find().filter(match organization_id {
            Some(organization_id) => Column::OrganizationId.eq(organization_id),
            None => Column::OrganizationId.is_null(),
        });
        if let Some(after) = after {
            query = query.filter(Column::Id.lt(after));
        }
        if let Some(target) = &filter.target {
            query = query.filter(Column::Target.eq(target.clone()));
        }
        if let Some(actor) = filter.actor_key_id {
            query = query.filter(Column::ActorKeyId.eq(actor));
        }
        if let Some(action) = filter.action {
            query = query.filter(Column::Action.eq(action.as_str()));
        }
        if let Some(from) = filter.from {
            query = query.filter(Column::Time.gte(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(Column::Time.lt(to));
        }
        query
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(event_from_model)
            .collect()
    }
}

pub(crate) async fn insert_audit_event_in(
    db: &impl ConnectionTrait,
    event: &AuditEvent,
) -> Result<(), Error> {
    AuditEvents::insert(event_model(event))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The row of an event: one mapping for `insert_audit_event_in` and the bulk insert (`bulk.rs`).
pub(crate) fn event_model(event: &AuditEvent) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: Set(event.id),
        time: Set(event.time),
        organization_id: Set(event.organization_id),
        actor_key_id: Set(event.actor_key_id),
        actor_member_id: Set(event.actor_member_id),
        actor_type: Set(event.actor_type.as_str().to_owned()),
        action: Set(event.action.as_str().to_owned()),
        target: Set(event.target.clone()),
        outcome: Set(event.outcome.as_str().to_owned()),
        reason: Set(event.reason.clone()),
        client_address: Set(event.client_address.clone()),
        request_id: Set(event.request_id.clone()),
    }
}

fn event_from_model(model: audit_event::Model) -> Result<AuditEvent, Error> {
    let corrupt = |what: &str| Error::Corrupt {
        table: "audit_events",
        detail: format!("event {} has an unknown {what}", model.id),
    };
    Ok(AuditEvent {
        id: model.id,
        time: model.time,
        organization_id: model.organization_id,
        actor_key_id: model.actor_key_id,
        actor_member_id: model.actor_member_id,
        actor_type: ActorType::parse(&model.actor_type).ok_or_else(|| corrupt("actor type"))?,
        action: AuditAction::parse(&model.action).ok_or_else(|| corrupt("action"))?,
        target: model.target.clone(),
        outcome: AuditOutcome::parse(&model.outcome).ok_or_else(|| corrupt("outcome"))?,
        reason: model.reason,
        client_address: model.client_address,
        request_id: model.request_id,
    })
}
