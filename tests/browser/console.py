"""The web console in a real browser: Debian's Chromium, driven by Playwright.

Run by tests/it/console_browser.rs against a real `keyrack serve` (SQLite), with:
  KEYRACK_URL           the HTTP listener, e.g. http://127.0.0.1:8080
  KEYRACK_ADMIN_KEY     a file holding the bootstrap admin key
  KEYRACK_SCREENSHOTS   the folder to write every page's screenshot into
  KEYRACK_CHROMIUM      the browser (default /usr/bin/chromium)

The people's flows of the issue, in order: sign in with the bootstrap key, Settings → API Keys,
Generate New API Key, the key shown once (Copy), verified through the REST gateway's
forward-auth (200, and 403 insufficient_scope without a scope), gone after a reload, an XSS name
inert, revoked in the console (then 401); a member added, their sign-in link opened in another
browser, their personal key limited to their role, sign-out; a session ended under an open page;
a cross-site form post refused. axe-core runs on every page; serious or critical violations fail
the run. Prints one JSON summary line; exits non-zero on the first failed check.
"""

import http.server
import json
import os
import re
import sys
import threading

import requests
from playwright.sync_api import expect, sync_playwright

from audit import SHOTS, check_page, pages, violations

URL = os.environ["KEYRACK_URL"].rstrip("/")
with open(os.environ["KEYRACK_ADMIN_KEY"], encoding="utf-8") as file:
    ADMIN_KEY = file.read().strip()
CHROMIUM = os.environ.get("KEYRACK_CHROMIUM", "/usr/bin/chromium")
XSS_NAME = 'Production API <script>alert("xss")</script><img src=x onerror=alert(1)>'

# Requests to the service itself go straight to loopback, never through a proxy.
HTTP = requests.Session()
HTTP.trust_env = False

dialogs = []


def forward_auth(key, scope):
    return HTTP.get(
        f"{URL}/api/auth/verify",
        params={"scope": scope},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def assert_nowhere_in_browser(context, page, secret):
    """A key or token is in no URL, cookie or storage of the browser."""
    assert secret not in page.url
    storage = page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert secret not in storage, "a secret reached browser storage"
    for cookie in context.cookies():
        assert secret not in cookie["value"], "a key reached a cookie"


def cross_site_server():
    """Another origin: a page whose form posts to the console as soon as it loads."""
    body = f"""<!doctype html><html lang="en"><title>Win a prize</title>
<form id="f" method="post" action="{URL}/console/settings/api-keys">
<input name="name" value="Evil"><input name="scope" value="admin"></form>
<script>document.getElementById("f").submit()</script></html>""".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # localhost, not 127.0.0.1: another site for the browser.
    return server, f"http://localhost:{server.server_address[1]}/"


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        admin = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        page = admin.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

        # Sign in with the bootstrap key, with the keyboard only.
        page.goto(f"{URL}/console/")
        expect(page).to_have_url(re.compile(r"/console/sign-in$"))
        check_page(page, "sign-in")
        page.get_by_label("API key").focus()
        page.keyboard.type(ADMIN_KEY)
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/console/settings/api-keys$"))
        expect(page.get_by_role("heading", name="Settings → API Keys")).to_be_visible()
        expect(page.get_by_role("navigation", name="Settings").get_by_role("link", name="API Keys")).to_be_visible()
        assert_nowhere_in_browser(admin, page, ADMIN_KEY)
        check_page(page, "settings-api-keys")

        # Generate New API Key: Name, Scope, Expiration; the key shown once.
        page.get_by_role("link", name="Generate New API Key").click()
        expect(page.get_by_role("heading", name="Generate New API Key")).to_be_visible()
        check_page(page, "generate-new-api-key")
        page.get_by_label("Name").fill(XSS_NAME)
        page.get_by_label("chat", exact=True).check()
        page.get_by_label("agents:read", exact=True).check()
        page.get_by_label("Expiration").fill("2099-12-31")
        page.get_by_label("Organization: shared across the team").check()
        page.get_by_role("button", name="Generate key").click()
        expect(page.get_by_text("It will not be shown again")).to_be_visible()
        key = page.locator("#new-key").input_value()
        assert re.fullmatch(r"sk_live_[0-9A-Za-z]{49}", key), key
        page.get_by_role("button", name="Copy").click()
        expect(page.get_by_text("Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == key
        check_page(page, "key-shown-once")
        assert_nowhere_in_browser(admin, page, key)

        # The key works through the REST gateway's forward-auth, within its scopes.
        allowed = forward_auth(key, "chat")
        assert allowed.status_code == 200, allowed.text
        refused = forward_auth(key, "agents:write")
        assert refused.status_code == 403, refused.text
        assert refused.json() == {
            "error": {
                "code": "insufficient_scope",
                "message": "API key lacks required scope: agents:write",
            },
            "status": 403,
        }, refused.text

        # Reloaded (which re-posts the form), the key is gone and no second key is made.
        page.reload()
        expect(page.get_by_text("This form was already sent.")).to_be_visible()
        assert key not in page.content()
        page.goto(f"{URL}/console/settings/api-keys")
        assert key not in page.content()
        assert page.get_by_role("link", name=XSS_NAME).count() == 1

        # The name renders as text: no script ran, no element was injected.
        expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
        assert page.locator("main img").count() == 0
        assert not dialogs, f"a script ran: {dialogs}"

        # The key's page, then Revoke with a confirmation naming the key.
        page.get_by_role("link", name=XSS_NAME).click()
        expect(page.get_by_role("heading", name=XSS_NAME)).to_be_visible()
        expect(page.locator("svg.chart")).to_be_visible()
        check_page(page, "key-page")
        page.get_by_role("link", name="Revoke").click()
        expect(page.get_by_role("heading", name=f"Revoke “{XSS_NAME}”?")).to_be_visible()
        check_page(page, "revoke-confirmation")
        page.get_by_role("button", name=f"Revoke {XSS_NAME}").click()
        expect(page.get_by_text("The key is revoked.")).to_be_visible()
        revoked = forward_auth(key, "chat")
        assert revoked.status_code == 401, revoked.text
        assert revoked.json()["error"]["code"] == "invalid_api_key", revoked.text
        assert not dialogs, f"a script ran: {dialogs}"

        # Members: add one, make their sign-in link.
        page.get_by_role("link", name="Members").click()
        page.get_by_label("User id").fill("dana@example.com")
        page.get_by_label("Role", exact=True).select_option("member")
        page.get_by_role("button", name="Add member").click()
        expect(page.get_by_text("The member is added.")).to_be_visible()
        check_page(page, "members")
        page.get_by_role("button", name="Sign-in link for dana@example.com").click()
        link = page.locator("#link").input_value()
        assert re.fullmatch(re.escape(URL) + r"/console/invite#krl_[0-9a-f]{64}", link), link
        check_page(page, "sign-in-link")
        # Alerts: the docs' example rules, saved from the form.
        page.get_by_role("link", name="Alerts").click()
        page.get_by_label("Unusual activity").check()
        page.get_by_label("Threshold (requests; empty: off)").fill("10000")
        page.locator("#high_usage_period").select_option("daily")
        page.get_by_label("Threshold (failed verifications; empty: off)").fill("100")
        page.locator("#failures_period").select_option("hourly")
        page.get_by_role("button", name="Save alert rules").click()
        expect(page.get_by_text("The alert rules are saved.")).to_be_visible()
        check_page(page, "alerts")
        rules = HTTP.get(
            f"{URL}/api/alerts", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
        ).json()
        assert rules["alerts"] == {
            "unusualActivity": True,
            "highUsage": {"threshold": 10000, "period": "daily"},
            "failures": {"threshold": 100, "period": "hourly"},
        }, rules
        page.get_by_role("link", name="Audit log").click()
        expect(page.get_by_role("cell", name="session.create").first).to_be_visible()
        check_page(page, "audit-log")

        # Dana opens the link in her own browser.
        dana = browser.new_context()
        dana_page = dana.new_page()
        dana_page.goto(link)
        expect(dana_page.get_by_label("Sign-in code")).to_have_value(link.split("#", 1)[1])
        assert "#" not in dana_page.url, "the code stayed in the address bar"
        check_page(dana_page, "sign-in-with-a-link")
        dana_page.get_by_role("button", name="Continue").click()
        expect(dana_page).to_have_url(re.compile(r"/console/settings/api-keys$"))
        expect(dana_page.get_by_text("dana@example.com (member)")).to_be_visible()
        # Her personal key: `admin` and organization keys are not hers to make.
        dana_page.get_by_role("link", name="Generate New API Key").click()
        expect(dana_page.get_by_label("admin", exact=True)).to_be_disabled()
        expect(dana_page.get_by_label("Organization: shared across the team")).to_be_disabled()
        dana_page.get_by_label("Name").fill("Dana's laptop")
        dana_page.get_by_label("chat", exact=True).check()
        dana_page.get_by_role("button", name="Generate key").click()
        dana_key = dana_page.locator("#new-key").input_value()
        assert forward_auth(dana_key, "chat").status_code == 200
        assert forward_auth(dana_key, "admin").status_code == 403
        # The link worked once.
        other = browser.new_context().new_page()
        other.goto(link)
        other.get_by_role("button", name="Continue").click()
        expect(other.get_by_text("invalid, used or expired")).to_be_visible()
        # Signing out ends the session.
        dana_page.get_by_role("button", name="Sign out").click()
        expect(dana_page).to_have_url(re.compile(r"/console/sign-in$"))
        dana_page.goto(f"{URL}/console/settings/api-keys")
        expect(dana_page).to_have_url(re.compile(r"/console/sign-in$"))

        # A session that ends under an open page: the key it signed in with is revoked.
        temporary = HTTP.post(
            f"{URL}/api/api-keys",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"name": "Temporary console key", "scopes": ["admin"]},
            timeout=10,
        ).json()
        visitor = browser.new_context().new_page()
        visitor.goto(f"{URL}/console/sign-in")
        visitor.get_by_label("API key").fill(temporary["key"])
        visitor.get_by_role("button", name="Sign in").click()
        expect(visitor).to_have_url(re.compile(r"/console/settings/api-keys$"))
        HTTP.delete(
            f"{URL}/api/api-keys/{temporary['id']}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        ).raise_for_status()
        visitor.reload()
        expect(visitor.get_by_text("Your session has ended. Sign in again.")).to_be_visible()
        check_page(visitor, "session-ended")

        # Another site's page posting to the console: refused, nothing made.
        server, evil = cross_site_server()
        try:
            page.goto(evil)
            expect(page.get_by_text("was not sent from Keyrack's own page")).to_be_visible()
        finally:
            server.shutdown()
        listed = HTTP.get(
            f"{URL}/api/api-keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
        ).json()
        assert all(k["name"] != "Evil" for k in listed["data"]), "a cross-site post made a key"

        # The list as it stands at the end, for the README.
        page.goto(f"{URL}/console/settings/api-keys")
        check_page(page, "settings-api-keys-in-use")

        browser.close()
    print(json.dumps({"pages": pages, "axe": violations}))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"console browser test failed: {error}", file=sys.stderr)
        sys.exit(1)
