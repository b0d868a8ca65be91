"""The live web console in headless Chromium (issue 30): against a live 3-region cluster
the page shows every region, shows a SIGKILLed region as DOWN within 2 s, and the
screenshots are kept (test-artifacts/console-*.png, paths printed). `atoll status`
agrees: exit status 1 with the region down."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.chromium import Browser
from tests.support import ATOLL, REPO, ClusterProcesses, client, create_table

REGIONS = ("us-east", "eu-west", "ap-south")
ARTIFACTS = REPO / "test-artifacts"
DOWN_WITHIN_S = 2.0

HEALTH = "JSON.stringify(Array.from(document.querySelectorAll('[data-region]'))" \
         ".map(e => [e.dataset.region, e.dataset.health]))"


def test_console_shows_every_region_and_a_killed_one_down_within_2_s(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    browser = None
    try:
        ddb = client(cluster.url("us-east"))
        create_table(ddb, "console", hash_key=("Artist", "S"), range_key=("Year", "N"))
        ddb.put_item(TableName="console", Item={"Artist": {"S": "Arvo Pärt"},
                                                "Year": {"N": "1978"}})
        browser = Browser()
        browser.goto(cluster.url("us-east") + "/console")
        # auth is on: the page asks for a key, and signs its polls with it
        assert browser.wait_for("!document.getElementById('login').hidden", 15)
        key_id, secret = cluster.nodes["us-east"].credentials
        browser.evaluate(f"document.getElementById('key-id').value = {json.dumps(key_id)}; "
                         f"document.getElementById('key-secret').value = {json.dumps(secret)}; "
                         "document.querySelector('#login button').click()")
        shown = browser.wait_for(f"(() => {{ const h = {HEALTH}; "
                                 "return JSON.parse(h).length === 3 && "
                                 "JSON.parse(h).every(([r, s]) => s === 'up') && h; })()", 15)
        assert shown, f"the console never showed three regions up: {browser.evaluate(HEALTH)}"
        assert [r for r, _ in json.loads(shown)] == list(REGIONS)
        assert browser.evaluate("document.getElementById('banner').textContent") == \
            "All 3 regions up"
        page_text = browser.evaluate("document.body.innerText")
        for expected in ("topology generation 1", "Replication lag", "Recent conflicts",
                         cluster.config.region("ap-south").client_endpoint):
            assert expected in page_text
        # the nodes' background verify, each region against each peer (first round after
        # 5 s); what is not built yet says so
        assert browser.wait_for("document.getElementById('verify').textContent"
                                ".includes('us-east vs eu-west: ')", 30), \
            browser.evaluate("document.getElementById('verify').textContent")
        assert browser.evaluate("document.querySelector('#verify [data-available]')"
                                ".dataset.available") == "true"
        assert browser.evaluate("document.getElementById('login').hidden") is True
        assert "us-east: " in browser.evaluate("document.getElementById('auth').textContent")
        up = browser.screenshot(ARTIFACTS / "console-up.png")

        cluster.nodes["ap-south"].kill()  # SIGKILL
        killed_at = time.monotonic()
        down = browser.wait_for("document.querySelector('[data-region=\"ap-south\"]')"
                                ".dataset.health === 'down'", DOWN_WITHIN_S + 1.0, 0.02)
        shown_after_s = time.monotonic() - killed_at
        assert down, f"ap-south not shown DOWN: {browser.evaluate(HEALTH)}"
        assert shown_after_s <= DOWN_WITHIN_S, f"shown DOWN only after {shown_after_s:.2f} s"
        banner = browser.evaluate("document.getElementById('banner').textContent")
        assert banner.startswith("1 region DOWN: ap-south"), banner
        assert dict(json.loads(browser.evaluate(HEALTH))) == {
            "us-east": "up", "eu-west": "up", "ap-south": "down"}
        shot = browser.screenshot(ARTIFACTS / "console-down.png")
        print(f"\nap-south shown DOWN {shown_after_s:.2f} s after SIGKILL; screenshots: "
              f"{up} {shot}")

        status = subprocess.run([*ATOLL, "status", "--config", str(cluster.config_path),
                                 "--credentials", str(cluster.credentials_path),
                                 "--profile", "atoll"],
                                capture_output=True, text=True, timeout=30, cwd=REPO)
        assert status.returncode == 1, status.stdout + status.stderr
        assert "ap-south is DOWN" in status.stdout
    finally:
        if browser is not None:
            browser.close()
        cluster.stop()
