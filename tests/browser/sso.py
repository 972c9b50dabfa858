"""Sign-in with the identity provider in a real browser: Debian's Chromium, driven by Playwright.

Run by tests/it/sso.rs against a real `keyrack serve --oidc-*` (SQLite) and the test provider
(tests/oidc/provider.py), with:
  KEYRACK_URL           the HTTP listener, e.g. http://127.0.0.1:8080
  KEYRACK_ADMIN_KEY     a file holding the bootstrap admin key (an operator's)
  KEYRACK_OIDC_URL      the provider
  KEYRACK_SCREENSHOTS   the folder to write every page's screenshot into
  KEYRACK_CHROMIUM      the browser (default /usr/bin/chromium)

The flows: a person who is a member of two organizations clicks "Sign in with SSO", is approved
by the provider at once, picks one organization on the choice page and lands on its Settings →
API Keys; a person who is no member gets the refusal page. axe-core runs on the sign-in page,
the choice page and the refusal page; serious or critical violations fail the run. Prints one
JSON summary line; exits non-zero on the first failed check.
"""

import json
import os
import sys

import requests
from playwright.sync_api import expect, sync_playwright

from audit import SHOTS, check_page, pages, violations

URL = os.environ["KEYRACK_URL"].rstrip("/")
OIDC = os.environ["KEYRACK_OIDC_URL"].rstrip("/")
with open(os.environ["KEYRACK_ADMIN_KEY"], encoding="utf-8") as file:
    ADMIN_KEY = file.read().strip()
CHROMIUM = os.environ.get("KEYRACK_CHROMIUM", "/usr/bin/chromium")

HTTP = requests.Session()
HTTP.trust_env = False


def api(method, path, key, body=None):
    response = HTTP.request(method, URL + path, json=body,
                            headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code < 300, (path, response.status_code, response.text)
    return response.json()


def provider_user(email):
    response = HTTP.get(f"{OIDC}/test/user", params={"email": email}, timeout=10)
    assert response.status_code == 200, response.text


def main():
    os.makedirs(SHOTS, exist_ok=True)
    # Erin is a viewer of `default` and an admin of `acme`.
    acme_key = api("POST", "/api/organizations", ADMIN_KEY, {"name": "acme"})["key"]
    api("POST", "/api/members", ADMIN_KEY, {"userId": "erin@example.com", "role": "viewer"})
    api("POST", "/api/members", acme_key, {"userId": "erin@example.com", "role": "admin"})

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        provider_user("erin@example.com")
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{URL}/console/sign-in")
        sso = page.get_by_role("link", name="Sign in with SSO")
        expect(sso).to_be_visible()
        check_page(page, "sso-sign-in")
        sso.click()
        # The provider approves at once and sends the browser back: Erin chooses.
        expect(page.get_by_role("heading", name="Choose an organization")).to_be_visible()
        expect(page.get_by_text("erin@example.com")).to_be_visible()
        check_page(page, "sso-choose-organization")
        page.get_by_role("button", name="acme").click()
        page.wait_for_url(f"{URL}/console/settings/api-keys")
        expect(page.get_by_text("acme").first).to_be_visible()
        context.close()

        provider_user("mallory@example.com")
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{URL}/console/sign-in")
        page.get_by_role("link", name="Sign in with SSO").click()
        expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
        expect(page.get_by_role("alert")).to_have_text(
            "mallory@example.com is not a member of any organization in Keyrack; "
            "ask an admin to add you")
        check_page(page, "sso-refused")
        context.close()
        browser.close()

    print(json.dumps({"pages": pages, "axe": violations}))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        sys.exit(1)
