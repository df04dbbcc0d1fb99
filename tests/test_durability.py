"""Kill -9 in the middle of a campaign, Redis too, and restart: nothing lost, nothing twice.

The real thing, in processes: ``ccd serve --demo`` dials the demo's renewals campaign
against the simulated Asterisk with a private redis-server (AOF, fsync always) as its
store. Mid-campaign ccd is killed with SIGKILL, then Redis is, and both restart. The
store must then show every lead, every attempt made before the crash, the calls that
were in flight settled (not forgotten, not redialled at once), the abandonment ledger
whole, and no lead with two calls at the same time.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
from redis_server import RedisServer, free_port

CCD = [sys.executable, "-m", "ccd"]
TOKEN = "durability-admin-token-0001"
LEADS = 20000  # the demo campaign's list


def _get(port: int, path: str) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _start_ccd(port: int, store: str, log: Path) -> subprocess.Popen[bytes]:
    args = ["serve", "--demo", "--speed", "20", "--store", store, "--listen", f"127.0.0.1:{port}", "--quiet"]
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*CCD, *args],
            stdout=out,
            stderr=out,
            env={**os.environ, "CCD_ADMIN_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"},
        )


def _wait(what: Any, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"ccd exited: {log.read_text()[-3000:]}"
        try:
            value = what()
        except OSError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out; log: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def _snapshot(url: str) -> dict[str, Any]:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        states = {k: json.loads(v) for k, v in r.hgetall("ccd:c:renewals:state").items()}
        return {
            "states": states,
            "attempts": sum(len(s["a"]) for s in states.values()),
            "inflight": {k: json.loads(v) for k, v in r.hgetall("ccd:c:renewals:inflight").items()},
            "ledger": r.zcard("ccd:c:renewals:ledger"),
            "leads": sum(r.hlen(k) for k in r.keys("ccd:c:renewals:list:*")),
            "audit": r.llen("ccd:audit:campaign:renewals"),
        }
    finally:
        r.close()


def test_kill_9_mid_campaign_loses_nothing_and_dials_nothing_twice(tmp_path: Path) -> None:
    store = RedisServer(tmp_path, aof=True)
    store.start()
    port = free_port()
    log = tmp_path / "ccd.log"
    proc = _start_ccd(port, store.url, log)
    try:
        progress = _wait(
            lambda: (
                (p := _get(port, "/api/campaigns/renewals/progress"))["dials"] >= 40
                and p["humans"] >= 5
                and p
            ),
            90,
            proc,
            log,
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        crashed = _snapshot(store.url)
        # Every dial the API had reported is on record: finished, or in flight.
        assert crashed["attempts"] + len(crashed["inflight"]) >= progress["dials"]
        assert (
            crashed["leads"] == LEADS
            and crashed["ledger"] >= progress["humans"] - progress["in_progress"]["waiting"]
        )

        store.kill()  # Redis dies too; AOF (fsync always) brings back every acknowledged write
        store.start()
        assert _snapshot(store.url) == crashed

        proc = _start_ccd(port, store.url, log)
        _wait(lambda: _get(port, "/readyz")["status"] == "ready", 60, proc, log)
        after = _wait(
            lambda: (p := _get(port, "/api/campaigns/renewals/progress"))["dials"] > progress["dials"] and p,
            60,
            proc,
            log,
        )
        assert after["leads"]["total"] == LEADS
        assert after["status"] == "running"
        assert after["abandon_rate"]["humans"] >= crashed["ledger"] - 0  # the ledger's window is whole
        # The calls in flight at the crash are settled as attempts of unknown outcome...
        for call_id, flight in crashed["inflight"].items():
            lead = _get(port, f"/api/campaigns/renewals/leads/{flight['lead']}")
            settled = [a for a in lead["attempts"] if a["at"] == flight["at"]]
            assert len(settled) == 1 and "restarted" in settled[0]["detail"], (call_id, lead)
            # ... and not dialled again straight away: the next call waits for the retry rule.
            later = [a for a in lead["attempts"] if a["at"] > flight["at"]]
            assert all(a["at"] >= settled[0]["ended_at"] + 60 for a in later), lead
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
        final = _snapshot(store.url)
        # A stop leaves the calls still up to the next start (which settles them, as
        # above): every lead being dialled has its call on record, and no other.
        dialling = {lead_id for lead_id, st in final["states"].items() if st["s"] == "dialling"}
        assert dialling == {f["lead"] for f in final["inflight"].values()}
        # No lead was ever in two calls at once, across both runs.
        for lead_id, state in final["states"].items():
            spans = sorted((a[0], a[4] if a[4] is not None else a[0]) for a in state["a"])
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end, (lead_id, state["a"])
        assert final["attempts"] >= crashed["attempts"] + len(crashed["inflight"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        store.stop()
