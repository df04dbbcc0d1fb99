"""``ccd staff``: how many agents an interval or a whole forecast day needs.

Three uses: staff one interval to targets, evaluate a given staffing (``--agents``),
or staff every interval of a forecast CSV. The maths lives in ``acd.staffing``; this
module only reads flags and files and renders the answer for people or for JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from acd.durations import parse_duration
from acd.errors import InputError
from acd.forecast import Forecast, parse_forecast
from acd.staffing import StaffingTargets, evaluate, plan, scheduled_heads

# Above this abandonment share an Erlang A plan is probably leaning on callers giving
# up; planners are warned unless they set their own ceiling.
ABANDON_WARNING = 0.05

ROW_KEYS = (
    "interval_start",
    "calls",
    "aht_s",
    "patience_s",
    "load_erlangs",
    "agents",
    "scheduled",
    "service_level",
    "service_level_of_answered",
    "target_s",
    "p_wait",
    "p_abandon",
    "asa_s",
    "mean_wait_s",
    "occupancy",
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "staff",
        help="agents needed for a target (Erlang C / Erlang A), per interval or for a forecast",
        description=(
            "Staff one interval (--calls --period --aht) or every interval of a forecast "
            "(--forecast FILE) to the given targets, or evaluate a given staffing (--agents). "
            "Durations accept 180, 180s, 3m, 1h. Erlang A is used when a patience is given."
        ),
    )
    p.add_argument("--calls", help="calls offered in the period")
    p.add_argument("--period", help="length of the period (or of each forecast interval)")
    p.add_argument("--aht", help="average handle time (talk + wrap-up)")
    p.add_argument("--forecast", metavar="FILE", help="CSV: interval_start,calls,aht_s[,patience_s]")
    p.add_argument("--sl", metavar="P/T", help="service level target: P %% answered within T, e.g. 80/20")
    p.add_argument("--target-time", help="the T of the service level when evaluating (default 20s)")
    p.add_argument("--patience", help="mean caller patience (exponential): selects Erlang A")
    p.add_argument("--model", choices=("erlang-c", "erlang-a"), help="default: erlang-a with --patience")
    p.add_argument("--asa", help="maximum average speed of answer of answered calls")
    p.add_argument("--max-abandon", help="maximum share of callers who give up, e.g. 0.05 or 5%%")
    p.add_argument("--max-occupancy", help="maximum agent occupancy, e.g. 0.85 or 85%%")
    p.add_argument("--shrinkage", default="0", help="share of paid time not on the phones, e.g. 0.3")
    p.add_argument("--agents", help="evaluate this staffing instead of computing one")
    p.add_argument("--out", metavar="FILE", help="also write the per-interval figures as CSV")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def _fraction(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    value = text.strip()
    scale = 1.0
    if value.endswith("%"):
        value, scale = value[:-1], 0.01
    try:
        number = float(value) * scale
    except ValueError:
        raise InputError(flag, f"{text!r} is not a fraction (e.g. 0.05 or 5%)") from None
    if not math.isfinite(number):
        raise InputError(flag, f"{text!r} is not a finite number")
    return number


def _positive(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(flag, f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(flag, f"{text!r} must be a number above 0")
    return value


def _duration(text: str | None, flag: str, *, positive: bool = True) -> float | None:
    if text is None:
        return None
    seconds = parse_duration(text, where=flag)
    if positive and seconds <= 0:
        raise InputError(flag, f"{text!r} must be longer than 0")
    return seconds


def _service_level(text: str | None) -> tuple[float | None, float | None]:
    if text is None:
        return None, None
    percent, sep, time = text.partition("/")
    if not sep:
        raise InputError("--sl", f"{text!r} is not P/T (e.g. 80/20: 80 % within 20 s)")
    share = _fraction(percent.rstrip("%") + "%", "--sl")
    assert share is not None
    if share < 0.01:
        raise InputError("--sl", f"{percent!r} is a percentage below 1: write e.g. 80/20 for 80 %")
    return share, _duration(time, "--sl", positive=False)


@dataclass(frozen=True, slots=True)
class _Request:
    """Everything the flags say, checked and in seconds and fractions."""

    calls: np.ndarray
    aht_s: np.ndarray
    patience_s: np.ndarray | None
    interval_s: float
    starts: tuple[str, ...]
    targets: StaffingTargets
    shrinkage: float
    agents: int | None


def _request(args: argparse.Namespace) -> _Request:
    sl, sl_time = _service_level(args.sl)
    target_time = _duration(args.target_time, "--target-time", positive=False)
    if target_time is not None and sl_time is not None and target_time != sl_time:
        raise InputError("--target-time", "differs from the time in --sl; give one of them")
    target_s = target_time if target_time is not None else (sl_time if sl_time is not None else 20.0)
    patience = _duration(args.patience, "--patience")
    shrinkage = _fraction(args.shrinkage, "--shrinkage")
    assert shrinkage is not None
    if not 0.0 <= shrinkage < 1.0:
        raise InputError("--shrinkage", f"{args.shrinkage!r} must be at least 0 and below 1")
    agents = None
    if args.agents is not None:
        try:
            agents = int(args.agents)
        except ValueError:
            raise InputError("--agents", f"{args.agents!r} is not a whole number") from None
        if agents < 1:
            raise InputError("--agents", f"{args.agents!r} must be at least 1")
    period = _duration(args.period, "--period")
    if args.forecast is not None:
        for flag, value in (("--calls", args.calls), ("--aht", args.aht), ("--agents", args.agents)):
            if value is not None:
                raise InputError(flag, "does not go with --forecast (the file gives it per interval)")
        with open(args.forecast, encoding="utf-8", newline="") as f:
            try:
                forecast = parse_forecast(f, source=args.forecast, interval_s=period)
            except UnicodeDecodeError:
                raise InputError(args.forecast, "is not UTF-8 text") from None
        patience_arr = _forecast_patience(forecast, patience, args.forecast)
        calls, aht, interval_s, starts = forecast.calls, forecast.aht_s, forecast.interval_s, forecast.starts
    else:
        missing = [
            f
            for f, v in (("--calls", args.calls), ("--period", args.period), ("--aht", args.aht))
            if v is None
        ]
        if missing:
            raise InputError(missing[0], "is required (or give --forecast FILE)")
        calls_value = _positive(args.calls, "--calls")
        aht_value = _duration(args.aht, "--aht")
        assert calls_value is not None and aht_value is not None and period is not None
        calls, aht, interval_s, starts = np.array([calls_value]), np.array([aht_value]), period, ("",)
        patience_arr = None if patience is None else np.array([patience])
    model = args.model or ("erlang-a" if patience_arr is not None else "erlang-c")
    if model == "erlang-a" and patience_arr is None:
        raise InputError("--model", "erlang-a needs a patience (--patience or a patience_s column)")
    if model == "erlang-c":
        patience_arr = None
    targets = StaffingTargets(
        service_level=sl,
        target_s=target_s,
        max_asa_s=_duration(args.asa, "--asa"),
        max_abandon=_fraction(args.max_abandon, "--max-abandon"),
        max_occupancy=_fraction(args.max_occupancy, "--max-occupancy"),
    )
    if targets.max_abandon is not None and patience_arr is None:
        raise InputError("--max-abandon", "needs Erlang A: give --patience (Erlang C callers never give up)")
    if agents is None and not targets.any:
        raise InputError(
            "targets", "give a target (--sl, --asa, --max-abandon or --max-occupancy) or --agents"
        )
    return _Request(calls, aht, patience_arr, interval_s, starts, targets, shrinkage, agents)


def _forecast_patience(forecast: Forecast, patience: float | None, source: str) -> np.ndarray | None:
    if forecast.patience_s is not None and patience is not None:
        raise InputError("--patience", f"{source} has a patience_s column already; give one of them")
    if forecast.patience_s is not None:
        return forecast.patience_s
    return None if patience is None else np.full(len(forecast), patience)


def run(args: argparse.Namespace) -> int:
    req = _request(args)
    load = req.calls / req.interval_s * req.aht_s
    if req.agents is not None:
        agents = np.array([req.agents], dtype=np.int64)
        kpis = evaluate(
            agents=agents,
            load=load,
            aht_s=req.aht_s,
            target_s=req.targets.target_s,
            patience_s=req.patience_s,
        )
        scheduled = scheduled_heads(agents, shrinkage=req.shrinkage)
        model = "erlang-c" if req.patience_s is None else "erlang-a"
    else:
        result = plan(
            load=load,
            aht_s=req.aht_s,
            targets=req.targets,
            patience_s=req.patience_s,
            shrinkage=req.shrinkage,
        )
        agents, kpis, scheduled, model = result.agents, result.kpis, result.scheduled, result.model
    rows = []
    for i in range(len(req.calls)):
        figures = kpis.as_dict(i)
        row: dict[str, Any] = {
            "interval_start": req.starts[i] or None,
            "calls": float(req.calls[i]),
            "aht_s": float(req.aht_s[i]),
            "patience_s": None if req.patience_s is None else float(req.patience_s[i]),
            "load_erlangs": figures["load_erlangs"],
            "agents": int(agents[i]),
            "scheduled": int(scheduled[i]),
            "target_s": req.targets.target_s,
        }
        for key in (
            "service_level",
            "service_level_of_answered",
            "p_wait",
            "p_abandon",
            "asa_s",
            "mean_wait_s",
            "occupancy",
        ):
            row[key] = figures[key]
        row["model"] = model
        row["shrinkage"] = req.shrinkage
        if args.forecast is None:
            row["period_s"] = req.interval_s
        rows.append(row)
    _warn_abandon(rows, req.targets)
    if args.out is not None:
        _write_csv(rows, args.out)
    if args.json:
        payload: Any = rows if args.forecast is not None else rows[0]
        json.dump(payload, sys.stdout, indent=2, default=_json_default)
        sys.stdout.write("\n")
    elif args.forecast is not None:
        sys.stdout.write(render_forecast(rows, req.interval_s))
    else:
        sys.stdout.write(render_single(rows[0], evaluating=req.agents is not None))
    return 0


def _json_default(value: Any) -> Any:  # pragma: no cover - numpy leftovers
    return float(value)


def _warn_abandon(rows: list[dict[str, Any]], targets: StaffingTargets) -> None:
    if targets.max_abandon is not None:
        return
    worst = max(rows, key=lambda r: r["p_abandon"])
    if worst["p_abandon"] > ABANDON_WARNING:
        where = f" (interval {worst['interval_start']})" if worst["interval_start"] else ""
        print(
            f"ccd staff: warning: {worst['p_abandon'] * 100:.1f} % of callers abandon{where}; "
            "this plan relies on callers giving up. Set --max-abandon to cap it.",
            file=sys.stderr,
        )


def _write_csv(rows: list[dict[str, Any]], path: str) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_KEYS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in ROW_KEYS})
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def _secs(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.1f} s"


def render_single(row: dict[str, Any], *, evaluating: bool) -> str:
    model = "Erlang A" if row["model"] == "erlang-a" else "Erlang C"
    task = "evaluation" if evaluating else "staffing"
    head = f"{model} {task}: {row['calls']:g} calls in {row['period_s'] / 60:g} min, AHT {row['aht_s']:g} s"
    if row["patience_s"] is not None:
        head += f", mean patience {row['patience_s']:g} s"
    lines = [
        head,
        f"  offered load        {row['load_erlangs']:.2f} Erlangs",
        f"  agents              {row['agents']}",
    ]
    if row["shrinkage"] > 0:
        lines.append(f"  scheduled heads     {row['scheduled']}  (shrinkage {_pct(row['shrinkage'])})")
    lines += [
        f"  service level       {_pct(row['service_level'])} of offered calls answered within"
        f" {row['target_s']:g} s ({_pct(row['service_level_of_answered'])} of answered)",
        f"  waited at all       {_pct(row['p_wait'])}",
        f"  abandoned           {_pct(row['p_abandon'])}",
        f"  ASA                 {_secs(row['asa_s'])} (answered calls)",
        f"  mean wait           {_secs(row['mean_wait_s'])} (all callers)",
        f"  occupancy           {_pct(row['occupancy'])}",
    ]
    return "\n".join(lines) + "\n"


_COLUMNS = (
    ("interval", "<20", lambda r: r["interval_start"]),
    ("calls", ">8", lambda r: f"{r['calls']:g}"),
    ("AHT s", ">7", lambda r: f"{r['aht_s']:g}"),
    ("load", ">9", lambda r: f"{r['load_erlangs']:.2f}"),
    ("agents", ">7", lambda r: r["agents"]),
    ("sched", ">7", lambda r: r["scheduled"]),
    ("SL", ">7", lambda r: _pct(r["service_level"])),
    ("aband", ">7", lambda r: _pct(r["p_abandon"])),
    ("ASA s", ">8", lambda r: f"{r['asa_s']:.1f}"),
    ("occ", ">7", lambda r: _pct(r["occupancy"])),
)


def render_forecast(rows: list[dict[str, Any]], interval_s: float) -> str:
    lines = [" ".join(f"{name:{fmt}}" for name, fmt, _ in _COLUMNS)]
    lines += [" ".join(f"{get(r)!s:{fmt}}" for _, fmt, get in _COLUMNS) for r in rows]
    calls = sum(r["calls"] for r in rows)
    hours = interval_s / 3600.0
    agent_hours = sum(r["agents"] for r in rows) * hours
    sched_hours = sum(r["scheduled"] for r in rows) * hours
    totals = "no calls"
    if calls > 0:
        sl = sum(r["service_level"] * r["calls"] for r in rows) / calls
        answered_calls = [(1 - r["p_abandon"]) * r["calls"] for r in rows]
        abandon = 1 - sum(answered_calls) / calls
        asa = sum(r["asa_s"] * w for r, w in zip(rows, answered_calls, strict=True)) / max(
            sum(answered_calls), 1e-300
        )
        totals = f"service level {_pct(sl)}, abandoned {_pct(abandon)}, ASA {asa:.1f} s (call-weighted)"
    peak = max(r["agents"] for r in rows)
    lines += [
        "",
        f"{len(rows)} intervals of {interval_s / 60:g} min, {calls:g} calls; {totals}",
        f"agent-hours {agent_hours:.1f} on the phones, {sched_hours:.1f} scheduled; peak {peak} agents",
    ]
    return "\n".join(lines) + "\n"
