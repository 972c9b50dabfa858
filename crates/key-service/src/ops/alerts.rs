//! Alert rules and events: read and set the rules in force (a key's own, its organization's, or
//! the defaults), test them against a key's usage now, and list the alerts that fired. An
//! operation naming a key acts on that key of the requester's organization (another
//! organization's is `NotFound`), with the permission of the key's owner; one naming none acts
//! on the organization. Setting rules writes its `alert_rules.update` audit event in the
//! change's own transaction.

use std::sync::Arc;

use key_core::{
    Action, Alert, AlertRules, AlertRulesSource, AlertType, AuditAction, Error, Period,
    RateDecision, RateLimit, RateLimits,
};
use key_store::{AlertEvent, AlertEventFilter, AlertKey, Store};
use uuid::Uuid;

use super::paging::{Listed, Page, PageRequest};
use crate::{
    Requester,
    access::Access,
    alerting::{Alerting, Firing, ThresholdEvaluation},
    jobs::UsageFlusher,
    rate_limit::LocalLimiter,
};

/// How many TestAlertRules calls an organization may make a minute, in each process: each one
/// stores an alert event and queues a delivery to every webhook endpoint.
const ALERT_TESTS_PER_MINUTE: u32 = 10;

/// The rules in force and where they come from.
pub type RulesInForce = (AlertRules, AlertRulesSource);

/// What TestAlertRules found: each threshold rule against the key's usage now, and the test
/// event it fired (delivered to the webhook endpoints like any alert).
#[derive(Debug, Clone)]
pub struct AlertTest {
    /// One per threshold rule.
    pub evaluations: Vec<ThresholdEvaluation>,
    /// The `test` alert it stored.
    pub event: AlertEvent,
}

/// The alert operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Alerts {
    store: Store,
    access: Access,
    alerting: Alerting,
    usage: UsageFlusher,
    /// TestAlertRules calls, per organization (few: organizations are created by operators).
    tests: Arc<LocalLimiter>,
}

impl Alerts {
    pub(crate) fn new(
        store: Store,
        access: Access,
        alerting: Alerting,
        usage: UsageFlusher,
    ) -> Alerts {
        Alerts {
            store,
            access,
            alerting,
            usage,
            tests: Arc::default(),
        }
    }

    /// GetAlertRules: the rules in force for the key `key`, or for the organization.
    pub async fn get_rules(
        &self,
        by: &Requester,
        key: Option<Uuid>,
    ) -> Result<RulesInForce, Error> {
        let key = match key {
            None => {
                self.access.authorize(by, Action::ReadAlerts, None).await?;
                None
            }
            Some(id) => Some(self.permitted_key(by, id, Action::ReadAlerts).await?),
        };
        self.rules_in_force(by, key.as_ref()).await
    }

    /// SetAlertRules: sets (`Some`) or clears (`None`) the rules of the key `key`, or of the
    /// organization; returns the rules in force afterwards.
    pub async fn set_rules(
        &self,
        by: &Requester,
        key: Option<Uuid>,
        rules: Option<AlertRules>,
    ) -> Result<RulesInForce, Error> {
        let caller = &by.caller;
        let key = match key {
            None => {
                self.access
                    .authorize(by, Action::ManageAlerts, None)
                    .await?;
                let audit = by.event(
                    AuditAction::AlertRulesUpdate,
                    caller.organization_id,
                    self.alerting.now(),
                );
                self.store
                    .set_organization_alert_rules(caller.organization_id, rules.as_ref(), &audit)
                    .await?;
                tracing::info!(organization_id = %caller.organization_id, set_by = %caller.key_id, cleared = rules.is_none(), "organization alert rules set");
                None
            }
            Some(id) => {
                let mut key = self.permitted_key(by, id, Action::ManageAlerts).await?;
                let audit = by.event(AuditAction::AlertRulesUpdate, id, self.alerting.now());
                let found = self
                    .store
                    .set_key_alert_rules(caller.organization_id, id, rules.as_ref(), &audit)
                    .await?;
                if !found {
                    return Err(Error::NotFound("key"));
                }
                tracing::info!(key_id = %id, set_by = %caller.key_id, cleared = rules.is_none(), "key alert rules set");
                key.rules = rules;
                Some(key)
            }
        };
        self.rules_in_force(by, key.as_ref()).await
    }

    /// TestAlertRules: evaluates `rules` (or the rules in force) against the key's usage now,
    /// without firing them, and fires one `test` alert so the webhook endpoints can be tried.
    pub async fn test_rules(
        &self,
        by: &Requester,
        id: Uuid,
        rules: Option<AlertRules>,
    ) -> Result<AlertTest, Error> {
        let key = self.permitted_key(by, id, Action::ManageAlerts).await?;
        let limit = RateLimit {
            requests: ALERT_TESTS_PER_MINUTE,
            per: Period::Minute,
        };
        let limits = RateLimits::from_list("test", [limit])?;
        if let RateDecision::Limited { limit, .. } =
            self.tests
                .acquire(by.caller.organization_id, &limits, self.alerting.now())
        {
            return Err(Error::RateLimited(limit));
        }
        let rules = match rules {
            Some(rules) => rules,
            None => self.rules_in_force(by, Some(&key)).await?.0,
        };
        // The key's current counts include what this process counted and has not written yet.
        self.usage.flush_before_answering().await;
        let now = self.alerting.now();
        let evaluations = self.alerting.evaluate_thresholds(&key, &rules, now).await?;
        let event_id = Uuid::now_v7();
        let firing = Firing {
            organization_id: by.caller.organization_id,
            key_name: None,
            alert: Alert::test(event_id, &key.name, now),
        };
        let event = self
            .alerting
            .fire(event_id, &firing)
            .await?
            .ok_or_else(|| {
                Error::Internal("a test alert with a fresh id was already stored".to_owned())
            })?;
        Ok(AlertTest { evaluations, event })
    }

    /// ListAlertEvents: the alerts of the key `key` (or of the organization), of `alert_type`
    /// (or every type), newest first.
    pub async fn list_events(
        &self,
        by: &Requester,
        page: &PageRequest,
        alert_type: Option<AlertType>,
        key: Option<Uuid>,
    ) -> Result<Listed<AlertEvent>, Error> {
        let page = Page::parse(page)?;
        let key_id = match key {
            None => {
                self.access.authorize(by, Action::ReadAlerts, None).await?;
                None
            }
            Some(id) => {
                self.access.key(by, id, Action::ReadAlerts).await?;
                Some(id)
            }
        };
        let filter = AlertEventFilter { key_id, alert_type };
        let events = self
            .store
            .list_alert_events(
                by.caller.organization_id,
                filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(events, |event| event.id))
    }

    /// The key `id` of the requester's organization, once the requester may perform `action`
    /// on it.
    async fn permitted_key(
        &self,
        by: &Requester,
        id: Uuid,
        action: Action,
    ) -> Result<AlertKey, Error> {
        self.access.key(by, id, action).await?;
        self.store
            .alert_key(by.caller.organization_id, id)
            .await?
            .ok_or(Error::NotFound("key"))
    }

    /// The rules in force for `key` (or, with `None`, for the organization) and their source.
    async fn rules_in_force(
        &self,
        by: &Requester,
        key: Option<&AlertKey>,
    ) -> Result<RulesInForce, Error> {
        let organization = self
            .store
            .organization_alert_rules(by.caller.organization_id)
            .await?;
        Ok(AlertRules::in_force(
            key.and_then(|key| key.rules),
            organization,
        ))
    }
}
