#!/usr/bin/env bash
# The web console's keys list at 10,000 keys (issue 15): seeds COUNT organization keys with
# key-scale into a fresh SQLite data directory, mints an admin key with `keyrack admin-key
# create`, starts the release `keyrack serve` on it, and times Settings → API Keys over HTTP
# with bench/console-render.py (the first page, then every page in turn).
# Usage: bench/console.sh [COUNT]   (default 10000; CONSOLE_SKIP_BUILD=1 reuses the binaries)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
count=${1:-10000}
dir=${CONSOLE_BENCH_DIR:-/tmp/keyrack-console-bench}
port=${CONSOLE_HTTP_PORT:-58180}

[ "${CONSOLE_SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p keyrack -p key-scale
bin="${CARGO_TARGET_DIR:-target}/release"

rm -rf "$dir"
mkdir -p "$dir"
chmod 700 "$dir"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/pepper")
url="sqlite://$dir/keyrack.db?mode=rwc"
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(uptime)"
"$bin/key-scale" seed --database-url "$url" --pepper-file "$dir/pepper" --count "$count" \
  --keys-out "$dir/keys.txt" >/dev/null
(umask 077 && "$bin/keyrack" admin-key create --database-url "$url" --pepper-file "$dir/pepper" \
  2>/dev/null >"$dir/admin-key")
KEYRACK_LOG=warn "$bin/keyrack" serve --database-url "$url" --pepper-file "$dir/pepper" \
  --data-dir "$dir" --listen 127.0.0.1:0 --http-listen "127.0.0.1:$port" --metrics-listen off &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
tools/venv/bin/python bench/console-render.py "http://127.0.0.1:$port" "$dir/admin-key"
