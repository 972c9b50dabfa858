//! ListUsage: the verification series of one key, a set of keys or the whole organization, at
//! minute, hour or day resolution, with a summary (totals, success rate, failures by code,
//! distributions by country and by tag, last use). One grouped query reads the series and the
//! distributions, one more the last use, whatever the number of keys.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use key_core::{Action, Clock, Error};
use key_store::{Dimension, Resolution, Store, UsageKeys, UsageRow};
use uuid::Uuid;

use super::parse_id;
use crate::{Requester, access::Access, jobs::UsageFlusher, jobs::UsageRetention};

/// The most keys one request may name in `key_ids`.
const MAX_KEY_IDS: usize = 100;
const MAX_HOURLY_RANGE: TimeDelta = TimeDelta::days(31);
const MAX_DAILY_RANGE: TimeDelta = TimeDelta::days(400);

/// The `code` value of a successful verification.
const VALID: &str = "valid";

/// ListUsage's request.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// One key, or empty.
    pub key_id: String,
    /// A set of keys (at most 100), summed; not together with `key_id`. Neither: the whole
    /// organization.
    pub key_ids: Vec<String>,
    /// Minute, hour or day buckets.
    pub resolution: Resolution,
    /// The first instant of the range (default: one hour, one day or 30 days before now).
    pub start: Option<DateTime<Utc>>,
    /// The end of the range, excluded (default: the end of the current bucket).
    pub end: Option<DateTime<Utc>>,
}

/// The counts of one bucket.
#[derive(Debug, Clone, Default)]
pub struct UsageBucket {
    /// The bucket's start, in Unix seconds.
    pub start: i64,
    /// Valid verifications.
    pub succeeded: i64,
    /// Refused verifications.
    pub failed: i64,
    /// Refusals by error code.
    pub failed_by_code: HashMap<String, i64>,
    /// Verifications by country.
    pub by_country: HashMap<String, i64>,
    /// Verifications by tag.
    pub by_tag: HashMap<String, i64>,
}

/// The totals of the range.
#[derive(Debug, Clone, Default)]
pub struct UsageSummary {
    /// Every verification.
    pub request_count: i64,
    /// Valid verifications.
    pub success_count: i64,
    /// Refused verifications.
    pub failure_count: i64,
    /// `success_count / request_count`, 0 without requests.
    pub success_rate: f64,
    /// Refusals by error code.
    pub failed_by_code: HashMap<String, i64>,
    /// The geographic distribution.
    pub by_country: HashMap<String, i64>,
    /// Verifications by tag.
    pub by_tag: HashMap<String, i64>,
    /// The selection's last use, at any time.
    pub last_used: Option<DateTime<Utc>>,
}

/// The series (oldest first, only non-empty buckets) and its summary.
#[derive(Debug, Clone, Default)]
pub struct UsageReport {
    /// The buckets.
    pub buckets: Vec<UsageBucket>,
    /// The totals.
    pub summary: UsageSummary,
}

/// Which keys the requester asked about, once it was allowed to.
enum Selection {
    Organization,
    Keys(Vec<Uuid>),
}

/// The usage reports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageReports {
    store: Store,
    clock: Arc<dyn Clock>,
    access: Access,
    usage: UsageFlusher,
    retention: UsageRetention,
}

impl UsageReports {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        access: Access,
        usage: UsageFlusher,
        retention: UsageRetention,
    ) -> UsageReports {
        UsageReports {
            store,
            clock,
            access,
            usage,
            retention,
        }
    }

    /// ListUsage: every key named must be one the requester may read (another organization's
    /// is `NotFound`); the organization's usage needs `analytics:read`. The range is at most
    /// the minute retention (minutes), 31 days (hours) or 400 days (days) long.
    pub async fn list(&self, by: &Requester, query: UsageQuery) -> Result<UsageReport, Error> {
        let selection = self.authorized_selection(by, &query).await?;
        let max_range = match query.resolution {
            Resolution::Minute => self.retention.minute,
            Resolution::Hour => MAX_HOURLY_RANGE,
            Resolution::Day => MAX_DAILY_RANGE,
        };
        let (start, end) = usage_range(&query, max_range, self.clock.now())?;
        let keys = match &selection {
            Selection::Organization => UsageKeys::Organization,
            Selection::Keys(ids) => UsageKeys::Keys(ids),
        };
        // The counts this process holds in memory, this request's own authentication included.
        self.usage.flush_before_answering().await;
        let organization_id = by.caller.organization_id;
        let rows = self
            .store
            .usage(organization_id, keys, query.resolution, start, end)
            .await?;
        let last_used = self.store.last_used(organization_id, keys).await?;
        Ok(usage_report(rows, last_used))
    }

    /// The keys of the request, each checked: another organization's key (or no key) is
    /// `NotFound`, a key the requester may not read is refused (and audited). One lookup for a
    /// set.
    async fn authorized_selection(
        &self,
        by: &Requester,
        query: &UsageQuery,
    ) -> Result<Selection, Error> {
        let invalid =
            |field: &'static str, message: String| Error::InvalidArgument { field, message };
        match (query.key_id.as_str(), query.key_ids.as_slice()) {
            ("", []) => {
                self.access.authorize(by, Action::ReadUsage, None).await?;
                Ok(Selection::Organization)
            }
            (id, []) => {
                let id = parse_id("key_id", id)?;
                match self.access.key(by, id, Action::ReadUsage).await {
                    Ok(_) => {}
                    // An OAuth grant is no key to the key operations, but its usage (its
                    // access tokens') is read as a personal key's: its person's, or all.
                    Err(Error::NotFound(_)) => {
                        let grant = self
                            .store
                            .get_oauth_grant(by.caller.organization_id, id)
                            .await?
                            .ok_or(Error::NotFound("key"))?;
                        self.access
                            .authorize(by, Action::ReadUsage, grant.member_id)
                            .await?;
                    }
                    Err(error) => return Err(error),
                }
                Ok(Selection::Keys(vec![id]))
            }
            ("", ids) => {
                if ids.len() > MAX_KEY_IDS {
                    return Err(invalid(
                        "key_ids",
                        format!("at most {MAX_KEY_IDS} key ids, not {}", ids.len()),
                    ));
                }
                let mut ids = ids
                    .iter()
                    .map(|id| parse_id("key_ids", id))
                    .collect::<Result<Vec<_>, _>>()?;
                ids.sort_unstable();
                ids.dedup();
                let owners = self
                    .store
                    .key_owners(by.caller.organization_id, &ids)
                    .await?;
                if owners.len() != ids.len() {
                    return Err(Error::NotFound("key"));
                }
                for owner in owners {
                    self.access
                        .authorize(by, Action::ReadUsage, owner.member_id)
                        .await?;
                }
                Ok(Selection::Keys(ids))
            }
            (_, _) => Err(invalid(
                "key_ids",
                "give key_id or key_ids, not both".to_owned(),
            )),
        }
    }
}

/// The validated `[start, end)` of a usage query. Defaults: end the end of the current bucket
/// (so it is included), start one hour (minutes), one day (hours) or 30 days (days) before
/// now; both are widened to whole buckets.
fn usage_range(
    query: &UsageQuery,
    max_range: TimeDelta,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let resolution = query.resolution;
    let bucket = TimeDelta::seconds(resolution.seconds());
    // Just after now: widened below to the end of the current bucket.
    let end = query.end.unwrap_or(now + TimeDelta::nanoseconds(1));
    let default_span = match resolution {
        Resolution::Minute => TimeDelta::hours(1),
        Resolution::Hour => TimeDelta::days(1),
        Resolution::Day => TimeDelta::days(30),
    };
    let start = query.start.unwrap_or(now - default_span);
    let invalid = |message: String| Error::InvalidArgument {
        field: "start_time",
        message,
    };
    if start >= end {
        return Err(invalid("must be before end_time".to_owned()));
    }
    if end - start > max_range {
        let limit = match resolution {
            Resolution::Minute => format!("{} hours", max_range.num_hours()),
            Resolution::Hour | Resolution::Day => format!("{} days", max_range.num_days()),
        };
        return Err(invalid(format!(
            "{} usage covers at most {limit}",
            match resolution {
                Resolution::Minute => "per-minute",
                Resolution::Hour => "hourly",
                Resolution::Day => "daily",
            }
        )));
    }
    let start = start
        .duration_trunc(bucket)
        .map_err(|_| invalid("out of range".to_owned()))?;
    let end_floor = end
        .duration_trunc(bucket)
        .map_err(|_| invalid("out of range".to_owned()))?;
    let end = if end_floor == end {
        end
    } else {
        end_floor + bucket
    };
    Ok((start, end))
}

/// The series (oldest first) and its summary, from the grouped rows.
fn usage_report(rows: Vec<UsageRow>, last_used: Option<DateTime<Utc>>) -> UsageReport {
    let mut buckets: BTreeMap<i64, UsageBucket> = BTreeMap::new();
    let mut summary = UsageSummary {
        last_used,
        ..UsageSummary::default()
    };
    for row in rows {
        let bucket = buckets
            .entry(row.bucket_start)
            .or_insert_with(|| UsageBucket {
                start: row.bucket_start,
                ..UsageBucket::default()
            });
        match row.dimension {
            Dimension::Code if row.value == VALID => {
                bucket.succeeded += row.count;
                summary.success_count += row.count;
            }
            Dimension::Code => {
                bucket.failed += row.count;
                summary.failure_count += row.count;
                add(&mut bucket.failed_by_code, &row.value, row.count);
                add(&mut summary.failed_by_code, &row.value, row.count);
            }
            Dimension::Country => {
                add(&mut bucket.by_country, &row.value, row.count);
                add(&mut summary.by_country, &row.value, row.count);
            }
            Dimension::Tag => {
                add(&mut bucket.by_tag, &row.value, row.count);
                add(&mut summary.by_tag, &row.value, row.count);
            }
        }
    }
    summary.request_count = summary.success_count + summary.failure_count;
    if summary.request_count > 0 {
        // Counts far below 2^52 convert exactly.
        #[allow(clippy::cast_precision_loss)]
        let rate = summary.success_count as f64 / summary.request_count as f64;
        summary.success_rate = rate;
    }
    UsageReport {
        buckets: buckets.into_values().collect(),
        summary,
    }
}

fn add(counts: &mut HashMap<String, i64>, value: &str, count: i64) {
    match counts.get_mut(value) {
        Some(total) => *total += count,
        None => {
            counts.insert(value.to_owned(), count);
        }
    }
}
