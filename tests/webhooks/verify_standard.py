"""Verifies one received webhook delivery with Standard Webhooks' own Python library, as a
receiver of a `standard` endpoint would: `standardwebhooks.Webhook(secret).verify(body, headers)`.

Usage: verify_standard.py DELIVERY.json, where the file holds {"secret", "headers", "body"}
(headers as received, body as the raw text). Prints "verified" and exits 0, or prints the
library's refusal and exits 1.
"""

import json
import sys

from standardwebhooks import Webhook


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as file:
        delivery = json.load(file)
    try:
        Webhook(delivery["secret"]).verify(delivery["body"], delivery["headers"])
    except Exception as refusal:  # noqa: BLE001 - the library raises its own types
        print(f"refused: {type(refusal).__name__}: {refusal}")
        return 1
    print("verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
