"""Benchmark: staffing a day with acd.staffing against pyworkforce's Erlang C.

Run with ``make bench`` (installs the ``bench`` extra) or
``python bench/erlang.py [--quick]``. Prints a table and the ratio against
pyworkforce 0.5.1 run in the same process on the same inputs, and where the two
disagree on the staffing, which one is right (checked against acd's exact Erlang C,
itself checked against 40-digit mpmath in the tests).

Cases (target 80 % in 20 s, AHT 180 s, 30-minute intervals):
* day: 96 intervals with loads spread geometrically from 1 to 20,000 Erlangs;
* 100k: one interval of 99,000 Erlangs (about 99,200 agents).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pyworkforce.queuing import ErlangC

from acd.erlang import erlang_c_kpis
from acd.staffing import StaffingTargets, required_agents

AHT_S = 180.0
INTERVAL_S = 1800.0
TARGETS = StaffingTargets(service_level=0.8, target_s=20.0)


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def pyworkforce_staff(loads: np.ndarray, targets: StaffingTargets) -> tuple[float, list[int]]:
    """Time pyworkforce interval by interval (it has no vectorised form)."""
    agents: list[int] = []
    start = time.perf_counter()
    for a in loads:
        calls = a * INTERVAL_S / AHT_S
        # pyworkforce takes minutes; its "asa" is the service-level time.
        model = ErlangC(
            transactions=calls, aht=AHT_S / 60, asa=targets.target_s / 60, interval=INTERVAL_S / 60
        )
        agents.append(int(model.required_positions(service_level=targets.service_level)["raw_positions"]))
    elapsed = time.perf_counter() - start
    return elapsed, agents


def pyworkforce_sl(load: float, n: int) -> float:
    calls = load * INTERVAL_S / AHT_S
    model = ErlangC(transactions=calls, aht=AHT_S / 60, asa=TARGETS.target_s / 60, interval=INTERVAL_S / 60)
    return float(model.service_level(n))


def compare(name: str, loads: np.ndarray, targets: StaffingTargets, repeats: int) -> dict[str, Any]:
    ours_s, ours = best_of(lambda: required_agents(load=loads, aht_s=AHT_S, targets=targets), repeats)
    scalar_s, _ = best_of(
        lambda: [required_agents(load=a, aht_s=AHT_S, targets=targets) for a in loads], max(1, repeats // 3)
    )
    ref_s, ref = pyworkforce_staff(loads, targets)
    ours_list = [int(x) for x in ours]
    disagreements = []
    for a, n_ours, n_ref in zip(loads, ours_list, ref, strict=True):
        if n_ours != n_ref:
            sl = erlang_c_kpis(
                agents=[n_ours - 1, n_ours, n_ref], load=a, aht_s=AHT_S, target_s=20
            ).service_level
            disagreements.append((float(a), n_ours, n_ref, sl.tolist()))
    # SL accuracy at identical staffing: pyworkforce's float recursion vs ours.
    sl_diff = 0.0
    for a, n in zip(loads, ours_list, strict=True):
        exact = float(erlang_c_kpis(agents=n, load=a, aht_s=AHT_S, target_s=20).service_level)
        sl_diff = max(sl_diff, abs(pyworkforce_sl(float(a), n) - exact))
    return {
        "case": name,
        "intervals": len(loads),
        "ours_ms_per_interval": ours_s / len(loads) * 1e3,
        "ours_scalar_ms_per_interval": scalar_s / len(loads) * 1e3,
        "pyworkforce_ms_per_interval": ref_s / len(loads) * 1e3,
        "ratio_vectorised": ref_s / ours_s,
        "ratio_scalar": ref_s / scalar_s,
        "disagreements": disagreements,
        "max_sl_difference": sl_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller day, fewer repeats")
    args = parser.parse_args()
    day = np.geomspace(1, 2_000 if args.quick else 20_000, 96)
    cases = [compare("day (96 intervals, 1-20k Erl)", day, TARGETS, 3 if args.quick else 7)]
    if not args.quick:
        cases.append(compare("100k agents (99,000 Erl)", np.array([99_000.0]), TARGETS, 5))
    low = StaffingTargets(service_level=0.3, target_s=20.0)
    cases.append(compare("low target 30/20, 0.1-50 Erl", np.geomspace(0.1, 50, 96), low, 3))
    machine = f"{platform.machine()} {platform.python_version()}"
    print(f"# bench/erlang.py  {datetime.now(UTC):%Y-%m-%d}  {machine}")
    head = ("case", "ours ms/int", "ours 1-by-1", "pyworkforce", "ratio", "ratio 1-by-1")
    print(f"{head[0]:<32} {head[1]:>12} {head[2]:>12} {head[3]:>12} {head[4]:>9} {head[5]:>12}")
    for c in cases:
        ours, scalar = c["ours_ms_per_interval"], c["ours_scalar_ms_per_interval"]
        ref, ratio, ratio_1 = c["pyworkforce_ms_per_interval"], c["ratio_vectorised"], c["ratio_scalar"]
        print(f"{c['case']:<32} {ours:>12.3f} {scalar:>12.3f} {ref:>12.2f} {ratio:>8.0f}x {ratio_1:>11.0f}x")
    for c in cases:
        diff = c["max_sl_difference"]
        print(f"\n{c['case']}: max |SL(pyworkforce) - SL(exact)| at the same staffing = {diff:.2e}")
        if not c["disagreements"]:
            print("  same staffing in every interval")
        for a, n_ours, n_ref, sl in c["disagreements"]:
            print(
                f"  load {a:.2f} Erl: ours {n_ours}, pyworkforce {n_ref}; exact SL at "
                f"{n_ours - 1}/{n_ours}/{n_ref} agents = {sl[0]:.4f}/{sl[1]:.4f}/{sl[2]:.4f}"
            )


if __name__ == "__main__":
    main()
