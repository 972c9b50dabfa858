#!/usr/bin/env bash
# Keyrack at a million keys (issue 6's scale runs), with key-scale (crates/key-scale):
#   1. seeds COUNT organization keys (scope chat) into a fresh SQLite data directory, with a
#      pepper file the server then uses; the plaintexts go to a keys file there;
#   2. fill: verifies every key in process, so the key cache holds them all, and prints the
#      memory (VmRSS) before and after and the time taken;
#   3. cold: verifies 20,000 keys drawn at random, each once (key cache misses: one store read
#      each), one at a time, then again (cache hits), and prints the latency percentiles;
#   4. starts `keyrack serve` on that data directory, times its start until Health/Check
#      answers SERVING, verifies every key over gRPC and reads the server's VmRSS;
#   5. with SCALE_DATABASE_URL set (a PostgreSQL database, emptied first), seeds it and runs
#      cold on it too.
# Data lives under SCALE_DIR (default /tmp/keyrack-scale), outside the repository; the keys
# file holds throwaway benchmark keys and is deleted at the end unless SCALE_KEEP=1.
# Usage: bench/scale.sh [COUNT]   (default 1000000; SCALE_SKIP_FILL=1 skips step 2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
count=${1:-1000000}
samples=${SCALE_SAMPLES:-20000}
dir=${SCALE_DIR:-/tmp/keyrack-scale}
port=${SCALE_GRPC_PORT:-50061}

# SCALE_SKIP_BUILD=1 reuses binaries already built (in CARGO_TARGET_DIR, or target).
[ "${SCALE_SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p keyrack -p key-scale
bin="${CARGO_TARGET_DIR:-target}/release"
mkdir -p bench/results

data="$dir/sqlite"
rm -rf "$data"
mkdir -p "$data"
chmod 700 "$dir" "$data"
# The same pepper for the seeding and the server: 32 random bytes, hex, as keyrack generates it.
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data/pepper")
sqlite_url="sqlite://$data/keyrack.db?mode=rwc"
keys="$data/keys.txt"

pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  [ "${SCALE_KEEP:-0}" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(uptime)"
echo "== SQLite: seed $count keys"
"$bin/key-scale" seed --database-url "$sqlite_url" --pepper-file "$data/pepper" \
  --count "$count" --keys-out "$keys"
echo "database file: $(du -h "$data/keyrack.db" | cut -f1)"
# SCALE_SKIP_FILL=1 skips the in-process fill (the server run below measures memory too).
if [ "${SCALE_SKIP_FILL:-0}" != 1 ]; then
  echo "== SQLite: fill the key cache with every key (in process)"
  "$bin/key-scale" fill --database-url "$sqlite_url" --pepper-file "$data/pepper" \
    --keys-file "$keys" --json bench/results/scale-fill-sqlite.json
fi
echo "== SQLite: cold misses, then cache hits (in process); $(uptime)"
"$bin/key-scale" cold --database-url "$sqlite_url" --pepper-file "$data/pepper" \
  --keys-file "$keys" --samples "$samples" --json bench/results/scale-cold-sqlite.json

echo "== SQLite: keyrack serve on the seeded data directory"
# Metering off: the figure sought is the key cache's memory, not a million keys' usage rows
# being flushed meanwhile. A long cache TTL keeps every touched key cached until read.
started=$(date +%s%N)
"$bin/keyrack" serve --listen "127.0.0.1:$port" --http-listen off --metrics-listen off \
  --data-dir "$data" --metering off --key-cache-ttl 24h --log warn 2>"$dir/serve.stderr" &
pid=$!
"$bin/key-scale" health --addr "127.0.0.1:$port" --timeout 120s >/dev/null
echo "start to SERVING: $(( ($(date +%s%N) - started) / 1000000 )) ms"
grep -E '^Vm(RSS|HWM)' "/proc/$pid/status" | tr -s ' \t' ' ' | paste -sd ';' | sed 's/^/server at start: /'
"$bin/key-scale" touch --addr "127.0.0.1:$port" --keys-file "$keys" --pid "$pid"
kill "$pid"
wait "$pid" || true
pid=

if [ -n "${SCALE_DATABASE_URL:-}" ]; then
  echo "== PostgreSQL: seed $count keys (the database is emptied first)"
  psql -q "$SCALE_DATABASE_URL" -c 'drop schema public cascade; create schema public;'
  pg_keys="$dir/pg-keys.txt"
  "$bin/key-scale" seed --database-url "$SCALE_DATABASE_URL" --pepper-file "$data/pepper" \
    --count "$count" --keys-out "$pg_keys"
  echo "== PostgreSQL: cold misses, then cache hits (in process); $(uptime)"
  "$bin/key-scale" cold --database-url "$SCALE_DATABASE_URL" --pepper-file "$data/pepper" \
    --keys-file "$pg_keys" --samples "$samples" --json bench/results/scale-cold-postgres.json
fi
