//! How much a key may do: rate limits and the fixed-window algorithm that counts requests
//! against them.

pub(crate) mod ratelimit;
