#!/usr/bin/env bash
# What happens at twice the capacity: builds keyrack and key-bench in release mode, starts
# `keyrack serve` on a fresh SQLite data directory (loopback, metrics off), pinned to core 0
# while key-bench runs on core 1, with
# --max-in-flight MAX (default: the server's default), creates a chat key, measures the
# VerifyKey maximum with a closed loop, then offers twice that rate open loop for SECONDS
# (default 30) on CONNECTIONS HTTP/2 connections (default 16: a connection carries at most 256
# calls at once, so fewer could not reach the bound). Prints admitted throughput, shed calls
# (key-bench's errors: RESOURCE_EXHAUSTED `overloaded`), the admitted calls' latency, and the
# server's peak RSS (VmHWM). Figures also go to bench/results/overload-*.json.
# BIN=path runs that keyrack binary instead of the release build (to compare two builds).
# Usage: [QUOTA=5000] [BIN=path] bench/overload.sh [SECONDS] [MAX] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-30}
max=${2:-}
connections=${3:-16}

cargo build --release -q -p keyrack -p key-bench
mkdir -p bench/results
bin="${CARGO_TARGET_DIR:-target}/release"
keyrack=${BIN:-$bin/keyrack}

data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
. bench/serve.sh
vars=()
if [ -n "$max" ]; then
  vars+=(KEYRACK_MAX_IN_FLIGHT="$max")
fi
# start_serve, with the metrics endpoint on: the server's own latency histogram tells how
# long admitted calls took inside it, apart from the generator's queue.
metrics_listen=127.0.0.1:0
# The server on core 0, key-bench on core 1: the generator cannot take the server's CPU, so the
# load the server sees is the load offered. Started under taskset, so its runtime sizes itself
# to that one core (one worker thread).
serve_prefix="taskset -c 0"
start_serve "$keyrack" "$data" warn,key_gateway=info,key_grpc=info,keyrack=info \
  ${vars[@]+"${vars[@]}"}
# QUOTA (µs of CPU per 10 ms, e.g. 5000 for half a core): the server also gets a CFS quota
# (cgroup v1, as root), so the generator's core can offer twice what the server can do.
if [ -n "${QUOTA:-}" ]; then
  group=/sys/fs/cgroup/cpu/keyrack-bench
  mkdir -p "$group"
  echo 10000 >"$group/cpu.cfs_period_us"
  echo "$QUOTA" >"$group/cpu.cfs_quota_us"
  for task in /proc/"$pid"/task/*; do basename "$task" >"$group/tasks"; done
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; rmdir "$group" 2>/dev/null || true' EXIT
fi
bench=(taskset -c 1 "$bin/key-bench")
KEYRACK_BENCH_KEY=$(create_key)
export KEYRACK_BENCH_KEY

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); --max-in-flight ${max:-default}"
"${bench[@]}" --addr "http://$grpc" --mode closed --concurrency 64 --connections "$connections" \
  --duration 5s --rounds 1 --json bench/results/overload-closed.json
rate=$(python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
verify = next(row for row in rows if row["name"] == "keyrack.v1.KeyService/VerifyKey")
print(int(verify["throughput"] * 2))' bench/results/overload-closed.json)
echo
echo "open loop at $rate/s (2x the closed-loop maximum) for ${seconds}s:"
"${bench[@]}" --addr "http://$grpc" --mode open --rate "$rate" --connections "$connections" \
  --duration "${seconds}s" --rounds 1 --json bench/results/overload-open.json || true
python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
verify = next(row for row in rows if row["name"] == "keyrack.v1.KeyService/VerifyKey")
seconds = verify["seconds"]
print("VerifyKey: admitted %.0f/s, shed %.0f/s (%.1f %% of offered), admitted p50 %.0f µs, p99 %.0f µs" % (
  verify["requests"] / seconds, verify["errors"] / seconds,
  100.0 * verify["errors"] / max(1, verify["requests"] + verify["errors"]),
  verify["p50_us"], verify["p99_us"]))' bench/results/overload-open.json
metrics=$(grep -o 'metrics listening address=[0-9.:]*' "$data/stderr" | sed 's/.*address=//')
curl -sf "http://$metrics/metrics" | python3 -c '
import re, sys
buckets = {}
for line in sys.stdin:
    m = re.match(r"keyrack_rpc_server_duration_seconds_bucket\{(.*)\} (\S+)", line)
    if not m or "rpc_method=\"VerifyKey\"" not in m.group(1):
        continue
    status = re.search(r"rpc_grpc_status_code=\"(\d+)\"", m.group(1)).group(1)
    le = re.search(r"le=\"([^\"]+)\"", m.group(1)).group(1)
    buckets.setdefault(status, []).append((float("inf") if le == "+Inf" else float(le), float(m.group(2))))
for status, rows in sorted(buckets.items()):
    rows.sort()
    total = rows[-1][1]
    def q(p):
        return next(le for le, n in rows if n >= p * total)
    print("inside the server, VerifyKey status %s: %d calls, p50 <= %s ms, p99 <= %s ms" % (status, total, q(0.5) * 1e3, q(0.99) * 1e3))
'
echo "server peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$pid/status)"
