"""Benchmark: abandon rate and agent utilisation of the pacing policies, on a grid.

Run with ``python bench/pacing.py [--jobs 2] [--seeds 3] [--hours 4] [--quick]``.

For every scenario of the grid (agents 3–200 × human-answer rate 10–60 % × mean talk
time 60–600 s), the simulator (``sim``, the real router and the real dialling loop of
``dialer.runner``) runs the same list and the same callees under three policies:
``progressive`` (one call per idle agent), ``vicidial_adaptive`` (VICIdial's
ADAPT_HARD_LIMIT, ``dialer/vicidial.py``) and ``predictive`` (``dialer/predictive.py``),
each over several seeds. Printed per scenario and policy: the abandon rate over the
whole run (abandons ÷ human answers, what the regulator's window holds), its worst
seed, and agent utilisation (talk time ÷ logged-in time), with predictive's
utilisation as a ratio over each reference.

Common to all scenarios: a pure outbound team logged in for the whole run, answers
{human p, machine 15 %, busy 5 %, invalid 2 %, no answer the rest}, AMD on and exact
(so humans and machines are what they are), ring time to answer lognormal (mean 8 s,
cv 0.5), no-answers released at the 25 s ring timeout, talk lognormal (cv 1.0),
wrap-up lognormal (mean 10 s, cv 0.5), a 3 % target. The campaign's dial-level cap is
10 calls per working agent (at a 10 % answer rate a cap of 3 binds). VICIdial runs
with its own defaults, ``adaptive_maximum_level`` 3: in a trial with it raised to 10,
VICIdial's level swung between 1 and 10 and it abandoned 7–33 % of humans, so its
default is the fairer reference. No warm-up is cut: the first minutes, when estimates
are thin, count as they would in the regulator's window.
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

# bench/sim.py would shadow the sim package: this folder is sys.path[0] when run as a script.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sim.engine import Simulation  # noqa: E402
from sim.results import summarise  # noqa: E402
from sim.scenario import parse_scenario  # noqa: E402

POLICIES = ("progressive", "vicidial_adaptive", "predictive")
AGENTS = (3, 10, 50, 200)
HUMAN = (0.1, 0.3, 0.6)
TALK = (60, 180, 600)
TARGET = 0.03
MAX_LEVEL = 10.0
WRAP_S = 10.0


def scenario(agents: int, human: float, talk: int, policy: str, hours: float) -> dict[str, Any]:
    # Enough leads that the hopper never runs dry: each human takes talk + wrap-up of
    # an agent, each lead is dialled at least once.
    leads = math.ceil(agents * hours * 3600 / (talk + WRAP_S) / human * 1.3) + 100
    return {
        "simulation": {"duration": f"{hours}h", "seed": 1, "warmup": "0s", "interval": "1h"},
        "agents": [{"group": "team", "count": agents, "skills": {"sales": 1.0}}],
        "campaigns": [
            {
                "name": "bench",
                "queue": "sales",
                "leads": leads,
                "pacing": policy,
                "abandon_target": TARGET,
                "max_dial_level": MAX_LEVEL,
                "answer": {
                    "human": human,
                    "machine": 0.15,
                    "busy": 0.05,
                    "invalid": 0.02,
                    "no_answer": round(1.0 - human - 0.22, 6),
                },
                "ring_time": {"dist": "lognormal", "mean": "8s", "cv": 0.5},
                "talk": {"dist": "lognormal", "mean": f"{talk}s", "cv": 1.0},
                "wrap": {"dist": "lognormal", "mean": f"{WRAP_S:g}s", "cv": 0.5},
                "amd": True,
                "amd_accuracy": 1.0,
                "ring_timeout": "25s",
            }
        ],
    }


Task = tuple[int, float, int, str, int, float]  # agents, human rate, talk s, policy, seed, hours
Key = tuple[int, float, int, str]


def run_one(task: Task) -> tuple[Key, dict[str, float]]:
    agents, human, talk, policy, seed, hours = task
    sc = parse_scenario(scenario(agents, human, talk, policy, hours), source="bench", base=Path("."))
    started = time.perf_counter()
    log = Simulation(sc, seed).run()
    wall = time.perf_counter() - started
    figures = summarise(log, sc)["campaigns"]["bench"]
    return (agents, human, talk, policy), {
        "abandons": figures["abandons"],
        "humans": figures["humans"],
        "util": figures["agent_utilization"],
        "wall": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--quick", action="store_true", help="a 4-scenario corner of the grid, 1 h, 2 seeds")
    parser.add_argument(
        "--policies", default=",".join(POLICIES), help="comma-separated subset to run (table shows those)"
    )
    args = parser.parse_args(argv)
    agents, human, talk, hours, seeds = AGENTS, HUMAN, TALK, args.hours, args.seeds
    if args.quick:
        agents, human, talk, hours, seeds = (3, 50), (0.1, 0.6), (180,), 1.0, 2
    policies = tuple(p for p in POLICIES if p in args.policies.split(","))
    grid = list(itertools.product(agents, human, talk))
    tasks = [(a, h, t, p, s, hours) for (a, h, t) in grid for p in policies for s in range(1, seeds + 1)]
    # Longest first, so the pool does not end on one big straggler.
    tasks.sort(key=lambda x: -x[0] * 3600 / (x[2] + WRAP_S) / x[1])
    print(
        f"# bench/pacing.py: {len(grid)} scenarios × {len(policies)} policies × {seeds} seeds, "
        f"{hours:g} h each; {platform.machine()}, CPython {platform.python_version()}, {args.jobs} jobs",
        flush=True,
    )
    results: dict[Key, list[dict[str, float]]] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for done, (key, figures) in enumerate(pool.map(run_one, tasks), 1):
            results.setdefault(key, []).append(figures)
            if done % 10 == 0 or done == len(tasks):
                print(f"  {done}/{len(tasks)} runs, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print()
    names = {"progressive": "progressive", "vicidial_adaptive": "VICIdial", "predictive": "predictive"}
    compare = "predictive" in policies and len(policies) > 1
    others = [p for p in policies if p != "predictive"]
    head = "| agents | human | talk s | " + " | ".join(f"{names[p]} aband. (worst) / util" for p in policies)
    head += "".join(f" | pred ÷ {names[p]}" for p in others) if compare else ""
    print(head + " |")
    print("|---:|---:|---:|" + "---|" * len(policies) + ("---:|" * len(others) if compare else ""))
    failures = []
    for a, h, t in grid:
        cells = []
        util = {}
        for p in policies:
            runs = results[(a, h, t, p)]
            rates = [r["abandons"] / r["humans"] if r["humans"] else 0.0 for r in runs]
            pooled = sum(r["abandons"] for r in runs) / max(1.0, sum(r["humans"] for r in runs))
            util[p] = sum(r["util"] for r in runs) / len(runs)
            cells.append(f"{100 * pooled:.2f} % ({100 * max(rates):.2f}) / {100 * util[p]:.1f} %")
            if p == "predictive" and max(rates) > TARGET + 1e-12:
                failures.append(f"{a} agents, {h:.0%} humans, {t} s: predictive {100 * max(rates):.2f} %")
        row = f"| {a} | {h:.0%} | {t} | " + " | ".join(cells)
        if compare:
            row += "".join(f" | {util['predictive'] / max(util[p], 1e-9):.2f}×" for p in others)
            if util["predictive"] < max(util[p] for p in others):
                failures.append(f"{a} agents, {h:.0%} humans, {t} s: predictive is not the best utilisation")
        print(row + " |")
    print()
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if failures:
        print("Goal missed:\n  " + "\n  ".join(failures))
    else:
        print("Goal met: predictive at or under the target in every run, with the highest utilisation.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
