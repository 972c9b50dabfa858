#!/usr/bin/env bash
# What a refused call costs the server, against an answered one: starts `keyrack serve`
# (release, fresh SQLite, loopback, the default log filter `info`, so admitted calls write their
# access-log line as deployed) with --max-in-flight 1, and drives VerifyKey closed loop with far
# more workers than that (64 over 16 HTTP/2 connections), so nearly every call is refused with
# RESOURCE_EXHAUSTED `overloaded`; then the same against a server with the default bound, where
# every call is answered. key-bench --server-pid reads the server's CPU time around each phase:
# the first run's VerifyKey figure is the price of a refusal, the second's of an answer.
# At twice the capacity the CPU is shared between refusals and answers, so a refusal must cost
# well under half an answer for answers to keep their pace (BENCHMARKS.md, "Twice the capacity").
# BIN=path runs that keyrack binary instead of the release build (to compare two builds).
# Usage: [BIN=path] bench/shed-cost.sh [SECONDS] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
rounds=${2:-3}

cargo build --release -q -p keyrack -p key-bench
bin="${CARGO_TARGET_DIR:-target}/release"
keyrack=${BIN:-$bin/keyrack}
. bench/serve.sh

data=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for bound in 1 1024; do
  mkdir -p "$data/$bound"
  start_serve "$keyrack" "$data/$bound" info KEYRACK_MAX_IN_FLIGHT="$bound"
  key=$(create_key)
  echo
  echo "--max-in-flight $bound:"
  # Exit status 2 (calls that failed) is the point of the first run.
  KEYRACK_BENCH_KEY=$key "$bin/key-bench" --addr "http://$grpc" --mode closed --concurrency 64 \
    --connections 16 --duration "${seconds}s" --rounds "$rounds" --server-pid "$pid" \
    | grep -v '^first error' || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
done
