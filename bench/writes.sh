#!/usr/bin/env bash
# Measures what an acknowledged write costs: CreateKey and RevokeKey through the REST gateway,
# one at a time (each waits for its commit), on a fresh embedded SQLite. Builds keyrack in
# release mode, starts it on loopback ports, runs N creates then N revokes with Python's
# requests (tools/venv, from tools/install) on one connection, and prints p50/p90/p99 of each.
# Usage: bench/writes.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-500}

. bench/serve.sh
serve_fresh "${KEYRACK_BIN:-}"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(df -h "$data" | awk 'NR==2 {print $1}')"
KEYRACK_URL="http://$http" KEYRACK_KEY="$admin" N="$n" tools/venv/bin/python - <<'PY'
import os, statistics, time
import requests

url, key, n = os.environ["KEYRACK_URL"], os.environ["KEYRACK_KEY"], int(os.environ["N"])
session = requests.Session()
session.headers["Authorization"] = f"Bearer {key}"

def timed(call):
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed * 1e3, response

def report(name, samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"{name:<10} n={len(samples)}  p50 {pick(0.5):6.2f} ms  p90 {pick(0.9):6.2f} ms  "
          f"p99 {pick(0.99):6.2f} ms  mean {statistics.mean(samples):6.2f} ms")

creates, ids = [], []
for i in range(n):
    elapsed, response = timed(lambda: session.post(f"{url}/api/api-keys",
                                                   json={"name": f"w{i}", "scopes": ["chat"]}))
    creates.append(elapsed)
    ids.append(response.json()["id"])
revokes = [timed(lambda: session.delete(f"{url}/api/api-keys/{id}"))[0] for id in ids]
report("CreateKey", creates)
report("RevokeKey", revokes)
PY
