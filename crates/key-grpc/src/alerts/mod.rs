//! Alerts: rules, their evaluation after each usage flush and by a periodic sweep, and alert
//! events (queued for the webhook endpoints in the event's own transaction). (Being built: the handlers below answer UNIMPLEMENTED until then.)

use key_proto::v1;
use tonic::{Response, Status};

use crate::{KeyManager, Principal, RequestContext};

type Reply<T> = Result<Response<T>, Status>;

pub(crate) async fn get_alert_rules(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::GetAlertRulesRequest,
) -> Reply<v1::GetAlertRulesResponse> {
    Err(Status::unimplemented("GetAlertRules is not built yet"))
}

pub(crate) async fn set_alert_rules(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::SetAlertRulesRequest,
) -> Reply<v1::SetAlertRulesResponse> {
    Err(Status::unimplemented("SetAlertRules is not built yet"))
}

pub(crate) async fn test_alert_rules(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::TestAlertRulesRequest,
) -> Reply<v1::TestAlertRulesResponse> {
    Err(Status::unimplemented("TestAlertRules is not built yet"))
}

pub(crate) async fn list_alert_events(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::ListAlertEventsRequest,
) -> Reply<v1::ListAlertEventsResponse> {
    Err(Status::unimplemented("ListAlertEvents is not built yet"))
}

/// Called after every successful usage flush with what it wrote; evaluates the alert rules of
/// the keys used. Must not block the flush: it hands the work to a task.
#[allow(
    dead_code,
    reason = "the usage flush calls it once it reports what it wrote"
)]
pub(crate) fn usage_flushed(_manager: &KeyManager, _report: key_store::FlushReport) {}
