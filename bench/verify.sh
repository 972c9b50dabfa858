#!/usr/bin/env bash
# Measures gRPC VerifyKey against the Health/Check of the same server with key-bench
# (crates/key-bench): the same client, the same HTTP/2 connections, alternating rounds.
# Builds keyrack and key-bench in release mode, starts `keyrack serve` on a fresh SQLite data
# directory on loopback ports (metrics off), creates a chat key through the REST API, then runs
# key-bench twice: closed loop (maximum throughput), then open loop at half the VerifyKey
# throughput the closed loop measured. With FLOOD set (a fraction, e.g. 0.5), both runs add a
# phase where that fraction of VerifyKey requests carry random well-formed keys.
# Both runs also alternate two more VerifyKey targets: a malformed key (the valid key with a
# broken checksum, refused before any lookup) and a second chat key carrying a rate limit it never
# reaches (1,000,000 a second, checked and counted on every call).
# Both runs also report the server's own CPU time per call of each target (key-bench
# --server-pid: /proc/PID/task/*/schedstat around every phase), which does not depend on how
# much of the machine the generator takes.
# With PIN=1 the server runs on core 0 and key-bench on core 1 (taskset), so the generator is
# out of the server's way: the open loop's latencies are then the server's, not the two
# processes' contention for the same cores. The server is started under taskset, so its runtime
# sees one core and starts one worker thread (tokio sizes its pool from the CPU affinity); pinning
# it after start would leave two workers time-sharing one core.
# Figures go to stdout and, as JSON, to bench/results/verify-{closed,open}.json.
# Usage: [PIN=1] [FLOOD=0.5] bench/verify.sh [SECONDS] [ROUNDS] [CONCURRENCY] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
rounds=${2:-3}
concurrency=${3:-16}
connections=${4:-4}

cargo build --release -q -p keyrack -p key-bench
mkdir -p bench/results
bin="${CARGO_TARGET_DIR:-target}/release"

data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
. bench/serve.sh
bench=("$bin/key-bench")
if [ -n "${PIN:-}" ]; then
  serve_prefix="taskset -c 0"
  bench=(taskset -c 1 "$bin/key-bench")
fi
start_serve "$bin/keyrack" "$data" warn,key_gateway=info,key_grpc=info
KEYRACK_BENCH_KEY=$(create_key)
KEYRACK_BENCH_LIMITED_KEY=$(create_key \
  '{"name": "bench-limited", "scopes": ["chat"], "rateLimits": [{"requests": 1000000, "per": "second"}]}')
export KEYRACK_BENCH_KEY KEYRACK_BENCH_LIMITED_KEY

flood=()
if [ -n "${FLOOD:-}" ]; then
  flood=(--flood "$FLOOD")
fi
common=(--addr "http://$grpc" --duration "${seconds}s" --rounds "$rounds" --connections "$connections"
  --malformed "${flood[@]}")
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"${bench[@]}" "${common[@]}" --server-pid "$pid" --mode closed --concurrency "$concurrency" \
  --json bench/results/verify-closed.json
rate=$(python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
verify = next(row for row in rows if row["name"] == "keyrack.v1.KeyService/VerifyKey")
print(max(1, int(verify["throughput"] / 2)))' bench/results/verify-closed.json)
echo
"${bench[@]}" "${common[@]}" --server-pid "$pid" --mode open --rate "$rate" --json bench/results/verify-open.json
