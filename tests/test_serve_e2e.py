"""End to end: the live service against the simulated Asterisk, over real TCP AMI.

Everything here is the real thing except the telephone network: ``ccd.service`` drives
``acd.Router`` through ``telephony`` (panoramisk 1.4 underneath) against
``sim.ami_server.SimulatedAsterisk`` listening on a loopback port, and the HTTP API is
a real aiohttp server scraped over HTTP. Both clocks run 20x faster than real time, so
a 30 s conversation takes 1.5 s.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from acd.agents import AgentProfile, AgentState
from acd.events import CallOutcome
from ccd.config import AgentSettings, AmiSettings, ServiceConfig
from ccd.http import build_app
from ccd.service import AcdService, ServiceError
from sim.ami_server import SimulatedAsterisk
from sim.scenario import Scenario, parse_scenario

SPEED = 20.0
ADMIN = "admin-token-for-tests-0001"
VIEWER = "viewer-token-for-tests-001"


def scenario(
    groups: list[dict[str, Any]], queues: list[str], extra: dict[str, dict[str, Any]] | None = None
) -> Scenario:
    data = {
        "simulation": {"duration": "8h"},
        "agents": groups,
        "queues": [
            {
                "name": q,
                "arrivals": {"rate_per_hour": 1},  # unused: workload=False
                "handle_time": {"dist": "fixed", "mean": 30},
                "service_target": "20s",
                **(extra or {}).get(q, {}),
            }
            for q in queues
        ],
    }
    return parse_scenario(data, source="test", base=Path("."))


@dataclass
class Live:
    pbx: SimulatedAsterisk
    service: AcdService
    url: str
    session: aiohttp.ClientSession

    async def until(self, what: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the condition")
            await asyncio.sleep(0.02)

    def state(self, agent_id: str) -> AgentState:
        return self.service.router.agent(agent_id).state

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with self.session.get(f"{self.url}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


async def start_live(sc: Scenario, *, mode: str = "session", ring_timeout_s: float = 15.0) -> Live:
    pbx = SimulatedAsterisk(
        sc, speed=SPEED, username="ccd", secret="pbx-secret", auth_delay_s=0.01, workload=False
    )
    await pbx.start()
    agents = [
        AgentSettings(
            profile=AgentProfile(f"{g.group}-{k + 1}", group=g.group, skills=g.skills),
            device=f"PJSIP/{g.group}-{k + 1}",
            mode=mode,
            auto_login=True,
        )
        for g in sc.agents
        for k in range(g.count)
    ]
    config = ServiceConfig(
        source="test",
        ami=AmiSettings(port=pbx.port, username="ccd", secret="pbx-secret", ping_interval_s=1.0),
        tokens={ADMIN: "admin", VIEWER: "viewer"},
        ring_timeout_s=ring_timeout_s,
        queues=tuple(replace(q.config, ring_timeout_s=ring_timeout_s + 5.0) for q in sc.queues),
        agents=tuple(agents),
    )
    service = AcdService(config, speed=SPEED)
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await service.start()
    live = Live(pbx, service, f"http://127.0.0.1:{port}", aiohttp.ClientSession())
    live._runner = runner  # type: ignore[attr-defined]
    await live.until(lambda: all(live.state(a.profile.agent_id) is AgentState.READY for a in agents))
    return live


async def stop_live(live: Live) -> None:
    await live.session.close()
    await live.service.stop()
    await live._runner.cleanup()  # type: ignore[attr-defined]
    await live.pbx.stop()


@pytest.fixture
async def two_skills() -> AsyncIterator[Live]:
    sc = scenario(
        [
            {"group": "sup", "count": 2, "skills": {"support": 1.0}},
            {"group": "sal", "count": 1, "skills": {"sales": 1.0}},
        ],
        ["support", "sales"],
    )
    live = await start_live(sc)
    yield live
    await stop_live(live)


async def test_calls_are_routed_to_skilled_agents_and_metrics_add_up(two_skills: Live) -> None:
    live = two_skills
    calls = [
        live.pbx.pbx.place_call("support", caller="5551000001", handle_s=30.0),
        live.pbx.pbx.place_call("sales", caller="5551000002", handle_s=30.0),
        live.pbx.pbx.place_call("support", caller="5551000003", handle_s=30.0),
    ]
    await live.until(lambda: len(live.service.recent) == 3)
    by_call = {r.call_id: r for r in live.service.recent}
    assert set(by_call) == set(calls)
    assert all(r.outcome is CallOutcome.ANSWERED for r in by_call.values())
    assert by_call[calls[1]].agent_id == "sal-1"
    assert {by_call[calls[0]].agent_id, by_call[calls[2]].agent_id} == {"sup-1", "sup-2"}
    # Conversations end (the simulated agents hang up after 30 s) and agents are free again.
    await live.until(lambda: not live.service.router.calls())
    await live.until(lambda: all(live.state(a) is AgentState.READY for a in ("sup-1", "sup-2", "sal-1")))
    m = await live.metrics()
    assert m[("ccd_calls_offered_total", (("queue", "support"),))] == 2
    assert m[("ccd_calls_answered_total", (("queue", "support"),))] == 2
    assert m[("ccd_calls_answered_total", (("queue", "sales"),))] == 1
    assert m[("ccd_call_wait_seconds_count", (("outcome", "answered"), ("queue", "support")))] == 2
    assert m[("ccd_agents", (("state", "ready"),))] == 3
    assert m[("ccd_ami_connected", ())] == 1
    assert m[("ccd_queue_waiting_calls", (("queue", "support"),))] == 0


async def test_callers_who_give_up_are_abandons(two_skills: Live) -> None:
    live = two_skills
    first = live.pbx.pbx.place_call("sales", caller="5551000010", handle_s=200.0)
    await live.until(lambda: live.state("sal-1") is AgentState.TALKING)
    gone = [
        live.pbx.pbx.place_call("sales", caller=f"55510000{i}", patience_s=5.0, handle_s=30) for i in (11, 12)
    ]
    await live.until(lambda: sum(r.outcome is CallOutcome.ABANDONED for r in live.service.recent) == 2)
    assert {r.call_id for r in live.service.recent if r.outcome is CallOutcome.ABANDONED} == set(gone)
    assert live.service.router.call(first) is not None  # still talking
    m = await live.metrics()
    assert m[("ccd_calls_offered_total", (("queue", "sales"),))] == 3
    assert m[("ccd_calls_abandoned_total", (("queue", "sales"),))] == 2
    assert m[("ccd_calls_answered_total", (("queue", "sales"),))] == 1


async def test_reconnect_resyncs_and_loses_no_call(two_skills: Live) -> None:
    live = two_skills
    talking = [live.pbx.pbx.place_call("support", caller=f"555100002{i}", handle_s=60.0) for i in (1, 2)]
    await live.until(
        lambda: live.state("sup-1") is AgentState.TALKING and live.state("sup-2") is AgentState.TALKING
    )
    waiting = live.pbx.pbx.place_call("support", caller="5551000023", handle_s=20.0)
    await live.until(lambda: live.service.router.waiting_count("support") == 1)
    reconnects = live.service.ami.reconnects
    live.pbx.drop_sessions()
    # A caller arrives while ccd is disconnected: the resync must find them on hold.
    late = live.pbx.pbx.place_call("support", caller="5551000024", handle_s=20.0)
    await live.until(lambda: live.service.ami.reconnects > reconnects and live.service.ready)
    await live.until(
        lambda: {r.call_id for r in live.service.recent} >= {*talking, waiting, late}, timeout=30
    )
    answered = {r.call_id for r in live.service.recent if r.outcome is CallOutcome.ANSWERED}
    assert answered == {*talking, waiting, late}
    await live.until(lambda: not live.service.router.calls(), timeout=30)
    m = await live.metrics()
    assert m[("ccd_ami_reconnects_total", ())] >= 1


async def test_agent_controls_need_a_token_and_a_role(two_skills: Live) -> None:
    live = two_skills
    url = f"{live.url}/api/agents/sup-1/pause"
    async with live.session.post(url, json={"reason": "lunch"}) as resp:
        assert resp.status == 401
        assert "token" in (await resp.json())["error"]
    async with live.session.post(
        url, json={"reason": "lunch"}, headers={"Authorization": f"Bearer {VIEWER}"}
    ) as resp:
        assert resp.status == 403
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with live.session.post(url, data=b"{not json", headers=headers) as resp:
        assert resp.status == 400
        assert "JSON" in (await resp.json())["error"]
    async with live.session.post(url, json={"reason": "lunch"}, headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["state"] == "paused"
    async with live.session.post(f"{live.url}/api/agents/nobody/ready", headers=headers) as resp:
        assert resp.status == 404
    # Paused, sup-1 gets no call; sup-2 does.
    call = live.pbx.pbx.place_call("support", caller="5551000031", handle_s=10.0)
    await live.until(lambda: any(r.call_id == call for r in live.service.recent))
    assert next(r for r in live.service.recent if r.call_id == call).agent_id == "sup-2"
    async with live.session.post(f"{live.url}/api/agents/sup-1/ready", headers=headers) as resp:
        assert (await resp.json())["state"] == "ready"
    async with live.session.get(f"{live.url}/api/agents") as resp:  # reads are open on loopback
        states = {a["id"]: a["state"] for a in (await resp.json())["agents"]}
    assert states["sup-1"] == "ready"


async def test_agent_leg_dropped_mid_call_requeues_the_caller(two_skills: Live) -> None:
    live = two_skills
    call = live.pbx.pbx.place_call("support", caller="5551000041", handle_s=60.0)
    await live.until(lambda: any(r.call_id == call for r in live.service.recent))
    first = next(r for r in live.service.recent if r.call_id == call).agent_id
    assert first is not None
    with pytest.raises(ServiceError, match="talking"):
        live.service.logout(first)  # refused: it would cut the caller off
    live.service.logout(first, force=True)  # Hangup of the agent's session leg, as if their phone dropped
    await live.until(lambda: live.state(first) is AgentState.LOGGED_OUT)
    other = "sup-2" if first == "sup-1" else "sup-1"
    await live.until(lambda: live.state(other) is AgentState.TALKING)
    assert live.service.router.call(call) is not None
    assert live.service.router.call(call).agent_id == other  # type: ignore[union-attr]


async def test_transfer_to_another_queue(two_skills: Live) -> None:
    live = two_skills
    call = live.pbx.pbx.place_call("support", caller="5551000051", handle_s=60.0)
    await live.until(
        lambda: (
            live.service.router.call(call) is not None
            and live.service.router.call(call).state.value == "talking"
        )
    )  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with live.session.post(
        f"{live.url}/api/calls/{call}/transfer", json={"queue": "sales"}, headers=headers
    ) as r:
        assert r.status == 202
    await live.until(lambda: live.state("sal-1") is AgentState.TALKING)
    assert live.service.router.call(call).agent_id == "sal-1"  # type: ignore[union-attr]


async def test_ring_no_answer_requeues_and_pauses_the_agent() -> None:
    sc = scenario(
        [
            {"group": "lazy", "count": 1, "skills": {"support": 1.0}, "no_answer_probability": 1.0},
            {
                "group": "good",
                "count": 1,
                "skills": {"support": 1.0},
                "answer_delay": {"dist": "fixed", "mean": 2},
            },
        ],
        ["support"],
    )
    live = await start_live(sc, mode="ring", ring_timeout_s=6.0)
    try:
        calls = [live.pbx.pbx.place_call("support", caller=f"555100006{i}", handle_s=10.0) for i in (1, 2)]
        await live.until(lambda: len([r for r in live.service.recent if r.call_id in calls]) == 2, timeout=30)
        assert {r.agent_id for r in live.service.recent if r.call_id in calls} == {"good-1"}
        assert live.state("lazy-1") is AgentState.PAUSED
        assert live.service.router.agent("lazy-1").reason == "rna"
    finally:
        await stop_live(live)


async def test_graceful_stop_sends_waiting_callers_to_the_fallback(two_skills: Live) -> None:
    live = two_skills
    live.pbx.pbx.place_call("sales", caller="5551000071", handle_s=120.0)
    await live.until(lambda: live.state("sal-1") is AgentState.TALKING)
    waiting = live.pbx.pbx.place_call("sales", caller="5551000072", handle_s=30.0)
    await live.until(lambda: live.service.router.waiting_count("sales") == 1)
    await live.service.stop()
    await live.until(lambda: waiting in live.pbx.pbx.fallback_calls)


if os.environ.get("CCD_E2E_DEBUG"):  # pragma: no cover
    import logging

    logging.basicConfig(level=logging.DEBUG)


async def books_balance(live: Live) -> None:
    """Every offered call is answered, abandoned, overflowed or still in the ACD, on
    /metrics and on /api/queues alike."""
    m = await live.metrics()
    async with live.session.get(f"{live.url}/api/queues") as resp:
        api = {q["name"]: q for q in (await resp.json())["queues"]}
    router = live.service.router
    for q in router.queue_names:
        in_acd = sum(1 for c in router.calls() if c.queue == q and c.state.value != "talking")
        talking = sum(1 for c in router.calls() if c.queue == q and c.state.value == "talking")
        offered = m[("ccd_calls_offered_total", (("queue", q),))]
        done = sum(
            m[(f"ccd_calls_{k}_total", (("queue", q),))] for k in ("answered", "abandoned", "overflowed")
        )
        assert offered == done + in_acd, q
        assert api[q]["stats"]["today"]["offered"] == offered
        assert api[q]["stats"]["today"]["answered"] + talking >= talking  # the API reads the same router
        assert api[q]["stats"]["today"]["answered"] == m[("ccd_calls_answered_total", (("queue", q),))]


def pbx_outcomes(live: Live, calls: list[str]) -> dict[str, str | None]:
    return {c: live.pbx.pbx.calls[c].outcome for c in calls}


async def test_drops_during_hand_offs_strand_nobody_and_pause_nobody(two_skills: Live) -> None:
    live = two_skills
    calls: list[str] = []
    for round_ in range(3):
        # Calls arrive, and the link drops in the middle of their hand-off to agents.
        calls += [
            live.pbx.pbx.place_call("support", caller=f"55520{round_}{i}", handle_s=8.0) for i in range(3)
        ]
        await asyncio.sleep(0.005)
        before = live.service.ami.reconnects
        live.pbx.drop_sessions()
        calls.append(live.pbx.pbx.place_call("sales", caller=f"55521{round_}", handle_s=8.0))
        await live.until(lambda b=before: live.service.ami.reconnects > b and live.service.ready)
    await live.until(lambda: all(o is not None for o in pbx_outcomes(live, calls).values()), timeout=40)
    assert set(pbx_outcomes(live, calls).values()) == {"completed"}
    await live.until(lambda: not live.service.router.calls())
    for agent in ("sup-1", "sup-2", "sal-1"):
        snap = live.service.router.agent(agent)
        assert snap.state is AgentState.READY and snap.reason == "", (agent, snap)
    assert live.service.ami.reconnects >= 3
    await books_balance(live)


async def test_books_balance_through_abandons_and_requeues(two_skills: Live) -> None:
    live = two_skills
    first = live.pbx.pbx.place_call("sales", caller="5551000080", handle_s=40.0)
    await live.until(lambda: live.state("sal-1") is AgentState.TALKING)
    live.pbx.pbx.place_call("sales", caller="5551000081", patience_s=3.0, handle_s=10.0)
    live.pbx.pbx.place_call("sales", caller="5551000082", handle_s=10.0)
    await live.until(lambda: any(r.outcome is CallOutcome.ABANDONED for r in live.service.recent))
    await books_balance(live)
    live.service.logout("sal-1", force=True)  # cut off mid-call: offered again
    await live.until(lambda: live.state("sal-1") is AgentState.LOGGED_OUT)
    await books_balance(live)
    assert live.service.router.call(first) is not None
    assert live.pbx.pbx.calls[first].outcome is None  # back on hold in Asterisk, not lost


async def test_unknown_queue_goes_to_the_fallback_at_once(two_skills: Live) -> None:
    live = two_skills
    call = live.pbx.pbx.place_call("nosuchqueue", caller="5551000090", handle_s=10.0)
    await live.until(lambda: call in live.pbx.pbx.fallback_calls, timeout=5)
    assert live.service.router.call(call) is None


async def test_graceful_stop_withdraws_the_heartbeat(two_skills: Live) -> None:
    live = two_skills
    assert float(live.pbx.pbx.globals["CCD_HEARTBEAT"]) > 0
    await live.service.stop()
    assert live.pbx.pbx.globals["CCD_HEARTBEAT"] == "0"
    assert not live.service.ami.connected
    # A caller arriving now is not announced to a ccd that is gone: straight to the fallback.
    late = live.pbx.pbx.place_call("support", caller="5551000091", handle_s=10.0)
    await live.until(lambda: late in live.pbx.pbx.fallback_calls, timeout=5)


async def test_overflow_after_max_wait_goes_to_voicemail() -> None:
    sc = scenario(
        [{"group": "sal", "count": 1, "skills": {"sales": 1.0}}],
        ["sales"],
        {"sales": {"max_wait": "10s", "overflow": {"action": "voicemail"}}},
    )
    live = await start_live(sc)
    try:
        live.pbx.pbx.place_call("sales", caller="5551000100", handle_s=200.0)
        await live.until(lambda: live.state("sal-1") is AgentState.TALKING)
        waiting = live.pbx.pbx.place_call("sales", caller="5551000101", handle_s=10.0)
        await live.until(lambda: waiting in live.pbx.pbx.overflow_calls.get("voicemail", []), timeout=10)
        assert any(r.outcome is CallOutcome.OVERFLOWED for r in live.service.recent)
        await books_balance(live)
    finally:
        await stop_live(live)


async def test_caller_hangs_up_while_the_agent_rings() -> None:
    sc = scenario(
        [
            {
                "group": "slow",
                "count": 1,
                "skills": {"support": 1.0},
                "answer_delay": {"dist": "fixed", "mean": 20},
            }
        ],
        ["support"],
    )
    live = await start_live(sc, mode="ring", ring_timeout_s=30.0)
    try:
        call = live.pbx.pbx.place_call("support", caller="5551000110", patience_s=5.0, handle_s=10.0)
        await live.until(lambda: any(r.call_id == call for r in live.service.recent), timeout=10)
        rec = next(r for r in live.service.recent if r.call_id == call)
        assert rec.outcome is CallOutcome.ABANDONED
        await live.until(lambda: live.state("slow-1") is AgentState.READY)  # free again, not paused
        assert live.service.router.agent("slow-1").reason == ""
    finally:
        await stop_live(live)


async def test_a_failed_login_is_reported_and_can_be_retried() -> None:
    sc = scenario([{"group": "sup", "count": 1, "skills": {"support": 1.0}}], ["support"])
    live = await start_live(sc)
    try:
        # An agent whose phone Asterisk does not know: the login call fails (reason 0).
        ghost = AgentSettings(AgentProfile("ghost", skills={"support": 1.0}), device="PJSIP/ghost")
        live.service.agents["ghost"] = ghost
        live.service.router.register_agent(ghost.profile)
        live.service.tracker.set_agent("ghost", mode="session", device="PJSIP/ghost")
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with live.session.post(f"{live.url}/api/agents/ghost/login", headers=headers) as resp:
            assert resp.status == 202
        await live.until(lambda: live.service.login_status.get("ghost", ("",))[0].startswith("failed"))
        async with live.session.get(f"{live.url}/api/agents") as resp:
            row = next(a for a in (await resp.json())["agents"] if a["id"] == "ghost")
        assert row["state"] == "logged_out" and row["login"].startswith("failed")
        live.pbx.pbx.add_agent("ghost")  # the phone is fixed: a new login works
        async with live.session.post(f"{live.url}/api/agents/ghost/login", headers=headers) as resp:
            assert resp.status == 202
        await live.until(lambda: live.state("ghost") is AgentState.READY)
    finally:
        await stop_live(live)
