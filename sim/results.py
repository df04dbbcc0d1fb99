"""From what a replication recorded to the figures planners read (DESIGN §5 keys).

Per queue: ``offered``, ``answered``, ``abandoned``, ``overflowed``, ``unresolved``
(still waiting when the run stopped), ``service_level`` (answered within target ÷
offered), ``asa_s`` (mean wait of answered calls), ``p_abandon``, ``p_wait`` (share of
offered calls that were not put through to an agent the moment they arrived),
``mean_wait_s`` (mean time to answer or to hang up, all calls). Per agent group:
``occupancy`` (busy ÷ available agent-time). Calls count in the interval they arrive
in; calls arriving in the warm-up are left out. A call that overflows into another
queue is counted in both queues, as it was offered to both.

Per campaign (sim.outbound): ``dials``, ``humans`` (human answers as the ledger counts
them: ``connects`` + ``abandons``), ``connects``, ``abandons``, ``abandon_rate``
(abandons ÷ humans), ``agent_utilization`` (talk time on the campaign's calls ÷
available agent-time — ready or busy, breaks and off-shift left out — of the groups able
to take its calls, over the measured period, the same denominator as occupancy),
``dials_per_agent_hour`` (dials ÷ those agent-hours), ``machines`` (AMD hang-ups),
``amd_false_positives``, ``unresolved`` (dials still in progress when the run
stopped), ``leads_open`` and ``outcomes`` (completed dials by outcome). Counts are of
what happened after the warm-up (dials launched, human answers settled) up to the end
of the run; nothing is dialled after the duration. ``pacing`` names the policy.

Across replications every figure is the mean, and ``<key>_ci95`` is the half-width of
its 95 % confidence interval (Student t over the replications).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from sim.engine import ABANDONED, ANSWERED, OVERFLOWED, PENDING, RunLog
from sim.outbound import CampaignLog
from sim.scenario import Scenario

QUEUE_KEYS = (
    "offered",
    "answered",
    "abandoned",
    "overflowed",
    "unresolved",
    "service_level",
    "asa_s",
    "p_abandon",
    "p_wait",
    "mean_wait_s",
    "mean_queue_length",
)

CAMPAIGN_KEYS = (
    "dials",
    "humans",
    "connects",
    "abandons",
    "abandon_rate",
    "agent_utilization",
    "dials_per_agent_hour",
)


def _queue_figures(
    log: RunLog, mask: np.ndarray, target: float, start: float, end: float
) -> dict[str, float]:
    arrived = log.entry_arrived[mask]
    outcome = log.entry_outcome[mask]
    answered_at = log.entry_answered[mask]
    offered_at = log.entry_offered[mask]
    left_at = log.entry_left[mask]
    n = int(mask.sum())
    answered = outcome == ANSWERED
    wait_answered = answered_at[answered] - arrived[answered]
    finished = np.where(answered, answered_at, np.where(np.isnan(left_at), log.end_s, left_at))
    waited = np.isnan(offered_at) | (offered_at > arrived)
    # Time-average number waiting over [start, end): each entry waits from arrival until
    # first offered, or until it left, or until the end of the run.
    exit_queue = np.where(~np.isnan(offered_at), offered_at, finished)
    overlap = np.clip(np.minimum(exit_queue, end) - np.maximum(arrived, start), 0.0, None)
    n_ans = int(answered.sum())
    return {
        "offered": float(n),
        "answered": float(n_ans),
        "abandoned": float((outcome == ABANDONED).sum()),
        "overflowed": float((outcome == OVERFLOWED).sum()),
        "unresolved": float((outcome == PENDING).sum()),
        "service_level": float((wait_answered <= target).sum() / n) if n else math.nan,
        "asa_s": float(wait_answered.mean()) if n_ans else math.nan,
        "p_abandon": float((outcome == ABANDONED).sum() / n) if n else math.nan,
        "p_wait": float(waited.sum() / n) if n else math.nan,
        "mean_wait_s": float((finished - arrived).mean()) if n else math.nan,
        "mean_queue_length": float(overlap.sum() / (end - start)) if end > start else math.nan,
    }


def _occupancy(log: RunLog, gi: int, start: float, end: float) -> float:
    avail = np.interp([start, end], log.sample_times, log.group_available[:, gi])
    busy = np.interp([start, end], log.sample_times, log.group_busy[:, gi])
    d_avail = avail[1] - avail[0]
    return float((busy[1] - busy[0]) / d_avail) if d_avail > 0 else math.nan


def _available_s(log: RunLog, gi: int, start: float, end: float) -> float:
    avail = np.interp([start, end], log.sample_times, log.group_available[:, gi])
    return float(avail[1] - avail[0])


def _campaign_figures(log: RunLog, c: CampaignLog, start: float, end: float) -> dict[str, Any]:
    # Held agents (previewing, or waiting for their callback to answer) are paused for
    # the router but working for the campaign: their time is available time too.
    agent_s = sum(_available_s(log, gi, start, end) for gi in c.groups) + c.held_s
    return {
        "pacing": c.pacing,
        "dials": float(c.dials),
        "humans": float(c.humans),
        "connects": float(c.connects),
        "abandons": float(c.abandons),
        "abandon_rate": c.abandons / c.humans if c.humans else math.nan,
        "agent_utilization": c.talk_s / agent_s if agent_s > 0 else math.nan,
        "dials_per_agent_hour": c.dials / (agent_s / 3600.0) if agent_s > 0 else math.nan,
        "machines": float(c.machines),
        "amd_false_positives": float(c.amd_false_positives),
        "unresolved": float(c.in_progress),
        "leads_open": float(c.leads_open),
        "outcomes": {name: float(n) for name, n in c.outcomes.items()},
    }


def summarise(log: RunLog, scenario: Scenario) -> dict[str, Any]:
    """Figures of one replication: whole run (after warm-up) and per interval."""
    start, end = scenario.warmup_s, scenario.duration_s
    measured = (log.entry_arrived >= start) & (log.entry_arrived < end)
    queues = {}
    for qi, name in enumerate(log.queue_names):
        mask = measured & (log.entry_queue == qi)
        queues[name] = _queue_figures(log, mask, log.service_targets[qi], start, end)
    groups = {name: {"occupancy": _occupancy(log, gi, start, end)} for gi, name in enumerate(log.group_names)}
    intervals = []
    edges = np.arange(0.0, end, scenario.interval_s)
    for lo in edges:
        hi = min(lo + scenario.interval_s, end)
        in_slot = (log.entry_arrived >= lo) & (log.entry_arrived < hi)
        intervals.append(
            {
                "start_s": float(lo),
                "end_s": float(hi),
                "queues": {
                    name: _queue_figures(
                        log, in_slot & (log.entry_queue == qi), log.service_targets[qi], lo, hi
                    )
                    for qi, name in enumerate(log.queue_names)
                },
                "groups": {
                    name: {"occupancy": _occupancy(log, gi, lo, hi)}
                    for gi, name in enumerate(log.group_names)
                },
            }
        )
    campaigns = {c.name: _campaign_figures(log, c, start, end) for c in log.campaigns}
    return {
        "queues": queues,
        "groups": groups,
        "campaigns": campaigns,
        "intervals": intervals,
        "calls": int(measured.sum()),
    }


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every figure across replications, with ``<key>_ci95`` half-widths."""
    r = len(runs)

    def merge(items: list[Any]) -> Any:
        first = items[0]
        if isinstance(first, dict):
            out: dict[str, Any] = {}
            for key in first:
                values = [it[key] for it in items]
                out[key] = merge(values)
                if isinstance(first[key], float) and key not in ("start_s", "end_s"):
                    arr = np.asarray(values, dtype=float)
                    good = arr[~np.isnan(arr)]
                    if r > 1 and len(good) > 1:
                        out[f"{key}_ci95"] = float(
                            stats.t.ppf(0.975, len(good) - 1) * good.std(ddof=1) / math.sqrt(len(good))
                        )
                    else:
                        out[f"{key}_ci95"] = math.nan if r > 1 else 0.0
            return out
        if isinstance(first, list):
            return [merge([it[i] for it in items]) for i in range(len(first))]
        if isinstance(first, float):
            arr = np.asarray(items, dtype=float)
            good = arr[~np.isnan(arr)]
            return float(good.mean()) if len(good) else math.nan
        if isinstance(first, int):
            return float(np.mean(items))
        return first

    return merge(runs)  # type: ignore[no-any-return]
