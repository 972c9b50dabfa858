"""OAuth 2.0's five steps in a real browser: Debian's Chromium, driven by Playwright, and a real
OAuth client library, authlib's OAuth2Session (authorization code with PKCE S256).

Run by tests/it/console_browser.rs against a real `keyrack serve` (SQLite), with:
  KEYRACK_URL           the HTTP listener, e.g. http://127.0.0.1:8080
  KEYRACK_ADMIN_KEY     a file holding the bootstrap admin key
  KEYRACK_SCREENSHOTS   the folder to write every page's screenshot into
  KEYRACK_CHROMIUM      the browser (default /usr/bin/chromium)

An admin registers a public client on the console's OAuth applications page (its redirect URI
a loopback callback served by this script, RFC 8252) and makes a member's sign-in link. Then:
1. authlib builds the authorization URL; the browser opens it, is sent to sign in, signs in
   with the member's code and comes back to the request;
2. the consent page names the client and the scopes; the person clicks Allow;
3. the browser lands on the callback with the code;
4. authlib's fetch_token exchanges it at /oauth/token with the PKCE verifier;
5. the access token passes forward-auth for a granted scope (200, with the user context) and is
   refused for another (403 insufficient_scope); revoked on the person's Authorized
   applications page, it is refused (401).
axe-core runs on every page; serious or critical violations fail the run. Prints one JSON
summary line; exits non-zero on the first failed check.
"""

import http.server
import json
import os
import re
import sys
import threading
import urllib.parse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from playwright.sync_api import expect, sync_playwright

from audit import SHOTS, check_page, pages, violations

URL = os.environ["KEYRACK_URL"].rstrip("/")
with open(os.environ["KEYRACK_ADMIN_KEY"], encoding="utf-8") as file:
    ADMIN_KEY = file.read().strip()
CHROMIUM = os.environ.get("KEYRACK_CHROMIUM", "/usr/bin/chromium")

# Requests to the service itself go straight to loopback, never through a proxy.
HTTP = requests.Session()
HTTP.trust_env = False


def callback_server():
    """The application's loopback redirect URI: records each query it is sent."""
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            # The browser asks for a favicon too; only the callback counts.
            if self.path.startswith("/callback"):
                received.append(self.path)
            body = b'<!doctype html><html lang="en"><title>Done</title><main><h1>Signed in to the app</h1></main></html>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/callback", received


def forward_auth(token, scopes):
    return HTTP.get(
        f"{URL}/api/auth/verify",
        headers={"Authorization": f"Bearer {token}", "X-Keyrack-Required-Scopes": scopes},
        timeout=10,
    )


def main():
    os.makedirs(SHOTS, exist_ok=True)
    server, redirect_uri, received = callback_server()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        # The admin registers the application and makes the member's sign-in link.
        admin = browser.new_context()
        page = admin.new_page()
        page.goto(f"{URL}/console/sign-in")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/console/settings/api-keys$"))
        page.get_by_role("link", name="OAuth applications").click()
        expect(page.get_by_role("heading", name="OAuth applications", exact=True)).to_be_visible()
        check_page(page, "oauth-applications")
        page.get_by_label("Name").fill("Chat helper")
        page.get_by_label("Public: a native or browser app").check()
        page.get_by_label("Redirect URIs").fill(redirect_uri)
        page.get_by_label("chat", exact=True).check()
        page.get_by_label("agents:read", exact=True).check()
        page.get_by_role("button", name="Register application").click()
        expect(page.get_by_role("heading", name="OAuth application registered")).to_be_visible()
        client_id = page.locator("#client-id").input_value()
        assert client_id, "no client id shown"
        assert page.locator("#client-secret").count() == 0, "a public client shows a secret"
        check_page(page, "oauth-application-registered")

        page.get_by_role("link", name="Members").click()
        page.get_by_label("User id").fill("mia@example.com")
        page.get_by_role("button", name="Add member").click()
        expect(page.get_by_role("cell", name="mia@example.com", exact=True)).to_be_visible()
        page.get_by_role("button", name="Sign-in link for mia@example.com").click()
        link = page.get_by_label("Sign-in link").input_value()
        code = link.split("#", 1)[1]
        assert code.startswith("krl_"), link
        admin.close()

        # 1. The application sends the person to the authorization URL (authlib, PKCE S256).
        oauth = OAuth2Session(
            client_id,
            redirect_uri=redirect_uri,
            scope="chat agents:read",
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        oauth.trust_env = False
        verifier = generate_token(48)
        authorization_url, state = oauth.create_authorization_url(
            f"{URL}/oauth/authorize", code_verifier=verifier
        )
        person = browser.new_context()
        page = person.new_page()
        page.goto(authorization_url)
        # Signed out: to sign in first, carrying the request.
        expect(page).to_have_url(re.compile(r"/console/sign-in\?next=%2Foauth%2Fauthorize%3F"))
        expect(page.get_by_text("An application asks for access")).to_be_visible()
        check_page(page, "oauth-sign-in")
        page.get_by_role("link", name="enter its code").click()
        page.get_by_label("Sign-in code").fill(code)
        page.get_by_role("button", name="Continue").click()

        # 2. Back at the request: the consent page.
        expect(page).to_have_url(re.compile(r"/oauth/authorize\?"))
        expect(
            page.get_by_role("heading", name="Chat helper wants to access your default account")
        ).to_be_visible()
        expect(page.get_by_text("Chat/completion requests")).to_be_visible()
        expect(page.get_by_text("List and view agents")).to_be_visible()
        expect(page.get_by_text("mia@example.com")).to_be_visible()
        check_page(page, "oauth-consent")
        page.get_by_role("button", name="Allow").click()

        # 3. The application receives the code at its redirect URI.
        page.wait_for_url(re.compile(re.escape(redirect_uri) + r"\?"))
        assert len(received) == 1, f"{len(received)} callbacks received"
        callback = "http://127.0.0.1" + f":{server.server_address[1]}" + received[0]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)
        assert query["state"] == [state], "the state did not come back"
        assert query["code"][0], "no code"

        # 4. authlib exchanges it for an access token.
        token = oauth.fetch_token(
            f"{URL}/oauth/token", authorization_response=callback, code_verifier=verifier
        )
        assert token["token_type"].lower() == "bearer", token
        access = token["access_token"]
        assert access.startswith("oat_"), token
        assert set(token["scope"].split()) == {"chat", "agents:read"}, token

        # 5. The access token is verified like a key: within its grant, as the person.
        allowed = forward_auth(access, "chat")
        assert allowed.status_code == 200, allowed.text
        user_headers = {
            name.lower(): value
            for name, value in allowed.headers.items()
            if name.lower().startswith("x-keyrack-")
        }
        assert "mia@example.com" in user_headers.values(), user_headers
        assert any(client_id == value for value in user_headers.values()), user_headers
        refused = forward_auth(access, "data:read")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "insufficient_scope", refused.text

        # The person sees the application and revokes it: the token is refused at once.
        page.goto(f"{URL}/console/settings/applications")
        expect(page.get_by_role("cell", name="Chat helper", exact=True)).to_be_visible()
        check_page(page, "authorized-applications")
        page.get_by_role("button", name="Revoke Chat helper").click()
        expect(page.get_by_text("No authorized applications")).to_be_visible()
        revoked = forward_auth(access, "chat")
        assert revoked.status_code == 401, revoked.text
        browser.close()
    server.shutdown()
    print(json.dumps({"pages": pages, "axe": violations}))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"oauth browser test failed: {error}", file=sys.stderr)
        sys.exit(1)
