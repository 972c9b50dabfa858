//! `keyrack.v1.KeyService`: one method per RPC, each handing its request to its handler (in
//! the module of its resource: decode, one call into the application, encode) and turning the
//! handler's `key_core::Error` into a status once, in [`reply`].

use key_core::Error;
use key_proto::v1::{self, key_service_server::KeyService};
use key_service::Application;
use tonic::{Request, Response, Status};

use crate::{
    alerts, audit_log, keys, leaks, oauth, organizations, sessions, sso, status_from_error, usage,
    webhooks,
};

/// The KeyService implementation.
#[derive(Debug, Clone)]
pub(crate) struct KeyServiceImpl {
    app: Application,
}

impl KeyServiceImpl {
    pub(crate) fn new(app: Application) -> Self {
        Self { app }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The error boundary: a handler's answer as tonic's.
fn reply<T>(result: Result<T, Error>) -> Reply<T> {
    result.map(Response::new).map_err(status_from_error)
}

#[tonic::async_trait]
impl KeyService for KeyServiceImpl {
    async fn get_caller(
        &self,
        request: Request<v1::GetCallerRequest>,
    ) -> Reply<v1::GetCallerResponse> {
        reply(sessions::get_caller(&self.app, request).await)
    }

    async fn create_session(
        &self,
        request: Request<v1::CreateSessionRequest>,
    ) -> Reply<v1::CreateSessionResponse> {
        reply(sessions::create_session(&self.app, request).await)
    }

    async fn end_session(
        &self,
        request: Request<v1::EndSessionRequest>,
    ) -> Reply<v1::EndSessionResponse> {
        reply(sessions::end_session(&self.app, request).await)
    }

    async fn create_sign_in_link(
        &self,
        request: Request<v1::CreateSignInLinkRequest>,
    ) -> Reply<v1::CreateSignInLinkResponse> {
        reply(sessions::create_sign_in_link(&self.app, request).await)
    }

    async fn redeem_sign_in_link(
        &self,
        request: Request<v1::RedeemSignInLinkRequest>,
    ) -> Reply<v1::RedeemSignInLinkResponse> {
        reply(sessions::redeem_sign_in_link(&self.app, request).await)
    }

    async fn begin_sso_sign_in(
        &self,
        request: Request<v1::BeginSsoSignInRequest>,
    ) -> Reply<v1::BeginSsoSignInResponse> {
        reply(sso::begin_sso_sign_in(&self.app, request).await)
    }

    async fn complete_sso_sign_in(
        &self,
        request: Request<v1::CompleteSsoSignInRequest>,
    ) -> Reply<v1::CompleteSsoSignInResponse> {
        reply(sso::complete_sso_sign_in(&self.app, request).await)
    }

    async fn report_leaked_keys(
        &self,
        request: Request<v1::ReportLeakedKeysRequest>,
    ) -> Reply<v1::ReportLeakedKeysResponse> {
        reply(leaks::report_leaked_keys(&self.app, request).await)
    }

    async fn create_oauth_client(
        &self,
        request: Request<v1::CreateOauthClientRequest>,
    ) -> Reply<v1::CreateOauthClientResponse> {
        reply(oauth::create_oauth_client(&self.app, request).await)
    }

    async fn list_oauth_clients(
        &self,
        request: Request<v1::ListOauthClientsRequest>,
    ) -> Reply<v1::ListOauthClientsResponse> {
        reply(oauth::list_oauth_clients(&self.app, request).await)
    }

    async fn delete_oauth_client(
        &self,
        request: Request<v1::DeleteOauthClientRequest>,
    ) -> Reply<v1::DeleteOauthClientResponse> {
        reply(oauth::delete_oauth_client(&self.app, request).await)
    }

    async fn check_oauth_authorization(
        &self,
        request: Request<v1::CheckOauthAuthorizationRequest>,
    ) -> Reply<v1::CheckOauthAuthorizationResponse> {
        reply(oauth::check_oauth_authorization(&self.app, request).await)
    }

    async fn decide_oauth_authorization(
        &self,
        request: Request<v1::DecideOauthAuthorizationRequest>,
    ) -> Reply<v1::DecideOauthAuthorizationResponse> {
        reply(oauth::decide_oauth_authorization(&self.app, request).await)
    }

    async fn exchange_oauth_token(
        &self,
        request: Request<v1::ExchangeOauthTokenRequest>,
    ) -> Reply<v1::ExchangeOauthTokenResponse> {
        reply(oauth::exchange_oauth_token(&self.app, request).await)
    }

    async fn revoke_oauth_token(
        &self,
        request: Request<v1::RevokeOauthTokenRequest>,
    ) -> Reply<v1::RevokeOauthTokenResponse> {
        reply(oauth::revoke_oauth_token(&self.app, request).await)
    }

    async fn introspect_oauth_token(
        &self,
        request: Request<v1::IntrospectOauthTokenRequest>,
    ) -> Reply<v1::IntrospectOauthTokenResponse> {
        reply(oauth::introspect_oauth_token(&self.app, request).await)
    }

    async fn list_oauth_grants(
        &self,
        request: Request<v1::ListOauthGrantsRequest>,
    ) -> Reply<v1::ListOauthGrantsResponse> {
        reply(oauth::list_oauth_grants(&self.app, request).await)
    }

    async fn revoke_oauth_grant(
        &self,
        request: Request<v1::RevokeOauthGrantRequest>,
    ) -> Reply<v1::RevokeOauthGrantResponse> {
        reply(oauth::revoke_oauth_grant(&self.app, request).await)
    }

    async fn create_key(
        &self,
        request: Request<v1::CreateKeyRequest>,
    ) -> Reply<v1::CreateKeyResponse> {
        reply(keys::create_key(&self.app, request).await)
    }

    async fn verify_key(
        &self,
        request: Request<v1::VerifyKeyRequest>,
    ) -> Reply<v1::VerifyKeyResponse> {
        reply(keys::verify_key(&self.app, request).await)
    }

    async fn get_key(&self, request: Request<v1::GetKeyRequest>) -> Reply<v1::GetKeyResponse> {
        reply(keys::get_key(&self.app, request).await)
    }

    async fn list_keys(
        &self,
        request: Request<v1::ListKeysRequest>,
    ) -> Reply<v1::ListKeysResponse> {
        reply(keys::list_keys(&self.app, request).await)
    }

    async fn revoke_key(
        &self,
        request: Request<v1::RevokeKeyRequest>,
    ) -> Reply<v1::RevokeKeyResponse> {
        reply(keys::revoke_key(&self.app, request).await)
    }

    async fn disable_key(
        &self,
        request: Request<v1::DisableKeyRequest>,
    ) -> Reply<v1::DisableKeyResponse> {
        reply(keys::disable_key(&self.app, request).await)
    }

    async fn enable_key(
        &self,
        request: Request<v1::EnableKeyRequest>,
    ) -> Reply<v1::EnableKeyResponse> {
        reply(keys::enable_key(&self.app, request).await)
    }

    async fn rotate_key(
        &self,
        request: Request<v1::RotateKeyRequest>,
    ) -> Reply<v1::RotateKeyResponse> {
        reply(keys::rotate_key(&self.app, request).await)
    }

    async fn update_key(
        &self,
        request: Request<v1::UpdateKeyRequest>,
    ) -> Reply<v1::UpdateKeyResponse> {
        reply(keys::update_key(&self.app, request).await)
    }

    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Reply<v1::ListAuditEventsResponse> {
        reply(audit_log::list_audit_events(&self.app, request).await)
    }

    async fn create_organization(
        &self,
        request: Request<v1::CreateOrganizationRequest>,
    ) -> Reply<v1::CreateOrganizationResponse> {
        reply(organizations::create_organization(&self.app, request).await)
    }

    async fn get_organization(
        &self,
        request: Request<v1::GetOrganizationRequest>,
    ) -> Reply<v1::GetOrganizationResponse> {
        reply(organizations::get_organization(&self.app, request).await)
    }

    async fn update_organization_policy(
        &self,
        request: Request<v1::UpdateOrganizationPolicyRequest>,
    ) -> Reply<v1::UpdateOrganizationPolicyResponse> {
        reply(organizations::update_organization_policy(&self.app, request).await)
    }

    async fn add_member(
        &self,
        request: Request<v1::AddMemberRequest>,
    ) -> Reply<v1::AddMemberResponse> {
        reply(organizations::add_member(&self.app, request).await)
    }

    async fn update_member(
        &self,
        request: Request<v1::UpdateMemberRequest>,
    ) -> Reply<v1::UpdateMemberResponse> {
        reply(organizations::update_member(&self.app, request).await)
    }

    async fn remove_member(
        &self,
        request: Request<v1::RemoveMemberRequest>,
    ) -> Reply<v1::RemoveMemberResponse> {
        reply(organizations::remove_member(&self.app, request).await)
    }

    async fn list_members(
        &self,
        request: Request<v1::ListMembersRequest>,
    ) -> Reply<v1::ListMembersResponse> {
        reply(organizations::list_members(&self.app, request).await)
    }

    async fn get_alert_rules(
        &self,
        request: Request<v1::GetAlertRulesRequest>,
    ) -> Reply<v1::GetAlertRulesResponse> {
        reply(alerts::get_alert_rules(&self.app, request).await)
    }

    async fn set_alert_rules(
        &self,
        request: Request<v1::SetAlertRulesRequest>,
    ) -> Reply<v1::SetAlertRulesResponse> {
        reply(alerts::set_alert_rules(&self.app, request).await)
    }

    async fn test_alert_rules(
        &self,
        request: Request<v1::TestAlertRulesRequest>,
    ) -> Reply<v1::TestAlertRulesResponse> {
        reply(alerts::test_alert_rules(&self.app, request).await)
    }

    async fn list_alert_events(
        &self,
        request: Request<v1::ListAlertEventsRequest>,
    ) -> Reply<v1::ListAlertEventsResponse> {
        reply(alerts::list_alert_events(&self.app, request).await)
    }

    async fn create_webhook_endpoint(
        &self,
        request: Request<v1::CreateWebhookEndpointRequest>,
    ) -> Reply<v1::CreateWebhookEndpointResponse> {
        reply(webhooks::create_webhook_endpoint(&self.app, request).await)
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<v1::ListWebhookEndpointsRequest>,
    ) -> Reply<v1::ListWebhookEndpointsResponse> {
        reply(webhooks::list_webhook_endpoints(&self.app, request).await)
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<v1::DeleteWebhookEndpointRequest>,
    ) -> Reply<v1::DeleteWebhookEndpointResponse> {
        reply(webhooks::delete_webhook_endpoint(&self.app, request).await)
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<v1::RotateWebhookSecretRequest>,
    ) -> Reply<v1::RotateWebhookSecretResponse> {
        reply(webhooks::rotate_webhook_secret(&self.app, request).await)
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<v1::ListWebhookDeliveriesRequest>,
    ) -> Reply<v1::ListWebhookDeliveriesResponse> {
        reply(webhooks::list_webhook_deliveries(&self.app, request).await)
    }

    async fn list_usage(
        &self,
        request: Request<v1::ListUsageRequest>,
    ) -> Reply<v1::ListUsageResponse> {
        reply(usage::list_usage(&self.app, request).await)
    }
}
