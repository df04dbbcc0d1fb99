"""Scenario files (TOML, DESIGN §5): what a simulated contact centre looks like.

Parsing is strict: an unknown key, a value of the wrong type, a duration without
meaning, each is an :class:`InputError` naming the file and the key path
(``day.toml: queues[1].handle_time.mean: '3x' is not a duration``), because a
misspelt key silently ignored would make a capacity plan quietly wrong.

Minimal example::

    [simulation]
    duration = "8h"
    seed = 1
    [[agents]]
    group = "tier1"
    count = 50
    skills = { support = 1.0, sales = 0.5 }
    [[queues]]
    name = "support"
    arrivals = { rate_per_hour = 900 }
    handle_time = { dist = "exponential", mean = "180s" }
    patience = { dist = "exponential", mean = "120s" }
    service_target = "20s"

A queue requires by default the skill named like the queue (any proficiency);
``skills = { … }`` overrides that. Agent groups may have shifts with breaks.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.durations import parse_duration
from acd.errors import InputError
from acd.forecast import parse_forecast
from acd.policies import CALL_SELECTIONS
from acd.queues import QueueConfig
from acd.settings import TableReader, queue_config
from sim.workload import Distribution, Empirical, Exponential, Fixed, Gamma, LogNormal, Never


@dataclass(frozen=True, slots=True)
class Break:
    start_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Shift:
    start_s: float
    end_s: float
    breaks: tuple[Break, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentGroup:
    group: str
    count: int
    skills: Mapping[str, float]
    queues: tuple[str, ...]
    shifts: tuple[Shift, ...]
    answer_delay: Distribution
    no_answer_probability: float
    rna_recovery_s: float
    max_occupancy: float | None = None  # a goal the report checks, not a constraint


@dataclass(frozen=True, slots=True)
class QueueModel:
    config: QueueConfig
    rates_per_s: tuple[float, ...]  # per arrival interval
    arrival_interval_s: float
    handle_time: Distribution
    patience: Distribution
    priority: int
    # Per arrival interval, the mean to scale a unit-mean distribution by (from a
    # forecast's aht_s / patience_s columns); None: the distribution is used as it is.
    handle_scale: tuple[float, ...] | None = None
    patience_scale: tuple[float, ...] | None = None
    # Goals the report draws and checks (they do not change the simulation).
    sl_goal: float | None = None
    max_abandon: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    source: str
    duration_s: float
    seed: int
    interval_s: float  # reporting interval
    warmup_s: float
    call_selection: str
    agents: tuple[AgentGroup, ...]
    queues: tuple[QueueModel, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_agents(self) -> int:
        return sum(g.count for g in self.agents)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; relative forecast paths are from its folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(str(p), "is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(p), f"not valid TOML: {exc}") from None
    return parse_scenario(data, source=str(p), base=p.parent)


def _distribution(
    r: TableReader | None, where: str, *, allow_never: bool = False, base: Path
) -> Distribution:
    if r is None:
        if allow_never:
            return Never()
        raise InputError(where, "is required")
    kind = r.text("dist", "exponential")
    if kind == "exponential":
        dist: Distribution = Exponential(_positive(r, "mean"))
    elif kind == "fixed":
        dist = Fixed(r.duration("mean"))
    elif kind == "lognormal":
        dist = LogNormal(_positive(r, "mean"), r.number("cv", minimum=1e-6, maximum=100))
    elif kind == "gamma":
        dist = Gamma(_positive(r, "mean"), r.number("cv", minimum=1e-6, maximum=100))
    elif kind == "empirical":
        dist = Empirical(_durations_csv(r, base))
    elif kind == "none" and allow_never:
        dist = Never()
    else:
        known = "exponential, fixed, lognormal, gamma, empirical" + (", none" if allow_never else "")
        raise InputError(r.at("dist"), f"unknown distribution {kind!r} (known: {known})")
    r.done()
    return dist


def _per_interval(
    q: TableReader, key: str, means: tuple[float, ...] | None, *, base: Path, allow_never: bool
) -> tuple[Distribution, tuple[float, ...] | None]:
    """A duration distribution whose mean may come from the forecast, interval by interval.

    Omitted entirely, or given without a ``mean`` (e.g. ``{ dist = "lognormal", cv = 0.8 }``),
    with a forecast column at hand: the shape is the one given (exponential if none) and
    the mean follows the forecast's interval. With a ``mean``, it is used as given.
    """
    table = q.table(key, None)
    if means is not None and (
        table is None or (not table.has("mean") and table.raw("dist", "exponential") != "none")
    ):
        kind = "exponential" if table is None else table.raw("dist", "exponential")
        if kind not in ("exponential", "lognormal", "gamma"):
            raise InputError(q.at(f"{key}.mean"), f"is required for a {kind!r} distribution")
        unit = TableReader({**(table.data if table else {}), "mean": 1.0}, q.at(key))
        return _distribution(unit, q.at(key), base=base), means
    if table is None and not allow_never:
        raise InputError(q.at(key), "is required (or use a forecast with aht_s)")
    return _distribution(table, q.at(key), allow_never=allow_never, base=base), None


def _positive(r: TableReader, key: str) -> float:
    value = r.duration(key)
    if not value > 0:
        raise InputError(r.at(key), "must be longer than 0")
    return value


def _durations_csv(r: TableReader, base: Path) -> tuple[float, ...]:
    name = r.text("file")
    path = base / name
    values: list[float] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                if not row or not row[0].strip():
                    continue
                cell = row[0].strip()
                try:
                    values.append(parse_duration(cell, where=f"{path}:{line_no}"))
                except InputError:
                    if line_no == 1:  # a header
                        continue
                    raise
    except OSError as exc:
        raise InputError(r.at("file"), f"cannot read {path}: {exc.strerror}") from None
    if not values:
        raise InputError(r.at("file"), f"{path} holds no durations")
    return tuple(values)


def parse_scenario(data: Mapping[str, Any], *, source: str, base: Path) -> Scenario:
    try:
        return _parse(data, source, base)
    except InputError as exc:
        if exc.where.startswith(source):
            raise
        raise InputError(f"{source}: {exc.where}" if exc.where else source, exc.problem) from None


def _parse(data: Mapping[str, Any], source: str, base: Path) -> Scenario:
    top = TableReader(data, "")
    if top.has("campaigns"):
        raise InputError("campaigns", "outbound campaigns are not simulated yet (issue 6)")
    sim = top.table("simulation")
    assert sim is not None
    duration = _positive(sim, "duration")
    seed = sim.integer("seed", 1)
    interval = sim.duration("interval", "30m")
    if not interval > 0:
        raise InputError(sim.at("interval"), "must be longer than 0")
    warmup = sim.duration("warmup", 0.0)
    if warmup >= duration:
        raise InputError(sim.at("warmup"), "must be shorter than the duration")
    selection = sim.text("call_selection", "oldest")
    if selection not in CALL_SELECTIONS:
        raise InputError(
            sim.at("call_selection"), f"{selection!r} is not one of {', '.join(CALL_SELECTIONS)}"
        )
    sim.done()

    queues = [_queue(q, base, duration) for q in top.tables("queues")]
    if not queues:
        raise InputError("queues", "a scenario needs at least one [[queues]]")
    names = [q.config.name for q in queues]
    if len(set(names)) != len(names):
        raise InputError("queues", "two queues have the same name")
    agents = [_agents(a, duration, base, names) for a in top.tables("agents")]
    if not agents:
        raise InputError("agents", "a scenario needs at least one [[agents]] group")
    top.done()
    return Scenario(
        source=source,
        duration_s=duration,
        seed=seed,
        interval_s=interval,
        warmup_s=warmup,
        call_selection=selection,
        agents=tuple(agents),
        queues=tuple(queues),
    )


def _queue(q: TableReader, base: Path, duration: float) -> QueueModel:
    name = q.text("name")
    arrivals = q.table("arrivals")
    assert arrivals is not None
    if arrivals.has("rate_per_hour") == arrivals.has("forecast"):
        raise InputError(arrivals.where, "give exactly one of rate_per_hour or forecast")
    if arrivals.has("rate_per_hour"):
        rates: tuple[float, ...] = (arrivals.number("rate_per_hour") / 3600.0,)
        arrival_interval = duration
        aht_means: tuple[float, ...] | None = None
        patience_means: tuple[float, ...] | None = None
    else:
        path = base / arrivals.text("forecast")
        try:
            with path.open(encoding="utf-8", newline="") as f:
                fc = parse_forecast(f, source=str(path))
        except OSError as exc:
            raise InputError(arrivals.at("forecast"), f"cannot read {path}: {exc.strerror}") from None
        rates = tuple((fc.calls / fc.interval_s).tolist())
        arrival_interval = fc.interval_s
        aht_means = tuple(fc.aht_s.tolist())
        patience_means = None if fc.patience_s is None else tuple(fc.patience_s.tolist())
    arrivals.done()
    handle, handle_scale = _per_interval(q, "handle_time", aht_means, base=base, allow_never=False)
    patience, patience_scale = _per_interval(q, "patience", patience_means, base=base, allow_never=True)
    config = queue_config(q, name, ring_timeout_default="none")
    priority = q.integer("priority", 0, minimum=-1000)
    sl_goal = q.number("sl_goal", maximum=1.0) if q.has("sl_goal") else None
    max_abandon = q.number("max_abandon", maximum=1.0) if q.has("max_abandon") else None
    q.done()
    return QueueModel(
        config=config,
        rates_per_s=rates,
        arrival_interval_s=arrival_interval,
        handle_time=handle,
        patience=patience,
        priority=priority,
        handle_scale=handle_scale,
        patience_scale=patience_scale,
        sl_goal=sl_goal,
        max_abandon=max_abandon,
    )


def _agents(a: TableReader, duration: float, base: Path, queue_names: list[str]) -> AgentGroup:
    group = a.text("group")
    count = a.integer("count", minimum=1)
    skills = a.levels("skills")
    queues = a.strings("queues")
    for name in queues:
        if name not in queue_names:
            raise InputError(a.at("queues"), f"unknown queue {name!r}")
    shifts = []
    for s in a.tables("shifts"):
        start, end = s.duration("start"), s.duration("end")
        if not start < end:
            raise InputError(s.at("end"), "must be after start")
        breaks = []
        for b in s.tables("breaks"):
            br = Break(b.duration("start"), b.duration("duration"))
            b.done()
            if not start <= br.start_s < end:
                raise InputError(b.at("start"), "must be inside the shift")
            breaks.append(br)
        s.done()
        shifts.append(Shift(start, end, tuple(sorted(breaks, key=lambda x: x.start_s))))
    if not shifts:
        shifts = [Shift(0.0, duration)]
    delay = a.table("answer_delay", None)
    answer_delay: Distribution = (
        Fixed(0.0) if delay is None else _distribution(delay, a.at("answer_delay"), base=base)
    )
    group_model = AgentGroup(
        group=group,
        count=count,
        skills=skills,
        queues=queues,
        shifts=tuple(sorted(shifts, key=lambda x: x.start_s)),
        answer_delay=answer_delay,
        no_answer_probability=a.number("no_answer_probability", 0.0, maximum=1.0),
        rna_recovery_s=a.duration("rna_recovery", "60s"),
        max_occupancy=a.number("max_occupancy", maximum=1.0) if a.has("max_occupancy") else None,
    )
    a.done()
    return group_model
