//! `--trusted-proxies`: whose `X-Forwarded-For` the REST gateway believes.

use clap::Args;
use key_gateway::TrustedProxies;

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// Reverse proxies in front of the REST gateway, comma-separated addresses or CIDR
    /// networks (e.g. `10.0.0.0/8,192.0.2.7`). The client's address, which the brute-force
    /// guard counts failures by, is read from the right of `X-Forwarded-For` through these
    /// proxies only; by default none is trusted and the client is the TCP peer.
    #[arg(long, env = "KEYRACK_TRUSTED_PROXIES", value_name = "LIST")]
    trusted_proxies: Option<TrustedProxies>,
}

impl ProxyArgs {
    pub(crate) fn trusted_proxies(&self) -> TrustedProxies {
        self.trusted_proxies.clone().unwrap_or_default()
    }
}
