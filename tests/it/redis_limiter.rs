//! Rate limits shared through a real Redis: one global limit across two servers, all-or-nothing
//! across windows, window boundaries on the injected clock, counters that expire; the local
//! fallback while Redis is stopped and the return to Redis; and `keyrack serve` starting on
//! local limits when Redis is unreachable, with its metrics endpoint saying so.
//!
//! The shared tests use the Redis at `KEYRACK_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`); their counters are named after fresh key ids, so tests never
//! see each other's counters and nothing is flushed. The fallback tests start a
//! `redis-server` of their own, since they stop it.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use chrono::TimeDelta;
use key_proto::v1::{self, key_service_client::KeyServiceClient};
use key_service::{Application, RedisLimiter};
use redis::AsyncCommands;
use tonic::transport::Channel;

use crate::{
    helpers::{
        SecondServer, TestApp, backends, spawn_app_configured, spawn_second_server_configured,
    },
    process::{ChildGuard, LoggedChild, TIMEOUT, free_port, keyrack, on_path},
    ratelimit::{create_limited, limit},
};

fn shared_redis_url() -> String {
    std::env::var("KEYRACK_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A limiter on `url`. The timeout is generous: on a busy test machine a 50 ms timeout could
/// fall back now and then, and these tests are about what Redis decides. The retry interval is
/// short, so a test sees Redis come back soon after it restarts.
fn limiter(url: &str) -> RedisLimiter {
    RedisLimiter::new(url)
        .unwrap()
        .with_timeout(Duration::from_secs(5))
        .with_retry_interval(Duration::from_millis(100))
}

/// Two servers on one database, each with its own application and its own limiter on Redis `url`.
async fn two_replicas(backend: &crate::helpers::Backend, url: &str) -> (TestApp, SecondServer) {
    let app =
        spawn_app_configured(backend, |setup| setup.parts.limiter = limiter(url).into()).await;
    let second =
        spawn_second_server_configured(&app, |setup| setup.parts.limiter = limiter(url).into())
            .await;
    (app, second)
}

async fn verify_on(client: &KeyServiceClient<Channel>, key: &str) -> v1::VerifyKeyResponse {
    client
        .clone()
        .verify_key(v1::VerifyKeyRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The value of the gauge `keyrack_rate_limiter_remote_up`, as a scrape reads it.
fn remote_up(keyrack: &Application) -> bool {
    let text = keyrack.metrics.render();
    match sample(&text, "keyrack_rate_limiter_remote_up").as_deref() {
        Some("1") => true,
        Some("0") => false,
        other => panic!("remote_up is {other:?}:\n{text}"),
    }
}

/// The value of the sample `name` (without labels) in a scrape's `text`.
pub(crate) fn sample(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[tokio::test]
async fn two_servers_sharing_redis_enforce_one_global_limit() {
    let url = shared_redis_url();
    for backend in backends() {
        let (app, second) = two_replicas(&backend, &url).await;
        // 10:30:10, so the minute ends in 50 s.
        app.clock.advance(TimeDelta::seconds(10));
        let key = create_limited(&app, "global", vec![limit(10, v1::RatePeriod::Minute)]).await;

        let servers = [&app.client, &second.client];
        for i in 0..10 {
            let verdict = verify_on(servers[i % 2], &key).await;
            assert!(verdict.valid, "request {i}: {verdict:?}");
        }
        for server in servers {
            let refused = verify_on(server, &key).await;
            assert_eq!(refused.code, i32::from(v1::VerifyCode::RateLimited));
            assert_eq!(refused.reason, "rate_limited");
            assert_eq!(
                refused.message,
                "Rate limit exceeded: 10 requests per minute"
            );
            assert_eq!(refused.limit, 10);
            assert_eq!(refused.remaining, 0);
            assert_eq!(refused.retry_after.unwrap().seconds, 50);
            let reset = app.clock_now() + TimeDelta::seconds(50);
            assert_eq!(refused.reset.unwrap().seconds, reset.timestamp());
        }

        // The last second of the window still refuses; its end opens a fresh window.
        app.clock.advance(TimeDelta::seconds(49));
        let refused = verify_on(&second.client, &key).await;
        assert_eq!(refused.retry_after.unwrap().seconds, 1);
        app.clock.advance(TimeDelta::seconds(1));
        assert!(verify_on(&second.client, &key).await.valid);
        assert!(verify_on(&app.client, &key).await.valid);

        for keyrack in [&app.keyrack, &second.keyrack] {
            assert_eq!(keyrack.metrics.limiter_fallbacks(), 0);
            assert!(remote_up(keyrack));
            assert_eq!(
                keyrack.verifier.limiter_entries(),
                0,
                "nothing counted locally"
            );
        }
        second.stop().await;
    }
}

#[tokio::test]
async fn in_redis_a_request_refused_by_one_limit_consumes_nothing_from_the_others() {
    let url = shared_redis_url();
    for backend in backends() {
        let (app, second) = two_replicas(&backend, &url).await;
        let key = create_limited(
            &app,
            "two limits",
            vec![
                limit(2, v1::RatePeriod::Second),
                limit(5, v1::RatePeriod::Minute),
            ],
        )
        .await;
        let servers = [&app.client, &second.client];
        // Second 0: 2 allowed across both servers, 10 refused by the per-second limit.
        let mut allowed = 0;
        for i in 0..12 {
            let verdict = verify_on(servers[i % 2], &key).await;
            if verdict.valid {
                allowed += 1;
            } else {
                assert_eq!(
                    verdict.message,
                    "Rate limit exceeded: 2 requests per second"
                );
            }
        }
        assert_eq!(allowed, 2);
        // Had the refused ones counted, the minute would be spent; 3 more fit.
        for i in 0..3 {
            app.clock.advance(TimeDelta::seconds(1));
            assert!(verify_on(servers[i % 2], &key).await.valid);
        }
        app.clock.advance(TimeDelta::seconds(1));
        let refused = verify_on(&second.client, &key).await;
        assert_eq!(
            refused.message,
            "Rate limit exceeded: 5 requests per minute"
        );
        // The minute refuses longest (56 s), so it is the one reported.
        assert_eq!(refused.retry_after.unwrap().seconds, 56);
        second.stop().await;
    }
}

#[tokio::test]
async fn counters_in_redis_expire_shortly_after_their_window() {
    let url = shared_redis_url();
    let backend = &backends()[0];
    let app =
        spawn_app_configured(backend, |setup| setup.parts.limiter = limiter(&url).into()).await;
    let created = app
        .client
        .clone()
        .create_key(crate::helpers::authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: "expiring".into(),
                scopes: vec!["chat".into()],
                rate_limits: vec![
                    limit(5, v1::RatePeriod::Minute),
                    limit(100, v1::RatePeriod::Hour),
                ],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(verify_on(&app.client, &created.key).await.valid);

    let id = created.api_key.unwrap().id;
    let now = app.clock_now().timestamp();
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (period, seconds) in [("minute", 60), ("hour", 3600)] {
        let name = format!("keyrack:rl:{{{id}}}:{period}:{}", now - now % seconds);
        let count: Option<u32> = redis.get(&name).await.unwrap();
        assert_eq!(count, Some(1), "{name}");
        let ttl: i64 = redis.pttl(&name).await.unwrap();
        assert!(
            ttl > 0 && ttl <= (seconds + 5) * 1000,
            "{name} expires in {ttl} ms"
        );
    }
}

/// A `redis-server` of the test's own on `port`, answering PING, persisting nothing.
async fn start_redis(port: u16) -> ChildGuard {
    start_redis_with_password(port, "").await
}

/// `start_redis`, requiring `password` unless it is empty.
async fn start_redis_with_password(port: u16, password: &str) -> ChildGuard {
    let mut command = Command::new(on_path("redis-server"));
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null());
    if !password.is_empty() {
        command.args(["--requirepass", password]);
    }
    let server = ChildGuard::spawn(command, "redis-server");
    let url = if password.is_empty() {
        format!("redis://127.0.0.1:{port}")
    } else {
        format!("redis://:{password}@127.0.0.1:{port}")
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let client = redis::Client::open(url.as_str()).unwrap();
        if let Ok(mut connection) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .is_ok()
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn when_redis_stops_limits_are_local_and_when_it_returns_global_again() {
    for backend in backends() {
        let port = free_port();
        let mut redis = start_redis(port).await;
        let url = format!("redis://127.0.0.1:{port}");
        let (app, second) = two_replicas(&backend, &url).await;
        app.clock.advance(TimeDelta::seconds(10));
        let key = create_limited(&app, "fallback", vec![limit(3, v1::RatePeriod::Minute)]).await;

        // Through Redis: 3 in total across both servers.
        assert!(verify_on(&app.client, &key).await.valid);
        assert!(verify_on(&second.client, &key).await.valid);
        assert!(verify_on(&app.client, &key).await.valid);
        assert!(!verify_on(&second.client, &key).await.valid);
        assert!(remote_up(&app.keyrack));

        // Redis stops. VerifyKey still answers, on each server's own limits: 3 each.
        redis.kill();
        for (client, keyrack) in [
            (&app.client, &app.keyrack),
            (&second.client, &second.keyrack),
        ] {
            for _ in 0..3 {
                let verdict = verify_on(client, &key).await;
                assert!(verdict.valid, "{verdict:?}");
            }
            let refused = verify_on(client, &key).await;
            assert_eq!(
                refused.message,
                "Rate limit exceeded: 3 requests per minute"
            );
            assert!(keyrack.metrics.limiter_fallbacks() >= 4);
            assert!(!remote_up(keyrack));
            let text = keyrack.metrics.render();
            let fallbacks = sample(&text, "keyrack_rate_limiter_fallbacks_total");
            assert!(
                fallbacks.is_some_and(|value| value.parse::<u64>().unwrap() >= 4),
                "{text}"
            );
        }

        // Redis returns (empty). Each server goes back to it within a few retry intervals.
        let _redis = start_redis(port).await;
        let other = create_limited(&app, "probe", vec![limit(1000, v1::RatePeriod::Hour)]).await;
        for (client, keyrack) in [
            (&app.client, &app.keyrack),
            (&second.client, &second.keyrack),
        ] {
            let deadline = Instant::now() + TIMEOUT;
            while !remote_up(keyrack) {
                assert!(
                    Instant::now() < deadline,
                    "the limiter never returned to Redis"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert!(verify_on(client, &other).await.valid);
            }
        }

        // The next minute is global again: 3 in total across both servers.
        app.clock.advance(TimeDelta::minutes(1));
        let fallbacks = app.keyrack.metrics.limiter_fallbacks();
        assert!(verify_on(&second.client, &key).await.valid);
        assert!(verify_on(&app.client, &key).await.valid);
        assert!(verify_on(&second.client, &key).await.valid);
        assert!(!verify_on(&app.client, &key).await.valid);
        assert_eq!(app.keyrack.metrics.limiter_fallbacks(), fallbacks);
        second.stop().await;
    }
}

/// `keyrack serve` with Redis unreachable: it starts anyway, on local limits, logs why, and its
/// metrics endpoint reports the shared limiter down. Once Redis starts, verifications bring the
/// limiter back to it, which the log and the metrics say too.
#[tokio::test]
async fn serve_starts_without_redis_and_moves_to_it_once_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nothing listens there yet; the password must not reach the log.
    let redis_url = format!("redis://:hunter2-secret@127.0.0.1:{port}");
    let (mut served, grpc, metrics, _) =
        serve_with_metrics(dir.path(), &["--redis-url", &redis_url]).await;

    let scrape = scrape_metrics(&metrics).await;
    assert_eq!(
        sample(&scrape, "keyrack_rate_limiter_remote_up").as_deref(),
        Some("0"),
        "{scrape}"
    );
    assert!(scrape.contains("# EOF"), "{scrape}");
    let stderr = served.stderr();
    assert!(
        stderr.contains("Redis rate limiter unreachable: falling back to local rate limits"),
        "{stderr}"
    );

    // Redis starts. Verifications of a limited key are answered throughout, and one of them
    // finds Redis again within the retry interval (a second).
    let mut redis = start_redis_with_password(port, "hunter2-secret").await;
    let admin = crate::process::bootstrap_key(dir.path());
    let mut client = KeyServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let key = client
        .create_key(crate::helpers::authed(
            &admin,
            v1::CreateKeyRequest {
                name: "limited".into(),
                scopes: vec!["chat".into()],
                rate_limits: vec![limit(1_000_000, v1::RatePeriod::Hour)],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key;
    let deadline = Instant::now() + TIMEOUT;
    while !served
        .stderr()
        .contains("Redis rate limiter reachable again")
    {
        assert!(Instant::now() < deadline, "{}", served.stderr());
        assert!(verify_on(&client, &key).await.valid);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scrape = scrape_metrics(&metrics).await;
    assert_eq!(
        sample(&scrape, "keyrack_rate_limiter_remote_up").as_deref(),
        Some("1"),
        "{scrape}"
    );
    let fallbacks = sample(&scrape, "keyrack_rate_limiter_fallbacks_total").unwrap();
    assert!(fallbacks.parse::<u64>().unwrap() >= 1, "{scrape}");

    assert!(
        !served.stderr().contains("hunter2"),
        "the password is logged"
    );
    let status = served.terminate(TIMEOUT);
    assert!(status.success(), "{status}:\n{}", served.stderr());
    redis.kill();
}

/// The address in a `… <what> address=…` log line, if `line` is that line.
pub(crate) fn logged_address(line: &str, what: &str) -> Option<String> {
    let after = &line[line.find(what)? + what.len()..];
    let value = &after[after.find("address=")? + "address=".len()..];
    Some(value.split_whitespace().next()?.to_owned())
}

/// A `keyrack serve` on `data_dir` with gRPC and metrics on free loopback ports and `args`
/// added, once both listen: the process, its gRPC and metrics addresses, and its stderr then.
pub(crate) async fn serve_with_metrics(
    data_dir: &Path,
    args: &[&str],
) -> (LoggedChild, String, String, String) {
    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir);
    let mut served = LoggedChild::spawn(command, "serve");
    let grpc = served.wait_for_line("gRPC server listening", TIMEOUT, |line| {
        logged_address(line, "gRPC server listening")
    });
    let stderr = wait_for_log(&served, "metrics listening").await;
    let metrics = stderr
        .lines()
        .find_map(|line| logged_address(line, "metrics listening"))
        .unwrap();
    (served, grpc, metrics, stderr)
}

/// `served`'s stderr once it contains `text`.
pub(crate) async fn wait_for_log(served: &LoggedChild, text: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stderr = served.stderr();
        if stderr.contains(text) {
            return stderr;
        }
        assert!(Instant::now() < deadline, "no {text:?} in:\n{stderr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /metrics` at `address`, checked for its status and content type.
pub(crate) async fn scrape_metrics(address: &str) -> String {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    response.text().await.unwrap()
}
