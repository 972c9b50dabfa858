//! Webhook endpoints: create, list, delete, rotate their signing secret, and list their
//! deliveries. Each needs `Action::ManageWebhooks` (admin).
//!
//! A signing secret's plaintext exists once, in the create or rotate answer: it is drawn here,
//! sealed for the store, and dropped. Another organization's endpoint is `NotFound`, exactly
//! like one that does not exist. Create, delete and rotate write their audit event in the
//! change's own transaction; the event names the endpoint by id only, so the log never holds a
//! secret (nor the URL).

use std::sync::Arc;

use key_core::{
    Action, AuditAction, Clock, DeliveryState, Error, Pepper, RandomSource, SigningSecret,
    WebhookSecretCipher, WebhookSigning, WebhookUrl, parse_webhook_description,
};
use key_store::{DeliveryFilter, NewWebhookEndpoint, Store, WebhookDelivery, WebhookEndpoint};
use uuid::Uuid;

use super::{
    paging::{Listed, Page, PageRequest},
    parse_uuid,
};
use crate::{Requester, access::Access};

/// How many live webhook endpoints an organization may have: each alert is queued for every one.
const MAX_ENDPOINTS_PER_ORGANIZATION: u64 = 20;

/// A new or rotated endpoint and its signing secret, shown once.
#[derive(Debug)]
pub struct EndpointWithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// The secret's plaintext (`whsec_…`); kept nowhere but sealed.
    pub secret: SigningSecret,
}

/// ListWebhookDeliveries' request; empty fields filter nothing.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// AIP-158 paging.
    pub page: PageRequest,
    /// Only this endpoint's deliveries.
    pub endpoint_id: String,
    /// Only this alert event's deliveries.
    pub event_id: String,
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
}

/// The webhook endpoint operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Webhooks {
    store: Store,
    clock: Arc<dyn Clock>,
    access: Access,
    pepper: Arc<Pepper>,
    random: Arc<dyn RandomSource>,
    /// Whether `http://` URLs are accepted (local development and tests only).
    allow_http: bool,
}

impl Webhooks {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        access: Access,
        pepper: Arc<Pepper>,
        random: Arc<dyn RandomSource>,
        allow_http: bool,
    ) -> Webhooks {
        Webhooks {
            store,
            clock,
            access,
            pepper,
            random,
            allow_http,
        }
    }

    /// CreateWebhookEndpoint: an https URL (http only when allowed), a description, and how
    /// its deliveries are signed (for good: rotations keep the mode).
    pub async fn create(
        &self,
        by: &Requester,
        url: &str,
        description: &str,
        signing: WebhookSigning,
    ) -> Result<EndpointWithSecret, Error> {
        self.authorize(by).await?;
        let url = WebhookUrl::parse(url, self.allow_http)?;
        let description = parse_webhook_description(description)?;
        let live = self
            .store
            .list_webhook_endpoints(
                by.caller.organization_id,
                None,
                MAX_ENDPOINTS_PER_ORGANIZATION,
            )
            .await?;
        if live.len() as u64 >= MAX_ENDPOINTS_PER_ORGANIZATION {
            return Err(Error::Conflict(format!(
                "an organization has at most {MAX_ENDPOINTS_PER_ORGANIZATION} webhook endpoints: \
                 delete one first"
            )));
        }
        let id = Uuid::now_v7();
        let (secret, sealed_secret) = self.draw_secret(id, signing)?;
        let now = self.clock.now();
        let audit = by.event(AuditAction::WebhookEndpointCreate, id, now);
        let organization_id = by.caller.organization_id;
        let endpoint = self
            .store
            .insert_webhook_endpoint(
                NewWebhookEndpoint {
                    id,
                    organization_id,
                    url: url.as_str().to_owned(),
                    description,
                    sealed_secret,
                    signing,
                    created_at: now,
                },
                &audit,
            )
            .await?;
        tracing::info!(webhook_endpoint_id = %id, %organization_id, "webhook endpoint created");
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// ListWebhookEndpoints: live endpoints, oldest first.
    pub async fn list(
        &self,
        by: &Requester,
        page: &PageRequest,
    ) -> Result<Listed<WebhookEndpoint>, Error> {
        self.authorize(by).await?;
        let page = Page::parse(page)?;
        let endpoints = self
            .store
            .list_webhook_endpoints(by.caller.organization_id, page.after, page.fetch_limit())
            .await?;
        Ok(page.finish(endpoints, |endpoint| endpoint.id))
    }

    /// DeleteWebhookEndpoint: its pending deliveries become failed, in the same transaction,
    /// so no worker POSTs to it afterwards.
    pub async fn delete(&self, by: &Requester, id: &str) -> Result<(), Error> {
        self.authorize(by).await?;
        let id = endpoint_id("id", id)?;
        let now = self.clock.now();
        let audit = by.event(AuditAction::WebhookEndpointDelete, id, now);
        let organization_id = by.caller.organization_id;
        let deleted = self
            .store
            .delete_webhook_endpoint(organization_id, id, now, &audit)
            .await?;
        if !deleted {
            return Err(Error::NotFound("webhook endpoint"));
        }
        tracing::info!(webhook_endpoint_id = %id, %organization_id, "webhook endpoint deleted");
        Ok(())
    }

    /// RotateWebhookSecret: the old secret stops signing at once: attempts made after the
    /// rotation carry one signature, under the new secret.
    pub async fn rotate_secret(
        &self,
        by: &Requester,
        id: &str,
    ) -> Result<EndpointWithSecret, Error> {
        self.authorize(by).await?;
        let id = endpoint_id("id", id)?;
        let organization_id = by.caller.organization_id;
        // The new secret is of the endpoint's mode, which never changes after its creation.
        let signing = self
            .store
            .get_webhook_endpoint(organization_id, id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?
            .signing;
        let (secret, sealed_secret) = self.draw_secret(id, signing)?;
        let now = self.clock.now();
        let audit = by.event(AuditAction::WebhookSecretRotate, id, now);
        let endpoint = self
            .store
            .rotate_webhook_secret(organization_id, id, sealed_secret, now, &audit)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        tracing::info!(webhook_endpoint_id = %id, %organization_id, "webhook signing secret rotated");
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// ListWebhookDeliveries: newest first, each with its attempts.
    pub async fn list_deliveries(
        &self,
        by: &Requester,
        query: DeliveryQuery,
    ) -> Result<Listed<WebhookDelivery>, Error> {
        self.authorize(by).await?;
        let page = Page::parse(&query.page)?;
        let endpoint_id = match query.endpoint_id.as_str() {
            "" => None,
            id => Some(endpoint_id("webhook_endpoint_id", id)?),
        };
        let event_id = match query.event_id.as_str() {
            "" => None,
            id => Some(parse_uuid("event_id", id, "an event id")?),
        };
        let filter = DeliveryFilter {
            endpoint_id,
            event_id,
            state: query.state,
        };
        let deliveries = self
            .store
            .list_webhook_deliveries(
                by.caller.organization_id,
                &filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(deliveries, |delivery| delivery.id))
    }

    async fn authorize(&self, by: &Requester) -> Result<(), Error> {
        self.access
            .authorize(by, Action::ManageWebhooks, None)
            .await
    }

    /// A new signing secret for the endpoint `id` signing in `mode`, and its sealed form for
    /// the store.
    fn draw_secret(
        &self,
        id: Uuid,
        mode: WebhookSigning,
    ) -> Result<(SigningSecret, Vec<u8>), Error> {
        let secret = SigningSecret::generate_for(mode, self.random.as_ref())?;
        let sealed =
            WebhookSecretCipher::new(&self.pepper)?.seal(&secret, id, self.random.as_ref())?;
        Ok((secret, sealed))
    }
}

fn endpoint_id(field: &'static str, value: &str) -> Result<Uuid, Error> {
    if value.is_empty() {
        return Err(Error::InvalidArgument {
            field,
            message: "required".to_owned(),
        });
    }
    parse_uuid(field, value, "a webhook endpoint id")
}
