"""Replications: independent runs of one scenario, in parallel processes.

Replication i always uses the i-th child of ``SeedSequence(seed)``, whatever the
number of worker processes, so results for a given seed do not depend on ``jobs``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from sim.engine import Simulation
from sim.results import combine, summarise
from sim.scenario import Scenario


def run_one(
    scenario: Scenario, seed: np.random.SeedSequence, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    start = time.perf_counter()
    log = Simulation(scenario, seed).run(progress=progress)
    figures = summarise(log, scenario)
    figures["wall_s"] = time.perf_counter() - start
    figures["events"] = log.events
    return figures


def run_replications(
    scenario: Scenario,
    *,
    replications: int = 1,
    seed: int | None = None,
    jobs: int = 1,
    progress: Callable[[float, int], None] | None = None,
) -> dict[str, Any]:
    """Run and combine; ``progress(done, total)`` reports replications done (fractional
    within a replication when running in this process)."""
    root = np.random.SeedSequence(scenario.seed if seed is None else seed)
    seeds = root.spawn(replications)
    jobs = max(1, min(jobs, replications, os.cpu_count() or 1))
    runs: list[dict[str, Any] | None] = [None] * replications
    if jobs == 1:
        for i, s in enumerate(seeds):
            within = None if progress is None else (lambda f, i=i: progress(i + f, replications))
            runs[i] = run_one(scenario, s, within)
            if progress:
                progress(i + 1, replications)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_one, scenario, s): i for i, s in enumerate(seeds)}
            for done, fut in enumerate(as_completed(futures), start=1):
                runs[futures[fut]] = fut.result()
                if progress:
                    progress(done, replications)
    finished = [r for r in runs if r is not None]
    wall = sum(r.pop("wall_s") for r in finished)
    events = sum(r.pop("events") for r in finished)
    result = combine(finished)
    result["replications"] = replications
    result["seed"] = scenario.seed if seed is None else seed
    result["cpu_s"] = wall
    result["events"] = events
    return result
