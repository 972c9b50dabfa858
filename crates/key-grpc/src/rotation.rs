//! RotateKey and UpdateKey: request parsing and translation. The decisions are the
//! [`KeyManager`]'s (`rotate`, `update`) and key-core's (`KeyRecord::rotate`,
//! `KeyRecord::check_updatable`, `rotation_grace`, and the organization's
//! `OrganizationPolicy::check_expiry` / `cap_expiry`).

use key_core::{
    Action, Error, KeyName, KeyType, ScopeSet, parse_expiry, rotation_grace, within_role,
};
use key_proto::v1;
use key_store::KeyChanges;
use tonic::{Response, Status};

use crate::{
    Actor, KeyManager, Principal, RequestContext,
    auth::{authorized_key, check},
    convert::{api_key, from_duration, parse_id},
    status_from_error,
};

type Reply<T> = Result<Response<T>, Status>;

/// RotateKey: see the proto.
pub(crate) async fn rotate_key(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::RotateKeyRequest,
) -> Reply<v1::RotateKeyResponse> {
    let id = parse_id("id", &request.id).map_err(status_from_error)?;
    authorized_key(manager, caller, context, id, Action::ManageKeys).await?;
    let requested = request
        .grace_period
        .as_ref()
        .map(|grace| from_duration("grace_period", grace))
        .transpose()
        .map_err(status_from_error)?;
    let grace = rotation_grace(requested).map_err(status_from_error)?;
    let policy = manager
        .policy(caller.organization_id)
        .await
        .map_err(status_from_error)?;
    let rotation = manager
        .rotate(
            caller.organization_id,
            id,
            grace,
            &policy,
            &Actor::Key(caller.clone()),
            context,
        )
        .await
        .map_err(status_from_error)?;
    tracing::info!(
        key_id = %rotation.old.id,
        successor_id = %rotation.new.id,
        grace_seconds = grace.num_seconds(),
        rotated_by = %caller.key_id,
        "key rotated"
    );
    let now = manager.now();
    Ok(Response::new(v1::RotateKeyResponse {
        api_key: Some(api_key(&rotation.new, now, &policy)),
        key: rotation.key.expose().to_owned(),
        rotated_key: Some(api_key(&rotation.old, now, &policy)),
    }))
}

/// UpdateKey: see the proto.
pub(crate) async fn update_key(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::UpdateKeyRequest,
) -> Reply<v1::UpdateKeyResponse> {
    let id = parse_id("id", &request.id).map_err(status_from_error)?;
    let now = manager.now();
    let changes = KeyChanges {
        name: request
            .name
            .as_deref()
            .map(|name| KeyName::parse(name).map(|name| name.as_str().to_owned()))
            .transpose()
            .map_err(status_from_error)?,
        scopes: (!request.scopes.is_empty())
            .then(|| ScopeSet::parse_list("scopes", &request.scopes))
            .transpose()
            .map_err(status_from_error)?,
        expires_at: request
            .expires_at
            .as_deref()
            .map(|expiry| parse_expiry(expiry, now))
            .transpose()
            .map_err(status_from_error)?,
        rate_limits: if request.clear_rate_limits {
            if !request.rate_limits.is_empty() {
                return Err(status_from_error(Error::InvalidArgument {
                    field: "rate_limits",
                    message: "give rate_limits or clear_rate_limits, not both".to_owned(),
                }));
            }
            Some(key_core::RateLimits::NONE)
        } else if request.rate_limits.is_empty() {
            None
        } else {
            Some(
                crate::convert::rate_limits_from_proto("rate_limits", &request.rate_limits)
                    .map_err(status_from_error)?,
            )
        },
    };
    let current = authorized_key(manager, caller, context, id, Action::ManageKeys).await?;
    let policy = manager
        .policy(caller.organization_id)
        .await
        .map_err(status_from_error)?;
    // A new expiry obeys the organization's maximum lifetime; so does removing it.
    if let Some(expires_at) = changes.expires_at {
        policy
            .check_expiry(expires_at, now)
            .map_err(status_from_error)?;
    }
    if let Some(scopes) = changes.scopes {
        // Never escalate; and a personal key stays within its member's current role.
        check(manager, caller, context, caller.may_grant(scopes)).await?;
        if let (KeyType::Personal, Some(member_id)) = (current.key_type, current.member_id) {
            let (member, allowed) = manager
                .member_scopes(caller.organization_id, member_id)
                .await
                .map_err(status_from_error)?
                .ok_or_else(|| status_from_error(Error::NotFound("member")))?;
            let decision = within_role(member.role, allowed, scopes);
            check(manager, caller, context, decision).await?;
        }
    }
    let record = manager
        .update(
            caller.organization_id,
            id,
            changes,
            &Actor::Key(caller.clone()),
            context,
        )
        .await
        .map_err(status_from_error)?;
    tracing::info!(key_id = %record.id, updated_by = %caller.key_id, "key updated");
    Ok(Response::new(v1::UpdateKeyResponse {
        api_key: Some(api_key(&record, manager.now(), &policy)),
    }))
}
