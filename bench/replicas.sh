#!/usr/bin/env bash
# How fast a revocation reaches the other replicas on PostgreSQL: two, then three release
# builds of `keyrack serve` on one database; for each of TRIALS (default 200) keys, the others
# verify it from their caches in a loop while the first revokes it, and the time from the
# revocation's OK to each other replica's first refusal is taken. Halfway, one replica's
# notice listener is killed with pg_terminate_backend. Prints p50/p99/max per run.
# Runs tests/it/replicas.rs with more trials; needs KEYRACK_TEST_DATABASE_URL or the local
# PostgreSQL at postgres://postgres@127.0.0.1:5432/test.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${TRIALS:-200}
export KEYRACK_TEST_DATABASE_URL=${KEYRACK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
# BIN: a release build made elsewhere (another target directory); else it is built here.
bin=${BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p keyrack
  bin="$PWD/${CARGO_TARGET_DIR:-target}/release/keyrack"
fi
for replicas in 2 3; do
  KEYRACK_PROPAGATION_BIN=$bin KEYRACK_PROPAGATION_TRIALS=$trials \
    KEYRACK_PROPAGATION_REPLICAS=$replicas \
    cargo test -q --test it replicas:: -- --nocapture 2>&1 \
    | grep -E "replicas, [0-9]+ trials|listener killed|panicked|FAILED" || true
done
