#!/usr/bin/env bash
# Measures VerifyKey with an OAuth access token (oat_live_…) against VerifyKey with an API key
# on the same server with key-bench --token: the same client, the same HTTP/2 connections,
# alternating rounds, with Health/Check as the baseline of both (issue 16: "within noise").
# Builds keyrack and key-bench in release mode, starts `keyrack serve` on a fresh SQLite data
# directory on loopback ports (metrics off), creates a chat key through the REST API, and
# obtains an access token for scope chat through the real endpoints, as a client and a person
# would: a member (role member) added and signed in with a sign-in link (a session), a
# confidential OAuth client registered (CreateOauthClient), the person's consent
# (DecideOauthAuthorization with the session as bearer, PKCE S256) giving a code on the redirect
# URL, and the code exchanged at the gateway's POST /oauth/token with the client's credentials as
# HTTP Basic. Then runs key-bench closed loop with --server-pid, which adds the server's own CPU
# time per call of each target.
# Figures go to stdout and, as JSON, to bench/results/oauth-closed.json.
# Usage: bench/oauth.sh [SECONDS] [ROUNDS] [CONCURRENCY] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
rounds=${2:-5}
concurrency=${3:-16}
connections=${4:-4}

cargo build --release -q -p keyrack -p key-bench
[ -x tools/venv/bin/python ] && [ -x tools/venv/bin/grpcurl ] || tools/install >/dev/null
mkdir -p bench/results
bin="${CARGO_TARGET_DIR:-target}/release"

data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
. bench/serve.sh
start_serve "$bin/keyrack" "$data" warn,key_gateway=info,key_grpc=info
KEYRACK_BENCH_KEY=$(create_key)
export KEYRACK_BENCH_KEY

# The five steps of an authorization code grant. The admin key goes in through the
# environment; the token comes back on stdout, nothing else is printed.
KEYRACK_BENCH_TOKEN=$(ADMIN_KEY="$admin" GRPC="$grpc" HTTP="$http" tools/venv/bin/python - <<'PY'
import base64, hashlib, json, os, secrets, subprocess, sys
from urllib.parse import parse_qs, urlsplit

import requests

grpc, http, admin = os.environ["GRPC"], os.environ["HTTP"], os.environ["ADMIN_KEY"]
REDIRECT = "https://bench.example.com/callback"


def call(method, bearer, message):
    """One KeyService RPC through grpcurl (server reflection), its JSON answer."""
    header = ["-H", f"authorization: Bearer {bearer}"] if bearer else []
    ran = subprocess.run(
        ["tools/venv/bin/grpcurl", "-plaintext", *header,
         "-d", json.dumps(message), grpc, f"keyrack.v1.KeyService/{method}"],
        capture_output=True, text=True)
    if ran.returncode != 0:
        sys.exit(f"{method} failed: {ran.stderr.strip()}")
    return json.loads(ran.stdout)


member = call("AddMember", admin, {"userId": "bench@example.com", "role": "ROLE_MEMBER"})["member"]["id"]
link = call("CreateSignInLink", admin, {"memberId": member})["signInToken"]
session = call("RedeemSignInLink", None, {"signInToken": link})["sessionToken"]
created = call("CreateOauthClient", admin, {
    "name": "bench", "type": "OAUTH_CLIENT_TYPE_CONFIDENTIAL",
    "redirectUris": [REDIRECT], "scopes": ["chat"]})
client_id, secret = created["client"]["id"], created["clientSecret"]

verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
state = secrets.token_urlsafe(8)
decided = call("DecideOauthAuthorization", session, {
    "request": {"responseType": "code", "clientId": client_id, "redirectUri": REDIRECT,
                "scope": "chat", "state": state, "codeChallenge": challenge,
                "codeChallengeMethod": "S256"},
    "approve": True})
query = parse_qs(urlsplit(decided["redirectUri"]).query)
if query.get("state") != [state] or "code" not in query:
    sys.exit(f"consent did not give a code: {sorted(query)}")

answer = requests.post(
    f"http://{http}/oauth/token",
    data={"grant_type": "authorization_code", "code": query["code"][0],
          "redirect_uri": REDIRECT, "code_verifier": verifier},
    auth=(client_id, secret), timeout=10)
tokens = answer.json()
if answer.status_code != 200 or tokens.get("scope") != "chat":
    sys.exit(f"POST /oauth/token answered {answer.status_code}: {tokens.get('error')}")
print(tokens["access_token"])
PY
)
export KEYRACK_BENCH_TOKEN

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/key-bench" --addr "http://$grpc" --duration "${seconds}s" --rounds "$rounds" \
  --connections "$connections" --mode closed --concurrency "$concurrency" \
  --server-pid "$pid" --json bench/results/oauth-closed.json
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
