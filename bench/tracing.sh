#!/usr/bin/env bash
# What tracing and the access log cost VerifyKey: key-bench's closed loop (16 concurrent calls
# on 4 connections) against a fresh `keyrack serve` per configuration, the configurations
# alternating round by round so the machine's drift spreads over all of them:
#   off          no OTEL_* variable (the default): no exporter; the access log on (`--log info`)
#   off-quiet    no exporter, access log off (`info,keyrack::access=off`)
#   sampled-1    OTLP/HTTP export, parent-based 1 % sampling
#   sampled-100  OTLP/HTTP export, every call sampled
#   baseline     $BASELINE (another keyrack binary, e.g. main before tracing), `--log info`
# Export goes to bench/otlp-sink.py, which accepts and drops. Logs go to a file. Prints each
# round's VerifyKey calls per second, then each configuration's median and spread.
# Usage: [BASELINE=path/to/keyrack] bench/tracing.sh [SECONDS] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
rounds=${2:-3}

cargo build --release -q -p keyrack -p key-bench
bin="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
sink_port_file="$work/sink-port"
python3 bench/otlp-sink.py >"$sink_port_file" 2>"$work/sink.log" &
sink=$!
trap 'kill "$sink" 2>/dev/null || true; kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -s "$sink_port_file" ] && break; sleep 0.1; done
endpoint="http://127.0.0.1:$(cat "$sink_port_file")"

configs=(off off-quiet sampled-1 sampled-100)
[ -n "${BASELINE:-}" ] && configs=(baseline "${configs[@]}")

# Runs one configuration once; prints VerifyKey's calls per second.
run() {
  local config=$1 keyrack="$bin/keyrack" log=info
  local env=(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_TRACES_SAMPLER -u OTEL_TRACES_SAMPLER_ARG)
  case $config in
    baseline) keyrack=$BASELINE ;;
    off-quiet) log=info,keyrack::access=off ;;
    sampled-1) env+=(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
    sampled-100) env+=(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint") ;;
  esac
  local data="$work/$config"
  rm -rf "$data" && mkdir -p "$data"
  "${env[@]}" "$keyrack" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --metrics-listen off --data-dir "$data" --log "$log" 2>"$data/stderr" &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q "HTTP gateway listening" "$data/stderr" 2>/dev/null \
      && grep -q "gRPC server listening" "$data/stderr" && break
    sleep 0.1
  done
  local grpc http admin
  grpc=$(grep -o 'gRPC server listening address=[0-9.:]*' "$data/stderr" | sed 's/.*address=//')
  http=$(grep -o 'HTTP gateway listening address=[0-9.:]*' "$data/stderr" | sed 's/.*address=//')
  admin=$(cat "$data/bootstrap-admin-key")
  KEYRACK_BENCH_KEY=$(curl -sf -X POST "http://$http/api/api-keys" -H "Authorization: Bearer $admin" \
    -d '{"name": "bench", "scopes": ["chat"]}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])') \
    "$bin/key-bench" --addr "http://$grpc" --mode closed --concurrency 16 --connections 4 \
    --duration "${seconds}s" --rounds 1 --json "$data/bench.json" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print(int(next(r for r in rows if r["name"] == "keyrack.v1.KeyService/VerifyKey")["throughput"]))' "$data/bench.json"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
declare -A results
for round in $(seq 1 "$rounds"); do
  for config in "${configs[@]}"; do
    rate=$(run "$config")
    results[$config]="${results[$config]:-} $rate"
    echo "round $round  $config  $rate VerifyKey/s"
  done
done
echo
for config in "${configs[@]}"; do
  python3 -c '
import statistics, sys
rates = [int(r) for r in sys.argv[2].split()]
print(f"{sys.argv[1]:12} median {statistics.median(rates):>8.0f}/s  spread {min(rates)}–{max(rates)}")' "$config" "${results[$config]}"
done
