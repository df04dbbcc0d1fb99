"""Pacing: how many new calls a campaign should launch right now.

Theory of operation
-------------------
A pacing policy answers one question, over and over: *given what the campaign looks
like at this instant, how many more calls do we start?* Everything it may look at is
in a :class:`PacingView`, a frozen snapshot the driver (the simulator or the live
dialer) builds from its own state, stamped with ``at`` in seconds on the driver's
clock. The policy never reads a clock, never does IO and never keeps a reference to
the driver, so the same object paces a simulated campaign and a live one (DESIGN §5,
STYLE principles 6 and 7).

The answer is a number of *new* calls, not a target level: calls already ringing or
answered and waiting are counted in the view, so asking twice without anything
having changed must give 0 the second time (the driver launches what it was told,
and those calls appear in the next view). :func:`clamp_dials` keeps every answer in
``0 .. hopper_size``: a policy cannot ask for leads that are not there.

Policies are chosen by name (``preview``, ``progressive``, ``ratio``,
``vicidial_adaptive`` in :mod:`dialer.vicidial`, ``predictive``), in scenario files and
campaign settings. Unlike the ACD's agent policies (:mod:`acd.policies`), which are
stateless singletons, a pacing policy may keep state between calls (moving averages,
feedback on the measured abandon rate), so the registry holds *factories*: each
campaign gets its own instance, built from that campaign's settings and validated
there, so a bad setting is reported once, with its place, before any call is made.

A policy may also have ``observe(event)``; the driver calls it (see :func:`notify`)
with the dialer's events as they happen, for policies that learn from individual
outcomes rather than from the rolling figures in the view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from acd.errors import InputError
from acd.settings import TableReader

DEFAULT_ABANDON_TARGET = 0.03
"""The usual legal ceiling (US TSR, Ofcom): 3 % of human answers."""

DEFAULT_MAX_DIAL_LEVEL = 3.0
"""Calls in progress per working agent a campaign allows unless told otherwise (VICIdial's default cap)."""


def _check(ok: bool, name: str, value: object, problem: str) -> None:
    if not ok:
        raise ValueError(f"PacingView.{name} {problem} (got {value!r})")


def _finite_non_negative(name: str, value: float) -> None:
    _check(math.isfinite(value) and value >= 0, name, value, "must be finite and >= 0")


def _fraction(name: str, value: float) -> None:
    _check(0.0 <= value <= 1.0, name, value, "must be in 0..1")


# --- the snapshot ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusyAgent:
    """An agent of the campaign who cannot take a call now because of a call.

    ``talk_s`` is how long the current (or, in wrap-up, the last) call has lasted:
    a call that has already lasted 10 minutes is likely to end sooner than the mean
    says, and that is what a predictive policy bets on. ``wrap_s`` is ``None`` while
    the agent talks and the time spent in wrap-up once the caller has gone.
    """

    talk_s: float
    wrap_s: float | None = None

    def __post_init__(self) -> None:
        _finite_non_negative("busy[].talk_s", self.talk_s)
        if self.wrap_s is not None:
            _finite_non_negative("busy[].wrap_s", self.wrap_s)

    @property
    def in_wrap(self) -> bool:
        return self.wrap_s is not None


@dataclass(frozen=True, slots=True)
class RollingEstimates:
    """What the campaign's recent calls say about the next ones.

    Kept as plain numbers and short sample tuples (the driver decides how recent:
    typically the last few hundred calls) so a policy can use a mean, a quantile or an
    empirical distribution without the driver knowing which. ``dials == 0`` means "no
    evidence yet": the rates are then the driver's priors, not measurements, and a
    careful policy falls back to progressive dialling.
    """

    dials: int = 0
    """Completed dial attempts behind the rates below (the sample size)."""
    human_rate: float = 0.0
    """Share of dials answered by a person (after AMD): humans ÷ dials."""
    machine_share: float = 0.0
    """Share of *answers* that AMD classed as a machine: machines ÷ (humans + machines)."""
    ring_to_answer_mean_s: float = 0.0
    """Mean time from launching a call to a human answering it."""
    ring_to_answer_s: tuple[float, ...] = ()
    """Recent launch-to-human-answer times: the shape of that distribution."""
    talk_mean_s: float = 0.0
    """Mean talk time of a connected call."""
    talk_s: tuple[float, ...] = ()
    """Recent talk times."""
    wrap_mean_s: float = 0.0
    """Mean wrap-up time after a call."""
    wrap_s: tuple[float, ...] = ()
    """Recent wrap-up times."""
    other_ring_s: tuple[float, ...] = ()
    """Recent launch-to-end times of calls that reached no human (machines, busy, no
    answer, failures): with ``ring_to_answer_s`` they say how likely a call that has
    rung for ``r`` seconds still is to bring a human."""

    def __post_init__(self) -> None:
        _check(self.dials >= 0, "estimates.dials", self.dials, "must be >= 0")
        _fraction("estimates.human_rate", self.human_rate)
        _fraction("estimates.machine_share", self.machine_share)
        for name in ("ring_to_answer_mean_s", "talk_mean_s", "wrap_mean_s"):
            _finite_non_negative(f"estimates.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class PacingView:
    """A read-only picture of one campaign at time ``at``: all a policy may decide from.

    Agent counts are of agents who take this campaign's calls (blended agents count
    here while logged in to it). Counts "over the window" follow the compliance
    ledger's rolling window (30 days by default, 24 h under UK rules); "today" is the
    driver's calendar day, which is what VICIdial's rules look at.
    """

    at: float
    """Seconds on the driver's clock; the only time a policy knows."""
    campaign: str
    """The campaign's name, for policies that log or keep per-campaign state."""
    agents_logged_in: int
    """Agents in the campaign, whatever their state (ready, busy, paused)."""
    agents_ready: int
    """Agents idle and ready for a call now."""
    busy: tuple[BusyAgent, ...] = ()
    """Agents on a call or in its wrap-up, each with the age of that call."""
    ringing: tuple[float, ...] = ()
    """Ring age in seconds of every call launched and not yet answered (or failed)."""
    humans_waiting: int = 0
    """Calls answered by a person and waiting for an agent: each may become an abandon."""
    hopper_size: int = 0
    """Leads that may be dialled now; no policy may ask for more."""
    estimates: RollingEstimates = RollingEstimates()
    """Rolling answer rates and duration samples."""
    dials_last_minute: int = 0
    """Calls launched in the last 60 s (all outcomes)."""
    abandons_last_minute: int = 0
    """Abandons among calls of the last 60 s."""
    dials_today: int = 0
    """Calls launched since the start of the driver's day."""
    humans_today: int = 0
    """Human answers today (the regulator's denominator)."""
    abandons_today: int = 0
    """Abandons today: human answers not connected to an agent in time."""
    humans_window: int = 0
    """Human answers over the compliance window."""
    abandons_window: int = 0
    """Abandons over the compliance window."""
    abandon_target: float = DEFAULT_ABANDON_TARGET
    """The campaign's ceiling on abandons ÷ humans over the window, as a fraction."""
    max_dial_level: float = DEFAULT_MAX_DIAL_LEVEL
    """The campaign's ceiling on calls in progress per working agent (trunks, carrier terms)."""
    competing_rate_per_s: float = 0.0
    """Blending: the rate at which other work (inbound calls) takes this campaign's
    agents as they become free, estimated by the driver; 0 for a pure outbound team."""

    def __post_init__(self) -> None:
        _check(math.isfinite(self.at), "at", self.at, "must be finite")
        for name in (
            "agents_logged_in",
            "agents_ready",
            "humans_waiting",
            "hopper_size",
            "dials_last_minute",
            "abandons_last_minute",
            "dials_today",
            "humans_today",
            "abandons_today",
            "humans_window",
            "abandons_window",
        ):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 0, name, value, "must be a whole number >= 0")
        _check(
            self.agents_ready + len(self.busy) <= self.agents_logged_in,
            "agents_logged_in",
            self.agents_logged_in,
            f"must count the {self.agents_ready} ready and {len(self.busy)} busy agents",
        )
        for age in self.ringing:
            _finite_non_negative("ringing[]", age)
        _check(0.0 < self.abandon_target < 1.0, "abandon_target", self.abandon_target, "must be in (0, 1)")
        _finite_non_negative("competing_rate_per_s", self.competing_rate_per_s)
        _check(
            math.isfinite(self.max_dial_level) and self.max_dial_level >= 1.0,
            "max_dial_level",
            self.max_dial_level,
            "must be finite and >= 1",
        )

    @property
    def agents_talking(self) -> int:
        return sum(1 for a in self.busy if a.wrap_s is None)

    @property
    def agents_wrapping(self) -> int:
        return sum(1 for a in self.busy if a.wrap_s is not None)

    @property
    def agents_paused(self) -> int:
        """Logged in but neither ready nor busy with a call: they take no calls until they return."""
        return self.agents_logged_in - self.agents_ready - len(self.busy)

    @property
    def calls_in_progress(self) -> int:
        """Calls launched that will still need an agent: ringing plus answered-and-waiting."""
        return len(self.ringing) + self.humans_waiting

    @property
    def abandon_rate_window(self) -> float:
        return self.abandons_window / self.humans_window if self.humans_window else 0.0

    @property
    def abandon_rate_today(self) -> float:
        return self.abandons_today / self.humans_today if self.humans_today else 0.0


@dataclass(frozen=True, slots=True)
class HumanOutcome:
    """A human answer has been settled: put through in time, or abandoned.

    Given to observing policies (``observe``) the moment the ledger records it, so a
    policy can follow its own recent abandon rate without waiting for the next view.
    """

    at: float  # when the human answered
    campaign: str
    abandoned: bool


# --- the policy interface and the registry -----------------------------------------


class PacingPolicy(Protocol):
    """Anything that can say how many new calls to launch now.

    ``dials_now`` must return a whole number in ``0 .. view.hopper_size``
    (:func:`clamp_dials` does that) and must not assume it is called at a fixed rate:
    the driver calls it whenever something changed and on a timer. A policy may also
    define ``observe(event)`` to see the dialer's events as they happen.
    """

    def dials_now(self, view: PacingView) -> int: ...


@runtime_checkable
class ObservingPolicy(Protocol):
    """The optional half of the interface: policies that learn from individual events."""

    def observe(self, event: object) -> None: ...


def notify(policy: PacingPolicy, event: object) -> None:
    """Give ``event`` to ``policy`` if it observes events; drivers call this, not ``observe``."""
    if isinstance(policy, ObservingPolicy):
        policy.observe(event)


class PacingFactory(Protocol):
    """Builds one campaign's policy from its settings, raising :class:`InputError` at ``where``."""

    def __call__(self, settings: Mapping[str, Any], *, where: str) -> PacingPolicy: ...


PACINGS: dict[str, PacingFactory] = {}


def register_pacing(name: str, factory: PacingFactory) -> None:
    """Make a policy selectable by name in scenario files and campaign settings.

    Registering a name again replaces the earlier factory, so a planner can try a
    variant of a built-in policy under its usual name.
    """
    if not name:
        raise InputError("pacing", "a pacing policy needs a name")
    PACINGS[name] = factory


def get_pacing(name: str, settings: Mapping[str, Any] | None = None, *, where: str) -> PacingPolicy:
    """A new policy instance for one campaign; ``where`` names the settings in errors."""
    _load_builtin_modules()
    try:
        factory = PACINGS[name]
    except KeyError:
        known = ", ".join(sorted(PACINGS))
        raise InputError(where, f"unknown pacing policy {name!r} (known: {known})") from None
    return factory({} if settings is None else settings, where=where)


def _load_builtin_modules() -> None:
    # Policies living in other modules register themselves on import; importing them
    # here (lazily: they import this module) means a name in a scenario file works
    # without the caller knowing which module defines it.
    import dialer.predictive  # noqa: PLC0415
    import dialer.vicidial  # noqa: F401, PLC0415


def clamp_dials(n: int, view: PacingView) -> int:
    """``n`` kept within ``0 .. view.hopper_size``: the contract every policy's answer obeys."""
    return max(0, min(n, view.hopper_size))


def settings_reader(settings: Mapping[str, Any], where: str) -> TableReader:
    """A strict reader for a policy's settings: unknown keys and bad values name their place.

    Third-party factories should use it too, so every policy reports a misspelt
    setting the same way (``campaigns[0].pacing.ratoi: unknown key``).
    """
    return TableReader(settings, where)


def read_choice(reader: TableReader, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = reader.text(key, default)
    if value not in choices:
        raise InputError(reader.at(key), f"{value!r} is not one of {', '.join(choices)}")
    return value


def read_flag(reader: TableReader, key: str, default: bool) -> bool:
    value = reader.raw(key, default)
    if not isinstance(value, bool):
        raise InputError(reader.at(key), f"{value!r} is not true or false")
    return value


def read_at_least(reader: TableReader, key: str, default: float, minimum: float) -> float:
    value = reader.number(key, default, minimum=-math.inf)
    if value < minimum:
        raise InputError(reader.at(key), f"{value:g} must be at least {minimum:g}")
    return value


# --- the simple policies -----------------------------------------------------------


class Preview:
    """Never dials by itself: the agent sees the lead and decides when to call.

    The driver handles preview campaigns outside pacing: when a ready agent asks for
    a lead, it takes the next one from the hopper, shows it to that agent and, when the
    agent says "dial", places the call *bound to that agent*. The callee is answered
    by the agent who dialled, so a preview call can never be an abandon, and no policy
    is needed to decide how many calls to launch. The policy exists so that ``preview``
    is a name like the others in settings, and so a driver that asks anyway gets 0.
    """

    def dials_now(self, view: PacingView) -> int:
        return 0


class Progressive:
    """One call per ready agent not already covered by a call in progress.

    ``ready − ringing − humans_waiting``: a ready agent "covered" by a ringing call
    will get that call if it is answered, so dialling again for them would risk two
    humans for one agent. Abandons happen only when an agent who was ready becomes
    unavailable while the call rings (logs out, pauses, takes an inbound call), so
    this is the safe fallback of every other policy.
    """

    def dials_now(self, view: PacingView) -> int:
        return clamp_dials(view.agents_ready - view.calls_in_progress, view)


class Ratio:
    """A fixed number of calls per ready agent: ``round(ratio × ready) − in progress``.

    The classic "power dialler": with a human-answer rate of 1/ratio it keeps ready
    agents busy, but it ignores how many calls are about to end and how the answer
    rate moves, so its abandon rate is whatever the day brings. The ratio is capped at
    the campaign's ``max_dial_level``. ``round`` is Python's (half to even), the same
    rule as the ``sprintf("%.0f")`` VICIdial uses for its goal.
    """

    def __init__(self, ratio: float = 1.0) -> None:
        if not (math.isfinite(ratio) and ratio >= 1.0):
            raise ValueError(f"ratio must be finite and >= 1 (got {ratio!r})")
        self.ratio = ratio

    def dials_now(self, view: PacingView) -> int:
        ratio = min(self.ratio, view.max_dial_level)
        return clamp_dials(round(ratio * view.agents_ready) - view.calls_in_progress, view)


def _preview(settings: Mapping[str, Any], *, where: str) -> PacingPolicy:
    settings_reader(settings, where).done()
    return Preview()


def _progressive(settings: Mapping[str, Any], *, where: str) -> PacingPolicy:
    settings_reader(settings, where).done()
    return Progressive()


def _ratio(settings: Mapping[str, Any], *, where: str) -> PacingPolicy:
    reader = settings_reader(settings, where)
    ratio = read_at_least(reader, "ratio", 1.0, 1.0)
    reader.done()
    return Ratio(ratio)


register_pacing("preview", _preview)
register_pacing("progressive", _progressive)
register_pacing("ratio", _ratio)
