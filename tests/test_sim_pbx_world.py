"""The simulated PBX's people: Poisson callers and agents' hands drawn from a scenario."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sim.ami_server import SimulatedAsterisk
from sim.pbx_world import build_world
from sim.scenario import Scenario, parse_scenario


def scenario(rate_per_hour: float, no_answer: float = 0.0) -> Scenario:
    data = {
        "simulation": {"duration": "1h", "seed": 7},
        "agents": [
            {
                "group": "tier1",
                "count": 3,
                "skills": {"support": 1.0},
                "no_answer_probability": no_answer,
                "answer_delay": {"dist": "fixed", "mean": 2},
            }
        ],
        "queues": [
            {
                "name": "support",
                "arrivals": {"rate_per_hour": rate_per_hour},
                "handle_time": {"dist": "fixed", "mean": 30},
                "patience": {"dist": "fixed", "mean": 45},
                "priority": 2,
            }
        ],
    }
    return parse_scenario(data, source="test", base=Path("."))


def test_the_same_seed_gives_the_same_callers_and_agents() -> None:
    plans = []
    for _ in range(2):
        pbx, arrivals = build_world(scenario(360), speed=1.0, seed=3)
        assert arrivals is not None
        plans.append(arrivals._plans[0][1])
        assert pbx.agents.knows("tier1-3") and not pbx.agents.knows("tier1-4")
        assert pbx.agents.answer_delay_s("tier1-1", ring_per_call=True) == 2.0
        assert pbx.queues["support"].priority == 2 and pbx.queues["support"].handle_s() == 30.0
    assert plans[0] == plans[1] and 200 < len(plans[0]) < 520


def test_agents_who_never_answer_ring_per_call_still_answer_their_login() -> None:
    pbx, _ = build_world(scenario(1, no_answer=1.0), speed=1.0, seed=1)
    assert pbx.agents.answer_delay_s("tier1-1", ring_per_call=True) is None
    assert pbx.agents.answer_delay_s("tier1-1", ring_per_call=False) == 2.0


async def test_poisson_callers_arrive_and_without_ccd_go_to_the_fallback() -> None:
    server = SimulatedAsterisk(scenario(3600), speed=500.0, seed=5)  # ~1 caller per virtual second
    await server.start()
    try:
        deadline = time.monotonic() + 5
        while server.pbx.counters.arrived < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        c = server.pbx.counters
        assert c.arrived >= 20
        assert c.fallback >= c.arrived - 1  # nobody sends a heartbeat: straight to the fallback
        first = server.pbx.calls[server.pbx.fallback_calls[0]]
        assert first.queue == "support" and first.patience_s == 45.0 and first.handle_s == 30.0
        assert first.caller.startswith("555") and len(first.caller) == 10
    finally:
        await server.stop()
    assert not server.pbx.errors
