"""Outbound end to end: REST API -> dialer -> AMI -> simulated Asterisk -> agents.

A campaign is created and filled over HTTP, started, watched and stopped; the
simulated Asterisk plays callees with known probabilities. Then the books must add
up three ways: the API's progress with itself (every dial has one outcome, every human
is a connect or an abandon), with the PBX's own record of what each callee did, and
with the router (every connect was a call an agent answered).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from test_http_campaigns import MANAGER, auth
from test_serve_e2e import SPEED, Live, scenario, start_live, stop_live

from acd.agents import AgentState
from ccd.config import OutboundSettings
from ccd.service import AcdService
from sim.pbx_world import OutboundCustomers
from sim.workload import Exponential, Fixed

SPEC = {
    "name": "autumn",
    "caller_id": "+12025550100",
    "queue": "sales",
    "dial_mode": "progressive",
    "hours": {"default": "00:00-24:00"},
    "amd": True,
}
# Network outcome -> the dialer's outcome for that dial.
EXPECTED = {"busy": "busy", "no_answer": "no_answer", "congestion": "congestion", "invalid": "invalid"}


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    sc = scenario([{"group": "sal", "count": 4, "skills": {"sales": 1.0}}], ["sales"])
    lv = await start_live(sc)
    lv.service.config = replace(
        lv.service.config,
        tokens={**lv.service.config.tokens, MANAGER: "manager"},
        outbound=OutboundSettings(max_channels=12, max_cps=4.0, pace_every_s=1.0),
    )
    lv.pbx.pbx.outbound_customers = OutboundCustomers(
        p_human=0.35,
        p_machine=0.15,
        p_busy=0.15,
        p_no_answer=0.15,
        p_congestion=0.1,
        p_invalid=0.1,
        ring_s=Fixed(4.0),
        fail_s=Fixed(2.0),
        talk_s=Exponential(40.0),
        patience_s=Fixed(30.0),
        seed=7,
    )
    yield lv
    await stop_live(lv)


async def api(lv: Live, method: str, path: str, **kw: Any) -> Any:
    async with lv.session.request(method, lv.url + path, headers=auth(MANAGER), **kw) as resp:
        body = await resp.json()
        assert resp.status < 300, body
        return body


async def test_a_campaign_through_the_api_adds_up(live: Live) -> None:
    await api(live, "POST", "/api/campaigns", json=SPEC)
    rows = "\n".join(["phone,name"] + [f"+1212{300 + i // 100}{i % 100:04d},c{i}" for i in range(150)])
    report = await api(live, "POST", "/api/campaigns/autumn/leads", data=rows.encode())
    assert report["imported"] == 150
    await api(live, "POST", "/api/campaigns/autumn/start")

    async def progress() -> dict[str, Any]:
        return dict(await api(live, "GET", "/api/campaigns/autumn/progress"))

    deadline = asyncio.get_running_loop().time() + 60
    while (p := await progress())["dials"] < 60:
        assert asyncio.get_running_loop().time() < deadline, p
        assert p["in_progress"]["ringing"] <= 12  # the trunk's channels
        await asyncio.sleep(0.2)
    await api(live, "POST", "/api/campaigns/autumn/stop")
    while any((p := await progress())["in_progress"].values()) or len(live.service.outbound.active_calls()):
        assert asyncio.get_running_loop().time() < deadline + 60, p
        await asyncio.sleep(0.2)
    await live.service.outbound.flush()

    # The trunk's limits held: never more than max_cps new calls in any second.
    starts = sorted(r.dialled_at for r in live.pbx.pbx.outbound.values())
    assert max(sum(1 for t in starts if s0 <= t < s0 + 1.0) for s0 in starts) <= 4

    # The API's books add up.
    outcomes = p["outcomes"]
    assert sum(outcomes.values()) == p["dials"] >= 60
    assert p["humans"] == p["connects"] + p["abandons"]
    # A human put through after 2 s talked (outcome human) but is an abandon in the ledger.
    assert outcomes.get("human", 0) + outcomes.get("abandoned", 0) == p["humans"]
    assert outcomes.get("human", 0) >= p["connects"]
    assert p["abandon_rate"]["humans"] == p["humans"]

    # ... with what the simulated Asterisk saw, dial by dial.
    pbx = live.pbx.pbx.outbound
    assert len(pbx) == p["dials"]
    seen: Counter[str] = Counter()
    for call_id, rec in pbx.items():
        lead = live.service.outbound.campaigns["autumn"].hopper.get(rec.lead)
        [attempt] = [a for a in lead.attempts if abs(a.at - rec.dialled_at) < 5.0] or [None]
        assert attempt is not None, (call_id, rec)
        got = attempt.outcome.value
        seen[got] += 1
        if rec.result in EXPECTED:
            assert got == EXPECTED[rec.result], (call_id, rec, attempt)
        elif rec.result == "answered" and rec.amd_status == "MACHINE":
            assert got == "machine", (call_id, rec, attempt)
        elif rec.result == "answered":
            assert got in ("human", "abandoned"), (call_id, rec, attempt)
            assert (rec.fate == "completed") == (got == "human"), (call_id, rec, attempt)
    assert seen == Counter(outcomes)

    # ... and with the router: every connect is a call an agent answered.
    stats = live.service.router.queue_stats("outbound:autumn", "total")
    assert stats.answered == p["connects"] + sum(
        1 for r in pbx.values() if r.fate is None and r.result == "answered"
    )

    # Every lead's record tells the same story (audit trail per lead).
    for rec in list(pbx.values())[:10]:
        lead = await api(live, "GET", f"/api/campaigns/autumn/leads/{rec.lead}")
        assert [e["what"] for e in lead["audit"]].count("attempt") == len(lead["attempts"]) >= 1


async def test_a_callback_goes_to_the_agent_who_booked_it(live: Live) -> None:
    """A callback booked for an agent: they are held while it rings, then get the call."""
    await api(live, "POST", "/api/campaigns", json={**SPEC, "amd": False})
    rows = "\n".join(["phone,name"] + [f"+1212{300 + i // 100}{i % 100:04d},c{i}" for i in range(20)])
    await api(live, "POST", "/api/campaigns/autumn/leads?list=l", data=rows.encode())
    # Everyone else's numbers ring out; the callback's number answers (a human, no AMD).
    for i in range(20):
        live.pbx.pbx.script_number(f"+1212{300 + i // 100}{i % 100:04d}", "noanswer")
    target = "+12123000007"
    live.pbx.pbx.script_number(target, "answer", after_s=3.0, talk_s=20.0)
    now = live.service.clock.now()
    await api(
        live, "POST", "/api/campaigns/autumn/callbacks", json={"lead": "l-9", "at": now, "agent": "sal-3"}
    )
    await api(live, "POST", "/api/campaigns/autumn/start")
    records = live.service.recent

    def answered_by() -> str | None:
        for rec in records:
            if rec.queue == "outbound:autumn" and rec.outcome.value == "answered":
                return rec.agent_id
        return None

    await live.until(lambda: answered_by() is not None, timeout=30)
    assert answered_by() == "sal-3"
    [dial] = [r for r in live.pbx.pbx.outbound.values() if r.number == target]
    assert dial.lead == "l-9" and dial.fate in (None, "completed")
    await api(live, "POST", "/api/campaigns/autumn/stop")
    await live.until(lambda: not live.service.outbound.active_calls(), timeout=60)
    lead = await api(live, "GET", "/api/campaigns/autumn/leads/l-9")
    assert [(a["outcome"], a["agent"]) for a in lead["attempts"]] == [("human", "sal-3")]
    assert lead["callback_at"] is None
    # The agent was only held for the call: ready again (or in wrap-up) afterwards.
    assert live.state("sal-3").value in ("ready", "wrap_up")


async def test_pauses_survive_a_restart(redis_url: str) -> None:
    """A pause is ccd's decision, unknown to Asterisk: the store brings it back."""
    sc = scenario([{"group": "sal", "count": 2, "skills": {"sales": 1.0}}], ["sales"])
    lv = await start_live(sc)
    config = replace(lv.service.config, store_url=redis_url)
    await lv.service.stop()
    services = []
    try:
        for run in range(2):
            service = AcdService(config, speed=SPEED)
            services.append(service)
            await service.start()
            await lv.until(
                lambda s=service: s.ready and s.router.agent("sal-1").state is not AgentState.LOGGED_OUT
            )
            if run == 0:
                assert service.pause("sal-1", "lunch") == "paused"
                await service.outbound.flush()
            else:
                await lv.until(lambda s=service: s.router.agent("sal-1").state is AgentState.PAUSED)
                assert service.router.agent("sal-1").reason == "lunch"
                assert service.router.agent("sal-2").state is AgentState.READY
            await service.stop()
    finally:
        for service in services:
            await service.stop()
        await lv.session.close()
        await lv._runner.cleanup()  # type: ignore[attr-defined]
        await lv.pbx.stop()
