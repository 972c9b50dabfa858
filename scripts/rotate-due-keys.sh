#!/usr/bin/env bash
# Rotates every key of the caller's organization that is due for rotation (older than the
# maximum key age, 90 days by default), for a scheduled job such as the docs' cron line:
#
#   0 0 1 */3 * . /etc/keyrack/admin.env && /usr/local/bin/rotate-due-keys.sh keyrack:50051 86400s /var/lib/keyrack/rotated.jsonl
#
# (where /etc/keyrack/admin.env, mode 0600, exports KEYRACK_ADMIN_KEY). Each old key keeps
# working for the grace period (default 24 hours), so applications have time to switch. For
# every rotated key it writes one JSON line:
#   {"rotatedId": "<old id>", "id": "<new id>", "name": "...", "key": "sk_live_…"}
# to the file named by the third argument (appended; created readable by its owner only, and
# made so if it was not), or to stdout without one: then send stdout straight to your secret
# manager, never to a log. The admin key is passed to grpcurl through the environment, never
# on its command line, where `ps` would show it. Needs grpcurl (tools/install puts one in
# tools/venv/bin) and python3.
set -euo pipefail
address=${1:-127.0.0.1:50051}
grace=${2:-86400s}
out=${3:-}
: "${KEYRACK_ADMIN_KEY:?set KEYRACK_ADMIN_KEY to an admin key}"
export KEYRACK_ADMIN_KEY
grpcurl=${GRPCURL:-grpcurl}
# Expanded by grpcurl itself (-expand-headers): the command line holds the variable's name.
auth='authorization: Bearer ${KEYRACK_ADMIN_KEY}'
umask 077
if [ -n "$out" ]; then
  touch "$out"
  chmod 600 "$out"
  exec >>"$out"
fi

token=""
while :; do
  page=$("$grpcurl" -plaintext -expand-headers -H "$auth" \
    -d "{\"pageSize\": 100, \"pageToken\": \"$token\", \"rotationDue\": true}" \
    "$address" keyrack.v1.KeyService/ListKeys)
  ids=$(printf '%s' "$page" | python3 -c 'import json, sys; print(" ".join(k["id"] for k in json.load(sys.stdin).get("apiKeys", [])))')
  for id in $ids; do
    "$grpcurl" -plaintext -expand-headers -H "$auth" -d "{\"id\": \"$id\", \"gracePeriod\": \"$grace\"}" \
      "$address" keyrack.v1.KeyService/RotateKey |
      python3 -c 'import json, sys
r = json.load(sys.stdin)
print(json.dumps({"rotatedId": r["rotatedKey"]["id"], "id": r["apiKey"]["id"], "name": r["apiKey"]["name"], "key": r["key"]}))'
  done
  token=$(printf '%s' "$page" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("nextPageToken", ""))')
  [ -n "$token" ] || break
done
