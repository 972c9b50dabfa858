//! `Verifier::verify` in `Mode::Request`, the whole VerifyKey decision in process (no gRPC), on a
//! SQLite store in a temporary directory, with metering and the default limiter as deployed:
//! the same valid key again and again (served from the key cache once there is one), unknown
//! well-formed keys, each new (a cold miss: one indexed read), and a malformed key (no lookup).
//! `cargo bench -p key-service` measures them; `cargo test -p key-service --benches` runs each once
//! (as CI does), to keep them compiling and working.

// Benchmark setup: a failed unwrap is a broken benchmark, with the reason in the message.
#![allow(clippy::unwrap_used)]

use std::{hint::black_box, net::IpAddr, path::Path, sync::Arc};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use key_core::{ApiKey, Environment, KeyName, KeyType, Pepper, RateLimits, Scope, SystemClock};
use key_service::{
    Actor, Application, Mode, NewKeyRequest, Parts, Settings, Verifier, VerifyContext,
    verify::Country,
};
use key_store::Store;
use ring::rand::SystemRandom;

fn verify_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (verifier, key) = runtime.block_on(verifier_with_chat_key(dir.path()));
    let required = [Scope::parse("chat").unwrap()];
    let context = VerifyContext {
        client_ip: Some(IpAddr::from([203, 0, 113, 7])),
        peer: None,
        country: Country::parse("DE"),
        tag: Some(Arc::from("POST /api/chat")),
        cost: 1,
    };
    // Unknown keys come without a client address: from one address, the brute-force guard
    // would block them after 100 failures, before any lookup, and measure itself instead.
    let anonymous = VerifyContext {
        client_ip: None,
        ..context.clone()
    };
    let valid = runtime.block_on(verifier.verify(key.expose(), &required, &context, Mode::Request));
    assert!(
        valid.unwrap().error().is_none(),
        "the benchmark key must verify"
    );

    let mut group = c.benchmark_group("Verifier::verify");
    group.bench_function("valid key, repeated (cache hit)", |b| {
        b.to_async(&runtime)
            .iter(|| verifier.verify(black_box(key.expose()), &required, &context, Mode::Request))
    });
    group.bench_function("unknown key on SQLite (cache miss)", |b| {
        let rng = SystemRandom::new();
        b.to_async(&runtime).iter_batched(
            || ApiKey::generate(Environment::Live, &rng).unwrap(),
            |unknown| {
                let (verifier, required, anonymous) = (&verifier, &required, &anonymous);
                async move {
                    verifier
                        .verify(unknown.expose(), required, anonymous, Mode::Request)
                        .await
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("malformed key", |b| {
        b.to_async(&runtime).iter(|| {
            verifier.verify(
                black_box("sk_live_short"),
                &required,
                &anonymous,
                Mode::Request,
            )
        })
    });
    group.finish();
}

/// A verifier on a fresh SQLite file in `dir`, with organization `default` and a `chat` key,
/// as `keyrack serve` builds it by default.
async fn verifier_with_chat_key(dir: &Path) -> (Verifier, ApiKey) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("keyrack.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let pepper = Pepper::new(b"benchmark-pepper-0123456789abcdef-0123456789").unwrap();
    let parts = Parts::new(
        store,
        pepper,
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
    );
    let app = Application::build(parts, &Settings::default());
    let (admin, _) = app.keys.bootstrap("default").await.unwrap().unwrap();
    let request = NewKeyRequest {
        name: KeyName::parse("bench").unwrap(),
        scopes: [Scope::parse("chat").unwrap()].into_iter().collect(),
        expires_at: None,
        environment: Environment::Live,
        key_type: KeyType::Organization,
        member_id: None,
        operator: false,
        rate_limits: RateLimits::NONE,
        metadata: None,
        ip_allowlist: key_core::IpAllowlist::EMPTY,
        credits: None,
    };
    let (_, key) = app
        .keys
        .issue(admin.organization_id, request, &Actor::Operator)
        .await
        .unwrap();
    (app.verifier, key)
}

criterion_group!(benches, verify_request);
criterion_main!(benches);
