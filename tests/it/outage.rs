//! A database outage, on a real PostgreSQL reached through a TCP proxy the test cuts (closing
//! every connection and refusing new ones, as a stopped server does): with its cache notice
//! listener gone, a replica stops trusting its cache, so no key is VALID while the database
//! cannot be read, calls that need the database fail fast
//! with UNAVAILABLE, readiness (not liveness) turns NOT_SERVING, and everything recovers when
//! the database answers again, without a restart.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use key_proto::v1;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{Backend, TestApp, authed, backends, spawn_app_routed};

/// A TCP proxy in front of `target` that the test can cut and restore.
struct CuttableProxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(target: String) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (accepting, tracked) = (Arc::clone(&up), Arc::clone(&links));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    // Refused, as a stopped server's port is.
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tracked.lock().unwrap().push(link);
            }
        });
        CuttableProxy { port, up, links }
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn key_service_health(app: &TestApp, service: &str) -> ServingStatus {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let response = health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap();
    response.into_inner().status()
}

/// Waits up to 10 s for KeyService's health to become `wanted`; how long it took.
async fn until_health(app: &TestApp, wanted: ServingStatus) -> Duration {
    let started = Instant::now();
    while key_service_health(app, "keyrack.v1.KeyService").await != wanted {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "KeyService never became {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn list_keys(app: &TestApp) -> Result<usize, tonic::Status> {
    app.client
        .clone()
        .list_keys(authed(&app.admin_key, v1::ListKeysRequest::default()))
        .await
        .map(|response| response.into_inner().api_keys.len())
}

#[tokio::test]
async fn an_outage_fails_fast_flips_readiness_and_recovers_without_a_restart() {
    for backend in backends() {
        let Backend::Postgres(base) = &backend else {
            continue;
        };
        // postgres://user@host:port/database: the proxy stands in for host:port.
        let server = base
            .split_once('@')
            .unwrap()
            .1
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let proxy = CuttableProxy::start(server.clone()).await;
        let port = proxy.port;
        let app = spawn_app_routed(
            base,
            |url| url.replacen(&format!("@{server}/"), &format!("@127.0.0.1:{port}/"), 1),
            |_| {},
        )
        .await;
        let cached = app.create_key("cached", &["chat"], "").await.key;
        let uncached = app.create_key("uncached", &["chat"], "").await.key;
        assert!(app.verify(&cached, &["chat"]).await.valid);
        assert_eq!(list_keys(&app).await.unwrap(), 3);

        proxy.cut();
        // The cache notice listener's connection went with the others: this replica can no
        // longer hear of changes made elsewhere, so it stops trusting its cache at once and a
        // cached key is read from the database like any other: never VALID while it cannot be.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match app
                .client
                .clone()
                .verify_key(v1::VerifyKeyRequest {
                    key: cached.clone(),
                    required_scopes: vec!["chat".into()],
                    ..Default::default()
                })
                .await
            {
                Ok(verdict) if verdict.get_ref().valid => {
                    assert!(
                        Instant::now() < deadline,
                        "a cached key stayed VALID for 5 s without a notice listener"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(_) => break,
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    break;
                }
            }
        }
        // A key the cache does not hold is never VALID either.
        let started = Instant::now();
        let unknown = app
            .client
            .clone()
            .verify_key(v1::VerifyKeyRequest {
                key: uncached.clone(),
                required_scopes: vec!["chat".into()],
                ..Default::default()
            })
            .await;
        match unknown {
            Ok(verdict) => assert!(!verdict.into_inner().valid),
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
        // A call that needs the database answers UNAVAILABLE within the pool's bounds.
        let status = list_keys(&app).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let failed_within = started.elapsed();
        assert!(failed_within < Duration::from_secs(5), "{failed_within:?}");
        // Not ready while the database is unreachable; alive all the same.
        let flipped = until_health(&app, ServingStatus::NotServing).await;
        assert_eq!(key_service_health(&app, "").await, ServingStatus::Serving);
        let readyz = reqwest::get(format!("{}/readyz", app.http)).await.unwrap();
        assert_eq!(readyz.status(), 503);
        let healthz = reqwest::get(format!("{}/healthz", app.http)).await.unwrap();
        assert_eq!(healthz.status(), 200);

        proxy.restore();
        let recovered = until_health(&app, ServingStatus::Serving).await;
        assert_eq!(list_keys(&app).await.unwrap(), 3);
        assert!(app.verify(&uncached, &["chat"]).await.valid);
        // The listener subscribes again (backoff of at most 5 s) and the cache is used again.
        assert!(
            app.keyrack
                .jobs
                .cache_notices
                .wait_until_listening(Duration::from_secs(10))
                .await
        );
        assert!(app.verify(&cached, &["chat"]).await.valid);
        eprintln!(
            "outage: two calls failed within {failed_within:?}, readiness flipped after \
             {flipped:?}, recovered {recovered:?} after the database came back"
        );
    }
}
