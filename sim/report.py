"""A self-contained HTML report of a simulation: tables, plots (inline SVG) and a CSV.

The plots show, per interval, what a planner checks against targets: service level,
abandonment, mean queue length and agent occupancy, with the 95 % confidence band
when there are replications. Everything is in one HTML file (no external assets), plus
``intervals.csv`` with the same per-interval figures for a spreadsheet.
"""

from __future__ import annotations

import csv
import html
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt

from sim.results import CAMPAIGN_KEYS, QUEUE_KEYS
from sim.scenario import Scenario


def write_report(result: dict[str, Any], scenario: Scenario, out_dir: str | Path) -> Path:
    """Write index.html and intervals.csv into ``out_dir``; return the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(result, out / "intervals.csv")
    page = out / "index.html"
    page.write_text(_html(result, scenario), encoding="utf-8")
    return page


def _write_csv(result: dict[str, Any], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["start_s", "end_s", "kind", "name", "figure", "value", "ci95"])
    for slot in result["intervals"]:
        for kind in ("queues", "groups"):
            for name, figures in slot[kind].items():
                for key, value in figures.items():
                    if key.endswith("_ci95"):
                        continue
                    writer.writerow(
                        [
                            slot["start_s"],
                            slot["end_s"],
                            kind[:-1],
                            name,
                            key,
                            value,
                            figures.get(f"{key}_ci95", ""),
                        ]
                    )
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _plot(
    result: dict[str, Any],
    kind: str,
    key: str,
    title: str,
    *,
    target: dict[str, float] | None = None,
    percent: bool = True,
) -> str:
    slots = result["intervals"]
    hours = [s["start_s"] / 3600 for s in slots]
    fig, ax = plt.subplots(figsize=(8, 3))
    for name in slots[0][kind] if slots else []:
        values = [s[kind][name].get(key, math.nan) for s in slots]
        ci = [s[kind][name].get(f"{key}_ci95", math.nan) for s in slots]
        scale = 100.0 if percent else 1.0
        ys = [v * scale for v in values]
        line = ax.step(hours, ys, where="post", label=name)[0]
        if any(not math.isnan(c) and c > 0 for c in ci):
            top = 100.0 if percent else math.inf  # a share's band stays within 0..100 %
            lo = [max(0.0, (v - c) * scale) for v, c in zip(values, ci, strict=True)]
            hi = [min(top, (v + c) * scale) for v, c in zip(values, ci, strict=True)]
            ax.fill_between(hours, lo, hi, step="post", alpha=0.2, color=line.get_color())
        if target and name in target:
            ax.axhline(target[name] * scale, linestyle="--", linewidth=0.8, color=line.get_color())
    ax.set_title(title)
    ax.set_xlabel("hour")
    ax.set_ylabel("%" if percent else "")
    ax.grid(alpha=0.3)
    if slots and len(slots[0][kind]) > 1:
        ax.legend(fontsize="small")
    return _svg(fig)


def _table(rows: dict[str, dict[str, Any]], keys: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("", *keys))
    body = []
    for name, figures in rows.items():
        cells = []
        for k in keys:
            v = figures.get(k, math.nan)
            ci = figures.get(f"{k}_ci95")
            text = f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))
            if isinstance(ci, float) and not math.isnan(ci) and ci > 0:
                text += f" ± {ci:.2g}"
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _html(result: dict[str, Any], scenario: Scenario) -> str:
    targets = {q.config.name: q.config.service_target_s for q in scenario.queues}
    sl_goals = {q.config.name: q.sl_goal for q in scenario.queues if q.sl_goal is not None}
    abandon_goals = {q.config.name: q.max_abandon for q in scenario.queues if q.max_abandon is not None}
    occupancy_goals = {g.group: g.max_occupancy for g in scenario.agents if g.max_occupancy is not None}
    reps = result.get("replications", 1)
    plots = [
        _plot(
            result,
            "queues",
            "service_level",
            "Service level (answered within target ÷ offered)",
            target=sl_goals,
        ),
        _plot(result, "queues", "p_abandon", "Abandonment (÷ offered)", target=abandon_goals),
        _plot(result, "queues", "mean_queue_length", "Mean number of callers waiting", percent=False),
        _plot(result, "groups", "occupancy", "Agent occupancy", target=occupancy_goals),
    ]
    missed = _missed_goals(result, sl_goals, abandon_goals, occupancy_goals)
    targets_text = ", ".join(f"{html.escape(n)}: {t:g} s" for n, t in targets.items())
    campaigns = result.get("campaigns") or {}
    campaign_section = (
        f"<h2>Campaigns</h2>\n{_table(campaigns, ('pacing', *CAMPAIGN_KEYS))}" if campaigns else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ccd simulation: {html.escape(scenario.source)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 60em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
</style></head><body>
<h1>Simulation of {html.escape(scenario.source)}</h1>
<p>{scenario.duration_s / 3600:g} h simulated, warm-up {scenario.warmup_s / 60:g} min, {reps} replication(s),
seed {result.get("seed")}, {scenario.total_agents} agents. Service targets: {targets_text}.
Figures are means over replications; ± is the 95 % confidence half-width.</p>
<h2>Queues</h2>
{_table(result["queues"], QUEUE_KEYS)}
{campaign_section}
<h2>Agent groups</h2>
{_table(result["groups"], ("occupancy",))}
<h2>Goals</h2>
{missed}
<h2>Per interval</h2>
<p>Dashed lines are the goals set in the scenario (sl_goal, max_abandon, max_occupancy).</p>
{"".join(f"<figure>{p}</figure>" for p in plots)}
<p>The same per-interval figures are in <a href="intervals.csv">intervals.csv</a>.</p>
</body></html>
"""


def _missed_goals(
    result: dict[str, Any],
    sl_goals: dict[str, float],
    abandon_goals: dict[str, float],
    occupancy_goals: dict[str, float],
) -> str:
    """One line per goal: met over the day or not, and the intervals that missed it."""
    # (kind, goals, figure, label, True when the goal is a floor rather than a ceiling)
    checks = [
        ("queues", sl_goals, "service_level", "service level", True),
        ("queues", abandon_goals, "p_abandon", "abandonment", False),
        ("groups", occupancy_goals, "occupancy", "occupancy", False),
    ]

    def ok(value: float, goal: float, floor: bool) -> bool:
        return value >= goal if floor else value <= goal

    lines = []
    for kind, goals, key, label, floor in checks:
        for name, goal in goals.items():
            day = result[kind][name][key]
            bad = [
                f"{int(s['start_s'] // 3600):02d}:{int(s['start_s'] % 3600 // 60):02d}"
                for s in result["intervals"]
                if not math.isnan(s[kind][name][key]) and not ok(s[kind][name][key], goal, floor)
            ]
            verdict = "met" if not math.isnan(day) and ok(day, goal, floor) else "<b>missed</b>"
            where = f"; missed in {len(bad)} interval(s): {', '.join(bad)}" if bad else ""
            figure = f"{label} {day * 100:.1f} % against {goal * 100:g} %"
            lines.append(f"<li>{html.escape(name)} {figure}: {verdict}{where}</li>")
    return f"<ul>{''.join(lines)}</ul>" if lines else "<p>No goals set in the scenario.</p>"
