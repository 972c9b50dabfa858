#!/usr/bin/env bash
# Soak: a steady load on a release `keyrack serve` for a long time, watching its memory and open
# files. Builds keyrack in release mode, starts it on a fresh SQLite data directory on loopback
# ports (metrics off), and drives its REST gateway with Python's standard library for SECONDS:
# RATE forward-auth verifications a second (`GET /api/auth/verify?scope=chat`), and every second
# a key created, verified, and the oldest of five revoked and verified refused; the connection is
# replaced every 10 s (a connection the server failed to close would add up). VmRSS and the open
# files (/proc/<pid>/fd) are sampled every SAMPLE seconds and printed.
#
# It fails (exit 1) if a request failed or answered wrongly, or if, after the first WARMUP
# seconds, RSS rose more than RSS_BOUND_MIB above its figure at the end of the warm-up or the
# open files more than FD_SLACK above theirs.
# Usage: bench/soak.sh [SECONDS] [RATE] [SAMPLE]
# Environment: WARMUP (default 60), RSS_BOUND_MIB (default 16), FD_SLACK (default 8).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-600}
rate=${2:-200}
sample=${3:-30}

. bench/serve.sh
serve_fresh "${KEYRACK_BIN:-}"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "soak: ${seconds} s, ${rate} verifications/s, 1 create + 1 revoke/s, samples every ${sample} s"
KEYRACK_HTTP="$http" KEYRACK_KEY="$admin" PID="$pid" SECONDS_="$seconds" RATE="$rate" \
  SAMPLE="$sample" WARMUP="${WARMUP:-60}" RSS_BOUND_MIB="${RSS_BOUND_MIB:-16}" \
  FD_SLACK="${FD_SLACK:-8}" python3 - <<'PY'
import http.client, json, os, sys, time

host, port = os.environ["KEYRACK_HTTP"].rsplit(":", 1)
admin, pid = os.environ["KEYRACK_KEY"], os.environ["PID"]
duration, rate, every = float(os.environ["SECONDS_"]), float(os.environ["RATE"]), float(os.environ["SAMPLE"])
warmup, rss_bound, fd_slack = float(os.environ["WARMUP"]), int(os.environ["RSS_BOUND_MIB"]), int(os.environ["FD_SLACK"])

def resources():
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))

class Client:
    def __init__(self):
        self.connection = http.client.HTTPConnection(host, int(port), timeout=10)
        self.opened = time.monotonic()

    def call(self, method, path, key, body=None):
        headers = {"Authorization": f"Bearer {key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

def expect(status, wanted, what, body):
    if status != wanted:
        sys.exit(f"soak: {what} answered {status}, expected {wanted}: {body[:200]!r}")

client = Client()
status, body = client.call("POST", "/api/api-keys", admin, {"name": "soak", "scopes": ["chat"]})
expect(status, 201, "create", body)
key = json.loads(body)["key"]

samples, alive = [], []
verified = writes = 0
start = time.monotonic()
next_sample, next_write = start, start + 1
print(f"{'t (s)':>6} {'RSS (KiB)':>10} {'fds':>5} {'verified':>9}")
while (now := time.monotonic()) - start < duration:
    if now >= next_sample:
        rss, fds = resources()
        samples.append((now - start, rss, fds))
        print(f"{now - start:6.0f} {rss:10d} {fds:5d} {verified:9d}", flush=True)
        next_sample += every
    if now - client.opened >= 10:
        client.connection.close()
        client = Client()
    if now >= next_write:
        status, body = client.call("POST", "/api/api-keys", admin, {"name": f"soak {writes}", "scopes": ["chat"]})
        expect(status, 201, "create", body)
        created = json.loads(body)
        status, body = client.call("GET", "/api/auth/verify?scope=chat", created["key"])
        expect(status, 200, "verify of a new key", body)
        alive.append(created)
        if len(alive) > 5:
            oldest = alive.pop(0)
            status, body = client.call("DELETE", f"/api/api-keys/{oldest['id']}", admin)
            expect(status, 200, "revoke", body)
            status, body = client.call("GET", "/api/auth/verify?scope=chat", oldest["key"])
            expect(status, 401, "verify of a revoked key", body)
        writes += 1
        next_write += 1
    status, body = client.call("GET", "/api/auth/verify?scope=chat", key)
    expect(status, 200, "verify", body)
    verified += 1
    # Paced: the n-th verification is due n/rate seconds after the start; a late one is not
    # made up for with a burst.
    due = start + verified / rate
    if due > time.monotonic():
        time.sleep(due - time.monotonic())

elapsed = time.monotonic() - start
rss, fds = resources()
samples.append((elapsed, rss, fds))
print(f"{elapsed:6.0f} {rss:10d} {fds:5d} {verified:9d}")
first = samples[0]
warm = next(s for s in samples if s[0] >= warmup) if elapsed > warmup else first
after = [s for s in samples if s[0] >= warm[0]]
peak_rss, peak_fds = max(s[1] for s in after), max(s[2] for s in after)
print(f"verified {verified} in {elapsed:.0f} s ({verified / elapsed:.0f}/s), {writes} keys created, "
      f"{max(0, writes - 5)} revoked")
print(f"start: RSS {first[1] / 1024:.1f} MiB, {first[2]} open files")
print(f"after {warm[0]:.0f} s of warm-up: RSS {warm[1] / 1024:.1f} MiB, {warm[2]} open files")
print(f"end: RSS {rss / 1024:.1f} MiB, {fds} open files; peak after warm-up: "
      f"RSS {peak_rss / 1024:.1f} MiB, {peak_fds} open files")
failed = False
if peak_rss > warm[1] + rss_bound * 1024:
    print(f"FAIL: RSS grew {(peak_rss - warm[1]) / 1024:.1f} MiB after the warm-up (bound {rss_bound} MiB)")
    failed = True
if peak_fds > warm[2] + fd_slack:
    print(f"FAIL: open files grew by {peak_fds - warm[2]} after the warm-up (bound {fd_slack})")
    failed = True
print("FAIL" if failed else "OK: memory and open files stayed within their bounds")
sys.exit(1 if failed else 0)
PY
