#!/usr/bin/env bash
# The product docs' "Generating API Keys > Via API" example (authentication.md), as written,
# with two substitutions only: the base URL https://api.twig.so is $KEYRACK_URL, and ADMIN_KEY
# is $KEYRACK_KEY.
#
# One change to the body: the docs' "expiresAt": "2025-12-31" is in the past (this was written
# on 2026-11-28), and Keyrack rightly refuses to create an already-expired key with 400
# invalid_request. 2027-12-31 keeps the example's meaning: a key valid until the end of next year.
#
# One addition, after the docs' lines: --write-out prints the HTTP status on a line of its own
# after the body, so that whoever runs this sees whether it worked (201).
#
#   KEYRACK_URL=http://127.0.0.1:8080 KEYRACK_KEY=sk_live_… tests/examples/create_key.sh
set -euo pipefail
: "${KEYRACK_URL:?set KEYRACK_URL to the API base URL, e.g. http://127.0.0.1:8080}"
: "${KEYRACK_KEY:?set KEYRACK_KEY to an admin key (sk_live_…)}"

curl -X POST "$KEYRACK_URL/api/api-keys" \
  -H "Authorization: Bearer $KEYRACK_KEY" \
  -d '{
    "name": "Production API",
    "scopes": ["chat", "agents:read"],
    "expiresAt": "2027-12-31"
  }' \
  --write-out '\n%{http_code}\n'
