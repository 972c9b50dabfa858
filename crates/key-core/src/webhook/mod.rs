//! Webhooks: how deliveries are signed (`signing`: the signing secret, its encryption at rest,
//! the signature header), what an endpoint must look like (`endpoint`: URL and description
//! rules), and how deliveries are made (`delivery`: their headers, states and retry schedule).

pub(crate) mod delivery;
pub(crate) mod endpoint;
pub(crate) mod signing;
