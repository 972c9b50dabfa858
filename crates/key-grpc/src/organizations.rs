//! Organizations and members: CreateOrganization, GetOrganization, UpdateOrganizationPolicy,
//! AddMember, UpdateMember, RemoveMember, ListMembers.

use key_proto::v1;
use tonic::{Response, Status};

use crate::{KeyManager, Principal, RequestContext};

type Reply<T> = Result<Response<T>, Status>;

macro_rules! not_yet {
    ($($name:ident($request:ty) -> $response:ty;)*) => {
        $(
            pub(crate) async fn $name(
                _manager: &KeyManager,
                _caller: &Principal,
                _context: &RequestContext,
                _request: $request,
            ) -> Reply<$response> {
                Err(Status::unimplemented(concat!(stringify!($name), " is being built")))
            }
        )*
    };
}

not_yet! {
    create_organization(v1::CreateOrganizationRequest) -> v1::CreateOrganizationResponse;
    get_organization(v1::GetOrganizationRequest) -> v1::GetOrganizationResponse;
    update_organization_policy(v1::UpdateOrganizationPolicyRequest) -> v1::UpdateOrganizationPolicyResponse;
    add_member(v1::AddMemberRequest) -> v1::AddMemberResponse;
    update_member(v1::UpdateMemberRequest) -> v1::UpdateMemberResponse;
    remove_member(v1::RemoveMemberRequest) -> v1::RemoveMemberResponse;
    list_members(v1::ListMembersRequest) -> v1::ListMembersResponse;
}
