"""Campaign settings: who is called, by which agents, when, how often, and how carefully.

A :class:`Campaign` is an immutable, validated settings object (STYLE §13): the
dialler, the hopper and the compliance checks receive it, never a dict. It is built
either directly or from a TOML table by :func:`parse_campaign`, whose errors name the
key path (``campaigns[0].hours.sat: '9-17' is not HH:MM-HH:MM``).

Defaults are the conservative reading of the rules ccd is built for (US TCPA/FTC
and UK Ofcom): calls 08:00–21:00 in the callee's local time, 3 % abandonment over a
rolling 30 days (24 h under UK rules), unanswered calls ring at least 15 s, and under
UK rules no re-call within 72 h of an abandoned call. A setting may be made stricter
freely; the legal floors (15 s ring, 72 h UK no-recall, a 2 s connect tolerance that is
not configurable at all) cannot be relaxed from config.

``pacing`` is an opaque mapping handed to the pacing policy named by ``dial_mode``;
policies are registered elsewhere, so :func:`parse_campaign` accepts a set of known
mode names from its caller.

Windows are minutes after local midnight, ``[start, end)``, ``end`` up to 1440
(24:00). A window never spans midnight: write ``21:00-24:00`` on one day and
``00:00-02:00`` on the next, so each weekday's rule stays readable on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import phonenumbers

from acd.durations import parse_duration
from acd.errors import InputError
from acd.settings import TableReader
from dialer.leads import DEFAULT_REGION, Outcome, normalise_number

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0
MIN_RING_S = 15.0  # FTC TSR / Ofcom: an unanswered call rings at least 15 s
UK_NO_RECALL_S = 72 * HOUR_S  # Ofcom: no repeat call within 72 h of an abandoned call
CONNECT_TOLERANCE_S = 2.0  # a human not with an agent 2 s after the greeting is abandoned

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


class DialMode(StrEnum):
    PREVIEW = "preview"  # the agent sees the lead and chooses to dial
    PROGRESSIVE = "progressive"  # one call per idle agent
    RATIO = "ratio"  # a fixed number of calls per idle agent
    PREDICTIVE = "predictive"


class AmdAction(StrEnum):
    HANGUP = "hangup"
    MESSAGE = "message"  # leave a recorded message on the machine


Window = tuple[int, int]  # [start, end) in minutes after local midnight
_DEFAULT_DAY: tuple[Window, ...] = ((8 * 60, 21 * 60),)


@dataclass(frozen=True, slots=True)
class CallingHours:
    """Per weekday (Monday first), the local-time windows in which calls may start."""

    days: tuple[tuple[Window, ...], ...] = (_DEFAULT_DAY,) * 7

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise InputError("hours", f"needs 7 weekdays, got {len(self.days)}")
        for name, windows in zip(WEEKDAYS, self.days, strict=True):
            _check_windows(windows, f"hours.{name}")

    @classmethod
    def every_day(cls, *windows: Window) -> CallingHours:
        return cls((tuple(windows),) * 7)

    def on(self, weekday: int) -> tuple[Window, ...]:
        return self.days[weekday]

    @property
    def never(self) -> bool:
        return not any(self.days)


def _check_windows(windows: Iterable[Window], where: str) -> None:
    last_end = -1
    for start, end in windows:
        if not (0 <= start < end <= 1440):
            raise InputError(
                where,
                f"{_clock(start)}-{_clock(end)} is not a window within one day "
                "(a window past midnight is split: 21:00-24:00 and 00:00-02:00 next day)",
            )
        if start < last_end:
            raise InputError(where, f"windows overlap or are out of order at {_clock(start)}")
        last_end = end


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class RetryRule:
    """When to call again after an outcome: after ``delay_s``, at the next window
    opening of the callee's next local day (``next_day``), or never (``final``)."""

    delay_s: float = 0.0
    next_day: bool = False
    final: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.delay_s) or self.delay_s < 0:
            raise InputError("retry", f"{self.delay_s!r} is not a delay")

    def describe(self) -> str:
        if self.final:
            return "never"
        if self.next_day:
            return "next day"
        return _span(self.delay_s)


NEVER = RetryRule(final=True)


def default_retry(*, uk_rules: bool) -> Mapping[Outcome, RetryRule]:
    return MappingProxyType(
        {
            Outcome.HUMAN: NEVER,
            Outcome.INVALID: NEVER,
            Outcome.BUSY: RetryRule(10 * MINUTE_S),
            Outcome.NO_ANSWER: RetryRule(2 * HOUR_S),
            Outcome.MACHINE: RetryRule(next_day=True),
            Outcome.CONGESTION: RetryRule(15 * MINUTE_S),
            Outcome.FAILED: RetryRule(15 * MINUTE_S),
            Outcome.ABANDONED: RetryRule(UK_NO_RECALL_S if uk_rules else 2 * HOUR_S),
        }
    )


@dataclass(frozen=True, slots=True)
class CallLimit:
    """At most ``count`` dials to one number in any rolling ``window_s``."""

    count: int
    window_s: float

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise InputError("call_limits.count", f"{self.count!r} must be a whole number ≥ 1")
        if not math.isfinite(self.window_s) or self.window_s <= 0:
            raise InputError("call_limits.window", f"{self.window_s!r} must be a positive duration")

    def describe(self) -> str:
        return f"{self.count} in {_span(self.window_s)}"


def _span(seconds: float) -> str:
    for unit, size in (("d", DAY_S), ("h", HOUR_S), ("min", MINUTE_S)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


_NO_PACING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Campaign:
    """One outbound campaign's settings, checked when built (errors name the field)."""

    name: str
    caller_id: str
    queue: str
    dial_mode: str = DialMode.PROGRESSIVE.value
    pacing: Mapping[str, Any] = field(default_factory=lambda: _NO_PACING)
    hours: CallingHours = field(default_factory=CallingHours)
    retry: Mapping[Outcome, RetryRule] | None = None  # None: the defaults for uk_rules
    max_attempts: int = 5
    abandon_target: float = 0.03
    abandon_window_s: float | None = None  # None: 30 days, 24 h under UK rules
    uk_rules: bool = False
    safe_harbour: str = "safe-harbour"
    amd: bool = False
    amd_action: AmdAction = AmdAction.HANGUP
    amd_message: str | None = None
    # Share of AMD "machine" verdicts that were in fact people. Under UK rules each is
    # an abandoned human (Ofcom), so the ledger books this many per machine verdict.
    amd_false_positive_rate: float | None = None
    min_ring_s: float = MIN_RING_S
    max_dial_level: float = 3.0  # calls in progress per working agent: trunks, carrier terms
    call_limits: tuple[CallLimit, ...] = ()
    default_region: str = DEFAULT_REGION

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InputError("name", f"{self.name!r}: use letters, digits, '_', '.', '-' (it labels metrics)")
        if self.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise InputError("default_region", f"{self.default_region!r} is not a known region code")
        object.__setattr__(
            self, "caller_id", normalise_number(self.caller_id, region=self.default_region, where="caller_id")
        )
        if not isinstance(self.queue, str) or not self.queue:
            raise InputError("queue", "must name the ACD queue whose agents take the calls")
        if not isinstance(self.dial_mode, str) or not self.dial_mode:
            raise InputError("dial_mode", f"{self.dial_mode!r} is not a dial mode")
        object.__setattr__(self, "pacing", MappingProxyType(dict(self.pacing)))
        retry = dict(default_retry(uk_rules=self.uk_rules))
        for outcome, rule in (self.retry or {}).items():
            retry[Outcome(outcome)] = rule
        if self.uk_rules and not retry[Outcome.ABANDONED].final:
            rule = retry[Outcome.ABANDONED]
            if rule.next_day or rule.delay_s < UK_NO_RECALL_S:
                raise InputError(
                    "retry.abandoned",
                    f"{rule.describe()} is sooner than the 72 h UK no-recall after an abandon",
                )
        object.__setattr__(self, "retry", MappingProxyType(retry))
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise InputError("max_attempts", f"{self.max_attempts!r} must be a whole number ≥ 1")
        if not 0.0 <= self.abandon_target <= 1.0 or isinstance(self.abandon_target, bool):
            raise InputError(
                "abandon_target", f"{self.abandon_target!r} must be a share in 0..1 (0.03 = 3 %)"
            )
        if self.abandon_window_s is None:
            object.__setattr__(self, "abandon_window_s", DAY_S if self.uk_rules else 30 * DAY_S)
        elif not math.isfinite(self.abandon_window_s) or self.abandon_window_s <= 0:
            raise InputError("abandon_window", f"{self.abandon_window_s!r} must be a positive duration")
        if not isinstance(self.safe_harbour, str) or not self.safe_harbour:
            raise InputError("safe_harbour", "must name the message played to a human no agent can take")
        object.__setattr__(self, "amd_action", _enum(AmdAction, self.amd_action, "amd_action"))
        if self.amd and self.amd_action is AmdAction.MESSAGE and not self.amd_message:
            raise InputError("amd_message", "is required when amd_action = 'message'")
        fp = self.amd_false_positive_rate
        if fp is not None and (isinstance(fp, bool) or not 0.0 <= fp <= 1.0):
            raise InputError("amd_false_positive_rate", f"{fp!r} must be a share in 0..1")
        if self.uk_rules and self.amd and fp is None:
            raise InputError(
                "amd_false_positive_rate",
                "is required with AMD under UK rules: Ofcom counts the people AMD takes for "
                "machines as abandoned calls, so give your reasoned estimate (e.g. 0.02)",
            )
        if (
            isinstance(self.max_dial_level, bool)
            or not math.isfinite(self.max_dial_level)
            or self.max_dial_level < 1.0
        ):
            raise InputError("max_dial_level", f"{self.max_dial_level!r} must be a number >= 1")
        if not math.isfinite(self.min_ring_s) or self.min_ring_s < MIN_RING_S:
            raise InputError("min_ring", f"{self.min_ring_s:g} s: unanswered calls must ring at least 15 s")
        for limit in self.call_limits:
            if not isinstance(limit, CallLimit):
                raise InputError("call_limits", f"{limit!r} is not a CallLimit")

    def retry_rule(self, outcome: Outcome) -> RetryRule:
        assert self.retry is not None  # filled in by __post_init__
        return self.retry[outcome]

    @property
    def window_s(self) -> float:
        """The abandonment window, resolved (30 days, or 24 h under UK rules)."""
        assert self.abandon_window_s is not None
        return self.abandon_window_s


def _enum(kind: type[AmdAction], value: object, where: str) -> AmdAction:
    try:
        return kind(str(value))
    except ValueError:
        known = ", ".join(k.value for k in kind)
        raise InputError(where, f"unknown value {value!r} (known: {known})") from None


# --- reading TOML ------------------------------------------------------------------

_KEY_OF_FIELD = {f.name: f.name for f in fields(Campaign)} | {
    "abandon_window_s": "abandon_window",
    "min_ring_s": "min_ring",
}


def parse_campaign(
    table: Mapping[str, Any], where: str = "campaign", *, known_modes: Collection[str] | None = None
) -> Campaign:
    """A campaign from a TOML-like table; InputError names the key path on bad input.

    ``known_modes`` are the pacing policy names the caller has registered (default:
    the four built-in dial modes).
    """
    r = TableReader(table, where)
    modes = known_modes if known_modes is not None else [m.value for m in DialMode]
    dial_mode = r.text("dial_mode", DialMode.PROGRESSIVE.value)
    if dial_mode not in modes:
        raise InputError(
            r.at("dial_mode"), f"unknown dial mode {dial_mode!r} (known: {', '.join(sorted(modes))})"
        )
    pacing = r.raw("pacing", {})
    if not isinstance(pacing, Mapping):
        raise InputError(r.at("pacing"), "must be a table")
    uk_rules = _boolean(r, "uk_rules", False)
    hours_table = r.table("hours", None)
    hours = _parse_hours(hours_table) if hours_table is not None else CallingHours()
    retry_table = r.table("retry", None)
    retry = _parse_retry(retry_table) if retry_table is not None else {}
    limits = []
    for lt in r.tables("call_limits"):
        limits.append(CallLimit(lt.integer("count", minimum=1), _positive(lt, "window")))
        lt.done()
    window = _positive(r, "abandon_window") if r.has("abandon_window") else None
    kwargs: dict[str, Any] = {
        "name": r.text("name"),
        "caller_id": r.text("caller_id"),
        "queue": r.text("queue"),
        "dial_mode": dial_mode,
        "pacing": pacing,
        "hours": hours,
        "retry": retry,
        "max_attempts": r.integer("max_attempts", 5, minimum=1),
        "abandon_target": r.number("abandon_target", 0.03, maximum=1.0),
        "abandon_window_s": window,
        "uk_rules": uk_rules,
        "safe_harbour": r.text("safe_harbour", "safe-harbour"),
        "amd": _boolean(r, "amd", False),
        "amd_action": r.text("amd_action", AmdAction.HANGUP.value),
        "amd_message": r.text("amd_message") if r.has("amd_message") else None,
        "amd_false_positive_rate": (
            r.number("amd_false_positive_rate", maximum=1.0) if r.has("amd_false_positive_rate") else None
        ),
        "min_ring_s": r.duration("min_ring", MIN_RING_S),
        "max_dial_level": r.number("max_dial_level", 3.0, minimum=1.0),
        "call_limits": tuple(limits),
        "default_region": r.text("default_region", DEFAULT_REGION),
    }
    r.done()
    try:
        return Campaign(**kwargs)
    except InputError as exc:
        head, _, rest = exc.where.partition(".")
        key = _KEY_OF_FIELD.get(head, head) + (f".{rest}" if rest else "")
        raise InputError(r.at(key), exc.problem) from None


def _boolean(r: TableReader, key: str, default: bool) -> bool:
    value = r.raw(key, default)
    if not isinstance(value, bool):
        raise InputError(r.at(key), f"{value!r} is not true or false")
    return value


def _positive(r: TableReader, key: str) -> float:
    seconds = r.duration(key)
    if seconds <= 0:
        raise InputError(r.at(key), "must be longer than 0")
    return seconds


def _parse_hours(t: TableReader) -> CallingHours:
    default = _DEFAULT_DAY
    if t.has("default"):
        default = _parse_windows(t.raw("default"), t.at("default"))
    days = []
    for name in WEEKDAYS:
        days.append(_parse_windows(t.raw(name), t.at(name)) if t.has(name) else default)
        t.used.add(name)
    t.done()
    return CallingHours(tuple(days))


def _parse_windows(value: Any, where: str) -> tuple[Window, ...]:
    """``"08:00-21:00"``, a list of such strings, or ``"closed"`` / ``[]``."""
    items = value if isinstance(value, list) else [value]
    out: list[Window] = []
    for item in items:
        if item == "closed" and len(items) == 1:
            return ()
        if not isinstance(item, str) or item.count("-") != 1:
            raise InputError(where, f"{item!r} is not HH:MM-HH:MM (or 'closed')")
        start_s, end_s = (part.strip() for part in item.split("-"))
        out.append((_parse_clock(start_s, item, where), _parse_clock(end_s, item, where)))
    _check_windows(out, where)
    return tuple(out)


def _parse_clock(text: str, whole: str, where: str) -> int:
    m = _CLOCK.fullmatch(text)
    if m is None or int(m[2]) > 59 or int(m[1]) * 60 + int(m[2]) > 1440:
        raise InputError(where, f"{whole!r} is not HH:MM-HH:MM (or 'closed')")
    return int(m[1]) * 60 + int(m[2])


def _parse_retry(t: TableReader) -> dict[Outcome, RetryRule]:
    out = {}
    for key in list(t.data):
        try:
            outcome = Outcome(key)
        except ValueError:
            known = ", ".join(o.value for o in Outcome)
            raise InputError(t.at(key), f"unknown outcome (known: {known})") from None
        value = t.raw(key)
        if value in ("never", False):
            out[outcome] = NEVER
        elif value == "next_day":
            out[outcome] = RetryRule(next_day=True)
        else:
            out[outcome] = RetryRule(parse_duration(value, where=t.at(key)))
    t.done()
    return out
