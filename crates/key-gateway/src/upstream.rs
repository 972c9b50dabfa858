//! The gRPC service the gateway translates to, and the headers that travel on to it.

use std::{path::PathBuf, time::Duration};

use axum::http::HeaderMap;
use key_proto::v1::key_service_client::KeyServiceClient;
use tonic::{
    Status,
    body::Body,
    metadata::{MetadataKey, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::health_client::HealthClient;
use tower::{BoxError, Service, ServiceExt, util::BoxCloneSyncService};

use crate::{ApiError, Error};

/// What the generated clients call: any gRPC service, reached over HTTP/2 (a [`Channel`]) or in
/// the same process (the server's own service stack, without a connection). Type-erased, so the
/// gateway needs to know nothing of the server it may run beside. Its errors are already the
/// statuses the client would make of them (a concrete type: a boxed error here trips the
/// compiler's higher-ranked `Send` checks in the handlers).
type UpstreamService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Status>;

/// Clients of the upstream KeyService and its health service, over one transport.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub(crate) keys: KeyServiceClient<UpstreamService>,
    pub(crate) health: HealthClient<UpstreamService>,
}

impl Upstream {
    /// The gRPC service at `url` (e.g. `http://127.0.0.1:50051`). The connection is made
    /// lazily and re-made as needed, so the gateway starts, and answers 503, while the service
    /// is down.
    pub fn connect_lazy(url: &str) -> Result<Upstream, Error> {
        Upstream::connect_lazy_with_tls(url, &UpstreamTls::default())
    }

    /// The gRPC service at `url`, as [`Upstream::connect_lazy`]; an `https://` URL is
    /// reached over TLS as `tls` says (its files are read now, once).
    pub fn connect_lazy_with_tls(url: &str, tls: &UpstreamTls) -> Result<Upstream, Error> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|error| Error::Upstream(url.to_owned(), error.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let https = endpoint.uri().scheme_str() == Some("https");
        if !https && *tls != UpstreamTls::default() {
            return Err(Error::UpstreamTls(format!(
                "{url} is not https://: the upstream CA, certificate and key apply to TLS only"
            )));
        }
        if https {
            endpoint = endpoint
                .tls_config(tls.client_config()?)
                .map_err(|error| Error::UpstreamTls(error.to_string()))?;
        }
        Ok(Upstream::from_channel(endpoint.connect_lazy()))
    }

    /// The service at the other end of an HTTP/2 channel.
    pub fn from_channel(channel: Channel) -> Upstream {
        Upstream::from_service(channel)
    }

    /// A gRPC service called in memory, e.g. the server of the same process: requests are
    /// still encoded as protobuf, but cross no socket. A service error (not a gRPC status)
    /// becomes a status exactly as the client would turn it into one (a broken connection is
    /// UNAVAILABLE), so the handlers' 503 still means "unavailable".
    pub fn from_service<S>(service: S) -> Upstream
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let service =
            BoxCloneSyncService::new(service.map_err(|error| Status::from_error(error.into())));
        Upstream {
            keys: KeyServiceClient::new(service.clone()),
            health: HealthClient::new(service),
        }
    }
}

/// How the gateway reaches an `https://` upstream: whom it trusts, and the certificate it
/// presents for mutual TLS. All PEM files, read when the upstream is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The CA certificates the service's certificate must chain to. Required for `https://`:
    /// the gateway trusts no public roots, since a KeyService is an internal service.
    pub ca: Option<PathBuf>,
    /// The gateway's client certificate, for a service that requires mutual TLS.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
}

impl UpstreamTls {
    fn client_config(&self) -> Result<ClientTlsConfig, Error> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|error| {
                Error::UpstreamTls(format!("cannot read {}: {error}", path.display()))
            })
        };
        let Some(ca) = &self.ca else {
            return Err(Error::UpstreamTls(
                "an https:// upstream needs the CA that signs its certificate (--upstream-ca)"
                    .to_owned(),
            ));
        };
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(Error::UpstreamTls(
                    "a client certificate needs its key, and a key its certificate".to_owned(),
                ));
            }
        }
        Ok(config)
    }
}

/// The headers that travel on to the service: the caller's credential, untouched (the service
/// judges it), the request id, so both sides log the same one, `x-forwarded-for`, which the
/// gateway has ended with its caller's address (`forwarded.rs`), for the audit log, and the
/// caller's trace context (replaced by the gateway's own span's when spans are recorded).
const FORWARDED: [&str; 5] = [
    "authorization",
    "x-request-id",
    "x-forwarded-for",
    "traceparent",
    "tracestate",
];

/// Wraps `message` in a gRPC request carrying the forwarded headers of `headers` and the
/// current span's trace context, so the service's span is a child of the gateway's.
pub(crate) fn forward<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    forward_these(headers, message, |_| true)
}

/// As [`forward`], without the caller's `Authorization`: for the OAuth endpoints, where it is
/// a client's HTTP Basic credentials, which travel in the message instead (and a secret has no
/// business in metadata that a log or a trace might show).
pub(crate) fn forward_without_credential<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    forward_these(headers, message, |name| name != "authorization")
}

fn forward_these<T>(
    headers: &HeaderMap,
    message: T,
    wanted: impl Fn(&str) -> bool,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for name in FORWARDED.into_iter().filter(|name| wanted(name)) {
        if let Some(value) = headers.get(name)
            && let Ok(value) = MetadataValue::try_from(value.as_bytes())
        {
            request.metadata_mut().insert(name, value);
        }
    }
    let mut trace_context = HeaderMap::new();
    key_telemetry::inject_current(&mut trace_context);
    for (name, value) in &trace_context {
        if let (Ok(name), Ok(value)) = (
            MetadataKey::from_bytes(name.as_str().as_bytes()),
            MetadataValue::try_from(value.as_bytes()),
        ) {
            request.metadata_mut().insert(name, value);
        }
    }
    request
}

/// A message of an upstream response that the service always sets, such as the record in a
/// `GetKeyResponse`. Its absence is a bug on the other side of the wire: logged, and answered as
/// `internal`, like any unexpected upstream error.
pub(crate) fn required<T>(message: Option<T>) -> Result<T, ApiError> {
    message.ok_or_else(|| {
        tracing::error!(
            missing = std::any::type_name::<T>(),
            "upstream response lacks a required message"
        );
        ApiError::internal()
    })
}
