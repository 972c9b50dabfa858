//! The first steps of every verification, without I/O: rejecting a malformed key (prefix,
//! checksum), parsing a well-formed one, and the HMAC-SHA-256 digest and its constant-time
//! check. `cargo bench -p key-core` measures them; `cargo test -p key-core --benches` runs each
//! once (as CI does), to keep them compiling and working.

// Benchmark setup: a failed unwrap is a broken benchmark, with the reason in the message.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use key_core::{ApiKey, Environment, Pepper};
use ring::rand::SystemRandom;

fn parse(c: &mut Criterion) {
    let key = ApiKey::generate(Environment::Live, &SystemRandom::new()).unwrap();
    let text = key.expose().to_owned();
    // A key from another service: the prefix decides, before length or checksum are looked at.
    let bad_prefix = text.replacen("sk_live_", "pk_live_", 1);
    // One character changed in the last place: the CRC32 checksum catches it.
    let mut bad_checksum = text.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    assert!(ApiKey::parse(&bad_prefix).is_err() && ApiKey::parse(&bad_checksum).is_err());

    let mut group = c.benchmark_group("ApiKey::parse");
    group.bench_function("reject bad prefix", |b| {
        b.iter(|| ApiKey::parse(black_box(&bad_prefix)).is_err())
    });
    group.bench_function("reject bad checksum", |b| {
        b.iter(|| ApiKey::parse(black_box(&bad_checksum)).is_err())
    });
    group.bench_function("well-formed", |b| {
        b.iter(|| ApiKey::parse(black_box(&text)).is_ok())
    });
    group.finish();
}

fn digest(c: &mut Criterion) {
    let pepper = Pepper::new(b"benchmark-pepper-0123456789abcdef-0123456789").unwrap();
    let key = ApiKey::generate(Environment::Live, &SystemRandom::new()).unwrap();
    let stored = pepper.digest(&key);

    let mut group = c.benchmark_group("Pepper");
    group.bench_function("digest (HMAC-SHA-256)", |b| {
        b.iter(|| pepper.digest(black_box(&key)))
    });
    group.bench_function("matches", |b| {
        b.iter(|| pepper.matches(black_box(&key), black_box(&stored)))
    });
    group.finish();
}

criterion_group!(benches, parse, digest);
criterion_main!(benches);
