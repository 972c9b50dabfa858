#!/usr/bin/env bash
# Rotates every key of the caller's organization that is due for rotation (older than the
# maximum key age, 90 days by default), for a scheduled job such as the docs' cron line:
#
#   0 0 1 */3 * KEYRACK_ADMIN_KEY=sk_live_… /usr/local/bin/rotate-due-keys.sh keyrack:50051 86400s >> /var/lib/keyrack/rotated.jsonl
#
# Each old key keeps working for the grace period (default 24 hours), so applications have
# time to switch. For every rotated key it prints one JSON line on stdout:
#   {"rotatedId": "<old id>", "id": "<new id>", "name": "...", "key": "sk_live_…"}
# The new plaintext is in that line only: send stdout straight to your secret manager, never to
# a log. Needs grpcurl (tools/install puts one in tools/venv/bin) and python3.
set -euo pipefail
address=${1:-127.0.0.1:50051}
grace=${2:-86400s}
: "${KEYRACK_ADMIN_KEY:?set KEYRACK_ADMIN_KEY to an admin key}"
grpcurl=${GRPCURL:-grpcurl}
auth="authorization: Bearer $KEYRACK_ADMIN_KEY"

token=""
while :; do
  page=$("$grpcurl" -plaintext -H "$auth" \
    -d "{\"pageSize\": 100, \"pageToken\": \"$token\", \"rotationDue\": true}" \
    "$address" keyrack.v1.KeyService/ListKeys)
  ids=$(printf '%s' "$page" | python3 -c 'import json, sys; print(" ".join(k["id"] for k in json.load(sys.stdin).get("apiKeys", [])))')
  for id in $ids; do
    "$grpcurl" -plaintext -H "$auth" -d "{\"id\": \"$id\", \"gracePeriod\": \"$grace\"}" \
      "$address" keyrack.v1.KeyService/RotateKey |
      python3 -c 'import json, sys
r = json.load(sys.stdin)
print(json.dumps({"rotatedId": r["rotatedKey"]["id"], "id": r["apiKey"]["id"], "name": r["apiKey"]["name"], "key": r["key"]}))'
  done
  token=$(printf '%s' "$page" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("nextPageToken", ""))')
  [ -n "$token" ] || break
done
