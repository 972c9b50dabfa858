//! The key RPCs: VerifyKey, CreateKey, GetKey, ListKeys, RevokeKey, DisableKey, EnableKey,
//! RotateKey and UpdateKey.
//! Each decodes its request, makes one call into the application, and encodes the answer.

use key_core::{Error, KeyState, KeyType, RateLimits, Scope};
use key_proto::v1;
use key_service::{
    Application, CreateKey, ListKeys, Mode, PageRequest, UpdateKey, VerifyContext, parse_id,
    parse_uuid,
};
use key_telemetry::CallSlot;
use tonic::Request;

use crate::{
    auth::requester,
    convert::{
        api_key, credits_from_proto, environment_from_proto, from_duration, rate_limits_from_proto,
        verify_response,
    },
};

/// VerifyKey: public; a rejected key is a verdict in the response, not an error.
pub(crate) async fn verify_key(
    app: &Application,
    request: Request<v1::VerifyKeyRequest>,
) -> Result<v1::VerifyKeyResponse, Error> {
    // A caller that names no client is judged by the guard as the client itself.
    let peer = request.remote_addr().map(|address| address.ip());
    let slot = request.extensions().get::<CallSlot>().cloned();
    let request = request.into_inner();
    let required = request
        .required_scopes
        .iter()
        .map(|name| {
            Scope::parse(name).map_err(|_| Error::InvalidArgument {
                field: "required_scopes",
                message: format!("unknown scope {name:?}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Invalid context values are ignored (and counted), as if none were given.
    let context = VerifyContext {
        peer,
        cost: key_core::verify_cost(request.cost)?,
        ..VerifyContext::parse(
            &request.client_ip,
            &request.country,
            &request.tag,
            app.verifier.metrics(),
        )
    };
    let verification = app
        .verifier
        .verify(&request.key, &required, &context, Mode::Request)
        .await?;
    // The verdict and the key it concerns name the call in its trace and access log.
    if let Some(slot) = slot {
        slot.set_verdict(verification.verdict.name());
        if let Some(record) = &verification.record {
            slot.set_key(record.id, record.organization_id);
        }
    }
    Ok(verify_response(&verification))
}

pub(crate) async fn create_key(
    app: &Application,
    request: Request<v1::CreateKeyRequest>,
) -> Result<v1::CreateKeyResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let key_type = match v1::KeyType::try_from(request.key_type) {
        Ok(v1::KeyType::Unspecified) => None,
        Ok(v1::KeyType::Organization) => Some(KeyType::Organization),
        Ok(v1::KeyType::Personal) => Some(KeyType::Personal),
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "key_type",
                message: format!("unknown key type {}", request.key_type),
            });
        }
    };
    let member_id = match request.member_id.as_str() {
        "" => None,
        id => Some(parse_uuid("member_id", id, "a member id")?),
    };
    let create = CreateKey {
        environment: environment_from_proto(request.environment)?,
        rate_limits: rate_limits_from_proto("rate_limits", &request.rate_limits)?,
        name: request.name,
        scopes: request.scopes,
        expires_at: request.expires_at,
        key_type,
        member_id,
        metadata: request.metadata_json,
        ip_allowlist: request.ip_allowlist,
        credits: request
            .credits
            .as_ref()
            .map(credits_from_proto)
            .transpose()?,
    };
    let issued = app.keys.create(&by, create).await?;
    Ok(v1::CreateKeyResponse {
        api_key: Some(api_key(&issued.key)),
        key: issued.plaintext.expose().to_owned(),
    })
}

pub(crate) async fn get_key(
    app: &Application,
    request: Request<v1::GetKeyRequest>,
) -> Result<v1::GetKeyResponse, Error> {
    let by = requester(&request)?;
    let id = parse_id("id", &request.get_ref().id)?;
    let key = app.keys.get(&by, id).await?;
    Ok(v1::GetKeyResponse {
        api_key: Some(api_key(&key)),
    })
}

pub(crate) async fn list_keys(
    app: &Application,
    request: Request<v1::ListKeysRequest>,
) -> Result<v1::ListKeysResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let state = match v1::KeyState::try_from(request.state) {
        Ok(v1::KeyState::Unspecified) => None,
        Ok(v1::KeyState::Active) => Some(KeyState::Active),
        Ok(v1::KeyState::Expired) => Some(KeyState::Expired),
        Ok(v1::KeyState::Revoked) => Some(KeyState::Revoked),
        Ok(v1::KeyState::Disabled) => Some(KeyState::Disabled),
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "state",
                message: format!("unknown state {}", request.state),
            });
        }
    };
    let list = ListKeys {
        page: PageRequest {
            page_size: request.page_size,
            page_token: request.page_token,
        },
        state,
        rotation_due: request.rotation_due,
    };
    let listed = app.keys.list(&by, list).await?;
    Ok(v1::ListKeysResponse {
        api_keys: listed.items.iter().map(api_key).collect(),
        next_page_token: listed.next_page_token,
    })
}

pub(crate) async fn revoke_key(
    app: &Application,
    request: Request<v1::RevokeKeyRequest>,
) -> Result<v1::RevokeKeyResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let id = parse_id("id", &request.id)?;
    let key = app.keys.revoke(&by, id, request.reason).await?;
    Ok(v1::RevokeKeyResponse {
        api_key: Some(api_key(&key)),
    })
}

pub(crate) async fn disable_key(
    app: &Application,
    request: Request<v1::DisableKeyRequest>,
) -> Result<v1::DisableKeyResponse, Error> {
    let by = requester(&request)?;
    let id = parse_id("id", &request.get_ref().id)?;
    let key = app.keys.set_disabled(&by, id, true).await?;
    Ok(v1::DisableKeyResponse {
        api_key: Some(api_key(&key)),
    })
}

pub(crate) async fn enable_key(
    app: &Application,
    request: Request<v1::EnableKeyRequest>,
) -> Result<v1::EnableKeyResponse, Error> {
    let by = requester(&request)?;
    let id = parse_id("id", &request.get_ref().id)?;
    let key = app.keys.set_disabled(&by, id, false).await?;
    Ok(v1::EnableKeyResponse {
        api_key: Some(api_key(&key)),
    })
}

pub(crate) async fn rotate_key(
    app: &Application,
    request: Request<v1::RotateKeyRequest>,
) -> Result<v1::RotateKeyResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let id = parse_id("id", &request.id)?;
    let grace = request
        .grace_period
        .as_ref()
        .map(|grace| from_duration("grace_period", grace))
        .transpose()?;
    let rotated = app.keys.rotate(&by, id, grace).await?;
    Ok(v1::RotateKeyResponse {
        api_key: Some(api_key(&rotated.new)),
        key: rotated.plaintext.expose().to_owned(),
        rotated_key: Some(api_key(&rotated.old)),
    })
}

pub(crate) async fn update_key(
    app: &Application,
    request: Request<v1::UpdateKeyRequest>,
) -> Result<v1::UpdateKeyResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let id = parse_id("id", &request.id)?;
    let rate_limits = match (request.clear_rate_limits, request.rate_limits.is_empty()) {
        (true, false) => {
            return Err(Error::InvalidArgument {
                field: "rate_limits",
                message: "give rate_limits or clear_rate_limits, not both".to_owned(),
            });
        }
        (true, true) => Some(RateLimits::NONE),
        (false, true) => None,
        (false, false) => Some(rate_limits_from_proto("rate_limits", &request.rate_limits)?),
    };
    let ip_allowlist = match (request.clear_ip_allowlist, request.ip_allowlist.is_empty()) {
        (true, false) => {
            return Err(Error::InvalidArgument {
                field: "ip_allowlist",
                message: "give ip_allowlist or clear_ip_allowlist, not both".to_owned(),
            });
        }
        (true, true) => Some(Vec::new()),
        (false, true) => None,
        (false, false) => Some(request.ip_allowlist),
    };
    let credits = match (request.clear_credits, &request.credits) {
        (true, Some(_)) => {
            return Err(Error::InvalidArgument {
                field: "credits",
                message: "give credits or clear_credits, not both".to_owned(),
            });
        }
        (true, None) => Some(None),
        (false, None) => None,
        (false, Some(credits)) => Some(Some(credits_from_proto(credits)?)),
    };
    let update = UpdateKey {
        name: request.name,
        scopes: request.scopes,
        expires_at: request.expires_at,
        rate_limits,
        metadata: request.metadata_json,
        ip_allowlist,
        credits,
    };
    let key = app.keys.update(&by, id, update).await?;
    Ok(v1::UpdateKeyResponse {
        api_key: Some(api_key(&key)),
    })
}
