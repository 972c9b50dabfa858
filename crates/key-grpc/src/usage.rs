//! ListUsage and its conversions.

use key_core::Error;
use key_proto::v1;
use key_service::{Application, Resolution, UsageQuery, UsageReport};
use tonic::Request;

use crate::{
    auth::requester,
    convert::{optional_time, timestamp},
};

pub(crate) async fn list_usage(
    app: &Application,
    request: Request<v1::ListUsageRequest>,
) -> Result<v1::ListUsageResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let resolution = match v1::Granularity::try_from(request.granularity) {
        Ok(v1::Granularity::Unspecified | v1::Granularity::Hour) => Resolution::Hour,
        Ok(v1::Granularity::Day) => Resolution::Day,
        Ok(v1::Granularity::Minute) => Resolution::Minute,
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "granularity",
                message: format!("unknown granularity {}", request.granularity),
            });
        }
    };
    let query = UsageQuery {
        end: optional_time("end_time", request.end_time.as_ref())?,
        start: optional_time("start_time", request.start_time.as_ref())?,
        key_id: request.key_id,
        key_ids: request.key_ids,
        resolution,
    };
    let report = app.usage.list(&by, query).await?;
    Ok(usage_to_proto(report))
}

fn usage_to_proto(report: UsageReport) -> v1::ListUsageResponse {
    let summary = report.summary;
    let last_used_time = summary.last_used.map(timestamp);
    v1::ListUsageResponse {
        buckets: report
            .buckets
            .into_iter()
            .map(|bucket| v1::UsageBucket {
                start_time: Some(prost_types::Timestamp {
                    seconds: bucket.start,
                    nanos: 0,
                }),
                succeeded: bucket.succeeded,
                failed: bucket.failed,
                failed_by_code: bucket.failed_by_code,
                by_country: bucket.by_country,
                by_tag: bucket.by_tag,
            })
            .collect(),
        total_succeeded: summary.success_count,
        total_failed: summary.failure_count,
        last_used_time,
        summary: Some(v1::UsageSummary {
            request_count: summary.request_count,
            success_count: summary.success_count,
            failure_count: summary.failure_count,
            success_rate: summary.success_rate,
            failed_by_code: summary.failed_by_code,
            by_country: summary.by_country,
            by_tag: summary.by_tag,
            last_used_time,
        }),
    }
}
