//! ListAuditEvents.

use key_proto::v1;
use tonic::{Response, Status};

use crate::{KeyManager, Principal};

type Reply<T> = Result<Response<T>, Status>;

/// ListAuditEvents: see the proto.
pub(crate) async fn list_audit_events(
    _manager: &KeyManager,
    _caller: &Principal,
    _request: v1::ListAuditEventsRequest,
) -> Reply<v1::ListAuditEventsResponse> {
    Err(Status::unimplemented("ListAuditEvents is being built"))
}
