"""Benchmark: simulated calls per second of wall time, against ciw, SimPy and a bare loop.

Run with ``python bench/sim.py`` (needs the ``bench`` extra for ciw and SimPy).

Cases:
* M/M/n+M: 200 agents, AHT 300 s, occupancy about 0.9, exponential patience 120 s,
  8 hours. ccd runs it through the real routing core (acd.router) and its simulated
  PBX; ciw and SimPy run textbook models of the same system in the same process; the
  bare loop is a heapq M/M/n+M with no routing logic at all (the floor for Python).
* Scale: the same queue with 2,000 agents, to show whether cost per call stays flat.
* A 2,000-agent multi-skill day (20 queues, 10 agent groups with shifts), ccd only.

``--compiled DIR`` also times ccd with its compiled core (setup.py) installed in DIR;
``make bench`` builds one into build/compiled and passes it.

Every model records each call's wait and outcome, as a planning model must (ccd writes
its per-call lists, ciw its records); none computes statistics inside the loop.

Each figure is the best of a few runs (noise on shared machines inflates, never
deflates, a timing); ratios are taken between runs made here, now. The runs are
interleaved, one of each model per round, so that a slow spell of the machine falls
on all the models alike rather than on whichever ran during it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: drop its own folder from the
# import path, or "import sim" would import this script.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import heapq
import json
import math
import os
import platform
import random
import subprocess
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import ciw
import simpy

import sim
from sim.engine import Simulation
from sim.scenario import Scenario, parse_scenario

HOURS = 8.0


def mmnm_scenario(
    agents: int, occupancy: float = 0.9, aht: float = 300.0, patience: float = 120.0
) -> Scenario:
    rate = occupancy * agents / aht * 3600
    data = {
        "simulation": {"duration": HOURS * 3600, "seed": 1},
        "agents": [{"group": "g", "count": agents, "skills": {"q": 1.0}}],
        "queues": [
            {
                "name": "q",
                "arrivals": {"rate_per_hour": rate},
                "handle_time": {"dist": "exponential", "mean": aht},
                "patience": {"dist": "exponential", "mean": patience},
            }
        ],
    }
    return parse_scenario(data, source="bench", base=Path("."))


def multiskill_scenario() -> Scenario:
    rng = random.Random(5)
    queues, agents = [], []
    for q in range(20):
        queues.append(
            {
                "name": f"q{q}",
                "arrivals": {"rate_per_hour": 0},  # set below
                "handle_time": {"dist": "lognormal", "mean": 240 + 10 * q, "cv": 0.8},
                "patience": {"dist": "exponential", "mean": 120},
                "skills": {f"s{q}": 0.5},
                "relaxation": [{"after": "30s", "min_levels": {f"s{q}": 0.2}}],
            }
        )
    capacity = [0.0] * 20
    for g in range(10):
        skills = {f"s{q}": round(rng.uniform(0.3, 1.0), 2) for q in rng.sample(range(20), 5)}
        start = 0.0 if g < 5 else 4.0
        agents.append(
            {
                "group": f"g{g}",
                "count": 200,
                "skills": skills,
                "shifts": [
                    {
                        "start": f"{start}h",
                        "end": f"{start + 8}h",
                        "breaks": [{"start": f"{start + 3}h", "duration": "30m"}],
                    }
                ],
            }
        )
        for s, level in skills.items():
            if level >= 0.5:
                capacity[int(s[1:])] += 200 / len(skills)
    for q, cap in zip(queues, capacity, strict=True):
        q["arrivals"]["rate_per_hour"] = 0.45 * cap / q["handle_time"]["mean"] * 3600  # type: ignore[index]
    data = {"simulation": {"duration": "12h", "seed": 2}, "agents": agents, "queues": queues}
    return parse_scenario(data, source="bench-multiskill", base=Path("."))


def run_ccd(sc: Scenario) -> int:
    log = Simulation(sc, 1).run(drain_s=0.0)
    return len(log.entry_arrived)


def run_ciw(agents: int, rate_s: float, aht: float, patience: float) -> int:
    ciw.seed(1)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rate_s)],
        service_distributions=[ciw.dists.Exponential(rate=1 / aht)],
        number_of_servers=[agents],
        reneging_time_distributions=[ciw.dists.Exponential(rate=1 / patience)],
    )
    q = ciw.Simulation(network)
    q.simulate_until_max_time(HOURS * 3600)
    return len(q.get_all_records()) + sum(len(n.all_individuals) for n in q.transitive_nodes)


def run_simpy(agents: int, rate_s: float, aht: float, patience: float) -> int:
    rnd = random.Random(1)
    env = simpy.Environment()
    desk = simpy.Resource(env, capacity=agents)
    count = 0

    waits: list[float] = []  # what a planner's model records: the wait and the outcome
    served: list[bool] = []

    def caller() -> Any:
        arrived = env.now
        with desk.request() as req:
            result = yield req | env.timeout(rnd.expovariate(1 / patience))
            waits.append(env.now - arrived)
            served.append(req in result)
            if req in result:
                yield env.timeout(rnd.expovariate(1 / aht))

    def source() -> Any:
        nonlocal count
        while True:
            yield env.timeout(rnd.expovariate(rate_s))
            count += 1
            env.process(caller())

    env.process(source())
    env.run(until=HOURS * 3600)
    return count


def run_bare(agents: int, rate_s: float, aht: float, patience: float) -> int:
    """M/M/n+M in a heapq loop: FIFO queue, lazy abandonment, no routing logic."""
    rnd = random.Random(1)
    heap: list[tuple[float, int, int, int]] = [(rnd.expovariate(rate_s), 0, 0, 0)]  # (t, seq, kind, call)
    waiting: deque[int] = deque()
    gone: set[int] = set()
    arrived: dict[int, float] = {}
    waits: list[float] = []  # recorded like the others: wait and outcome per call
    free, seq, calls, end = agents, 0, 0, HOURS * 3600
    while heap:
        t, _, kind, call = heapq.heappop(heap)
        if t > end:
            break
        seq += 1
        if kind == 0:  # arrival
            calls += 1
            heapq.heappush(heap, (t + rnd.expovariate(rate_s), seq, 0, calls + 1))
            if free:
                free -= 1
                waits.append(0.0)
                heapq.heappush(heap, (t + rnd.expovariate(1 / aht), seq, 1, call))
            else:
                arrived[call] = t
                waiting.append(call)
                heapq.heappush(heap, (t + rnd.expovariate(1 / patience), seq, 2, call))
        elif kind == 1:  # departure
            while waiting and waiting[0] in gone:
                gone.discard(waiting.popleft())
            if waiting:
                nxt = waiting.popleft()
                waits.append(t - arrived.pop(nxt))
                gone.add(-nxt)  # served: its patience event is void
                heapq.heappush(heap, (t + rnd.expovariate(1 / aht), seq, 1, nxt))
            else:
                free += 1
        elif -call not in gone:  # patience ran out while still waiting
            gone.add(call)
            waits.append(-(t - arrived.pop(call)))  # negative: abandoned
    return calls


def timed(fn: Any, *args: Any, repeats: int) -> tuple[float, int]:
    best, n = math.inf, 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, n


CASES = {
    "M/M/200+M": lambda: mmnm_scenario(200),
    "M/M/2000+M": lambda: mmnm_scenario(2000),
    "multi-skill day, 2,000 agents, 20 queues": multiskill_scenario,
}


def time_ccd(repeats: int) -> dict[str, tuple[float, int]]:
    return {case: timed(run_ccd, make(), repeats=repeats) for case, make in CASES.items()}


def time_ccd_compiled(site: Path, repeats: int) -> dict[str, tuple[float, int]]:
    """The same cases in a process importing the compiled core from ``site``.

    A separate process: one process cannot hold both builds of a module. Its working
    directory is ``site`` itself, so the sources cannot shadow the compiled modules.
    """
    env = {**os.environ, "PYTHONPATH": str(site.resolve())}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--ccd-only", "--repeats", str(repeats)]
    out = subprocess.run(cmd, env=env, cwd=site, capture_output=True, text=True, check=True).stdout
    figures = json.loads(out)
    if figures.pop("core") != "compiled":
        raise SystemExit(
            f"{site} does not hold a compiled core (CCD_COMPILE=1 pip install --target {site} .)"
        )
    return {case: (wall, n) for case, (wall, n) in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds (best of)")
    parser.add_argument("--skip-ciw-2000", action="store_true", help="ciw at 2,000 agents takes minutes")
    parser.add_argument(
        "--compiled", type=Path, metavar="DIR", help="also time the compiled core installed in DIR"
    )
    parser.add_argument("--ccd-only", action="store_true", help=argparse.SUPPRESS)  # for --compiled
    args = parser.parse_args()
    if args.ccd_only:
        # A fresh process: one untimed run of each case first, as the models timed in
        # the main process are warm (memory arenas grown, code paths touched) after
        # the first round.
        time_ccd(1)
        print(json.dumps({"core": sim.core(), **time_ccd(args.repeats)}))
        return
    print(f"# bench/sim.py  {datetime.now(UTC):%Y-%m-%d}  {platform.machine()} {platform.python_version()}")
    results: dict[str, dict[str, tuple[float, int]]] = {case: {} for case in CASES}

    def keep_best(case: str, name: str, figure: tuple[float, int]) -> None:
        old = results[case].get(name)
        if old is None or figure[0] < old[0]:
            results[case][name] = figure

    ours = [f"ccd ({sim.core()})"] + ([] if args.compiled is None else ["ccd (compiled)"])
    aht, patience = 300.0, 120.0
    for _ in range(args.repeats):
        for case, figure in time_ccd(1).items():
            keep_best(case, ours[0], figure)
        if args.compiled is not None:
            for case, figure in time_ccd_compiled(args.compiled, 1).items():
                keep_best(case, "ccd (compiled)", figure)
        for agents in (200, 2000):
            rate_s = 0.9 * agents / aht
            case = f"M/M/{agents}+M"
            keep_best(case, "bare heapq loop", timed(run_bare, agents, rate_s, aht, patience, repeats=1))
            keep_best(case, "SimPy", timed(run_simpy, agents, rate_s, aht, patience, repeats=1))
    for agents in (200, 2000):  # one run each: ciw takes seconds to minutes
        if agents == 200 or not args.skip_ciw_2000:
            rate_s = 0.9 * agents / aht
            keep_best(f"M/M/{agents}+M", "ciw", timed(run_ciw, agents, rate_s, aht, patience, repeats=1))
    print(f"{'case':<58} {'calls':>8} {'wall s':>8} {'calls/s':>9}")
    for case, row in results.items():
        for name, (wall, n) in row.items():
            print(f"{case + ': ' + name:<58} {n:>8} {wall:>8.2f} {n / wall:>9.0f}")
        for name in ours:
            wall, n = row[name]
            rate = n / wall
            ratios = [f"{rate / (m / w):.2f}x {ref}" for ref, (w, m) in row.items() if ref not in ours]
            if ratios:
                print(f"  {name} / " + ", ".join(ratios))


if __name__ == "__main__":
    main()
