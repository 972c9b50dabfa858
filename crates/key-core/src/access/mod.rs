//! Who may do what: scopes, roles and an organization's policy, the permission table of the
//! admin RPCs, validated organization inputs, and the verdict on a key presented for
//! verification.

pub(crate) mod organization;
pub(crate) mod permission;
pub(crate) mod role;
pub(crate) mod scope;
pub(crate) mod verdict;
