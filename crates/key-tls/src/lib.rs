//! TLS for Keyrack's listeners: the gRPC server and the REST gateway take their connections
//! from here when they are given a certificate.
//!
//! [`ServerTls::load`] reads a certificate chain, its private key and, for mutual TLS, the CA
//! that signs the clients' certificates, from PEM files, into a rustls `ServerConfig` on the
//! ring provider. [`ServerTls::incoming`] accepts TCP connections on a bound listener and
//! handshakes each one on a task of its own (a slow or silent client holds up no one, and is
//! dropped after [`HANDSHAKE_TIMEOUT`]); only completed handshakes come out of [`TlsIncoming`],
//! so nothing in plaintext ever reaches a server behind it. Meanwhile the files are read again
//! every [`RELOAD_INTERVAL`]: when their contents change (cert-manager and similar rotate them in
//! place) the new configuration is used for the connections accepted from then on; connections
//! already open keep the session they have. A new set of files that does not load (a key that
//! does not match its certificate, a half-written file) is logged and the previous configuration
//! kept; it is tried again when the files change again.
//!
//! A leaf, like key-telemetry: no workspace crate, no HTTP, no gRPC.

use std::{
    fmt, io,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, watch},
};
use tokio_rustls::TlsAcceptor;

pub use tokio_rustls::server::TlsStream;

/// How often the certificate, key and client CA files are read again to notice a rotation.
/// Reading three small files once a second costs nothing measurable; a rotated certificate is
/// served within this time.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How long a client has to complete its TLS handshake after connecting. A client that connects
/// and sends nothing (or too little) is disconnected after it, so half-open handshakes cannot
/// pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many handshakes may be under way at once; beyond it, new connections wait in the kernel's
/// accept queue until one ends.
const MAX_HANDSHAKES: usize = 1024;

/// How long the accept loop pauses after the listener fails (out of file descriptors, say), so
/// a persistent failure does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The files a TLS listener is configured from, all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, its own certificate first.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// For mutual TLS: the CA certificates that sign the clients' certificates. A client
    /// without a certificate signed by one of them is refused during the handshake.
    pub client_ca: Option<PathBuf>,
}

/// The application protocols a listener offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/2 only: gRPC (clients such as grpc-go refuse a server that does not offer `h2`).
    Http2,
    /// HTTP/2 and HTTP/1.1: the REST gateway.
    Http2AndHttp1,
}

impl Protocols {
    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Protocols::Http2 => vec![b"h2".to_vec()],
            Protocols::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// What loading a TLS configuration can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// A file holds no usable PEM of the kind expected.
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    /// rustls refused the certificate, key or client CA (e.g. a key that does not match the
    /// certificate).
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA cannot verify certificates.
    #[error("invalid client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// The bytes of a listener's files as last read: a change in any of them is a rotation.
#[derive(Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl fmt::Debug for Contents {
    // The key's bytes are a secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contents").finish_non_exhaustive()
    }
}

impl Contents {
    fn read(files: &TlsFiles) -> Result<Contents, Error> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })
        };
        Ok(Contents {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
            client_ca: files.client_ca.as_deref().map(read).transpose()?,
        })
    }
}

/// A TLS server configuration loaded from files, ready to accept connections on a listener.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    protocols: Protocols,
    contents: Contents,
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// Reads `files` and builds the configuration, offering `protocols`. Any problem is an
    /// error here: a server must not start with a certificate it cannot serve.
    pub fn load(files: TlsFiles, protocols: Protocols) -> Result<ServerTls, Error> {
        let contents = Contents::read(&files)?;
        let config = Arc::new(server_config(&files, &contents, protocols)?);
        Ok(ServerTls {
            files,
            protocols,
            contents,
            config,
        })
    }

    /// Whether clients must present a certificate (`client_ca` was given).
    pub fn is_mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// `on`, or `mutual` when clients must present a certificate, for log lines.
    pub fn mode(&self) -> &'static str {
        if self.is_mutual() { "mutual" } else { "on" }
    }

    /// Starts accepting connections on `listener`: each is handshaken on a task of its own and
    /// handed out by the returned [`TlsIncoming`] once the handshake completes. The files are
    /// watched for changes until the `TlsIncoming` is dropped, which also closes the listener.
    /// Must be called within a Tokio runtime.
    pub fn incoming(self, listener: TcpListener) -> Result<TlsIncoming, io::Error> {
        let local_addr = listener.local_addr()?;
        let (config_sender, config) = watch::channel(self.config);
        tokio::spawn(watch_files(
            self.files,
            self.protocols,
            self.contents,
            config_sender,
        ));
        let (sender, connections) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, config, sender));
        Ok(TlsIncoming {
            connections,
            local_addr,
        })
    }
}

/// The rustls configuration of `contents`, read from `files` (named in errors).
fn server_config(
    files: &TlsFiles,
    contents: &Contents,
    protocols: Protocols,
) -> Result<ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert, &contents.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|error| Error::Pem {
        path: files.key.clone(),
        message: format!("no private key: {error}"),
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, pem)? {
                roots.add(cert)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = protocols.alpn();
    Ok(config)
}

/// Every certificate in `pem` (read from `path`); at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Pem {
            path: path.to_owned(),
            message: format!("invalid PEM: {error}"),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_owned(),
            message: "no certificate".to_owned(),
        });
    }
    Ok(certs)
}

/// The identity a client certificate names, for logs: its first URI subject alternative name
/// (a SPIFFE ID, say), else its first DNS name; `None` if it names neither. The certificate is
/// only parsed here: the handshake has verified it already.
pub fn certificate_name(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    cert.valid_uri_names()
        .next()
        .or_else(|| cert.valid_dns_names().next())
        .map(str::to_owned)
}

/// Reads the files every [`RELOAD_INTERVAL`] and publishes a new configuration when their
/// contents change and load, until nobody accepts connections any more.
async fn watch_files(
    files: TlsFiles,
    protocols: Protocols,
    mut seen: Contents,
    config: watch::Sender<Arc<ServerConfig>>,
) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last failure to read, so a file missing for a while is logged once, not every second.
    let mut unreadable: Option<String> = None;
    loop {
        tokio::select! {
            () = config.closed() => return,
            _ = tick.tick() => {}
        }
        let contents = match Contents::read(&files) {
            Ok(contents) => contents,
            Err(error) => {
                let error = error.to_string();
                if unreadable.as_ref() != Some(&error) {
                    tracing::warn!(%error, "cannot re-read the TLS files; serving the previous certificate");
                    unreadable = Some(error);
                }
                continue;
            }
        };
        unreadable = None;
        if contents == seen {
            continue;
        }
        // Remembered even when it does not load, so a bad set is logged once and tried again
        // only when a file changes again (the rest of a rotation landing, say).
        seen = contents;
        match server_config(&files, &seen, protocols) {
            Ok(new) => {
                config.send_replace(Arc::new(new));
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => tracing::warn!(
                %error,
                "the changed TLS files do not load; serving the previous certificate"
            ),
        }
    }
}

/// Accepts TCP connections and handshakes each on its own task with the configuration current
/// when it was accepted, until the receiving end is dropped.
async fn accept_loop(
    listener: TcpListener,
    config: watch::Receiver<Arc<ServerConfig>>,
    connections: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (permit, accepted) = tokio::select! {
            () = connections.closed() => return,
            accepted = async {
                let permit = Arc::clone(&handshakes).acquire_owned().await;
                (permit, listener.accept().await)
            } => accepted,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { return };
        match accepted {
            Ok((tcp, peer)) => {
                let acceptor = TlsAcceptor::from(Arc::clone(&config.borrow()));
                let connections = connections.clone();
                tokio::spawn(async move {
                    handshake(acceptor, tcp, peer, connections).await;
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Completes one handshake within [`HANDSHAKE_TIMEOUT`] and hands the connection on; a failed
/// handshake (a plaintext client, a client certificate that is missing or signed by another CA,
/// a client that distrusts ours) ends the connection there.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    connections: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    // Requests are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            // Fails only when the server has stopped taking connections: the stream is dropped.
            let _ = connections.send((stream, peer)).await;
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out"),
    }
}

/// The connections whose TLS handshake has completed, in the order they completed: a `Stream`
/// for tonic's `serve_with_incoming`, and [`TlsIncoming::accept`] for an axum `Listener`.
#[derive(Debug)]
pub struct TlsIncoming {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsIncoming {
    /// The next connection and its peer's address; `None` if the accept loop has stopped
    /// (which it does only once this is dropped).
    pub async fn accept(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.connections.recv().await
    }

    /// The address of the listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl futures_core::Stream for TlsIncoming {
    type Item = Result<TlsStream<TcpStream>, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections
            .poll_recv(cx)
            .map(|connection| connection.map(|(stream, _)| Ok(stream)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::{ClientConfig, pki_types::ServerName};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    use super::*;

    /// A self-signed certificate for localhost in `dir`; its files, and the certificate to trust.
    fn self_signed(dir: &Path) -> (TlsFiles, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: None,
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        (files, cert.der().clone())
    }

    /// Handshakes run beside the accept loop: a client that connects and says nothing does not
    /// hold up the next one (were they handshaken in turn, it would for HANDSHAKE_TIMEOUT).
    #[tokio::test]
    async fn a_silent_client_does_not_hold_up_the_next_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let (files, trusted) = self_signed(dir.path());
        let tls = ServerTls::load(files, Protocols::Http2).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = tls.incoming(listener).unwrap();

        let _silent = TcpStream::connect(address).await.unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(trusted).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(address).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
        });
        let accepted = tokio::time::timeout(Duration::from_secs(5), incoming.accept())
            .await
            .expect("the second client waited for the silent one");
        let (stream, _) = accepted.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), None);
        client.await.unwrap().unwrap();
    }

    /// A key that does not belong to the certificate is refused when loading, so a
    /// half-finished rotation is never installed.
    #[test]
    fn a_key_of_another_certificate_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = self_signed(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (other_files, _) = self_signed(other.path());
        let mismatched = TlsFiles {
            key: other_files.key,
            ..files
        };
        let error = ServerTls::load(mismatched, Protocols::Http2).unwrap_err();
        assert!(matches!(error, Error::Rustls(_)), "{error}");
    }
}
