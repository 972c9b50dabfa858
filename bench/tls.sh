#!/usr/bin/env bash
# Measures what TLS costs gRPC VerifyKey. Builds keyrack and key-bench in release mode, makes a
# CA and an ECDSA P-256 server certificate for 127.0.0.1 with openssl, and starts two
# `keyrack serve` on fresh SQLite data directories (loopback, metrics off): one plaintext, one
# with --tls-cert/--tls-key (MTLS=1: also --tls-client-ca, key-bench presenting a client
# certificate). Then key-bench runs against each in turn, ROUNDS times (one round of
# Health/Check and VerifyKey per call, after a 1 s warmup), so the machine's drift hits both
# alike; only one server is loaded at a time. Connections are made before the warmup: this
# measures requests on established TLS connections, not handshakes.
# Figures go to stdout and, as JSON, to bench/results/tls-{plain,tls}-ROUND.json.
# key-bench reads --tls-ca (and --tls-client-cert/--tls-client-key for MTLS).
# Usage: bench/tls.sh [SECONDS] [ROUNDS] [CONCURRENCY] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
rounds=${2:-3}
concurrency=${3:-16}
connections=${4:-4}

cargo build --release -q -p keyrack -p key-bench
mkdir -p bench/results
bin="${CARGO_TARGET_DIR:-target}/release"

plain=$(mktemp -d)
tls=$(mktemp -d)
plain_pid=
tls_pid=
trap 'kill $plain_pid $tls_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$plain" "$tls"' EXIT

# A CA and a server certificate (and, for MTLS, a client certificate), valid for a day.
certs="$tls/certs"
mkdir "$certs"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=bench-ca -keyout "$certs/ca-key.pem" \
  -out "$certs/ca.pem" 2>/dev/null
issue() {
  local name=$1 extensions=$2
  openssl req "${ec[@]}" -subj "/CN=$name" -keyout "$certs/$name-key.pem" \
    -out "$certs/$name.csr" 2>/dev/null
  openssl x509 -req -in "$certs/$name.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca-key.pem" \
    -CAcreateserial -days 1 -extfile <(printf '%b' "$extensions") -out "$certs/$name.pem" 2>/dev/null
}
issue server 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
tls_env=(KEYRACK_TLS_CERT="$certs/server.pem" KEYRACK_TLS_KEY="$certs/server-key.pem")
client_tls=()
if [ -n "${MTLS:-}" ]; then
  issue client 'extendedKeyUsage=clientAuth'
  tls_env+=(KEYRACK_TLS_CLIENT_CA="$certs/ca.pem")
  client_tls=(--tls-client-cert "$certs/client.pem" --tls-client-key "$certs/client-key.pem")
fi

. bench/serve.sh
start_serve "$bin/keyrack" "$plain" warn,key_gateway=info,key_grpc=info
plain_pid=$pid
plain_addr="http://$grpc"
plain_key=$(create_key)
start_serve "$bin/keyrack" "$tls" warn,key_gateway=info,key_grpc=info "${tls_env[@]}"
tls_pid=$pid
tls_addr="https://$grpc"
tls_key=$(create_key)

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
common=(--duration "${seconds}s" --rounds 1 --warmup 1s --connections "$connections"
  --mode closed --concurrency "$concurrency")
for round in $(seq 1 "$rounds"); do
  KEYRACK_BENCH_KEY=$plain_key "$bin/key-bench" "${common[@]}" --addr "$plain_addr" \
    --json "bench/results/tls-plain-$round.json"
  KEYRACK_BENCH_KEY=$tls_key "$bin/key-bench" "${common[@]}" --addr "$tls_addr" \
    --tls-ca "$certs/ca.pem" "${client_tls[@]}" --json "bench/results/tls-tls-$round.json"
done

python3 - "$rounds" <<'EOF'
import json, statistics, sys
rounds = int(sys.argv[1])
def rows(side, name):
    out = []
    for r in range(1, rounds + 1):
        report = json.load(open(f"bench/results/tls-{side}-{r}.json"))
        out.append(next(row for row in report["rows"] if row["name"] == name))
    return out
print()
print(f"{'target':<34} {'side':<6} {'req/s (median)':>15} {'p50 µs':>8} {'p99 µs':>8}  per round req/s")
for name in ["keyrack.v1.KeyService/VerifyKey", "grpc.health.v1.Health/Check"]:
    for side in ["plain", "tls"]:
        rs = rows(side, name)
        print(f"{name:<34} {side:<6} {statistics.median(r['throughput'] for r in rs):>15.0f} "
              f"{statistics.median(r['p50_us'] for r in rs):>8.0f} {statistics.median(r['p99_us'] for r in rs):>8.0f}  "
              + ", ".join(f"{r['throughput']:.0f}" for r in rs))
    ratios = [t["throughput"] / p["throughput"] for p, t in zip(rows("plain", name), rows("tls", name))]
    print(f"{name:<34} TLS/plaintext throughput per round: " + ", ".join(f"{x:.3f}" for x in ratios)
          + f" (median {statistics.median(ratios):.3f})")
EOF
