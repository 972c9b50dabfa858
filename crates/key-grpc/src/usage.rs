//! ListUsage: the verification series of one key, a set of keys or the whole organization, at
//! minute, hour or day granularity, with a summary (totals, success rate, failures by code,
//! distributions by country and by tag, last use). One grouped query reads the series and the
//! distributions, one more the last use, whatever the number of keys.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use key_core::{Action, Error};
use key_proto::v1;
use key_store::{Dimension, Resolution, UsageKeys, UsageRow};
use tonic::{Response, Status};
use uuid::Uuid;

use crate::{
    KeyManager, Principal, RequestContext,
    auth::{authorize, authorized_key},
    convert::{from_timestamp, parse_id, timestamp},
    status_from_error,
};

/// The most keys one request may name in `key_ids`.
const MAX_KEY_IDS: usize = 100;
const MAX_HOURLY_RANGE: TimeDelta = TimeDelta::days(31);
const MAX_DAILY_RANGE: TimeDelta = TimeDelta::days(400);

/// The `code` value of a successful verification.
const VALID: &str = "valid";

type Reply<T> = Result<Response<T>, Status>;

/// Which keys the caller asked about, once it was allowed to.
enum Selection {
    Organization,
    Keys(Vec<Uuid>),
}

pub(crate) async fn list_usage(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::ListUsageRequest,
) -> Reply<v1::ListUsageResponse> {
    let selection = authorized_selection(manager, caller, context, &request).await?;
    let (resolution, max_range) = granularity(manager, request.granularity)?;
    let (start, end) =
        usage_range(&request, resolution, max_range, manager.now()).map_err(status_from_error)?;
    let keys = match &selection {
        Selection::Organization => UsageKeys::Organization,
        Selection::Keys(ids) => UsageKeys::Keys(ids),
    };
    // The counts this process holds in memory, this request's own authentication included.
    manager.flush_usage().await.map_err(status_from_error)?;
    let store = manager.store();
    let rows = store
        .usage(caller.organization_id, keys, resolution, start, end)
        .await
        .map_err(|e| status_from_error(e.into()))?;
    let last_used = store
        .last_used(caller.organization_id, keys)
        .await
        .map_err(|e| status_from_error(e.into()))?;
    Ok(Response::new(usage_response(rows, last_used)))
}

/// The keys of the request, each checked: another organization's key (or no key) is
/// NOT_FOUND, a key the caller may not read is refused (and audited). One lookup for a set.
async fn authorized_selection(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: &v1::ListUsageRequest,
) -> Result<Selection, Status> {
    let invalid = |field: &'static str, message: String| {
        status_from_error(Error::InvalidArgument { field, message })
    };
    match (request.key_id.as_str(), request.key_ids.as_slice()) {
        ("", []) => {
            authorize(manager, caller, context, Action::ReadUsage, None).await?;
            Ok(Selection::Organization)
        }
        (id, []) => {
            let id = parse_id("key_id", id).map_err(status_from_error)?;
            authorized_key(manager, caller, context, id, Action::ReadUsage).await?;
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
                .collect::<Result<Vec<_>, _>>()
                .map_err(status_from_error)?;
            ids.sort_unstable();
            ids.dedup();
            let owners = manager
                .store()
                .key_owners(caller.organization_id, &ids)
                .await
                .map_err(|e| status_from_error(e.into()))?;
            if owners.len() != ids.len() {
                return Err(status_from_error(Error::NotFound("key")));
            }
            for owner in owners {
                authorize(manager, caller, context, Action::ReadUsage, owner.member_id).await?;
            }
            Ok(Selection::Keys(ids))
        }
        (_, _) => Err(invalid(
            "key_ids",
            "give key_id or key_ids, not both".to_owned(),
        )),
    }
}

/// The resolution of a granularity and the longest range it may cover: a minute series at
/// most as far back as minute rows are kept.
fn granularity(manager: &KeyManager, value: i32) -> Result<(Resolution, TimeDelta), Status> {
    match v1::Granularity::try_from(value) {
        Ok(v1::Granularity::Unspecified | v1::Granularity::Hour) => {
            Ok((Resolution::Hour, MAX_HOURLY_RANGE))
        }
        Ok(v1::Granularity::Day) => Ok((Resolution::Day, MAX_DAILY_RANGE)),
        Ok(v1::Granularity::Minute) => Ok((Resolution::Minute, manager.usage_retention().minute)),
        Err(_) => Err(status_from_error(Error::InvalidArgument {
            field: "granularity",
            message: format!("unknown granularity {value}"),
        })),
    }
}

/// The validated `[start, end)` of a usage request. Defaults: end the end of the current
/// bucket (so it is included), start one hour (minutes), one day (hours) or 30 days (days)
/// before now; both are widened to whole buckets.
fn usage_range(
    request: &v1::ListUsageRequest,
    resolution: Resolution,
    max_range: TimeDelta,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let bucket = TimeDelta::seconds(resolution.seconds());
    let end = match &request.end_time {
        Some(ts) => from_timestamp("end_time", ts)?,
        // Just after now: widened below to the end of the current bucket.
        None => now + TimeDelta::nanoseconds(1),
    };
    let default_span = match resolution {
        Resolution::Minute => TimeDelta::hours(1),
        Resolution::Hour => TimeDelta::days(1),
        Resolution::Day => TimeDelta::days(30),
    };
    let start = match &request.start_time {
        Some(ts) => from_timestamp("start_time", ts)?,
        None => now - default_span,
    };
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
fn usage_response(rows: Vec<UsageRow>, last_used: Option<DateTime<Utc>>) -> v1::ListUsageResponse {
    let mut buckets: BTreeMap<i64, v1::UsageBucket> = BTreeMap::new();
    let mut summary = v1::UsageSummary {
        last_used_time: last_used.map(timestamp),
        ..Default::default()
    };
    for row in rows {
        let bucket = buckets
            .entry(row.bucket_start)
            .or_insert_with(|| v1::UsageBucket {
                start_time: Some(prost_types::Timestamp {
                    seconds: row.bucket_start,
                    nanos: 0,
                }),
                ..Default::default()
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
    v1::ListUsageResponse {
        buckets: buckets.into_values().collect(),
        total_succeeded: summary.success_count,
        total_failed: summary.failure_count,
        last_used_time: summary.last_used_time,
        summary: Some(summary),
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
