//! TLS and mutual TLS through the real binary: `keyrack serve --tls-cert/--tls-key
//! [--tls-client-ca]`, the gateway's `--http-tls-cert/--http-tls-key`, and `keyrack gateway
//! --upstream https://… --upstream-ca/--upstream-cert/--upstream-key`. Every certificate is made
//! here with rcgen: two CAs, so that "signed by another CA" is a real case. The database is
//! PostgreSQL when `KEYRACK_TEST_DATABASE_URL` is set (TLS does not depend on it, so once is
//! enough), else SQLite.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use key_proto::v1::{self, key_service_client::KeyServiceClient};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{
    helpers::{Backend, TestDatabase, authed, backends},
    process::{
        LoggedChild, TIMEOUT, bootstrap_key, keyrack, loopback_only, on_path, run_bounded, tool,
    },
    redis_limiter::logged_address,
};

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
}

impl Issued {
    fn identity(&self) -> Identity {
        Identity::from_pem(
            std::fs::read(&self.cert).unwrap(),
            std::fs::read(&self.key).unwrap(),
        )
    }
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// Writes the CA's certificate to `dir/<file>`.
    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }

    /// A certificate for `name`, valid for TLS servers on localhost and 127.0.0.1, or for TLS
    /// clients as `spiffe://keyrack.test/<name>`, written to `dir/<file>.pem` and
    /// `dir/<file>-key.pem`.
    fn issue(&self, dir: &Path, file: &str, name: &str, client: bool) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        if client {
            let uri = rcgen::string::Ia5String::try_from(format!("spiffe://keyrack.test/{name}"))
                .unwrap();
            params.subject_alt_names = vec![SanType::URI(uri)];
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{file}.pem")),
            key: dir.join(format!("{file}-key.pem")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}

/// A `keyrack serve` with TLS flags, its data directory and database.
struct Served {
    process: LoggedChild,
    grpc: String,
    http: Option<String>,
    data_dir: TempDir,
    _database: Option<TestDatabase>,
}

impl Served {
    /// `keyrack serve` with `args`, gRPC (and the gateway if `http`) on free loopback ports,
    /// once it listens.
    async fn start(args: &[&str], http: bool) -> Served {
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = keyrack();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
            ])
            .args(["--http-listen", if http { "127.0.0.1:0" } else { "off" }])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir.path());
        let database = match backends().pop() {
            Some(Backend::Postgres(base)) => {
                let database = TestDatabase::create(&base).await;
                command.env("KEYRACK_DATABASE_URL", database.url()).env(
                    "KEYRACK_PEPPER",
                    "tls-test-pepper-0123456789abcdef0123456789",
                );
                Some(database)
            }
            _ => None,
        };
        let mut process = LoggedChild::spawn(command, "serve");
        // The two listening lines come in either order.
        let (mut grpc, mut gateway) = (None, None);
        while grpc.is_none() || (http && gateway.is_none()) {
            let (what, address) = process.wait_for_line("listening", TIMEOUT, |line| {
                logged_address(line, "gRPC server listening")
                    .map(|address| ("grpc", address))
                    .or_else(|| {
                        logged_address(line, "HTTP gateway listening")
                            .map(|address| ("http", address))
                    })
            });
            if what == "grpc" {
                grpc = Some(address);
            } else {
                gateway = Some(address);
            }
        }
        Served {
            process,
            grpc: grpc.unwrap(),
            http: gateway,
            data_dir,
            _database: database,
        }
    }

    fn port(&self) -> &str {
        self.grpc.rsplit(':').next().unwrap()
    }

    fn admin_key(&self) -> String {
        bootstrap_key(self.data_dir.path())
    }

    fn stop(mut self) -> String {
        let stopped = self.process.terminate(TIMEOUT);
        let stderr = self.process.stderr();
        assert!(stopped.success(), "{stopped}:\n{stderr}");
        stderr
    }
}

/// A connected channel to `served` over TLS, trusting `ca`, presenting `identity` if given.
async fn tls_channel(
    served: &Served,
    ca: &Path,
    identity: Option<Identity>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(format!("https://{}", served.grpc))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// VerifyKey of `key` over `channel`: whether it was valid, or the call's error.
async fn verify(channel: Channel, key: &str) -> Result<bool, tonic::Status> {
    let request = v1::VerifyKeyRequest {
        key: key.to_owned(),
        ..Default::default()
    };
    let mut client = KeyServiceClient::new(channel);
    let mut request = tonic::Request::new(request);
    request.set_timeout(Duration::from_secs(5));
    client
        .verify_key(request)
        .await
        .map(|response| response.into_inner().valid)
}

/// Whether a TLS client trusting `ca`, with `identity`, gets a VerifyKey answered: the error
/// (of the connection or the call) if not.
async fn tls_verify(
    served: &Served,
    ca: &Path,
    identity: Option<Identity>,
) -> Result<bool, String> {
    let channel = tls_channel(served, ca, identity)
        .await
        .map_err(|error| format!("{error:?}"))?;
    verify(channel, &served.admin_key())
        .await
        .map_err(|status| format!("{status:?}"))
}

/// TLS on the gRPC API: a client trusting the CA verifies a key; a plaintext client gets no
/// answer from the TLS port; the caller's address still reaches the audit log (and the
/// brute-force guard, which reads the same peer) through TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_answers_verify_key_and_refuses_plaintext() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new("Keyrack test CA");
    let ca_pem = ca.write(pki.path(), "ca.pem");
    let server = ca.issue(pki.path(), "server", "keyrack", false);
    let served = Served::start(
        &[
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            server.key.to_str().unwrap(),
        ],
        false,
    )
    .await;

    assert_eq!(tls_verify(&served, &ca_pem, None).await, Ok(true));

    let plaintext = Endpoint::from_shared(format!("http://{}", served.grpc))
        .unwrap()
        .connect_lazy();
    let refused = verify(plaintext, &served.admin_key()).await;
    assert!(
        refused.is_err(),
        "a plaintext call was answered: {refused:?}"
    );

    // An admin call over TLS is audited with the caller's address.
    let channel = tls_channel(&served, &ca_pem, None).await.unwrap();
    let mut client = KeyServiceClient::new(channel);
    let admin = served.admin_key();
    let created = client
        .create_key(authed(
            &admin,
            v1::CreateKeyRequest {
                name: "over TLS".into(),
                scopes: vec!["data:read".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let events = client
        .list_audit_events(authed(&admin, v1::ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let create = events
        .iter()
        .find(|event| {
            event.action == "key.create"
                && Some(&event.target) == created.api_key.as_ref().map(|key| &key.id)
        })
        .unwrap_or_else(|| panic!("no key.create event: {events:#?}"));
    assert!(
        create.client_address.starts_with("127.0.0.1:"),
        "{create:#?}"
    );
    let stderr = served.stop();
    assert!(
        stderr.contains("gRPC server listening") && stderr.contains("tls=on"),
        "{stderr}"
    );
}

/// Mutual TLS: only callers with a certificate signed by the client CA are answered; without
/// one, or with one from another CA, the handshake fails. grpcurl works as the README shows.
/// The access log names the certificate of each call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_callers_without_a_certificate_from_the_client_ca() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new("Keyrack test CA");
    let other_ca = Ca::new("Another CA");
    let ca_pem = ca.write(pki.path(), "ca.pem");
    let server = ca.issue(pki.path(), "server", "keyrack", false);
    let client = ca.issue(pki.path(), "client", "billing-service", true);
    let stranger = other_ca.issue(pki.path(), "stranger", "billing-service", true);
    let served = Served::start(
        &[
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            server.key.to_str().unwrap(),
            "--tls-client-ca",
            ca_pem.to_str().unwrap(),
        ],
        false,
    )
    .await;

    assert_eq!(
        tls_verify(&served, &ca_pem, Some(client.identity())).await,
        Ok(true)
    );
    let anonymous = tls_verify(&served, &ca_pem, None).await;
    assert!(anonymous.is_err(), "answered without a client certificate");
    let foreign = tls_verify(&served, &ca_pem, Some(stranger.identity())).await;
    assert!(foreign.is_err(), "answered a certificate of another CA");

    // As in the README.
    let key = served.admin_key();
    let data = format!(r#"{{"key": "{key}"}}"#);
    let grpcurl = |identity: Option<&Issued>| {
        let mut command = Command::new(tool("grpcurl", "KEYRACK_GRPCURL"));
        command.args(["-max-time", "10", "-cacert"]).arg(&ca_pem);
        if let Some(identity) = identity {
            command.arg("-cert").arg(&identity.cert);
            command.arg("-key").arg(&identity.key);
        }
        command
            .args(["-d", &data])
            .arg(format!("localhost:{}", served.port()))
            .arg("keyrack.v1.KeyService/VerifyKey");
        run_bounded(command, TIMEOUT)
    };
    let answered = grpcurl(Some(&client)).into_success("grpcurl with a client certificate");
    assert!(answered.contains(r#""valid": true"#), "{answered}");
    let refused = grpcurl(None);
    assert!(!refused.status.success(), "{}", refused.text());
    let refused = grpcurl(Some(&stranger));
    assert!(!refused.status.success(), "{}", refused.text());
    let stderr = served.stop();
    assert!(stderr.contains("tls=mutual"), "{stderr}");
    // The access log names the caller's certificate.
    assert!(
        stderr.lines().any(|line| line.contains("grpc call")
            && line.contains(r#"client_cert="spiffe://keyrack.test/billing-service""#)),
        "{stderr}"
    );
}

/// Rotation in place: the files are replaced under a running server (by a certificate of
/// another CA, so old and new are told apart by who can connect); new connections get the new
/// certificate within the reload interval, and a connection opened before keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_rotated_in_place_is_served_to_new_connections_and_open_ones_stay() {
    let pki = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("Old CA");
    let new_ca = Ca::new("New CA");
    let old_ca_pem = old_ca.write(pki.path(), "old-ca.pem");
    let new_ca_pem = new_ca.write(pki.path(), "new-ca.pem");
    let server = old_ca.issue(pki.path(), "server", "keyrack", false);
    let served = Served::start(
        &[
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            server.key.to_str().unwrap(),
        ],
        false,
    )
    .await;
    let key = served.admin_key();
    let open = tls_channel(&served, &old_ca_pem, None).await.unwrap();
    assert_eq!(
        verify(open.clone(), &key).await.map_err(|s| s.to_string()),
        Ok(true)
    );
    assert!(tls_verify(&served, &new_ca_pem, None).await.is_err());

    // A key that does not match the certificate (half a rotation) is not taken.
    let rotated = new_ca.issue(pki.path(), "rotated", "keyrack", false);
    std::fs::copy(&rotated.cert, &server.cert).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(tls_verify(&served, &old_ca_pem, None).await, Ok(true));
    // Then the key lands too.
    std::fs::copy(&rotated.key, &server.key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tls_verify(&served, &new_ca_pem, None).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        tls_verify(&served, &old_ca_pem, None).await.is_err(),
        "a new connection still got the old certificate"
    );
    // The connection made before the rotation was not dropped: were it re-made, it would
    // trust only the old CA and fail.
    assert_eq!(
        verify(open, &key).await.map_err(|s| s.to_string()),
        Ok(true)
    );
    let stderr = served.stop();
    assert!(
        stderr.contains("the changed TLS files do not load")
            && stderr.contains("TLS certificate reloaded"),
        "{stderr}"
    );
}

/// curl over HTTPS (or plain HTTP) to `url`, trusting `ca`: the HTTP status, or `None` if no
/// answer came.
fn curl(url: &str, ca: &Path, headers: &[&str]) -> Option<u16> {
    let mut command = Command::new(on_path("curl"));
    loopback_only(&mut command);
    command
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(ca);
    for header in headers {
        command.args(["-H", header]);
    }
    command.arg(url);
    let ran = run_bounded(command, TIMEOUT);
    ran.status
        .success()
        .then(|| ran.stdout.trim().parse().unwrap())
}

/// The gateway over HTTPS, in `serve` and alone; the standalone gateway reaches a service that
/// requires mutual TLS with its client certificate, and is refused without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_https_and_reaches_a_mutual_tls_upstream() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new("Keyrack test CA");
    let ca_pem = ca.write(pki.path(), "ca.pem");
    let server = ca.issue(pki.path(), "server", "keyrack", false);
    let client = ca.issue(pki.path(), "client", "gateway", true);
    let path = |path: &PathBuf| path.to_str().unwrap().to_owned();
    let served = Served::start(
        &[
            "--tls-cert",
            &path(&server.cert),
            "--tls-key",
            &path(&server.key),
            "--tls-client-ca",
            &path(&ca_pem),
            "--http-tls-cert",
            &path(&server.cert),
            "--http-tls-key",
            &path(&server.key),
        ],
        true,
    )
    .await;
    let http_port = served
        .http
        .as_deref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let bearer = format!("Authorization: Bearer {}", served.admin_key());
    assert_eq!(
        curl(
            &format!("https://127.0.0.1:{http_port}/readyz"),
            &ca_pem,
            &[]
        ),
        Some(200)
    );
    assert_eq!(
        curl(
            &format!("https://127.0.0.1:{http_port}/api/auth/verify"),
            &ca_pem,
            &[&bearer]
        ),
        Some(200)
    );
    assert_eq!(
        curl(
            &format!("http://127.0.0.1:{http_port}/readyz"),
            &ca_pem,
            &[]
        ),
        None,
        "plain HTTP was answered"
    );

    // `keyrack gateway` in front of the service that requires mutual TLS.
    let upstream = format!("https://127.0.0.1:{}", served.port());
    let gateway = |identity: Option<&Issued>| {
        let mut command = keyrack();
        command
            .args([
                "gateway",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &upstream,
            ])
            .arg("--upstream-ca")
            .arg(&ca_pem);
        if let Some(identity) = identity {
            command.arg("--upstream-cert").arg(&identity.cert);
            command.arg("--upstream-key").arg(&identity.key);
        }
        let mut process = LoggedChild::spawn(command, "gateway");
        let address = process.wait_for_line("HTTP gateway listening", TIMEOUT, |line| {
            logged_address(line, "HTTP gateway listening")
        });
        (process, address)
    };
    let (mut with_cert, address) = gateway(Some(&client));
    assert_eq!(
        curl(&format!("http://{address}/readyz"), &ca_pem, &[]),
        Some(200)
    );
    assert_eq!(
        curl(
            &format!("http://{address}/api/auth/verify"),
            &ca_pem,
            &[&bearer]
        ),
        Some(200)
    );
    assert!(with_cert.terminate(TIMEOUT).success());
    let (mut without_cert, address) = gateway(None);
    assert_eq!(
        curl(&format!("http://{address}/readyz"), &ca_pem, &[]),
        Some(503)
    );
    assert!(without_cert.terminate(TIMEOUT).success());
    served.stop();
}
