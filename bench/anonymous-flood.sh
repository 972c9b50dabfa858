#!/usr/bin/env bash
# Measures what a flood of anonymous admin calls does to the emergency control: RevokeKey's
# latency through the REST gateway while 4 processes send N calls without a valid key (no key,
# or a made-up one) to GET /api/api-keys, against the same revocations on a quiet server.
# Builds keyrack in release mode and starts it on a fresh embedded SQLite. Uses Python's
# requests from tools/venv (tools/install). KEYRACK_BIN=path measures another build (e.g. an
# older one) instead. Usage: bench/anonymous-flood.sh [N] [REVOKES]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-50000}
revokes=${2:-100}

. bench/serve.sh
serve_fresh "${KEYRACK_BIN:-}"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
KEYRACK_URL="http://$http" KEYRACK_KEY="$admin" N="$n" REVOKES="$revokes" \
  DB="$data/keyrack.db" tools/venv/bin/python - <<'PY'
import os, sqlite3, subprocess, sys, time
import requests

url, key = os.environ["KEYRACK_URL"], os.environ["KEYRACK_KEY"]
n, revokes = int(os.environ["N"]), int(os.environ["REVOKES"])
admin = requests.Session()
admin.headers["Authorization"] = f"Bearer {key}"

def create_keys(count):
    return [admin.post(f"{url}/api/api-keys", json={"name": f"r{i}", "scopes": ["chat"]}).json()["id"]
            for i in range(count)]

def revoke_all(ids):
    samples = []
    for id in ids:
        started = time.perf_counter()
        response = admin.delete(f"{url}/api/api-keys/{id}")
        samples.append((time.perf_counter() - started) * 1e3)
        response.raise_for_status()
    return sorted(samples)

def summary(samples):
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return f"p50 {pick(0.5):6.2f} ms  p90 {pick(0.9):6.2f} ms  p99 {pick(0.99):6.2f} ms"

FLOOD = r'''
import requests, sys
url, count, index = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
session = requests.Session()
made_up = "sk_live_" + "A" * 49
for i in range(count):
    headers = {"Authorization": f"Bearer {made_up}"} if (i + index) % 2 else {}
    session.get(f"{url}/api/api-keys", headers=headers)
'''

quiet_ids, flood_ids = create_keys(revokes), create_keys(revokes)
quiet = revoke_all(quiet_ids)
started = time.perf_counter()
flooders = [subprocess.Popen([sys.executable, "-c", FLOOD, url, str(n // 4), str(i)]) for i in range(4)]
time.sleep(1)
during = revoke_all(flood_ids)
for flooder in flooders:
    flooder.wait()
elapsed = time.perf_counter() - started
rows = sqlite3.connect(os.environ["DB"]).execute(
    "SELECT COUNT(*) FROM audit_events WHERE action = 'auth.denied'").fetchone()[0]
print(f"RevokeKey, quiet:        {summary(quiet)}")
print(f"RevokeKey, during flood: {summary(during)}")
print(f"flood: {n} anonymous calls in {elapsed:.1f} s ({n / elapsed:,.0f}/s); auth.denied rows written: {rows}")
PY
