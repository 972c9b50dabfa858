//! RotateKey and UpdateKey.

use key_proto::v1;
use tonic::{Response, Status};

use crate::{KeyManager, Principal, RequestContext};

type Reply<T> = Result<Response<T>, Status>;

/// RotateKey: see the proto.
pub(crate) async fn rotate_key(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::RotateKeyRequest,
) -> Reply<v1::RotateKeyResponse> {
    Err(Status::unimplemented("RotateKey is being built"))
}

/// UpdateKey: see the proto.
pub(crate) async fn update_key(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::UpdateKeyRequest,
) -> Reply<v1::UpdateKeyResponse> {
    Err(Status::unimplemented("UpdateKey is being built"))
}
