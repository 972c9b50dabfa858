//! The gateway's HTTPS listener: key-tls's handshaken connections as an axum `Listener`.

use std::{io, net::SocketAddr};

use key_tls::{TlsIncoming, TlsStream};
use tokio::net::TcpStream;

/// Connections whose TLS handshake has completed, for `axum::serve`.
#[derive(Debug)]
pub(crate) struct TlsListener(pub(crate) TlsIncoming);

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.accept().await {
            Some(connection) => connection,
            // The accept loop stops only once the listener is dropped, which axum does not do
            // while it still calls this: never reached, but waiting is the listener's contract.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}
