"""The simulator, driving the real router, against queueing theory.

Method: R independent replications (fixed seeds) of a long stationary run after a
warm-up; each replication's figure is one observation, so a Student-t interval over
the R values is an honest confidence interval for the simulated mean. The analytic
value (acd.erlang, itself checked against 40-digit mpmath) must lie inside it.

Tolerance: each check uses a 99.9 % interval. There are 17 such checks in this file, so
even if the simulator were exactly right the chance that any one of them fails is at
most 17 x 0.1 % = 1.7 % (Bonferroni). Seeds are fixed, so the outcome is reproducible;
the intervals were not widened or the seeds chosen to make the tests pass. The warm-up
(2 h, over 100 mean handle times) makes the start-empty bias negligible next to the
intervals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from acd.erlang import erlang_a_kpis, erlang_c_kpis
from sim.engine import Simulation
from sim.replicate import run_one, run_replications
from sim.results import summarise
from sim.scenario import Scenario, parse_scenario

CONFIDENCE = 0.999


def scenario(
    agents: int,
    rate_per_hour: float,
    aht: float,
    patience: float | None,
    hours: float = 60.0,
    target: float = 20.0,
) -> Scenario:
    queue: dict[str, Any] = {
        "name": "q",
        "arrivals": {"rate_per_hour": rate_per_hour},
        "handle_time": {"dist": "exponential", "mean": aht},
        "service_target": target,
    }
    if patience is not None:
        queue["patience"] = {"dist": "exponential", "mean": patience}
    data = {
        "simulation": {"duration": hours * 3600, "seed": 11, "warmup": "2h", "interval": "1h"},
        "agents": [{"group": "g", "count": agents, "skills": {"q": 1.0}}],
        "queues": [queue],
    }
    return parse_scenario(data, source="test", base=Path("."))


def replicate(sc: Scenario, r: int) -> list[dict[str, Any]]:
    root = np.random.SeedSequence(sc.seed)
    return [run_one(sc, s) for s in root.spawn(r)]


def check(values: list[float], expected: float, what: str) -> None:
    arr = np.asarray(values)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    assert abs(arr.mean() - expected) <= half, (
        f"{what}: simulated {arr.mean():.5g} ± {half:.2g}, theory {expected:.5g}"
    )


@pytest.mark.parametrize(
    ("agents", "rate", "aht"),
    [
        (10, 160.0, 180.0),  # rho = 0.8
        (50, 540.0, 300.0),  # rho = 0.9, larger pool
    ],
)
def test_mmn_matches_erlang_c(agents: int, rate: float, aht: float) -> None:
    sc = scenario(agents, rate, aht, None)
    runs = replicate(sc, 8)
    load = rate / 3600 * aht
    k = erlang_c_kpis(agents=agents, load=load, aht_s=aht, target_s=20)
    q = [r["queues"]["q"] for r in runs]
    check([x["p_wait"] for x in q], k.p_wait, "P(wait)")
    check([x["service_level"] for x in q], k.service_level, "service level")
    check([x["asa_s"] for x in q], k.asa_s, "ASA")
    check([r["groups"]["g"]["occupancy"] for r in runs], k.occupancy, "occupancy")


@pytest.mark.parametrize(
    ("agents", "rate", "aht", "patience"),
    [
        (20, 300.0, 300.0, 120.0),  # overload: 25 Erlangs on 20 agents
        (10, 180.0, 180.0, 60.0),  # 9 Erlangs, impatient callers: ~8 % abandon
    ],
)
def test_mmn_m_matches_erlang_a(agents: int, rate: float, aht: float, patience: float) -> None:
    sc = scenario(agents, rate, aht, patience)
    runs = replicate(sc, 8)
    load = rate / 3600 * aht
    k = erlang_a_kpis(agents=agents, load=load, aht_s=aht, patience_s=patience, target_s=20)
    q = [r["queues"]["q"] for r in runs]
    check([x["p_abandon"] for x in q], k.p_abandon, "P(abandon)")
    check([x["p_wait"] for x in q], k.p_wait, "P(wait)")
    check([x["service_level"] for x in q], k.service_level, "service level")
    check([x["asa_s"] for x in q], k.asa_s, "ASA")


def test_patience_equal_to_handle_time_gives_poisson_number_in_system() -> None:
    # With theta = mu every caller present leaves at rate mu, served or not: the number
    # in system is Poisson(A) exactly, whatever the number of agents. So the mean number
    # waiting plus the mean number busy is A. (One check.)
    agents, rate, aht = 8, 240.0, 150.0  # A = 10 Erlangs on 8 agents
    runs = replicate(scenario(agents, rate, aht, aht), 8)
    load = rate / 3600 * aht
    in_system = [r["queues"]["q"]["mean_queue_length"] + agents * r["groups"]["g"]["occupancy"] for r in runs]
    check(in_system, load, "mean number in system")


def test_conservation_and_littles_law_on_every_run() -> None:
    sc = scenario(12, 300.0, 180.0, 90.0, hours=10)
    log = Simulation(sc, 5).run()
    out = summarise(log, sc)
    q = out["queues"]["q"]
    assert q["offered"] == q["answered"] + q["abandoned"] + q["overflowed"] + q["unresolved"]
    # Little: time-average number waiting = arrival rate x mean time waiting in queue.
    measured = (log.entry_arrived >= sc.warmup_s) & (log.entry_arrived < sc.duration_s)
    exit_queue = np.where(~np.isnan(log.entry_offered), log.entry_offered, log.entry_left)[measured]
    mean_queue_time = float(np.nanmean(exit_queue - log.entry_arrived[measured]))
    rate = measured.sum() / (sc.duration_s - sc.warmup_s)
    # Differs only by calls straddling the window's ends: a few in 3,000, so 2 %.
    assert q["mean_queue_length"] == pytest.approx(rate * mean_queue_time, rel=0.02)


def test_same_seed_same_results_whatever_the_jobs() -> None:
    sc = scenario(10, 180.0, 180.0, 60.0, hours=3)
    one = run_replications(sc, replications=3, jobs=1)
    two = run_replications(sc, replications=3, jobs=2)
    for result in (one, two):
        result.pop("cpu_s")
    assert one == two
    again = run_replications(sc, replications=3, jobs=1)
    again.pop("cpu_s")
    assert again == one
    other = run_replications(sc, replications=3, jobs=1, seed=99)
    assert other["queues"]["q"]["offered"] != one["queues"]["q"]["offered"]


@st.composite
def random_scenarios(draw: st.DrawFn) -> Scenario:
    """Small but busy centres with everything switched on: shifts and breaks, agents
    who do not answer, ring times, relaxation, overflow between queues, priorities."""
    queues = []
    for q in range(draw(st.integers(1, 3))):
        queue: dict[str, Any] = {
            "name": f"q{q}",
            "arrivals": {"rate_per_hour": draw(st.sampled_from([30, 120, 400]))},
            "handle_time": {
                "dist": draw(st.sampled_from(["exponential", "lognormal"])),
                "mean": 120,
                "cv": 0.7,
            },
            "skills": {f"s{q}": draw(st.sampled_from([0.0, 0.5]))},
            "priority": draw(st.integers(0, 2)),
            "wrap_up": draw(st.sampled_from([0, 10])),
        }
        if queue["handle_time"]["dist"] == "exponential":
            del queue["handle_time"]["cv"]
        if draw(st.booleans()):
            queue["patience"] = {"dist": "exponential", "mean": draw(st.sampled_from([30, 120]))}
        if draw(st.booleans()) and queue["skills"][f"s{q}"] > 0:
            queue["relaxation"] = [{"after": "20s", "min_levels": {f"s{q}": 0.0}}]
        if q > 0 and draw(st.booleans()):
            queue["max_wait"] = "60s"
            queue["overflow"] = {"action": "queue", "target": "q0"}
        queues.append(queue)
    agents = []
    for g in range(draw(st.integers(1, 3))):
        agents.append(
            {
                "group": f"g{g}",
                "count": draw(st.integers(1, 8)),
                "skills": {f"s{q}": draw(st.sampled_from([0.3, 0.6, 1.0])) for q in range(len(queues))},
                "answer_delay": {"dist": "fixed", "mean": draw(st.sampled_from([0, 3]))},
                "no_answer_probability": draw(st.sampled_from([0.0, 0.2])),
                "shifts": [{"start": "0h", "end": "1h30m", "breaks": [{"start": "30m", "duration": "10m"}]}],
            }
        )
    data = {
        "simulation": {"duration": "2h", "seed": draw(st.integers(0, 1000)), "interval": "30m"},
        "agents": agents,
        "queues": queues,
    }
    return parse_scenario(data, source="random", base=Path("."))


@settings(max_examples=25, deadline=None)
@given(random_scenarios())
def test_random_scenarios_keep_their_books(sc: Scenario) -> None:
    # The router raises on any inconsistency it is told about (an answer from an agent
    # not ringing, an agent asked to do two things); here the books must balance too.
    log = Simulation(sc, sc.seed).run()
    out = summarise(log, sc)
    for q in out["queues"].values():
        assert q["offered"] == q["answered"] + q["abandoned"] + q["overflowed"] + q["unresolved"]
    answered = log.entry_outcome == 1
    assert np.all(log.entry_answered[answered] >= log.entry_arrived[answered])
    assert np.all(log.entry_offered[answered] <= log.entry_answered[answered])
    ended = ~np.isnan(log.entry_ended)
    assert np.all(log.entry_ended[ended] >= log.entry_answered[ended])
    for g in out["groups"].values():
        assert math.isnan(g["occupancy"]) or 0.0 <= g["occupancy"] <= 1.0 + 1e-9
