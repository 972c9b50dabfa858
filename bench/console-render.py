"""Times the web console's keys list (Settings → API Keys) over HTTP, as a browser loads it.

Usage: console-render.py URL ADMIN_KEY_FILE [REQUESTS]
Signs in with the key, then loads the first page REQUESTS times (default 300), then walks
every page of the list by its "Next page" links once, and prints p50, p95 and max of each in
milliseconds (the server's full answer: the GetCaller and ListKeys calls and the rendering).
"""

import re
import statistics
import sys
import time

import requests

url, key_file = sys.argv[1].rstrip("/"), sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
with open(key_file, encoding="utf-8") as file:
    key = file.read().strip()

http = requests.Session()
http.trust_env = False
signed = http.post(f"{url}/console/sign-in", data={"api_key": key}, allow_redirects=False)
assert signed.status_code == 303, signed.text


def timed(path):
    start = time.perf_counter()
    response = http.get(f"{url}{path}", allow_redirects=False)
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, (path, response.status_code)
    return elapsed, response.text


def report(name, samples):
    samples = sorted(samples)
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    print(
        f"{name}: {len(samples)} loads, p50 {statistics.median(samples):.1f} ms, "
        f"p95 {p95:.1f} ms, max {samples[-1]:.1f} ms"
    )


for _ in range(20):  # warm-up
    timed("/console/settings/api-keys")
first = [timed("/console/settings/api-keys")[0] for _ in range(count)]
report("first page (50 keys)", first)

walk, path, rows = [], "/console/settings/api-keys", 0
while path:
    elapsed, page = timed(path)
    walk.append(elapsed)
    rows += page.count("<tr>") - 1
    found = re.search(r'href="(/console/settings/api-keys\?[^"]*page_token=[^"]+)">Next page', page)
    path = found.group(1).replace("&amp;", "&") if found else None
report(f"every page in turn ({len(walk)} pages, {rows} keys)", walk)
