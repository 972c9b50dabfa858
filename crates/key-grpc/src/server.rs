//! Server assembly: KeyService behind the authentication layer, health and reflection (v1 and
//! v1alpha, since grpcurl 1.8 speaks v1alpha), served until a shutdown signal. The same stack
//! is also reachable in memory ([`GrpcServer::local_service`]), for the REST gateway of the
//! same process. The background jobs are not the server's: the binary runs them beside it.
//! Given a certificate ([`GrpcServer::with_tls`]), the listener speaks only TLS (key-tls
//! handshakes each connection before tonic sees it), mutual TLS with a client CA.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use key_proto::v1::key_service_server::KeyServiceServer;
use key_tls::ServerTls;
use tokio::{
    net::TcpListener,
    sync::{Notify, watch},
};
use tonic::{Status, body::Body, service::Routes, transport::server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::{Layer, Service};

use key_service::{Application, verify::ExtAuthz};

use crate::{
    BoxFuture, Error,
    auth::{AuthLayer, AuthService},
    ext_authz::AuthorizationService,
    service::KeyServiceImpl,
    shed::{DEFAULT_MAX_IN_FLIGHT, ShedLayer},
    telemetry::{TelemetryLayer, TelemetryService},
};

/// The name health checks use for the key service.
const KEY_SERVICE_NAME: &str = "keyrack.v1.KeyService";

/// A gRPC server bound to a listener, ready to run.
#[derive(Debug)]
pub struct GrpcServer {
    /// The telemetry layer (span, access log, latency) both paths put around the
    /// authentication layer.
    telemetry: TelemetryLayer,
    /// The authentication layer both paths put around the routes.
    auth: AuthLayer,
    listener: TcpListener,
    local_addr: SocketAddr,
    drain_timeout: Duration,
    /// Health, reflection and KeyService, without the auth layer: the server and
    /// [`GrpcServer::local_service`] put the same layer around the same routes.
    routes: Routes,
    /// The health statuses both paths report, so a drain shows on each.
    reporter: HealthReporter,
    /// Whether KeyService's SERVING status is still to be set when serving starts.
    serving_pending: bool,
    /// Whether the service is ready (its database answers), if someone tells: KeyService's
    /// health follows it while serving.
    readiness: Option<watch::Receiver<bool>>,
    in_process: Arc<InProcessCalls>,
    /// The TLS configuration of the listener, if it speaks TLS.
    tls: Option<ServerTls>,
    /// Calls above this many in flight are refused at once ([`ShedLayer`]).
    max_in_flight: usize,
    /// Where shed calls are counted.
    requests: key_telemetry::RequestMetrics,
}

/// The largest request KeyService decodes. Every request is a few hundred bytes (a key is 56
/// characters; names, reasons, rules and lists are bounded far below this), so a larger one
/// is refused before it is read (OUT_OF_RANGE, "decoded message length too large") instead of
/// taking tonic's default 4 MiB of memory per call.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The largest CheckRequest ext_authz decodes: it carries the proxied request's headers, which
/// Envoy bounds at 60 KiB by default, and its body only if the filter is told to send it.
const MAX_CHECK_REQUEST_BYTES: usize = 256 * 1024;

/// Concurrent calls on one HTTP/2 connection: a client that wants more opens another
/// connection, and one connection cannot take the whole in-flight bound.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Streams a client may reset before the server has taken them up, per connection. A client
/// whose deadlines pass while its calls wait for an overloaded server cancels them, many at
/// once; h2's default (20) answers that by tearing down the connection, failing the calls it
/// still waits for and making the client reconnect, more work for a server already short of
/// it. As many as one connection may have open keeps the guard against the "rapid reset"
/// attack (CVE-2023-44487: resets beyond this still close the connection) without punishing
/// deadlines (`tests/it/cancels.rs`).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = MAX_CONCURRENT_STREAMS as usize;

/// The largest header block (all metadata of one call) the server accepts: a bearer key, a
/// trace context and a request id take well under 1 KiB.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// How long requests in flight may take to finish after a shutdown signal, by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl GrpcServer {
    /// Binds nothing itself: takes a bound listener (port 0 is fine) so callers learn the port
    /// before serving.
    /// Serves `app`'s operations; the background jobs are the caller's to start (and to stop
    /// after [`GrpcServer::run_until`] returns).
    pub fn new(app: &Application, listener: TcpListener) -> Result<GrpcServer, Error> {
        let local_addr = listener.local_addr()?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        // The store was migrated before the server was built, so the key service can serve,
        // in memory from now on, and over the listener once `run_until` starts.
        let serving_pending = !set_status_now(&reporter, ServingStatus::Serving);

        // google.rpc is registered too, so grpcurl can print the ErrorInfo of an error.
        let descriptors: [&[u8]; 3] = [
            key_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_types::pb::FILE_DESCRIPTOR_SET,
        ];
        // Every method served, reflection's too, for the telemetry layer's names; ext_authz's
        // Check too, whether or not it is configured.
        let check_method = key_proto::envoy::check_method_descriptor();
        let served: Vec<&[u8]> = descriptors
            .iter()
            .copied()
            .chain([
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                &check_method,
            ])
            .collect();
        let mut reflection_v1 = tonic_reflection::server::Builder::configure();
        let mut reflection_v1alpha = tonic_reflection::server::Builder::configure();
        for descriptor in descriptors {
            reflection_v1 = reflection_v1.register_encoded_file_descriptor_set(descriptor);
            reflection_v1alpha =
                reflection_v1alpha.register_encoded_file_descriptor_set(descriptor);
        }
        let routes = Routes::new(health_service)
            .add_service(reflection_v1.build_v1()?)
            .add_service(reflection_v1alpha.build_v1alpha()?)
            .add_service(
                KeyServiceServer::new(KeyServiceImpl::new(app.clone()))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .prepare();
        Ok(GrpcServer {
            telemetry: TelemetryLayer::new(app.metrics.requests(), &served),
            auth: AuthLayer::new(app.access.clone()),
            listener,
            local_addr,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            routes,
            reporter,
            serving_pending,
            readiness: None,
            in_process: Arc::default(),
            tls: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            requests: app.metrics.requests(),
        })
    }

    /// Makes KeyService's health follow `readiness` while serving: NOT_SERVING while it says
    /// false (the database does not answer), SERVING again when it says true. Overall health
    /// (the empty service name) stays SERVING: the process is alive, only not ready.
    pub fn with_readiness(mut self, readiness: watch::Receiver<bool>) -> GrpcServer {
        self.readiness = Some(readiness);
        self
    }

    /// Bounds how long requests in flight may take to finish once shutdown starts. Streams that
    /// never end on their own (a health `Watch`, say) are cut off after it.
    pub fn with_drain_timeout(mut self, drain_timeout: Duration) -> GrpcServer {
        self.drain_timeout = drain_timeout;
        self
    }

    /// Serves TLS (mutual TLS if `tls` has a client CA) on the listener instead of plaintext:
    /// a connection whose handshake fails never reaches a service, and the certificate files
    /// are re-read when they change. The in-memory path ([`GrpcServer::local_service`]) is
    /// unchanged.
    pub fn with_tls(mut self, tls: ServerTls) -> GrpcServer {
        self.tls = Some(tls);
        self
    }

    /// Refuses calls (RESOURCE_EXHAUSTED, reason `overloaded`) above `max_in_flight` in
    /// flight over the listener, instead of queueing them. Health checks are never refused.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> GrpcServer {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Also serves Envoy's ext_authz API (`envoy.service.auth.v3.Authorization/Check`),
    /// deciding with `ext_authz`, on the listener and in memory. Without it, Check answers
    /// UNIMPLEMENTED. Call it before [`GrpcServer::local_service`].
    pub fn with_ext_authz(mut self, ext_authz: ExtAuthz) -> GrpcServer {
        self.routes = self
            .routes
            .add_service(
                key_proto::envoy::AuthorizationServer::new(AuthorizationService::new(ext_authz))
                    .max_decoding_message_size(MAX_CHECK_REQUEST_BYTES),
            )
            .prepare();
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's own service stack (the auth layer around health, reflection and
    /// KeyService), called in memory: a gRPC client built on it (`KeyServiceClient::new`)
    /// encodes protobuf as usual but crosses no socket. Its requests have no TCP peer, so the
    /// audit log records their `x-forwarded-for`. It reports the same health as the server
    /// (NOT_SERVING once shutdown starts), and once serving has stopped it answers UNAVAILABLE,
    /// so nothing is counted after the last usage flush.
    pub fn local_service(&self) -> LocalService {
        LocalService {
            inner: self.telemetry.layer(self.auth.layer(self.routes.clone())),
            calls: Arc::clone(&self.in_process),
        }
    }

    /// Serves until `shutdown` resolves. Health turns NOT_SERVING first, then requests in
    /// flight finish (for at most the drain timeout, in memory as over the network), then this
    /// returns: the usage they counted is the jobs' to flush, once every server has drained.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let reporter = self.reporter;
        if self.serving_pending {
            reporter
                .set_service_status(KEY_SERVICE_NAME, ServingStatus::Serving)
                .await;
        }

        let tls_mode = self.tls.as_ref().map_or("off", ServerTls::mode);
        tracing::info!(address = %self.local_addr, tls = %tls_mode, "gRPC server listening");
        let follower = self
            .readiness
            .map(|readiness| tokio::spawn(follow_readiness(reporter.clone(), readiness)));
        let draining = Arc::new(Notify::new());
        let signal = {
            let draining = Arc::clone(&draining);
            async move {
                shutdown.await;
                // Draining wins over readiness: nothing may set SERVING from now on.
                if let Some(follower) = follower {
                    follower.abort();
                    // Waited for, so a status it was setting lands before NOT_SERVING does.
                    let _ = follower.await;
                }
                stop_serving(reporter).await;
                draining.notify_one();
            }
        };
        // The first layer is the outermost. Calls are shed first: before authentication,
        // which may read the database, and before telemetry, so a refusal costs no span, no
        // access-log line and no latency sample (the shed counter counts it). Above capacity
        // the CPU goes to refusals and answers alike, and the cheaper a refusal the more is
        // left for the answers.
        let router = tonic::transport::Server::builder()
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
            .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
            .layer(
                tower::ServiceBuilder::new()
                    .layer(ShedLayer::new(self.max_in_flight, self.requests))
                    .layer(self.telemetry)
                    .layer(self.auth),
            )
            .add_routes(self.routes);
        // Boxed: the plaintext and TLS servers are different types of future.
        let serve: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send + '_>> =
            match self.tls {
                None => {
                    let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
                    Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
                }
                Some(tls) => {
                    let incoming = tls.incoming(self.listener)?;
                    Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
                }
            };
        let served = tokio::select! {
            served = serve => served,
            () = async {
                draining.notified().await;
                tokio::time::sleep(self.drain_timeout).await;
            } => {
                tracing::warn!(timeout = ?self.drain_timeout, "requests still in flight after the drain timeout; closing them");
                Ok(())
            }
        };
        // In-memory callers (the gateway of this process) are refused from now on, and the
        // calls they have under way finish before this returns, like the network's did.
        if tokio::time::timeout(self.drain_timeout, self.in_process.close_and_wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.drain_timeout, "in-process calls still running after the drain timeout");
        }
        served?;
        tracing::info!("gRPC server stopped");
        Ok(())
    }
}

/// Sets KeyService's health from `readiness`, at each change, until aborted.
async fn follow_readiness(reporter: HealthReporter, mut readiness: watch::Receiver<bool>) {
    loop {
        let status = if *readiness.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status(KEY_SERVICE_NAME, status).await;
        if readiness.changed().await.is_err() {
            return;
        }
    }
}

async fn stop_serving(reporter: HealthReporter) {
    tracing::info!("shutting down: health NOT_SERVING, finishing requests in flight");
    reporter
        .set_service_status(KEY_SERVICE_NAME, ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

/// Sets the key service's status on a reporter nobody else holds yet. Its lock is free, so the
/// write completes at the first poll and `new` can stay synchronous; `false` if it did not.
fn set_status_now(reporter: &HealthReporter, status: ServingStatus) -> bool {
    let mut write = pin!(reporter.set_service_status(KEY_SERVICE_NAME, status));
    write
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_ready()
}

/// The server's service stack, called in memory; see [`GrpcServer::local_service`].
#[derive(Debug, Clone)]
pub struct LocalService {
    inner: TelemetryService<AuthService<Routes>>,
    calls: Arc<InProcessCalls>,
}

impl Service<http::Request<Body>> for LocalService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(call) = InProcessCalls::enter(&self.calls) else {
            return Box::pin(async {
                Ok(Status::unavailable("the key service has stopped").into_http())
            });
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(call);
            response
        })
    }
}

/// The in-memory calls under way, and whether new ones are still taken: at shutdown the server
/// waits for these as it does for its connections, before the last usage flush. Two atomics,
/// no lock: the verification path goes through here.
#[derive(Debug, Default)]
struct InProcessCalls {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One in-memory call under way; it ends when dropped.
#[derive(Debug)]
struct InProcessCall(Arc<InProcessCalls>);

impl InProcessCalls {
    /// Starts a call, unless serving has stopped.
    fn enter(calls: &Arc<InProcessCalls>) -> Option<InProcessCall> {
        // Counted before the check: `close_and_wait` sets `closed` before it reads the count,
        // so a call either sees `closed` or is waited for.
        calls.in_flight.fetch_add(1, Ordering::SeqCst);
        let call = InProcessCall(Arc::clone(calls));
        (!calls.closed.load(Ordering::SeqCst)).then_some(call)
    }

    /// Refuses new calls, then waits until those under way have ended.
    async fn close_and_wait(&self) {
        self.closed.store(true, Ordering::SeqCst);
        loop {
            // Registered before the count is read, so the last call's wake-up is not missed.
            let mut idle = pin!(self.idle.notified());
            idle.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for InProcessCall {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
