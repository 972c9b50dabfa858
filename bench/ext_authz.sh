#!/usr/bin/env bash
# Measures Envoy's ext_authz Check (envoy.service.auth.v3.Authorization/Check) against
# VerifyKey on the same server with key-bench --ext-authz: the same client, the same HTTP/2
# connections, alternating rounds (with Health/Check as the baseline of both). Builds keyrack
# and key-bench in release mode, starts `keyrack serve --ext-authz-routes` on a fresh SQLite data
# directory on loopback ports (metrics off), with one route requiring `chat` for /api/chat,
# creates a chat key through the REST API, then runs key-bench closed loop. Both RPCs verify
# the same key for the same scope through the same verifier, metered alike.
# Figures go to stdout and, as JSON, to bench/results/ext-authz-closed.json.
# Usage: bench/ext_authz.sh [SECONDS] [ROUNDS] [CONCURRENCY] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
rounds=${2:-5}
concurrency=${3:-16}
connections=${4:-4}

cargo build --release -q -p keyrack -p key-bench
mkdir -p bench/results
bin="${CARGO_TARGET_DIR:-target}/release"

data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
printf '[[route]]\npath_prefix = "/api/chat"\nscopes = ["chat"]\ntag = "chat"\n' >"$data/routes.toml"
. bench/serve.sh
start_serve "$bin/keyrack" "$data" warn,key_gateway=info,key_grpc=info \
  KEYRACK_EXT_AUTHZ_ROUTES="$data/routes.toml"
KEYRACK_BENCH_KEY=$(create_key)
export KEYRACK_BENCH_KEY

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$bin/key-bench" --addr "http://$grpc" --duration "${seconds}s" --rounds "$rounds" \
  --connections "$connections" --mode closed --concurrency "$concurrency" \
  --ext-authz /api/chat/completions --json bench/results/ext-authz-closed.json
