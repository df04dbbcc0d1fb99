"""Leads: the people a campaign calls, and what happened each time it called them.

Model. A :class:`Lead` is one row of a lead list: an id, a phone number in E.164
form, the callee's time zone(s), a priority, call data for the agent, and its history
(:class:`Attempt` records) and lifecycle :class:`LeadState`. It is a mutable, slotted
record owned by one :class:`dialer.hopper.Hopper`; everything that must never be
wrong about it (is this number valid, where does the callee live) is settled once, in
:func:`new_lead`, so the hot path never parses a number again.

Time zones. The callee's local time decides when they may be called, so a lead keeps
every zone its number may belong to (phonenumbers' prefix data; a UK mobile maps to
London, Jersey, Guernsey and Man, an Australian mobile to all of Australia). Several
zones are not resolved by picking one: the lead is callable only when it is inside the
calling window in *every* candidate zone (:mod:`dialer.compliance`), which is the only
reading under which a wrong guess cannot put a call at 07:00 somebody's time.
``zone_source`` says which case applies; an explicit zone always wins.

Times are POSIX seconds (float, UTC): the same ``at`` the ACD core uses, anchored to
the Unix epoch because calling windows are about real calendar days. A simulator
starts its virtual clock at a chosen date rather than at 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from acd.errors import InputError

DEFAULT_REGION = "US"
_EMPTY: Mapping[str, str] = MappingProxyType({})
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_UNKNOWN_ZONE = "Etc/Unknown"


class Outcome(StrEnum):
    """How one dial ended. ``abandoned`` is a human we answered but did not put through
    to an agent within the legal 2 s (see :class:`dialer.compliance.AbandonLedger`)."""

    HUMAN = "human"  # a person, connected to an agent
    MACHINE = "machine"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CONGESTION = "congestion"
    INVALID = "invalid"  # the network says the number does not exist
    FAILED = "failed"
    ABANDONED = "abandoned"


class LeadState(StrEnum):
    NEW = "new"
    SCHEDULED = "scheduled"
    DIALLING = "dialling"
    DONE = "done"
    DNC = "dnc"
    INVALID = "invalid"
    MAX_ATTEMPTS = "max_attempts"


FINAL_STATES = frozenset({LeadState.DONE, LeadState.DNC, LeadState.INVALID, LeadState.MAX_ATTEMPTS})

# Legal moves. A callback may reopen a finished lead (the agent promised a call), but
# nothing reopens a DNC or an invalid number: those are facts, not decisions.
TRANSITIONS: Mapping[LeadState, frozenset[LeadState]] = MappingProxyType(
    {
        LeadState.NEW: frozenset(
            {LeadState.SCHEDULED, LeadState.DIALLING, LeadState.DNC, LeadState.INVALID, LeadState.DONE}
        ),
        LeadState.SCHEDULED: frozenset(
            {LeadState.SCHEDULED, LeadState.DIALLING, LeadState.DNC, LeadState.INVALID, LeadState.DONE}
        ),
        # DIALLING -> NEW: served, then given back undialled (Hopper.release).
        LeadState.DIALLING: frozenset(
            {
                LeadState.NEW,
                LeadState.SCHEDULED,
                LeadState.DONE,
                LeadState.DNC,
                LeadState.INVALID,
                LeadState.MAX_ATTEMPTS,
            }
        ),
        LeadState.DONE: frozenset({LeadState.SCHEDULED, LeadState.DNC}),
        LeadState.MAX_ATTEMPTS: frozenset({LeadState.SCHEDULED, LeadState.DNC}),
        LeadState.DNC: frozenset(),
        LeadState.INVALID: frozenset({LeadState.DNC}),
    }
)


class IllegalLeadTransitionError(Exception):
    """The hopper's driver asked for a move the lead's lifecycle does not allow."""


class ZoneSource(StrEnum):
    EXPLICIT = "explicit"  # given with the lead
    NUMBER = "number"  # the number maps to one zone
    NUMBER_AMBIGUOUS = "number_ambiguous"  # several zones: the window must hold in all of them


@dataclass(frozen=True, slots=True)
class Attempt:
    """One dial. ``at`` is when it was placed; ``ended_at`` (if known) when it ended,
    from which retry delays and the UK 72 h no-recall are counted."""

    at: float
    outcome: Outcome
    agent_id: str | None = None
    detail: str = ""
    ended_at: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.at):
            raise ValueError(f"Attempt.at must be finite (got {self.at!r})")
        if self.ended_at is not None and not self.ended_at >= self.at:
            raise ValueError(f"Attempt.ended_at {self.ended_at!r} is before at {self.at!r}")
        if not isinstance(self.outcome, Outcome):
            object.__setattr__(self, "outcome", Outcome(self.outcome))

    @property
    def finished_at(self) -> float:
        return self.at if self.ended_at is None else self.ended_at


@dataclass(slots=True, eq=False)
class Lead:
    """A callee and their history. Build from raw input with :func:`new_lead`; the
    constructor trusts an already-normalised number (a store reloading its own leads)
    and only checks its shape, so a million of them load quickly."""

    lead_id: str
    number: str
    zones: tuple[str, ...]
    zone_source: ZoneSource = ZoneSource.EXPLICIT
    priority: int = 0
    data: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    attempts: tuple[Attempt, ...] = ()
    state: LeadState = LeadState.NEW
    next_due: float | None = None
    callback_at: float | None = None
    callback_agent: str | None = None
    detail: str = ""  # why the lead is in its state (e.g. "global DNC")

    def __post_init__(self) -> None:
        if not self.lead_id:
            raise InputError("lead_id", "must not be empty")
        if not _E164.fullmatch(self.number):
            raise InputError(f"lead {self.lead_id}.number", f"{self.number!r} is not in E.164 form")
        if not self.zones:
            raise InputError(f"lead {self.lead_id}.zones", "at least one time zone is needed")

    def move(self, state: LeadState, detail: str = "") -> None:
        """Change state through the lifecycle table; an illegal move is a driver bug."""
        if state not in TRANSITIONS[self.state]:
            raise IllegalLeadTransitionError(f"lead {self.lead_id}: {self.state} -> {state} is not allowed")
        self.state = state
        self.detail = detail

    def record(self, attempt: Attempt) -> None:
        self.attempts = (*self.attempts, attempt)

    @property
    def zone(self) -> str:
        """The zone shown to people ("08:00 local (America/New_York)"): the first one."""
        return self.zones[0]


def parse_number(
    raw: str, *, region: str = DEFAULT_REGION, where: str = "number"
) -> phonenumbers.PhoneNumber:
    """The parsed number, or InputError saying what is wrong with it and where."""
    return _parse_typed(raw, region, where)[0]


def _parse_typed(raw: str, region: str, where: str) -> tuple[phonenumbers.PhoneNumber, int]:
    """The parsed number and its type. Validity *is* "the type is known" (that is what
    ``is_valid_number`` computes, from the region the number itself implies), so the
    type is worked out once: it is most of the cost of a list import, and the time
    zones need it again."""
    if not isinstance(raw, str) or not raw.strip():
        raise InputError(where, f"{raw!r} is not a phone number")
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InputError(where, f"{raw!r} is not a phone number ({_parse_problem(exc)})") from None
    ntype = phonenumbers.number_type(parsed)
    if ntype == phonenumbers.PhoneNumberType.UNKNOWN:
        reason = phonenumbers.is_possible_number_with_reason(parsed)
        why = _POSSIBLE_PROBLEM.get(reason, "no such number range")
        raise InputError(where, f"{raw!r} is not a valid number for region {region} ({why})")
    return parsed, ntype


def normalise_number(raw: str, *, region: str = DEFAULT_REGION, where: str = "number") -> str:
    """E.164 form of a valid number (``+442079460958``); InputError otherwise."""
    return phonenumbers.format_number(
        parse_number(raw, region=region, where=where), phonenumbers.PhoneNumberFormat.E164
    )


def check_zone(zone: str, *, where: str = "zone") -> str:
    """``zone`` if zoneinfo knows it, else InputError: a typo here would silently move
    a callee's calling window by hours."""
    if not isinstance(zone, str) or not zone or zone.startswith(("/", ".")) or ".." in zone:
        raise InputError(where, f"{zone!r} is not a time zone name")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(where, f"{zone!r} is not a known time zone (e.g. Europe/London)") from None
    return zone


def zones_for_number(
    parsed: phonenumbers.PhoneNumber, ntype: int | None = None
) -> tuple[tuple[str, ...], ZoneSource]:
    """Candidate zones of a number, sorted (deterministic), or ``((), ...)`` if unknown.

    With the number's type already known (``ntype``), phonenumbers'
    ``time_zones_for_number`` is done here without working the type out again: the
    same cases (a geographical number by its prefix, any other as phonenumbers does)."""
    if ntype is None:
        found = phone_timezone.time_zones_for_number(parsed)
    elif ntype == phonenumbers.PhoneNumberType.UNKNOWN:
        found = ()
    elif phonenumbers.is_number_type_geographical(ntype, parsed.country_code or 0):
        found = phone_timezone.time_zones_for_geographical_number(parsed)
    else:  # toll-free, premium…: rare in a list, phonenumbers' own (slower) path
        found = phone_timezone.time_zones_for_number(parsed)
    zones = tuple(sorted(z for z in found if z != _UNKNOWN_ZONE))
    return zones, ZoneSource.NUMBER if len(zones) == 1 else ZoneSource.NUMBER_AMBIGUOUS


def new_lead(
    lead_id: str,
    number: str,
    *,
    region: str = DEFAULT_REGION,
    zone: str | None = None,
    priority: int = 0,
    data: Mapping[str, str] | None = None,
    where: str | None = None,
) -> Lead:
    """A validated lead from raw input (a CSV row, an API call).

    ``region`` is how to read national numbers (``020 7946 0958`` with ``GB``);
    ``zone`` overrides the zone(s) the number implies. ``where`` names the input
    place in errors (``leads.csv:418``); by default the lead id.
    """
    place = where if where is not None else f"lead {lead_id}"
    if not isinstance(lead_id, str) or not lead_id:
        raise InputError(f"{place}.lead_id", "must be a non-empty string")
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InputError(f"{place}.region", f"{region!r} is not a known region code (e.g. US, GB)")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InputError(f"{place}.priority", f"{priority!r} is not a whole number")
    parsed, ntype = _parse_typed(number, region, f"{place}.number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    zones: tuple[str, ...]
    if zone is not None:
        zones, source = (check_zone(zone, where=f"{place}.zone"),), ZoneSource.EXPLICIT
    else:
        zones, source = zones_for_number(parsed, ntype)
        if not zones:
            raise InputError(
                f"{place}.zone", f"no time zone is known for {e164}; give the callee's zone explicitly"
            )
    clean: Mapping[str, str] = _EMPTY
    if data:
        for key, value in data.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InputError(f"{place}.data", f"{key!r} = {value!r}: call data must be text")
        clean = MappingProxyType(dict(data))
    return Lead(lead_id, e164, zones, source, priority, clean)


_POSSIBLE_PROBLEM = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without area code",
}


def _parse_problem(exc: phonenumbers.NumberParseException) -> str:
    return {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "missing or unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "unreadable")
