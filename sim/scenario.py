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

Outbound campaigns (``[[campaigns]]``, simulated by :mod:`sim.outbound`)::

    [[campaigns]]
    name = "renewals"
    queue = "sales"            # its agents: those of [[queues]] "sales", else skill "sales"
    leads = 5000
    pacing = "predictive"      # a registered pacing policy (default "progressive")
    pacing_settings = { }      # handed to the policy, checked by it
    abandon_target = 0.03
    answer = { human = 0.30, machine = 0.20, busy = 0.08, no_answer = 0.37, invalid = 0.05 }
    ring_time = { dist = "lognormal", mean = "8s", cv = 0.5 }   # launch to answer (default)
    talk = { dist = "lognormal", mean = "150s", cv = 0.7 }
    wrap = { dist = "fixed", mean = "10s" }                      # default: none
    amd = true                 # default false: machines reach agents and talk machine_talk
    amd_accuracy = 0.95        # P(AMD classifies a call right), default 1
    ring_timeout = "25s"       # no-answer calls end here (at least 15 s)
    callbacks = { probability = 0.05, after = "2h" }   # agents book callbacks for themselves
    preview = { time = { dist = "fixed", mean = "10s" }, skip = 0.1 }   # pacing = "preview"

``answer`` probabilities (``congestion`` optional) must sum to 1. An answered call
whose sampled ring time reaches ``ring_timeout`` ends as no answer at the timeout.
Busy, invalid and congestion end after ``fail_time`` (default fixed 3 s); a machine
AMD lets through talks ``machine_talk`` (default fixed 5 s). ``max_attempts``,
``retry``, ``hours`` and ``max_dial_level`` mean what they mean for a live campaign
(:func:`dialer.campaign.parse_campaign`), except that simulated campaigns call all day
unless ``hours`` says otherwise. ``[simulation] start`` (ISO date-time, default
2026-01-05T09:00:00Z, a Monday) anchors the virtual clock to a calendar for them, and
``pace_every`` (default 1 s; per campaign too) is their pacing tick. A scenario with
campaigns may have no ``[[queues]]`` at all.

A booked callback goes to the agent who booked it when they are free (see
:meth:`dialer.runner.CampaignRunner.pace`). With ``pacing = "preview"`` every ready agent
takes a lead, looks at it for ``preview.time`` and dials it (or, with chance
``preview.skip``, gives it back undialled); the callee is theirs, so never abandoned.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from acd.agents import AgentProfile
from acd.durations import parse_duration
from acd.errors import InputError
from acd.forecast import parse_forecast
from acd.policies import CALL_SELECTIONS
from acd.queues import QueueConfig
from acd.settings import TableReader, queue_config
from dialer.campaign import MIN_RING_S, Campaign, parse_campaign
from dialer.pacing import PACINGS, get_pacing
from dialer.runner import acd_queue_config
from sim.workload import Distribution, Empirical, Exponential, Fixed, Gamma, LogNormal, Never

DEFAULT_START = "2026-01-05T09:00:00Z"  # a Monday morning: calling windows are about weekdays
CALLER_ID = "+12025550100"  # simulated campaigns need one; nobody is really called
ANSWER_KINDS = ("human", "machine", "busy", "no_answer", "invalid", "congestion")
MAX_LEADS = 1_000_000


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
class AnswerModel:
    """How a dial ends, as probabilities summing to 1 (a human is a real person)."""

    human: float
    machine: float
    busy: float
    no_answer: float
    invalid: float
    congestion: float = 0.0

    def cumulative(self) -> tuple[float, ...]:
        """Upper edges, in ANSWER_KINDS order, for one uniform draw per dial."""
        edges, total = [], 0.0
        for kind in ANSWER_KINDS:
            total += getattr(self, kind)
            edges.append(total)
        edges[-1] = math.inf  # rounding never leaves a draw without an outcome
        return tuple(edges)


_PREVIEW_TIME = Fixed(10.0)


@dataclass(frozen=True, slots=True)
class CampaignModel:
    """One simulated outbound campaign: its settings, its list and its callees.

    The :class:`dialer.campaign.Campaign` is rebuilt by :meth:`campaign` in each
    replication (it holds mapping proxies, which do not cross to worker processes);
    ``settings`` is the table it is parsed from, already checked once.
    """

    name: str
    queue: str  # the scenario queue, or the skill, whose agents take the calls
    skills: Mapping[str, float]  # of the ACD queue outbound:<name>
    groups: tuple[str, ...]
    leads: int
    pacing: str
    pacing_settings: Mapping[str, Any]
    settings: Mapping[str, Any]
    answer: AnswerModel
    ring_time: Distribution
    talk: Distribution
    wrap: Distribution
    machine_talk: Distribution
    fail_time: Distribution
    amd: bool
    amd_accuracy: float
    ring_timeout_s: float
    pace_every_s: float
    where: str = "campaigns"
    # After a conversation the agent books a callback for themselves with this chance,
    # due this long after the call ended.
    callback_probability: float = 0.0
    callback_after_s: float = 3600.0
    # Preview mode: how long an agent looks at a lead, and the chance they skip it.
    preview_time: Distribution = _PREVIEW_TIME
    preview_skip: float = 0.0

    @property
    def acd_queue(self) -> str:
        return f"outbound:{self.name}"

    def campaign(self) -> Campaign:
        table = {**self.settings, "dial_mode": self.pacing, "pacing": dict(self.pacing_settings)}
        return parse_campaign(table, self.where, known_modes=(self.pacing,))


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
    campaigns: tuple[CampaignModel, ...] = ()
    start_epoch: float = 1767603600.0  # DEFAULT_START in POSIX seconds
    pace_every_s: float = 1.0

    @property
    def total_agents(self) -> int:
        return sum(g.count for g in self.agents)


def with_pacing(scenario: Scenario, name: str, *, where: str = "--pacing") -> Scenario:
    """Every campaign paced by policy ``name`` instead of its own.

    A campaign keeps its ``pacing_settings`` if it already used that policy; otherwise
    the policy runs with its defaults (another policy's settings mean nothing to it).
    """
    campaigns = []
    for c in scenario.campaigns:
        settings = c.pacing_settings if c.pacing == name else {}
        get_pacing(name, settings, where=where)
        campaigns.append(replace(c, pacing=name, pacing_settings=settings))
    return replace(scenario, campaigns=tuple(campaigns))


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
    start = _start(sim)
    pace_every = sim.duration("pace_every", "1s")
    if not pace_every > 0:
        raise InputError(sim.at("pace_every"), "must be longer than 0")
    sim.done()

    queues = [_queue(q, base, duration) for q in top.tables("queues")]
    campaign_tables = top.tables("campaigns")
    if not queues and not campaign_tables:
        raise InputError("queues", "a scenario needs at least one [[queues]] or [[campaigns]]")
    names = [q.config.name for q in queues]
    if len(set(names)) != len(names):
        raise InputError("queues", "two queues have the same name")
    agents = [_agents(a, duration, base, names) for a in top.tables("agents")]
    if not agents:
        raise InputError("agents", "a scenario needs at least one [[agents]] group")
    campaigns = [_campaign(c, base, queues, agents, pace_every) for c in campaign_tables]
    seen: set[str] = set()
    for c, table in zip(campaigns, campaign_tables, strict=True):
        if c.name in seen:
            raise InputError(table.at("name"), f"two campaigns are named {c.name!r}")
        if c.acd_queue in names:
            raise InputError(table.at("name"), f"its ACD queue {c.acd_queue!r} is a [[queues]] name")
        seen.add(c.name)
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
        campaigns=tuple(campaigns),
        start_epoch=start,
        pace_every_s=pace_every,
    )


def _start(sim: TableReader) -> float:
    """``[simulation] start`` in POSIX seconds: TOML date-time, date or ISO string (UTC if
    no offset is given)."""
    value = sim.raw("start", DEFAULT_START)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InputError(sim.at("start"), f"{value!r} is not an ISO date-time") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise InputError(sim.at("start"), f"{value!r} is not a date-time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


# Keys of a [[campaigns]] table handed as they are to dialer.campaign.parse_campaign.
_CAMPAIGN_PASSED = (
    "name",
    "queue",
    "max_attempts",
    "retry",
    "hours",
    "abandon_target",
    "abandon_window",
    "max_dial_level",
    "uk_rules",
    "amd_false_positive_rate",
)


def _campaign(
    c: TableReader, base: Path, queues: list[QueueModel], agents: list[AgentGroup], pace_every: float
) -> CampaignModel:
    settings: dict[str, Any] = {"caller_id": CALLER_ID, "hours": {"default": "00:00-24:00"}}
    for key in _CAMPAIGN_PASSED:
        if c.has(key):
            settings[key] = c.raw(key)
    name = c.text("name")
    queue = c.text("queue")
    leads = c.integer("leads", minimum=1)
    if leads > MAX_LEADS:
        raise InputError(c.at("leads"), f"{leads} is more than the {MAX_LEADS:,} a replication loads")
    target = c.number("abandon_target", 0.03, maximum=1.0)
    if not 0.0 < target < 1.0:
        raise InputError(c.at("abandon_target"), f"{target:g} must be a share strictly between 0 and 1")
    pacing = c.text("pacing", "progressive")
    pacing_table = c.raw("pacing_settings", {})
    if not isinstance(pacing_table, Mapping):
        raise InputError(c.at("pacing_settings"), "must be a table")
    pacing_settings = dict(pacing_table)
    try:
        get_pacing(pacing, pacing_settings, where=c.at("pacing_settings"))
    except InputError as exc:
        if pacing not in PACINGS:  # get_pacing has loaded the built-in policies by now
            raise InputError(c.at("pacing"), exc.problem) from None
        raise
    amd = c.raw("amd", False)
    if not isinstance(amd, bool):
        raise InputError(c.at("amd"), f"{amd!r} is not true or false")
    settings["amd"] = amd
    ring_timeout = c.duration("ring_timeout", "25s")
    if ring_timeout < MIN_RING_S:
        raise InputError(
            c.at("ring_timeout"), f"{ring_timeout:g} s: unanswered calls must ring at least {MIN_RING_S:g} s"
        )
    answer = _answer(c)
    every = c.duration("pace_every", pace_every)
    if not every > 0:
        raise InputError(c.at("pace_every"), "must be longer than 0")

    def dist(key: str, default: Mapping[str, Any] | None) -> Distribution:
        table = c.table(key, default)
        return _distribution(table, c.at(key), base=base)

    model = CampaignModel(
        name=name,
        queue=queue,
        skills={},
        groups=(),
        leads=leads,
        pacing=pacing,
        pacing_settings=pacing_settings,
        settings=settings,
        answer=answer,
        ring_time=dist("ring_time", {"dist": "lognormal", "mean": "8s", "cv": 0.5}),
        talk=dist("talk", None),
        wrap=dist("wrap", {"dist": "fixed", "mean": 0}),
        machine_talk=dist("machine_talk", {"dist": "fixed", "mean": "5s"}),
        fail_time=dist("fail_time", {"dist": "fixed", "mean": "3s"}),
        amd=amd,
        amd_accuracy=c.number("amd_accuracy", 1.0, maximum=1.0),
        ring_timeout_s=ring_timeout,
        pace_every_s=every,
        where=c.where,
    )
    cb = c.table("callbacks", {})
    preview = c.table("preview", {})
    assert cb is not None and preview is not None
    model = replace(
        model,
        callback_probability=cb.number("probability", 0.0, maximum=1.0),
        callback_after_s=cb.duration("after", "1h"),
        preview_time=_distribution(
            preview.table("time", {"dist": "fixed", "mean": "10s"}), preview.at("time"), base=base
        ),
        preview_skip=preview.number("skip", 0.0, maximum=1.0),
    )
    cb.done()
    preview.done()
    c.done()
    model.campaign()  # the rest of the settings, checked the way a live campaign's are
    inbound = next((q for q in queues if q.config.name == queue), None)
    skills = dict(inbound.config.skills) if inbound is not None else {queue: 0.0}
    groups = inbound.config.groups if inbound is not None else ()
    model = replace(model, skills=skills, groups=groups)
    if not any(serves(model, g, (model,)) for g in agents):
        needs = f"queue {queue!r}'s agents" if inbound is not None else f"skill {queue!r}"
        raise InputError(c.at("queue"), f"no [[agents]] group can take its calls ({needs})")
    return model


def _answer(c: TableReader) -> AnswerModel:
    table = c.table("answer")
    assert table is not None
    probs = {
        kind: table.number(kind, 0.0 if kind == "congestion" else ..., maximum=1.0) for kind in ANSWER_KINDS
    }
    table.done()
    total = sum(probs.values())
    if abs(total - 1.0) > 1e-6:
        raise InputError(c.at("answer"), f"the probabilities sum to {total:g}, not 1")
    return AnswerModel(**probs)


def agent_queues(
    group: AgentGroup, campaigns: tuple[CampaignModel, ...] | list[CampaignModel]
) -> tuple[str, ...]:
    """A group's queue allow-list as the router sees it: a group limited to some queues
    also takes the campaigns that name one of them (empty stays empty: any queue)."""
    if not group.queues:
        return ()
    return group.queues + tuple(c.acd_queue for c in campaigns if c.queue in group.queues)


def acd_queue(model: CampaignModel, campaign: Campaign | None = None) -> QueueConfig:
    """The ACD queue of the campaign's answered humans (wrap-up ended by the simulator)."""
    return acd_queue_config(
        model.campaign() if campaign is None else campaign,
        skills=model.skills,
        groups=model.groups,
        wrap_up_s=None,
    )


def serves(model: CampaignModel, group: AgentGroup, campaigns: tuple[CampaignModel, ...]) -> bool:
    """Can the group's agents take the campaign's calls? (The router's own rule.)"""
    profile = AgentProfile(
        "probe", group=group.group, skills=group.skills, queues=agent_queues(group, campaigns)
    )
    return acd_queue(model).qualifying_level(profile) is not None


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
