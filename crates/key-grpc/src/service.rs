//! `keyrack.v1.KeyService`: validates each request, calls the [`KeyManager`] or the store, and
//! translates the answer. Every admin handler acts inside the caller's organization, taken
//! from the [`Principal`] the authentication layer attached, and first asks the permission
//! table (`key_core::PERMISSIONS`, through `auth::authorize`) whether the caller may.

use key_core::{
    Action, AuditAction, AuditOutcome, Error, KeyName, KeyState, KeyType, Scope, ScopeSet, Verdict,
    parse_expiry, within_role,
};
use key_proto::v1::{self, key_service_server::KeyService};
use key_store::KeyFilter;
use tonic::{Request, Response, Status};

use crate::{
    Actor, KeyManager, NewKeyRequest, Principal, RequestContext, VerifyContext, alerts,
    audit::audit_event,
    audit_log,
    auth::{authorize, authorized_key, check},
    convert::{
        api_key, environment_from_proto, environment_to_proto, key_type_to_proto, parse_id,
        timestamp,
    },
    organizations,
    paging::Page,
    rotation, status_from_error, usage, webhooks,
};

const MAX_REVOKE_REASON_CHARS: usize = 500;

/// The KeyService implementation.
#[derive(Debug, Clone)]
pub(crate) struct KeyServiceImpl {
    manager: KeyManager,
}

impl KeyServiceImpl {
    pub(crate) fn new(manager: KeyManager) -> Self {
        Self { manager }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The caller the authentication layer verified. Its absence means the layer is not installed,
/// which is a bug, not the caller's fault; still, refuse rather than act without a caller.
fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| status_from_error(Error::MissingApiKey))
}

/// A member id from a request.
fn parse_member_id(value: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(value).map_err(|_| Error::InvalidArgument {
        field: "member_id",
        message: format!("{value:?} is not a member id"),
    })
}

/// Where the request came from, as the authentication layer read it.
fn context<T>(request: &Request<T>) -> RequestContext {
    request
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default()
}

#[tonic::async_trait]
impl KeyService for KeyServiceImpl {
    async fn create_key(
        &self,
        request: Request<v1::CreateKeyRequest>,
    ) -> Reply<v1::CreateKeyResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        let request = request.into_inner();
        let manager = &self.manager;
        let key_type = match v1::KeyType::try_from(request.key_type) {
            Ok(v1::KeyType::Unspecified) => caller.key_type,
            Ok(v1::KeyType::Organization) => KeyType::Organization,
            Ok(v1::KeyType::Personal) => KeyType::Personal,
            Err(_) => {
                return Err(status_from_error(Error::InvalidArgument {
                    field: "key_type",
                    message: format!("unknown key type {}", request.key_type),
                }));
            }
        };
        let named_member = match request.member_id.as_str() {
            "" => None,
            id => Some(parse_member_id(id).map_err(status_from_error)?),
        };
        // Who may: the permission table, before anything else is looked at.
        let member_id = match key_type {
            KeyType::Organization => {
                authorize(
                    manager,
                    &caller,
                    &context,
                    Action::CreateOrganizationKey,
                    None,
                )
                .await?;
                if named_member.is_some() {
                    return Err(status_from_error(Error::InvalidArgument {
                        field: "member_id",
                        message: "only a personal key belongs to a member".to_owned(),
                    }));
                }
                None
            }
            KeyType::Personal => {
                // Empty means the caller's own member; an organization key has none.
                let owner = named_member.or(caller.member_id);
                authorize(manager, &caller, &context, Action::CreatePersonalKey, owner).await?;
                Some(owner.ok_or_else(|| {
                    status_from_error(Error::InvalidArgument {
                        field: "member_id",
                        message: "a personal key belongs to a member: name one".to_owned(),
                    })
                })?)
            }
        };
        let now = manager.now();
        let new_key = NewKeyRequest {
            name: KeyName::parse(&request.name).map_err(status_from_error)?,
            scopes: ScopeSet::parse_list("scopes", &request.scopes).map_err(status_from_error)?,
            expires_at: parse_expiry(&request.expires_at, now).map_err(status_from_error)?,
            environment: environment_from_proto(request.environment).map_err(status_from_error)?,
            key_type,
            member_id,
            operator: false,
            rate_limits: crate::convert::rate_limits_from_proto(
                "rate_limits",
                &request.rate_limits,
            )
            .map_err(status_from_error)?,
        };
        // The organization's policy may require every new key to expire, and soon enough.
        let policy = manager
            .policy(caller.organization_id)
            .await
            .map_err(status_from_error)?;
        policy
            .check_expiry(new_key.expires_at, now)
            .map_err(status_from_error)?;
        // A personal key stays within its member's role; and nobody grants what it lacks.
        if let Some(member_id) = member_id {
            let (member, allowed) = manager
                .member_scopes(caller.organization_id, member_id)
                .await
                .map_err(status_from_error)?
                .ok_or_else(|| status_from_error(Error::NotFound("member")))?;
            let decision = within_role(member.role, allowed, new_key.scopes);
            check(manager, &caller, &context, decision).await?;
        }
        let decision = caller.may_grant(new_key.scopes);
        check(manager, &caller, &context, decision).await?;
        let (record, key) = self
            .manager
            .issue(
                caller.organization_id,
                new_key,
                &Actor::Key(caller.clone()),
                &context,
            )
            .await
            .map_err(status_from_error)?;
        tracing::info!(key_id = %record.id, organization_id = %record.organization_id, created_by = %caller.key_id, "key created");
        Ok(Response::new(v1::CreateKeyResponse {
            api_key: Some(api_key(&record, now, &policy)),
            key: key.expose().to_owned(),
        }))
    }

    async fn verify_key(
        &self,
        request: Request<v1::VerifyKeyRequest>,
    ) -> Reply<v1::VerifyKeyResponse> {
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
            .collect::<Result<Vec<_>, _>>()
            .map_err(status_from_error)?;
        // Invalid context values are ignored (and counted), as if none were given.
        let verify_context = VerifyContext::parse(
            &request.client_ip,
            &request.country,
            &request.tag,
            self.manager.metrics(),
        );
        let verification = self
            .manager
            .verify_request(&request.key, &required, &verify_context)
            .await
            .map_err(status_from_error)?;
        let code = match verification.verdict {
            Verdict::Valid => v1::VerifyCode::Valid,
            Verdict::Invalid => v1::VerifyCode::InvalidApiKey,
            Verdict::Expired => v1::VerifyCode::ExpiredApiKey,
            Verdict::InsufficientScope(_) => v1::VerifyCode::InsufficientScope,
            Verdict::RateLimited { .. } | Verdict::TooManyFailures { .. } => {
                v1::VerifyCode::RateLimited
            }
        };
        let error = verification.error();
        let mut response = v1::VerifyKeyResponse {
            valid: error.is_none(),
            code: code.into(),
            reason: error
                .as_ref()
                .map(|e| e.code().reason().to_owned())
                .unwrap_or_default(),
            message: error.as_ref().map(ToString::to_string).unwrap_or_default(),
            ..Default::default()
        };
        match verification.verdict {
            Verdict::RateLimited {
                limit,
                retry_after,
                remaining,
                reset,
            } => {
                response.retry_after = Some(crate::convert::duration(retry_after));
                response.limit = limit.requests;
                response.remaining = remaining;
                response.reset = Some(timestamp(reset));
            }
            Verdict::TooManyFailures { retry_after, reset } => {
                response.retry_after = Some(crate::convert::duration(retry_after));
                response.reset = Some(timestamp(reset));
            }
            _ => {}
        }
        // The principal is told only for keys that are alive: valid, or valid but lacking a
        // scope. An expired or revoked key reveals nothing beyond its verdict.
        if let (Verdict::Valid | Verdict::InsufficientScope(_), Some(record)) =
            (verification.verdict, &verification.record)
        {
            response.key_id = record.id.to_string();
            response.organization_id = record.organization_id.to_string();
            response.name = record.name.to_string();
            // A personal key's scopes as limited by its member's current role.
            response.scopes = verification.scopes.names();
            response.key_type = key_type_to_proto(record.key_type).into();
            response.member_id = record
                .member_id
                .map(|id| id.to_string())
                .unwrap_or_default();
            response.environment = environment_to_proto(record.environment).into();
            response.expire_time = record.expires_at.map(timestamp);
        }
        Ok(Response::new(response))
    }

    async fn get_key(&self, request: Request<v1::GetKeyRequest>) -> Reply<v1::GetKeyResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        let id = parse_id("id", &request.get_ref().id).map_err(status_from_error)?;
        // Its last use as this process counted it, too.
        self.manager
            .flush_usage()
            .await
            .map_err(status_from_error)?;
        let record = authorized_key(&self.manager, &caller, &context, id, Action::ReadKeys).await?;
        let policy = self
            .manager
            .policy(caller.organization_id)
            .await
            .map_err(status_from_error)?;
        Ok(Response::new(v1::GetKeyResponse {
            api_key: Some(api_key(&record, self.manager.now(), &policy)),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<v1::ListKeysRequest>,
    ) -> Reply<v1::ListKeysResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        let request = request.into_inner();
        // Every key of the organization for `admin`; a personal key's own member's keys
        // otherwise; nothing for an organization key without `admin`.
        let member_id = match caller.authorize(Action::ReadKeys, None) {
            Ok(()) => None,
            Err(_) => {
                let own = caller.member_id;
                authorize(&self.manager, &caller, &context, Action::ReadKeys, own).await?;
                own
            }
        };
        let page =
            Page::parse(request.page_size, &request.page_token).map_err(status_from_error)?;
        let filter = match v1::KeyState::try_from(request.state) {
            Ok(v1::KeyState::Unspecified) => KeyFilter::All,
            Ok(v1::KeyState::Active) => KeyFilter::State(KeyState::Active),
            Ok(v1::KeyState::Expired) => KeyFilter::State(KeyState::Expired),
            Ok(v1::KeyState::Revoked) => KeyFilter::State(KeyState::Revoked),
            Err(_) => {
                return Err(status_from_error(Error::InvalidArgument {
                    field: "state",
                    message: format!("unknown state {}", request.state),
                }));
            }
        };
        let policy = self
            .manager
            .policy(caller.organization_id)
            .await
            .map_err(status_from_error)?;
        let now = self.manager.now();
        let filter = match (request.rotation_due, filter) {
            (false, filter) => filter,
            (true, KeyFilter::All | KeyFilter::State(KeyState::Active)) => KeyFilter::RotationDue {
                created_at_or_before: now - policy.max_key_age,
            },
            (true, _) => {
                return Err(status_from_error(Error::InvalidArgument {
                    field: "rotation_due",
                    message: "only active keys are due for rotation".to_owned(),
                }));
            }
        };
        // Their last uses as this process counted them, too.
        self.manager
            .flush_usage()
            .await
            .map_err(status_from_error)?;
        let mut records = self
            .manager
            .store()
            .list_keys(
                caller.organization_id,
                member_id,
                filter,
                now,
                page.after,
                page.fetch_limit(),
            )
            .await
            .map_err(|e| status_from_error(e.into()))?;
        let next_page_token = page.finish(&mut records, |record| record.id);
        Ok(Response::new(v1::ListKeysResponse {
            api_keys: records
                .iter()
                .map(|record| api_key(record, now, &policy))
                .collect(),
            next_page_token,
        }))
    }

    async fn revoke_key(
        &self,
        request: Request<v1::RevokeKeyRequest>,
    ) -> Reply<v1::RevokeKeyResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        let request = request.into_inner();
        let id = parse_id("id", &request.id).map_err(status_from_error)?;
        if request.reason.chars().count() > MAX_REVOKE_REASON_CHARS
            || request.reason.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(status_from_error(Error::InvalidArgument {
                field: "reason",
                message: "at most 500 characters, without control characters".to_owned(),
            }));
        }
        authorized_key(&self.manager, &caller, &context, id, Action::ManageKeys).await?;
        let reason = (!request.reason.is_empty()).then_some(request.reason);
        // The key's last use as this process counted it, too.
        self.manager
            .flush_usage()
            .await
            .map_err(status_from_error)?;
        let policy = self
            .manager
            .policy(caller.organization_id)
            .await
            .map_err(status_from_error)?;
        let now = self.manager.now();
        let audit = audit_event(
            &Actor::Key(caller.clone()),
            Some(caller.organization_id),
            AuditAction::KeyRevoke,
            id.to_string(),
            AuditOutcome::Success,
            None,
            &context,
            now,
        );
        let (record, digest) = self
            .manager
            .store()
            .revoke_key(caller.organization_id, id, reason, now, &audit)
            .await
            .map_err(|e| status_from_error(e.into()))?
            .ok_or_else(|| status_from_error(Error::NotFound("key")))?;
        // The next verification of this key in this process must see the revocation.
        self.manager.forget_key(&digest);
        tracing::info!(key_id = %record.id, revoked_by = %caller.key_id, "key revoked");
        Ok(Response::new(v1::RevokeKeyResponse {
            api_key: Some(api_key(&record, now, &policy)),
        }))
    }

    async fn rotate_key(
        &self,
        request: Request<v1::RotateKeyRequest>,
    ) -> Reply<v1::RotateKeyResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        // The old key's last use as this process counted it, too.
        self.manager
            .flush_usage()
            .await
            .map_err(status_from_error)?;
        rotation::rotate_key(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn update_key(
        &self,
        request: Request<v1::UpdateKeyRequest>,
    ) -> Reply<v1::UpdateKeyResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        // The key's last use as this process counted it, too.
        self.manager
            .flush_usage()
            .await
            .map_err(status_from_error)?;
        rotation::update_key(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Reply<v1::ListAuditEventsResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        authorize(&self.manager, &caller, &context, Action::ReadAuditLog, None).await?;
        audit_log::list_audit_events(&self.manager, &caller, request.into_inner()).await
    }

    async fn create_organization(
        &self,
        request: Request<v1::CreateOrganizationRequest>,
    ) -> Reply<v1::CreateOrganizationResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        organizations::create_organization(&self.manager, &caller, &context, request.into_inner())
            .await
    }

    async fn get_organization(
        &self,
        request: Request<v1::GetOrganizationRequest>,
    ) -> Reply<v1::GetOrganizationResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        organizations::get_organization(&self.manager, &caller, &context, request.into_inner())
            .await
    }

    async fn update_organization_policy(
        &self,
        request: Request<v1::UpdateOrganizationPolicyRequest>,
    ) -> Reply<v1::UpdateOrganizationPolicyResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        organizations::update_organization_policy(
            &self.manager,
            &caller,
            &context,
            request.into_inner(),
        )
        .await
    }

    async fn add_member(
        &self,
        request: Request<v1::AddMemberRequest>,
    ) -> Reply<v1::AddMemberResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        organizations::add_member(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn update_member(
        &self,
        request: Request<v1::UpdateMemberRequest>,
    ) -> Reply<v1::UpdateMemberResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        organizations::update_member(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn remove_member(
        &self,
        request: Request<v1::RemoveMemberRequest>,
    ) -> Reply<v1::RemoveMemberResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        organizations::remove_member(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn list_members(
        &self,
        request: Request<v1::ListMembersRequest>,
    ) -> Reply<v1::ListMembersResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        organizations::list_members(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn get_alert_rules(
        &self,
        request: Request<v1::GetAlertRulesRequest>,
    ) -> Reply<v1::GetAlertRulesResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        alerts::get_alert_rules(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn set_alert_rules(
        &self,
        request: Request<v1::SetAlertRulesRequest>,
    ) -> Reply<v1::SetAlertRulesResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        alerts::set_alert_rules(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn test_alert_rules(
        &self,
        request: Request<v1::TestAlertRulesRequest>,
    ) -> Reply<v1::TestAlertRulesResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        alerts::test_alert_rules(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn list_alert_events(
        &self,
        request: Request<v1::ListAlertEventsRequest>,
    ) -> Reply<v1::ListAlertEventsResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        alerts::list_alert_events(&self.manager, &caller, &context, request.into_inner()).await
    }

    async fn create_webhook_endpoint(
        &self,
        request: Request<v1::CreateWebhookEndpointRequest>,
    ) -> Reply<v1::CreateWebhookEndpointResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        webhooks::create_webhook_endpoint(&self.manager, &caller, &context, request.into_inner())
            .await
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<v1::ListWebhookEndpointsRequest>,
    ) -> Reply<v1::ListWebhookEndpointsResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        webhooks::list_webhook_endpoints(&self.manager, &caller, &context, request.into_inner())
            .await
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<v1::DeleteWebhookEndpointRequest>,
    ) -> Reply<v1::DeleteWebhookEndpointResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        webhooks::delete_webhook_endpoint(&self.manager, &caller, &context, request.into_inner())
            .await
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<v1::RotateWebhookSecretRequest>,
    ) -> Reply<v1::RotateWebhookSecretResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        webhooks::rotate_webhook_secret(&self.manager, &caller, &context, request.into_inner())
            .await
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<v1::ListWebhookDeliveriesRequest>,
    ) -> Reply<v1::ListWebhookDeliveriesResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        webhooks::list_webhook_deliveries(&self.manager, &caller, &context, request.into_inner())
            .await
    }

    async fn list_usage(
        &self,
        request: Request<v1::ListUsageRequest>,
    ) -> Reply<v1::ListUsageResponse> {
        let caller = principal(&request)?;
        let context = context(&request);
        usage::list_usage(&self.manager, &caller, &context, request.into_inner()).await
    }
}
