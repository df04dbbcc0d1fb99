"""``ccd serve --demo`` driven through its REST API: a campaign of our own next to the
demo's inbound queues and its renewals campaign, on the same agents.

The process is the one users run. The test creates a campaign on the support agents
(who also take inbound support calls), uploads a list, starts it, watches its KPIs,
stops it, and checks that the books add up and that inbound calls kept being answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from redis_server import free_port

TOKEN = "demo-manager-token-000001"
SPEC = {
    "name": "winter",
    "caller_id": "+12025550100",
    "queue": "support",
    "dial_mode": "progressive",
    "hours": {"default": "00:00-24:00"},
    "amd": True,
}


def _call(port: int, method: str, path: str, body: Any = None, *, csv: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif csv is not None:
        data, headers["Content-Type"] = csv, "text/csv"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_a_campaign_driven_through_the_demo_adds_up(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "ccd.log"
    args = ["serve", "--demo", "--speed", "20", "--listen", f"127.0.0.1:{port}", "--quiet"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccd", *args],
            stdout=out,
            stderr=out,
            env={**os.environ, "CCD_ADMIN_TOKEN": TOKEN},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if _call(port, "GET", "/readyz")["status"] == "ready":
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert _call(port, "POST", "/api/campaigns", SPEC)["status"] == "stopped"
        rows = "phone,name\n" + "".join(f"+1303{200 + i // 1000}{i % 1000:04d},w{i}\n" for i in range(400))
        report = _call(port, "POST", "/api/campaigns/winter/leads", csv=rows.encode())
        assert report["imported"] == 400
        _call(port, "POST", "/api/campaigns/winter/start")
        inbound_before = _answered(port)
        while (p := _call(port, "GET", "/api/campaigns/winter/progress"))["dials"] < 40:
            assert time.monotonic() < deadline + 90, p
            time.sleep(0.3)
        _call(port, "POST", "/api/campaigns/winter/stop")
        while (p := _call(port, "GET", "/api/campaigns/winter/progress"))["in_progress"]["ringing"]:
            assert time.monotonic() < deadline + 180, p
            time.sleep(0.3)
        # Every dial has an outcome, or is still up (answered: waiting, talking, a machine).
        assert sum(p["outcomes"].values()) + sum(p["in_progress"].values()) == p["dials"] >= 40
        assert p["humans"] == p["connects"] + p["abandons"]
        assert p["abandon_rate"]["humans"] == p["humans"]
        assert p["status"] == "stopped" and p["leads"]["total"] == 400
        assert sum(p["leads"]["by_state"].values()) == 400
        # The demo's own campaign and its inbound queues went on meanwhile.
        assert _answered(port) > inbound_before
        names = {c["name"] for c in _call(port, "GET", "/api/campaigns")["campaigns"]}
        assert names == {"renewals", "winter"}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def _answered(port: int) -> int:
    queues = _call(port, "GET", "/api/queues")["queues"]
    return sum(q["stats"]["today"]["answered"] for q in queues if not q["name"].startswith("outbound:"))
