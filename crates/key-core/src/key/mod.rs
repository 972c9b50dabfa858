//! API keys themselves: the key format, the digest stored in a key's place, names, expiry, the
//! stored record and the part of it verification reads, and the rules of rotation.

pub(crate) mod api_key;
pub(crate) mod controls;
pub(crate) mod credits;
pub(crate) mod digest;
pub(crate) mod expiry;
pub(crate) mod key_view;
pub(crate) mod name;
pub(crate) mod record;
pub(crate) mod rotation;
