//! Judging a flushed batch: for every live key used in it, the rules in force (its own, its
//! organization's, or the defaults) against its counts in the current period, plus unusual
//! activity. A handful of queries per batch, whatever its size: the keys, their organizations'
//! rules, the period counts, the trailing week of the keys that might spike, and the alerts
//! that already fired.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use key_core::{
    Alert, AlertPeriod, AlertRules, AlertThreshold, AlertType, Error, SPIKE_MIN_REQUESTS,
    SPIKE_TRAILING_HOURS, is_dormant_use, is_usage_spike,
};
use key_store::{AlertKey, FlushReport, KeyActivity, PeriodCount};
use uuid::Uuid;

use super::Alerting;
use super::fire::{Firing, fire};

/// Evaluates the rules of every key of `report` and fires what they raise. Returns how many
/// alerts this call stored.
pub(super) async fn evaluate_flush(
    alerting: &Alerting,
    report: &FlushReport,
) -> Result<usize, Error> {
    let store = alerting.store();
    let now = alerting.now();
    let ids: Vec<Uuid> = report.keys.iter().map(|activity| activity.key_id).collect();
    let keys: HashMap<Uuid, AlertKey> = store
        .alert_keys(&ids)
        .await?
        .into_iter()
        // A revoked or expired key raises no alerts.
        .filter(|key| key.is_live(now))
        .map(|key| (key.id, key))
        .collect();
    if keys.is_empty() {
        return Ok(0);
    }
    let following: Vec<Uuid> = keys
        .values()
        .filter(|key| key.rules.is_none())
        .map(|key| key.organization_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let organization_rules = store.organizations_alert_rules(&following).await?;
    let judged: Vec<Judged<'_>> = report
        .keys
        .iter()
        .filter_map(|activity| {
            let key = keys.get(&activity.key_id)?;
            let organization = organization_rules
                .get(&key.organization_id)
                .copied()
                .flatten();
            let (rules, _) = AlertRules::in_force(key.rules, organization);
            Some(Judged {
                key,
                activity,
                rules,
            })
        })
        .collect();

    let counts = period_counts(alerting, &judged).await?;
    let mut firings = Vec::new();
    for judged in &judged {
        firings.extend(judged.threshold_alerts(&counts));
        if judged.rules.unusual_activity {
            firings.extend(judged.new_country_and_dormant_alerts());
        }
    }
    firings.extend(spike_alerts(alerting, &judged, &counts).await?);
    fire_new(alerting, firings).await
}

/// Fires those of `firings` that have not fired yet: one query for the dedup keys already
/// stored, then one transaction per new alert.
pub(super) async fn fire_new(
    alerting: &Alerting,
    firings: Vec<Firing<'_>>,
) -> Result<usize, Error> {
    if firings.is_empty() {
        return Ok(0);
    }
    let dedup_keys: Vec<String> = firings
        .iter()
        .map(|firing| firing.alert.dedup_key.clone())
        .collect();
    let stored = alerting
        .store()
        .stored_alert_dedup_keys(&dedup_keys)
        .await?;
    let mut fired = 0;
    for firing in firings
        .iter()
        .filter(|firing| !stored.contains(&firing.alert.dedup_key))
    {
        if fire(alerting, Uuid::now_v7(), firing).await?.is_some() {
            fired += 1;
        }
    }
    Ok(fired)
}

/// One key of the batch with the rules in force for it.
#[derive(Debug)]
struct Judged<'a> {
    key: &'a AlertKey,
    activity: &'a KeyActivity,
    rules: AlertRules,
}

/// Requests and failures per key, period and period start.
type Counts = HashMap<(Uuid, AlertPeriod, i64), PeriodCount>;

impl Judged<'_> {
    /// The starts of the periods of `period` that this batch's verifications of the key fell
    /// in: one, or two when the batch straddles a boundary.
    fn period_starts(&self, period: AlertPeriod) -> BTreeSet<DateTime<Utc>> {
        [self.activity.first_used_at, self.activity.last_used_at]
            .into_iter()
            .map(|at| period.period_start(at))
            .collect()
    }

    /// Whether any rule needs the key's period counts.
    fn needs_counts(&self) -> bool {
        self.rules.high_usage.is_some()
            || self.rules.failures.is_some()
            || self.rules.unusual_activity
    }

    /// highUsage and failures: every period the batch touched in which a count reached its
    /// threshold.
    fn threshold_alerts(&self, counts: &Counts) -> Vec<Firing<'_>> {
        let mut firings = Vec::new();
        let key = self.key;
        if let Some(rule) = self.rules.high_usage {
            for start in self.period_starts(rule.period()) {
                let observed = count(counts, key.id, rule.period(), start).requests;
                if rule.reached(observed) {
                    firings.push(
                        self.firing(Alert::high_usage(key.id, &key.name, rule, start, observed)),
                    );
                }
            }
        }
        if let Some(rule) = self.rules.failures {
            for start in self.period_starts(rule.period()) {
                let observed = count(counts, key.id, rule.period(), start).failures;
                if rule.reached(observed) {
                    firings.push(
                        self.firing(Alert::failures(key.id, &key.name, rule, start, observed)),
                    );
                }
            }
        }
        firings
    }

    /// Unusual activity that the batch itself tells: countries never seen before, and a use
    /// after 30 days of silence (since the previous use, or since creation for a key never
    /// used before).
    fn new_country_and_dormant_alerts(&self) -> Vec<Firing<'_>> {
        let (key, activity) = (self.key, self.activity);
        let mut firings: Vec<Firing<'_>> = activity
            .new_countries
            .iter()
            .map(|country| {
                self.firing(Alert::new_country(
                    key.id,
                    &key.name,
                    country,
                    activity.first_used_at,
                ))
            })
            .collect();
        let silent_since = activity.previously_used_at.unwrap_or(key.created_at);
        if is_dormant_use(silent_since, activity.first_used_at) {
            firings.push(self.firing(Alert::dormant_key_used(
                key.id,
                &key.name,
                silent_since,
                activity.first_used_at,
            )));
        }
        firings
    }

    fn firing(&self, alert: Alert) -> Firing<'_> {
        Firing {
            organization_id: self.key.organization_id,
            key_name: Some(&self.key.name),
            alert,
        }
    }

    /// The hour of the batch's latest verification of the key, the one a spike is judged in.
    fn current_hour(&self) -> DateTime<Utc> {
        AlertPeriod::Hourly.period_start(self.activity.last_used_at)
    }
}

fn count(counts: &Counts, key_id: Uuid, period: AlertPeriod, start: DateTime<Utc>) -> PeriodCount {
    counts
        .get(&(key_id, period, start.timestamp()))
        .copied()
        .unwrap_or(PeriodCount {
            key_id,
            period,
            period_start: start.timestamp(),
            requests: 0,
            failures: 0,
        })
}

/// The counts of every period the batch touched, for the keys whose rules need them: one
/// grouped query.
async fn period_counts(alerting: &Alerting, judged: &[Judged<'_>]) -> Result<Counts, Error> {
    let needing: Vec<&Judged<'_>> = judged
        .iter()
        .filter(|judged| judged.needs_counts())
        .collect();
    if needing.is_empty() {
        return Ok(Counts::new());
    }
    let ids: Vec<Uuid> = needing.iter().map(|judged| judged.key.id).collect();
    let starts = |period: AlertPeriod| -> Vec<i64> {
        needing
            .iter()
            .flat_map(|judged| judged.period_starts(period))
            .map(|start| start.timestamp())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let rows = alerting
        .store()
        .period_counts(
            &ids,
            &starts(AlertPeriod::Hourly),
            &starts(AlertPeriod::Daily),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.key_id, row.period, row.period_start), row))
        .collect())
}

/// Usage spikes: only keys with unusual activity on and at least `SPIKE_MIN_REQUESTS` this
/// hour can spike, so only theirs trailing week is read, one query per current hour (one, or
/// two across an hour boundary).
async fn spike_alerts<'a>(
    alerting: &Alerting,
    judged: &'a [Judged<'a>],
    counts: &Counts,
) -> Result<Vec<Firing<'a>>, Error> {
    let mut by_hour: HashMap<DateTime<Utc>, Vec<(&Judged<'_>, i64)>> = HashMap::new();
    for judged in judged.iter().filter(|judged| judged.rules.unusual_activity) {
        let hour = judged.current_hour();
        let current = count(counts, judged.key.id, AlertPeriod::Hourly, hour).requests;
        if current >= SPIKE_MIN_REQUESTS {
            by_hour.entry(hour).or_default().push((judged, current));
        }
    }
    let mut firings = Vec::new();
    for (hour, candidates) in by_hour {
        let ids: Vec<Uuid> = candidates.iter().map(|(judged, _)| judged.key.id).collect();
        let trailing = alerting
            .store()
            .trailing_requests(&ids, hour.timestamp(), SPIKE_TRAILING_HOURS)
            .await?;
        for (judged, current) in candidates {
            let total = trailing.get(&judged.key.id).copied().unwrap_or(0);
            if is_usage_spike(current, total) {
                let key = judged.key;
                firings.push(
                    judged.firing(Alert::usage_spike(key.id, &key.name, hour, current, total)),
                );
            }
        }
    }
    Ok(firings)
}

/// What one threshold rule says about a key's usage in the current period (TestAlertRules).
#[derive(Debug, Clone, Copy)]
pub struct ThresholdEvaluation {
    /// `HighUsage` or `Failures`.
    pub alert_type: AlertType,
    /// The rule evaluated.
    pub rule: AlertThreshold,
    /// The start of the rule's current period.
    pub period_start: DateTime<Utc>,
    /// Requests (or failures) so far in it.
    pub observed: i64,
    /// Whether the rule already fired in it.
    pub already_fired: bool,
}

impl ThresholdEvaluation {
    /// Whether the rule would fire now: reached, and not fired yet this period.
    pub fn would_fire(&self) -> bool {
        self.rule.reached(self.observed) && !self.already_fired
    }
}

/// Evaluates the threshold rules of `rules` against `key`'s usage in their current periods at
/// `now`, without firing anything: one query for the counts, one for the alerts already fired.
pub(super) async fn evaluate_thresholds(
    alerting: &Alerting,
    key: &AlertKey,
    rules: &AlertRules,
    now: DateTime<Utc>,
) -> Result<Vec<ThresholdEvaluation>, Error> {
    let hour = AlertPeriod::Hourly.period_start(now);
    let day = AlertPeriod::Daily.period_start(now);
    let counts: Counts = alerting
        .store()
        .period_counts(&[key.id], &[hour.timestamp()], &[day.timestamp()])
        .await?
        .into_iter()
        .map(|row| ((row.key_id, row.period, row.period_start), row))
        .collect();
    let mut alerts = Vec::new();
    if let Some(rule) = rules.high_usage {
        let start = rule.period().period_start(now);
        let observed = count(&counts, key.id, rule.period(), start).requests;
        alerts.push((
            Alert::high_usage(key.id, &key.name, rule, start, observed),
            rule,
        ));
    }
    if let Some(rule) = rules.failures {
        let start = rule.period().period_start(now);
        let observed = count(&counts, key.id, rule.period(), start).failures;
        alerts.push((
            Alert::failures(key.id, &key.name, rule, start, observed),
            rule,
        ));
    }
    let dedup_keys: Vec<String> = alerts
        .iter()
        .map(|(alert, _)| alert.dedup_key.clone())
        .collect();
    let fired = alerting
        .store()
        .stored_alert_dedup_keys(&dedup_keys)
        .await?;
    Ok(alerts
        .into_iter()
        .map(|(alert, rule)| ThresholdEvaluation {
            alert_type: alert.alert_type,
            rule,
            period_start: alert.period_start,
            observed: alert.observed,
            already_fired: fired.contains(&alert.dedup_key),
        })
        .collect())
}
