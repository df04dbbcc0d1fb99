"""The campaign REST API against the live service (simulated Asterisk over real AMI).

Roles: admin and manager may write campaigns, lists and DNC; supervisor agents and
calls; viewer nothing. Every answer is JSON, errors with a 4xx and a reason.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_serve_e2e import ADMIN, VIEWER, Live, scenario, start_live, stop_live

from ccd.cli import main
from ccd.openapi import openapi_document

MANAGER = "manager-token-for-tests-01"
SUPERVISOR = "supervisor-token-for-test-1"
SPEC = {"name": "spring", "caller_id": "+12025550100", "queue": "sales", "dial_mode": "progressive"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    sc = scenario([{"group": "sal", "count": 2, "skills": {"sales": 1.0}}], ["sales"])
    lv = await start_live(sc)
    tokens = {ADMIN: "admin", VIEWER: "viewer", MANAGER: "manager", SUPERVISOR: "supervisor"}
    names = {MANAGER: "mary", ADMIN: "root", VIEWER: "val", SUPERVISOR: "sue"}
    lv.service.config = replace(lv.service.config, tokens=tokens, token_names=names)
    yield lv
    await stop_live(lv)


async def call(
    lv: Live, method: str, path: str, token: str | None = MANAGER, **kw: Any
) -> tuple[int, dict[str, Any]]:
    headers = {**(auth(token) if token else {}), **kw.pop("headers", {})}
    async with lv.session.request(method, lv.url + path, headers=headers, **kw) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


CSV = b"phone,first_name,timezone\n(202) 555-0101,Ann,\n202-555-0102,Bob,America/Chicago\nnonsense,Cy,\n"


async def test_campaign_life_through_the_api(live: Live) -> None:
    status, body = await call(live, "POST", "/api/campaigns", json=SPEC)
    assert status == 201, body
    assert body["status"] == "stopped" and body["created_by"] == "manager:mary"
    assert "outbound:spring" in live.service.router.queue_names

    status, report = await call(
        live, "POST", "/api/campaigns/spring/leads?list=may", data=CSV, headers={"Content-Type": "text/csv"}
    )
    assert status == 201, report
    assert (report["list"], report["imported"], report["rejected"]) == ("may", 2, 1)
    assert report["problems"][0].startswith("line 4, phone:")

    form = aiohttp.FormData()
    form.add_field("file", b"phone\n2025550103\n2025550101\n", filename="june.csv", content_type="text/csv")
    status, report = await call(live, "POST", "/api/campaigns/spring/leads", data=form)
    assert status == 201 and (report["imported"], report["merged"]) == (1, 1)

    status, progress = await call(live, "GET", "/api/campaigns/spring/progress", token=VIEWER)
    assert status == 200 and progress["leads"]["total"] == 3
    assert progress["agents"] == {"logged_in": 2, "ready": 2}

    m = await live.metrics()
    assert m[("ccd_campaign_leads", (("campaign", "spring"), ("state", "new")))] == 3
    assert m[("ccd_campaign_abandon_target", (("campaign", "spring"),))] == 0.03
    assert m[("ccd_campaign_running", (("campaign", "spring"),))] == 0

    status, lead = await call(live, "GET", "/api/campaigns/spring/leads/may-2")
    assert status == 200 and lead["number"] == "+12025550101" and lead["data"] == {"first_name": "Ann"}
    status, why = await call(live, "GET", "/api/campaigns/spring/leads/may-3/why")
    assert status == 200 and why["reason"] in ("queued", "window", "no_window")

    status, body = await call(
        live, "POST", "/api/campaigns/spring/dnc/numbers", json={"number": "202 555 0102"}
    )
    assert status == 201 and body == {"number": "+12025550102", "campaign": "spring", "leads_stopped": 1}
    status, lead = await call(live, "GET", "/api/campaigns/spring/leads/may-3")
    assert lead["state"] == "dnc" and [a["what"] for a in lead["audit"]] == ["dnc"]

    status, body = await call(
        live, "POST", "/api/campaigns/spring/callbacks", json={"lead": "may-2", "at": 2e9}
    )
    assert status == 201
    status, body = await call(live, "GET", "/api/campaigns/spring/callbacks")
    assert [c["lead"] for c in body["callbacks"]] == ["may-2"]

    status, body = await call(live, "PATCH", "/api/campaigns/spring", json={"max_attempts": 3})
    assert status == 200 and body["spec"]["max_attempts"] == 3
    for action, state in (("start", "running"), ("pause", "paused"), ("stop", "stopped")):
        status, body = await call(live, "POST", f"/api/campaigns/spring/{action}")
        assert (status, body["status"]) == (200, state)
    status, audit = await call(live, "GET", "/api/campaigns/spring/audit")
    whats = [e["what"] for e in audit["audit"]]
    assert whats == ["create", "list imported", "list imported", "update", "start", "pause", "stop"]
    assert {e["who"] for e in audit["audit"]} == {"manager:mary"}


async def test_roles_and_tokens(live: Live) -> None:
    assert (await call(live, "POST", "/api/campaigns", token=None, json=SPEC))[0] == 401
    assert (await call(live, "POST", "/api/campaigns", token="wrong-token-xxxxxxxxxx", json=SPEC))[0] == 401
    for token in (VIEWER, SUPERVISOR):
        status, body = await call(live, "POST", "/api/campaigns", token=token, json=SPEC)
        assert status == 403 and "may not" in body["error"]
    assert (await call(live, "POST", "/api/campaigns", token=ADMIN, json=SPEC))[0] == 201
    assert (await call(live, "POST", "/api/campaigns/spring/start", token=SUPERVISOR))[0] == 403
    assert (await call(live, "POST", "/api/dnc/numbers", token=VIEWER, json={"number": "2025550100"}))[
        0
    ] == 403
    # A manager may not drive agents; a supervisor may.
    assert (await call(live, "POST", "/api/agents/sal-1/pause", token=MANAGER, json={}))[0] == 403
    assert (await call(live, "POST", "/api/agents/sal-1/pause", token=SUPERVISOR, json={}))[0] == 200


async def test_bad_requests_say_what_is_wrong(live: Live) -> None:
    status, body = await call(live, "POST", "/api/campaigns", json={**SPEC, "max_attempts": "lots"})
    assert status == 400 and "max_attempts" in body["error"]
    status, body = await call(live, "POST", "/api/campaigns", json={**SPEC, "queue": "nope"})
    assert status == 400 and "unknown ACD queue 'nope'" in body["error"]
    status, body = await call(
        live, "POST", "/api/campaigns", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and "JSON" in body["error"]
    assert (await call(live, "POST", "/api/campaigns", json=SPEC))[0] == 201
    assert (await call(live, "POST", "/api/campaigns", json=SPEC))[0] == 409
    assert (await call(live, "GET", "/api/campaigns/nope"))[0] == 404
    # Malformed CSVs: wrong delimiter (no number column), bad encoding, garbage.
    status, body = await call(
        live, "POST", "/api/campaigns/spring/leads", data=b"name:phone\nann:2025550101\n"
    )
    assert status == 400 and "column" in body["error"]
    status, body = await call(
        live, "POST", "/api/campaigns/spring/leads", data=b"phone\n\xff\xfe2025550101\n"
    )
    assert status == 400 and "UTF-8" in body["error"]
    garbage = b"phone\n" + b"x" * (1 << 20)
    status, body = await call(live, "POST", "/api/campaigns/spring/leads", data=io.BytesIO(garbage))
    assert status == 400 and "line 2" in body["error"]
    live.service.outbound.max_upload = 1 << 16
    status, body = await call(
        live, "POST", "/api/campaigns/spring/leads", data=b"phone\n" + b"2025550101\n" * 10000
    )
    assert status == 413 and "limit" in body["error"]
    status, body = await call(live, "GET", "/api/campaigns/spring/lists")
    assert body["lists"] == []  # nothing half-imported
    status, body = await call(live, "POST", "/api/campaigns/spring/start")
    status, body = await call(live, "PATCH", "/api/campaigns/spring", json={"max_attempts": 2})
    assert status == 409 and "running" in body["error"]


async def test_openapi_documents_every_route(live: Live) -> None:
    status, doc = await call(live, "GET", "/openapi.json", token=VIEWER)
    assert status == 200 and doc == openapi_document()
    routed = set()
    app = live._runner.app  # type: ignore[attr-defined]
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        for route in resource:
            if route.method == "HEAD":
                continue
            routed.add((route.method.lower(), _template(path)))
    documented = {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "delete", "put")
    }
    assert routed == documented


def _template(path: str) -> str:
    """aiohttp's ``{action:start|pause|stop}`` is OpenAPI's ``{action}``."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


async def test_cli_drives_the_same_api(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "c.toml").write_text(
        'name = "autumn"\ncaller_id = "+12025550100"\nqueue = "sales"\ndial_mode = "progressive"\n'
        '[hours]\nmon = ["09:00-20:00"]\n'
    )
    (tmp_path / "leads.csv").write_bytes(CSV)
    monkeypatch.setenv("CCD_TOKEN", MANAGER)

    async def ccd(*argv: str) -> tuple[int, Any]:
        code = await asyncio.to_thread(main, ["campaign", "--url", live.url, "--json", *argv])
        out, err = capsys.readouterr()
        return code, json.loads(out) if code == 0 else err

    code, out = await ccd("create", str(tmp_path / "c.toml"))
    assert code == 0 and out["status"] == "stopped"
    code, out = await ccd("upload", "autumn", str(tmp_path / "leads.csv"), "--list", "oct")
    assert code == 0 and (out["list"], out["imported"], out["rejected"]) == ("oct", 2, 1)
    code, out = await ccd("start", "autumn")
    assert code == 0 and out["status"] == "running"
    code, out = await ccd("dnc", "add", "2025550199")
    assert code == 0 and out["number"] == "+12025550199"
    code, out = await ccd("callback", "autumn", "oct-2", "--at", "2030-01-02T10:00-05:00")
    assert code == 0 and out["callback_at"] == 1893596400.0
    code, out = await ccd("progress", "autumn")
    assert code == 0 and out["leads"]["total"] == 2
    code, err = await ccd("show", "nope")
    assert code == 4 and "unknown campaign 'nope'" in err
    monkeypatch.setenv("CCD_TOKEN", VIEWER)
    code, err = await ccd("stop", "autumn")
    assert code == 3 and "403" in err


async def test_concurrent_uploads_over_http_all_land(live: Live) -> None:
    assert (await call(live, "POST", "/api/campaigns", json=SPEC))[0] == 201

    def rows(k: int) -> bytes:
        return ("phone\n" + "".join(f"+1212{400 + k}{i:04d}\n" for i in range(300))).encode()

    results = await asyncio.gather(
        *(
            call(live, "POST", f"/api/campaigns/spring/leads?list=l{k}", data=io.BytesIO(rows(k)))
            for k in range(4)
        )
    )
    assert [status for status, _ in results] == [201] * 4
    assert sum(body["imported"] for _, body in results) == 1200
    _, lists = await call(live, "GET", "/api/campaigns/spring/lists")
    assert sorted(r["list_id"] for r in lists["lists"]) == ["l0", "l1", "l2", "l3"]
    _, progress = await call(live, "GET", "/api/campaigns/spring/progress")
    assert progress["leads"]["total"] == 1200


def test_cli_keeps_the_token_off_plain_http_to_other_hosts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCD_TOKEN", MANAGER)
    assert main(["campaign", "--url", "http://192.0.2.7:8080", "list"]) == 2
    assert "https only" in capsys.readouterr().err
