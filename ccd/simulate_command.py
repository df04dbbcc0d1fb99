"""``ccd simulate``: run a scenario through the real routing core in virtual time."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import sim
from acd.errors import InputError
from sim.replicate import run_replications
from sim.results import CAMPAIGN_KEYS, QUEUE_KEYS
from sim.scenario import load_scenario, with_pacing


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a scenario (TOML) on the real routing core",
        description="Simulate a contact-centre scenario in virtual time. Replications run in parallel "
        "processes; results for a seed are the same whatever --jobs.",
    )
    p.add_argument("scenario", help="scenario file (TOML), see config/scenarios/")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--replications", type=int, default=1, help="independent runs (default 1)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--report", metavar="DIR", help="write an HTML report with plots and a CSV here")
    p.add_argument(
        "--pacing",
        metavar="NAME",
        help="pace every campaign with this policy (progressive, ratio, predictive, ...); a campaign "
        "keeps its pacing_settings only if it already used that policy",
    )
    p.set_defaults(run=run)


class _Progress:
    """A one-line progress bar on a terminal's stderr; silent elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, done: float, total: int) -> None:
        # Shown only once a run has lasted a second: short runs stay quiet.
        if not self.enabled or (not self.shown and time.monotonic() - self.start < 1.0 and done < total):
            return
        self.shown = True
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:.1f}/{total} replications")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    if args.replications < 1:
        raise InputError("--replications", f"{args.replications} must be at least 1")
    if args.jobs < 1:
        raise InputError("--jobs", f"{args.jobs} must be at least 1")
    if args.seed is not None and args.seed < 0:
        raise InputError("--seed", f"{args.seed} must be >= 0")
    scenario = load_scenario(args.scenario)
    if args.pacing is not None:
        scenario = with_pacing(scenario, args.pacing)
    started = time.monotonic()
    result = run_replications(
        scenario,
        replications=args.replications,
        seed=args.seed,
        jobs=args.jobs,
        progress=_Progress(not args.json),
    )
    result["wall_s"] = time.monotonic() - started
    result["core"] = sim.core()
    result["scenario"] = scenario.source
    if args.report:
        # matplotlib costs half a second to import: only when a report is asked for.
        from sim.report import write_report  # noqa: PLC0415

        page = write_report(result, scenario, args.report)
        if not args.json:
            print(f"report: {page}")
    if args.json:
        json.dump(_clean(result), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(result, scenario.duration_s))
    return 0


def _clean(value: Any) -> Any:
    """JSON has no NaN: an undefined figure (no calls in an interval) is null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(figures: dict[str, Any], key: str) -> str:
    v = figures.get(key, math.nan)
    ci = figures.get(f"{key}_ci95", 0.0)
    if math.isnan(v):
        return "-"
    pct = key in ("service_level", "p_abandon", "p_wait", "occupancy", "abandon_rate", "agent_utilization")
    if pct:
        text, ci_text = f"{v * 100:.1f}%", f"{ci * 100:.1f}"
    elif key in (
        "offered",
        "answered",
        "abandoned",
        "overflowed",
        "unresolved",
        "dials",
        "humans",
        "connects",
        "abandons",
    ):
        text, ci_text = f"{v:,.0f}", f"{ci:,.0f}"
    else:
        text, ci_text = f"{v:.2f}", f"{ci:.2f}"
    if not math.isnan(ci) and ci > 0:
        text += f"±{ci_text}"
    return text


def render(result: dict[str, Any], duration_s: float) -> str:
    keys = (
        "offered",
        "answered",
        "abandoned",
        "service_level",
        "asa_s",
        "p_abandon",
        "p_wait",
        "mean_wait_s",
    )
    lines = [
        f"{result['replications']} replication(s) of {duration_s / 3600:g} h, seed {result['seed']}, "
        f"{result['events']:,} events in {result['wall_s']:.1f} s ({result['core']} core)",
    ]
    if result["queues"]:
        lines += ["", f"{'queue':<14}" + "".join(f"{k:>16}" for k in keys)]
        for name, q in result["queues"].items():
            lines.append(f"{name:<14}" + "".join(f"{_fmt(q, k):>16}" for k in keys))
    campaigns = result.get("campaigns", {})
    if campaigns:
        widths = [max(len(k), 10) + 2 for k in CAMPAIGN_KEYS]
        head = "".join(f"{k:>{w}}" for k, w in zip(CAMPAIGN_KEYS, widths, strict=True))
        lines += ["", f"{'campaign':<14}{'pacing':>18}{head}"]
        for name, c in campaigns.items():
            cells = "".join(f"{_fmt(c, k):>{w}}" for k, w in zip(CAMPAIGN_KEYS, widths, strict=True))
            lines.append(f"{name:<14}{c['pacing']:>18}{cells}")
    lines += ["", f"{'agent group':<16}{'occupancy':>16}"]
    for name, g in result["groups"].items():
        lines.append(f"{name:<16}{_fmt(g, 'occupancy'):>16}")
    if not result["queues"]:
        return "\n".join(lines) + "\n"
    lines += ["", "per interval (service level / abandoned / mean queue length):"]
    for slot in result["intervals"]:
        parts = [
            f"{name} {_fmt(q, 'service_level')} / {_fmt(q, 'p_abandon')} / {_fmt(q, 'mean_queue_length')}"
            for name, q in slot["queues"].items()
        ]
        h, m = divmod(int(slot["start_s"]) // 60, 60)
        lines.append(f"  {h:02d}:{m:02d}  " + "   ".join(parts))
    assert set(keys) <= set(QUEUE_KEYS)
    return "\n".join(lines) + "\n"
