# Sourced by the bench scripts that drive one `keyrack serve` through its REST gateway:
# `serve_fresh BIN` starts BIN (the release build when empty, built first) on a fresh embedded
# SQLite in a temporary data directory, gRPC and gateway on ephemeral ports, metrics off, and
# sets `data` (the directory), `pid`, `http` (the gateway's host:port) and `admin` (the
# bootstrap key, read from its file). An EXIT trap stops the server and removes the directory.
# Python's requests come from tools/venv (tools/install).

serve_fresh() {
  local bin=$1
  if [ -z "$bin" ]; then
    cargo build --release -q -p keyrack
    bin="${CARGO_TARGET_DIR:-target}/release/keyrack"
  fi
  [ -x tools/venv/bin/python ] || tools/install >/dev/null
  data=$(mktemp -d)
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
  "$bin" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --metrics-listen off --data-dir "$data" --log warn,key_gateway=info,key_grpc=info \
    2>"$data/stderr" &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q "HTTP gateway listening" "$data/stderr" 2>/dev/null && break
    sleep 0.1
  done
  http=$(grep -o 'HTTP gateway listening address=[0-9.:]*' "$data/stderr" | sed 's/.*address=//')
  # Builds before the bootstrap key file printed the key on stderr instead.
  admin=$(cat "$data/bootstrap-admin-key" 2>/dev/null \
    || grep -o 'sk_live_[A-Za-z0-9]*' "$data/stderr" | head -n 1)
}
