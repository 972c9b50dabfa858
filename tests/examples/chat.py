"""The product docs' Python example under "Using API Keys > Examples" (authentication.md), as
written, with two substitutions only: the base URL https://api.twig.so is $KEYRACK_URL, and
sk_live_abc123... is $KEYRACK_KEY. Needs `requests` (tools/install puts it in tools/venv).

One addition, after the docs' lines: print the body, then the status on a line of its own.

    KEYRACK_URL=http://127.0.0.1:8000 KEYRACK_KEY=sk_live_… tools/venv/bin/python tests/examples/chat.py
"""

import os
import sys

import requests

for name in ("KEYRACK_URL", "KEYRACK_KEY"):
    if not os.environ.get(name):
        sys.exit(f"set {name} (the platform base URL, and an API key)")

headers = {
    'Authorization': f'Bearer {os.environ["KEYRACK_KEY"]}',
    'Content-Type': 'application/json'
}

response = requests.post(
    f'{os.environ["KEYRACK_URL"]}/api/chat',
    headers=headers,
    json={'prompt': 'Hello', 'agentId': 'agent-123'}
)

print(response.text)
print(response.status_code)
