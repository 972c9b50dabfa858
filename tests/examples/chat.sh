#!/usr/bin/env bash
# The product docs' cURL example under "Using API Keys > Examples" (authentication.md), as
# written, with two substitutions only: the base URL https://api.twig.so is $KEYRACK_URL, and
# sk_live_abc123... is $KEYRACK_KEY.
#
# One addition, after the docs' lines: --write-out prints the HTTP status on a line of its own
# after the body (200, or 401/403 with the JSON error).
#
# /api/chat is not Keyrack's own endpoint: it is the platform's, behind a reverse proxy that
# asks Keyrack whether the key may `chat` (tests/nginx/nginx.conf.template shows one).
#
#   KEYRACK_URL=http://127.0.0.1:8000 KEYRACK_KEY=sk_live_… tests/examples/chat.sh
set -euo pipefail
: "${KEYRACK_URL:?set KEYRACK_URL to the platform base URL, e.g. http://127.0.0.1:8000}"
: "${KEYRACK_KEY:?set KEYRACK_KEY to an API key (sk_live_…)}"

curl -X POST "$KEYRACK_URL/api/chat" \
  -H "Authorization: Bearer $KEYRACK_KEY" \
  -H "Content-Type: application/json" \
  -d '{"prompt": "Hello", "agentId": "agent-123"}' \
  --write-out '\n%{http_code}\n'
