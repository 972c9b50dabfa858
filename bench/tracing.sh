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
# round's VerifyKey calls per second and the server's CPU time per call (user + system, from
# /proc/PID/stat, over every call of the run: VerifyKey and key-bench's Health/Check rounds),
# then each configuration's median and spread. CPU per call is the steadier figure: it does not
# depend on how much of the two cores the client takes.
# Usage: [BASELINE=path/to/keyrack] bench/tracing.sh [SECONDS] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
rounds=${2:-3}

. bench/serve.sh
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
  local config=$1 keyrack="$bin/keyrack" log=info env=()
  case $config in
    baseline) keyrack=$BASELINE ;;
    off-quiet) log=info,keyrack::access=off ;;
    sampled-1) env=(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
    sampled-100) env=(OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint") ;;
  esac
  local data="$work/$config"
  rm -rf "$data" && mkdir -p "$data"
  # The other configurations' variables are cleared, and any the caller's shell exports.
  start_serve "$keyrack" "$data" "$log" -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_TRACES_SAMPLER \
    -u OTEL_TRACES_SAMPLER_ARG "${env[@]}"
  local key before after
  key=$(create_key)
  # utime + stime, in clock ticks (fields 14 and 15 of /proc/PID/stat).
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  KEYRACK_BENCH_KEY=$key "$bin/key-bench" --addr "http://$grpc" --mode closed --concurrency 16 \
    --connections 4 --duration "${seconds}s" --rounds 1 --json "$data/bench.json" >/dev/null
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c '
import json, os, sys
rows = json.load(open(sys.argv[1]))["rows"]
verify = next(r for r in rows if r["name"] == "keyrack.v1.KeyService/VerifyKey")
calls = sum(r["requests"] for r in rows)
ticks = int(sys.argv[3]) - int(sys.argv[2])
cpu_us = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / calls
print(int(verify["throughput"]), f"{cpu_us:.1f}")' "$data/bench.json" "$before" "$after"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
declare -A results cpus
for round in $(seq 1 "$rounds"); do
  for config in "${configs[@]}"; do
    read -r rate cpu < <(run "$config")
    results[$config]="${results[$config]:-} $rate"
    cpus[$config]="${cpus[$config]:-} $cpu"
    echo "round $round  $config  $rate VerifyKey/s  $cpu µs server CPU per call"
  done
done
echo
for config in "${configs[@]}"; do
  python3 -c '
import statistics, sys
rates = [int(r) for r in sys.argv[2].split()]
cpus = [float(c) for c in sys.argv[3].split()]
print(f"{sys.argv[1]:12} VerifyKey/s median {statistics.median(rates):>6.0f} ({min(rates)}–{max(rates)}),"
      f"  server CPU per call median {statistics.median(cpus):.1f} µs ({min(cpus)}–{max(cpus)})")' \
    "$config" "${results[$config]}" "${cpus[$config]}"
done
