#!/usr/bin/env python3
"""A small OpenID Connect provider for Keyrack's SSO tests (tests/it/sso.rs).

Built on authlib (PKCE S256 by `authlib.oauth2.rfc7636`) and joserfc, authlib's JOSE library
(an RS256 key generated at start, the JWKS, the signed ID token), over the standard library's
HTTP server. It serves:

- `/.well-known/openid-configuration`, discovery;
- `/jwks`, the public key;
- `/authorize`, which approves at once the user the test chose (no login page), after checking
  the client id, `response_type=code`, the `openid` scope and a PKCE S256 challenge;
- `/token`, which checks the client secret (HTTP Basic), the code (single use), the
  `redirect_uri` and the PKCE verifier, and answers an ID token carrying the nonce;
- `/test/user?email=…` (the user the next authorization approves, or an empty email for a
  user the provider refuses with `access_denied`) and `/test/tamper?mode=…` (`signature`: the
  ID token is signed with another key under the same key id; `nonce`, `audience`: that claim is
  wrong; empty: none), the test's switches.

Usage: provider.py CLIENT_ID CLIENT_SECRET. It listens on 127.0.0.1, on a free port, and
writes `oidc provider listening on http://127.0.0.1:PORT` to stderr once ready.
"""

import base64
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID, CLIENT_SECRET = sys.argv[1], sys.argv[2]
KID = "test-key-1"
KEY = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})
# Signs the tampered tokens: the right key id, the wrong key.
IMPOSTOR = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})

state = {"email": "dana@example.com", "tamper": "", "codes": {}}
lock = threading.Lock()


class Provider(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        sys.stderr.write("oidc provider: " + (format % args) + "\n")

    @property
    def issuer(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/.well-known/openid-configuration":
            self.answer(200, {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "nonce"],
            })
        elif url.path == "/jwks":
            self.answer(200, {"keys": [KEY.as_dict(private=False)]})
        elif url.path == "/authorize":
            self.authorize(query)
        elif url.path == "/test/user":
            with lock:
                state["email"] = query.get("email", "")
            self.answer(200, {"email": state["email"]})
        elif url.path == "/test/tamper":
            with lock:
                state["tamper"] = query.get("mode", "")
            self.answer(200, {"tamper": state["tamper"]})
        else:
            self.answer(404, {"error": "not_found"})

    def authorize(self, query):
        redirect_uri = query.get("redirect_uri", "")
        problems = []
        if query.get("client_id") != CLIENT_ID:
            problems.append("unknown client_id")
        if query.get("response_type") != "code":
            problems.append("response_type must be code")
        if "openid" not in query.get("scope", "").split():
            problems.append("the openid scope is missing")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            problems.append("a PKCE S256 challenge is required")
        if not redirect_uri:
            problems.append("redirect_uri is missing")
        if problems:
            self.answer(400, {"error": "invalid_request", "error_description": "; ".join(problems)})
            return
        separator = "&" if "?" in redirect_uri else "?"
        with lock:
            email = state["email"]
        if not email:
            self.redirect(redirect_uri + separator + urllib.parse.urlencode({
                "error": "access_denied",
                "error_description": "the user declined",
                "state": query.get("state", ""),
            }))
            return
        code = secrets.token_urlsafe(24)
        with lock:
            state["codes"][code] = {
                "email": email,
                "redirect_uri": redirect_uri,
                "challenge": query["code_challenge"],
                "nonce": query.get("nonce"),
            }
        self.redirect(redirect_uri + separator + urllib.parse.urlencode(
            {"code": code, "state": query.get("state", "")}))

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != "/token":
            self.answer(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if not self.client_authenticated():
            self.answer(401, {"error": "invalid_client"},
                        [("WWW-Authenticate", 'Basic realm="oidc"')])
            return
        if form.get("grant_type") != "authorization_code":
            self.answer(400, {"error": "unsupported_grant_type"})
            return
        with lock:
            grant = state["codes"].pop(form.get("code", ""), None)
            tamper = state["tamper"]
        if grant is None:
            self.answer(400, {"error": "invalid_grant", "error_description": "unknown or used code"})
            return
        if form.get("redirect_uri") != grant["redirect_uri"]:
            self.answer(400, {"error": "invalid_grant", "error_description": "redirect_uri differs"})
            return
        verifier = form.get("code_verifier", "")
        if not verifier or create_s256_code_challenge(verifier) != grant["challenge"]:
            self.answer(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
            return
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "user-" + grant["email"],
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "email": grant["email"],
            "email_verified": True,
        }
        if grant["nonce"] is not None:
            claims["nonce"] = grant["nonce"]
        key = KEY
        if tamper == "signature":
            key = IMPOSTOR
        elif tamper == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif tamper == "audience":
            claims["aud"] = "another-client"
        id_token = jwt.encode({"alg": "RS256", "kid": KID, "typ": "JWT"}, claims, key)
        self.answer(200, {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        })

    def client_authenticated(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        client_id, _, secret = decoded.partition(":")
        # RFC 6749 2.3.1: both are form-urlencoded before they are joined.
        client_id = urllib.parse.unquote_plus(client_id)
        secret = urllib.parse.unquote_plus(secret)
        return secrets.compare_digest(client_id, CLIENT_ID) and secrets.compare_digest(
            secret, CLIENT_SECRET)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    sys.stderr.write(f"oidc provider listening on http://127.0.0.1:{server.server_address[1]}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
