"""What every browser test does on each page it checks: axe-core (serious or critical violations
fail the run) and a full-page screenshot into KEYRACK_SCREENSHOTS. `pages` and `violations`
collect what was checked, for the summary each script prints."""

import os

from axe_playwright_python.sync_playwright import Axe

SHOTS = os.environ["KEYRACK_SCREENSHOTS"]

axe = Axe()
pages = []
violations = {}


def check_page(page, name):
    """axe-core on the page as it stands, and its screenshot."""
    results = axe.run(page)
    serious = [
        {"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    minor = [
        v["id"]
        for v in results.response["violations"]
        if v["impact"] not in ("serious", "critical")
    ]
    violations[name] = {"serious_or_critical": serious, "other": minor}
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    pages.append({"page": name, "screenshot": path})
    assert not serious, f"axe found serious or critical violations on {name}: {serious}"
