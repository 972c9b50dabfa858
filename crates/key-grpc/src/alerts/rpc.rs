//! GetAlertRules, SetAlertRules, TestAlertRules and ListAlertEvents. A request naming a key acts
//! on that key of the caller's organization (another organization's is `NOT_FOUND`), with the
//! permission of the key's owner (`OwnMemberOr`); one naming none acts on the organization.
//! SetAlertRules writes its `alert_rules.update` audit event in the change's own transaction.

use key_core::{
    Action, Alert, AlertRules, AlertRulesSource, AuditAction, AuditEvent, AuditOutcome, Error,
};
use key_proto::v1;
use key_store::{AlertEventFilter, AlertKey};
use tonic::{Response, Status};
use uuid::Uuid;

use super::{
    convert::{
        event_to_proto, rules_from_proto, rules_to_proto, source_to_proto, type_filter_from_proto,
        type_to_proto,
    },
    evaluate::evaluate_thresholds,
    fire::{Firing, fire},
};
use crate::{
    Actor, KeyManager, Principal, RequestContext,
    audit::audit_event,
    auth::{authorize, authorized_key},
    convert::{parse_id, timestamp},
    paging::Page,
    status_from_error,
};

type Reply<T> = Result<Response<T>, Status>;

fn internal(error: key_store::Error) -> Status {
    status_from_error(error.into())
}

/// The key a request names, if any.
fn named_key(key_id: &str) -> Result<Option<Uuid>, Status> {
    match key_id {
        "" => Ok(None),
        id => parse_id("key_id", id).map(Some).map_err(status_from_error),
    }
}

/// The key `id` of the caller's organization, once the caller may perform `action` on it.
async fn permitted_key(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    id: Uuid,
    action: Action,
) -> Result<AlertKey, Status> {
    authorized_key(manager, caller, context, id, action).await?;
    manager
        .store()
        .alert_key(caller.organization_id, id)
        .await
        .map_err(internal)?
        .ok_or_else(|| status_from_error(Error::NotFound("key")))
}

/// The rules in force for `key` (or, with `None`, for the organization) and their source.
async fn rules_in_force(
    manager: &KeyManager,
    organization_id: Uuid,
    key: Option<&AlertKey>,
) -> Result<(AlertRules, AlertRulesSource), Status> {
    let organization = manager
        .store()
        .organization_alert_rules(organization_id)
        .await
        .map_err(internal)?;
    Ok(AlertRules::in_force(
        key.and_then(|key| key.rules),
        organization,
    ))
}

pub(crate) async fn get_alert_rules(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::GetAlertRulesRequest,
) -> Reply<v1::GetAlertRulesResponse> {
    let key = match named_key(&request.key_id)? {
        None => {
            authorize(manager, caller, context, Action::ReadAlerts, None).await?;
            None
        }
        Some(id) => Some(permitted_key(manager, caller, context, id, Action::ReadAlerts).await?),
    };
    let (rules, source) = rules_in_force(manager, caller.organization_id, key.as_ref()).await?;
    Ok(Response::new(v1::GetAlertRulesResponse {
        rules: Some(rules_to_proto(&rules)),
        source: source_to_proto(source).into(),
    }))
}

pub(crate) async fn set_alert_rules(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::SetAlertRulesRequest,
) -> Reply<v1::SetAlertRulesResponse> {
    let named = named_key(&request.key_id)?;
    let rules = match (&request.rules, request.clear) {
        (Some(rules), false) => Some(rules_from_proto(rules).map_err(status_from_error)?),
        (None, true) => None,
        (Some(_), true) => {
            return Err(status_from_error(Error::InvalidArgument {
                field: "clear",
                message: "give rules or clear, not both".to_owned(),
            }));
        }
        (None, false) => {
            return Err(status_from_error(Error::InvalidArgument {
                field: "rules",
                message: "rules are required unless clear is set".to_owned(),
            }));
        }
    };
    let store = manager.store();
    let key = match named {
        None => {
            authorize(manager, caller, context, Action::ManageAlerts, None).await?;
            let audit = rules_event(manager, caller, context, caller.organization_id);
            store
                .set_organization_alert_rules(caller.organization_id, rules.as_ref(), &audit)
                .await
                .map_err(internal)?;
            tracing::info!(organization_id = %caller.organization_id, set_by = %caller.key_id, cleared = rules.is_none(), "organization alert rules set");
            None
        }
        Some(id) => {
            let mut key = permitted_key(manager, caller, context, id, Action::ManageAlerts).await?;
            let audit = rules_event(manager, caller, context, id);
            let found = store
                .set_key_alert_rules(caller.organization_id, id, rules.as_ref(), &audit)
                .await
                .map_err(internal)?;
            if !found {
                return Err(status_from_error(Error::NotFound("key")));
            }
            tracing::info!(key_id = %id, set_by = %caller.key_id, cleared = rules.is_none(), "key alert rules set");
            key.rules = rules;
            Some(key)
        }
    };
    let (rules, source) = rules_in_force(manager, caller.organization_id, key.as_ref()).await?;
    Ok(Response::new(v1::SetAlertRulesResponse {
        rules: Some(rules_to_proto(&rules)),
        source: source_to_proto(source).into(),
    }))
}

/// The `alert_rules.update` event of a set or clear by `caller`: `target` is the key, or the
/// organization for its own rules. The store writes it in the change's transaction.
fn rules_event(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    target: Uuid,
) -> AuditEvent {
    audit_event(
        &Actor::Key(caller.clone()),
        Some(caller.organization_id),
        AuditAction::AlertRulesUpdate,
        target.to_string(),
        AuditOutcome::Success,
        None,
        context,
        manager.now(),
    )
}

pub(crate) async fn test_alert_rules(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::TestAlertRulesRequest,
) -> Reply<v1::TestAlertRulesResponse> {
    let id = match named_key(&request.key_id)? {
        Some(id) => id,
        None => {
            return Err(status_from_error(Error::InvalidArgument {
                field: "key_id",
                message: "the key to evaluate is required".to_owned(),
            }));
        }
    };
    let given = request
        .rules
        .as_ref()
        .map(rules_from_proto)
        .transpose()
        .map_err(status_from_error)?;
    let key = permitted_key(manager, caller, context, id, Action::ManageAlerts).await?;
    let rules = match given {
        Some(rules) => rules,
        None => {
            rules_in_force(manager, caller.organization_id, Some(&key))
                .await?
                .0
        }
    };
    // The key's current counts include what this process counted and has not written yet.
    manager.flush_usage().await.map_err(status_from_error)?;
    let now = manager.now();
    let evaluations = evaluate_thresholds(manager, &key, &rules, now)
        .await
        .map_err(status_from_error)?
        .iter()
        .map(|evaluation| v1::AlertEvaluation {
            r#type: type_to_proto(evaluation.alert_type).into(),
            would_fire: evaluation.would_fire(),
            observed: evaluation.observed,
            threshold: evaluation.rule.threshold(),
            period_start: Some(timestamp(evaluation.period_start)),
            already_fired: evaluation.already_fired,
        })
        .collect();

    let event_id = Uuid::now_v7();
    let firing = Firing {
        organization_id: caller.organization_id,
        key_name: None,
        alert: Alert::test(event_id, &key.name, now),
    };
    let event = fire(manager, event_id, &firing)
        .await
        .map_err(status_from_error)?
        .ok_or_else(|| {
            status_from_error(Error::Internal(
                "a test alert with a fresh id was already stored".to_owned(),
            ))
        })?;
    Ok(Response::new(v1::TestAlertRulesResponse {
        evaluations,
        test_event: Some(event_to_proto(&event)),
    }))
}

pub(crate) async fn list_alert_events(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::ListAlertEventsRequest,
) -> Reply<v1::ListAlertEventsResponse> {
    let page = Page::parse(request.page_size, &request.page_token).map_err(status_from_error)?;
    let alert_type = type_filter_from_proto(request.r#type).map_err(status_from_error)?;
    let key_id = match named_key(&request.key_id)? {
        None => {
            authorize(manager, caller, context, Action::ReadAlerts, None).await?;
            None
        }
        Some(id) => {
            authorized_key(manager, caller, context, id, Action::ReadAlerts).await?;
            Some(id)
        }
    };
    let filter = AlertEventFilter { key_id, alert_type };
    let mut events = manager
        .store()
        .list_alert_events(
            caller.organization_id,
            filter,
            page.after,
            page.fetch_limit(),
        )
        .await
        .map_err(internal)?;
    let next_page_token = page.finish(&mut events, |event| event.id);
    Ok(Response::new(v1::ListAlertEventsResponse {
        alert_events: events.iter().map(event_to_proto).collect(),
        next_page_token,
    }))
}
