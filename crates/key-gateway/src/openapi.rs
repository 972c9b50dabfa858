//! The OpenAPI 3.1 document, generated from the handlers' annotations and the JSON types.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{
    alerts, audit, error, health, keys, oauth, oauth_clients, organizations, secret_scanning,
    usage, verify, webhooks,
};

/// The REST API's OpenAPI document, served at `/openapi.json`.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Keyrack REST API", description = "API keys: create, list, revoke, usage, and forward-auth; OAuth 2.0 clients, and the token, revocation, introspection and metadata endpoints."),
    paths(
        keys::create_key, keys::list_keys, keys::get_key, keys::revoke_key,
        keys::rotate_key, keys::update_key, keys::disable_key, keys::enable_key,
        usage::key_usage, usage::organization_usage,
        audit::list_audit_events,
        organizations::create_organization, organizations::get_organization,
        organizations::update_policy,
        organizations::list_members, organizations::add_member,
        organizations::update_member, organizations::remove_member,
        webhooks::create_webhook_endpoint, webhooks::list_webhook_endpoints,
        webhooks::delete_webhook_endpoint, webhooks::rotate_webhook_secret,
        webhooks::list_webhook_deliveries,
        alerts::get_organization_alerts, alerts::put_organization_alerts,
        alerts::reset_organization_alerts, alerts::get_key_alerts, alerts::put_key_alerts,
        alerts::reset_key_alerts, alerts::test_alerts, alerts::list_alert_events,
        verify::verify, verify::verify_original_path,
        secret_scanning::report,
        oauth_clients::create_oauth_client, oauth_clients::list_oauth_clients,
        oauth_clients::delete_oauth_client, oauth_clients::list_oauth_grants,
        oauth_clients::revoke_oauth_grant,
        oauth::token, oauth::revoke, oauth::introspect, oauth::metadata,
        health::healthz, health::readyz,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, keys::ApiKeyJson, keys::CreatedKeyJson)),
    modifiers(&BearerAuth, &ClientBasicAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_live_…")
                    .build(),
            ),
        );
    }
}

/// An OAuth client's id and secret as HTTP Basic credentials (`client_secret_basic`), at the
/// token, revocation and introspection endpoints.
struct ClientBasicAuth;

impl Modify for ClientBasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            oauth::CLIENT_BASIC_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The client id and secret, each form-urlencoded (RFC 6749 2.3.1)",
                    ))
                    .build(),
            ),
        );
    }
}
