"""Compliance, enforced at the moment of dialling: windows, DNC, call limits, abandons.

Theory of operation.

*Calling windows* are wall-clock rules in the callee's zone ("08:00–21:00 local").
Whether an instant is inside is easy: read the local clock at that instant (a reading
is never ambiguous, whatever DST does). The hard part is *when the window next opens
or closes*, because the local clock jumps: in America/New_York on 2026-03-08 the
clock goes 01:59:59 → 03:00 (a window starting at 02:30 opens at 03:00), on
2026-11-01 it reads 01:00–01:59 twice (a window ending at 01:30 closes, then
re-opens at the fall-back and closes again), and Australia/Lord_Howe moves by 30
minutes. Rather than special-casing, openness is treated as a step function of the
instant whose steps can only fall on (a) a window boundary read with either fold (the
first and the second time the clock shows it) or (b) a UTC-offset transition (found
by bisection, to the second, on days whose offset changes). The next change is the
first of those candidates at which openness has the wanted value; since every true
step is a candidate, that is exact, and nonexistent or repeated local times need no
special rule. A lead whose number maps to several zones is callable only when all of
them are inside the window: the next opening is found by moving to each zone's next
opening in turn until all agree (each move skips only instants at which some zone is
closed, so the first agreement is the earliest).

*DNC* numbers (global or per campaign) are kept in E.164 so the same person cannot
be reached through a differently written number; :func:`check_dial` consults the
list as its last step, so a number added a moment ago is never dialled.

*Per-number limits* ("3 in 24 h") and the *UK 72 h no-recall after an abandon* are
about the number, not the lead or the campaign: :class:`CallHistory` keeps each
number's recent dial times (sorted, pruned past a retention horizon) and its last
abandon. A dial at ``t`` counts at ``at`` while ``at - window < t``; the refusal says
the exact instant it lifts.

*Abandonment* (:class:`AbandonLedger`): any human answer not connected to an agent
within 2 s of the greeting is an abandon — also a human lost before routing or to a
channel error. The rate is abandons ÷ human answers per campaign over a rolling
window (30 days; 24 h under UK rules, where estimated AMD false positives count as
both). Records are aggregated into buckets of ``resolution_s`` (1 s by default, so a
30-day window holds at most one bucket per second that had an answer) in a deque
with running totals: an update is O(1), a query is amortised O(1) (each bucket leaves
the window once), and the window edge is exact to the resolution: a record at ``r``
counts at ``at`` while ``floor(r / resolution) * resolution > at - window``.

Time is POSIX seconds (float, UTC) everywhere, as in :mod:`dialer.leads`; queries
and records should not go back in time (a ledger forgets what left its window).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo

import phonenumbers

from acd.errors import InputError
from dialer.campaign import CONNECT_TOLERANCE_S, DAY_S, UK_NO_RECALL_S, CallingHours, CallLimit, Campaign
from dialer.leads import DEFAULT_REGION, Lead, LeadState

_HORIZON_DAYS = 8  # any weekly schedule with an open window opens within a week
_MAX_SEARCH_S = 15 * DAY_S  # several zones: give up (never callable) after this


# --- calling windows -----------------------------------------------------------------


@cache
def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _open_in(tz: ZoneInfo, hours: CallingHours, at: float) -> bool:
    local = datetime.fromtimestamp(at, tz)
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in hours.days[local.weekday()])


def _offset_s(tz: ZoneInfo, at: float) -> float:
    offset = datetime.fromtimestamp(at, tz).utcoffset()
    assert offset is not None
    return offset.total_seconds()


def _transitions(tz: ZoneInfo, lo: float, hi: float) -> list[float]:
    """Instants in (lo, hi] at which the zone's UTC offset changes (to the second).

    Assumes at most one change per day, which holds for every zone in the tz database
    in the era a dialler cares about.
    """
    out = []
    a = math.floor(lo)
    while a < hi:
        b = a + int(DAY_S)
        before, after = _offset_s(tz, a), _offset_s(tz, b)
        if before != after:
            x, y = a, b  # offset(x) == before, offset(y) != before
            while y - x > 1:
                mid = (x + y) // 2
                if _offset_s(tz, mid) == before:
                    x = mid
                else:
                    y = mid
            out.append(float(y))
        a = b
    return out


def _boundaries(tz: ZoneInfo, hours: CallingHours, day: date) -> list[float]:
    """Both readings (fold 0 and 1) of every window edge of local ``day``."""
    out = []
    for start, end in hours.days[day.weekday()]:
        for minute in (start, end):
            d = day + timedelta(days=minute // 1440)
            local = datetime(d.year, d.month, d.day, (minute % 1440) // 60, minute % 60, tzinfo=tz)
            out.append(local.timestamp())
            out.append(local.replace(fold=1).timestamp())
    return out


def _next_in(tz: ZoneInfo, hours: CallingHours, at: float, want_open: bool) -> float | None:
    """First instant ≥ ``at`` at which the zone's window is open (or closed)."""
    if _open_in(tz, hours, at) == want_open:
        return at
    today = datetime.fromtimestamp(at, tz).date()
    for days in (2, _HORIZON_DAYS):
        # Complete up to ``last``: every offset change and every edge of the local days
        # that overlap (at, last] (days are 23-25 h long, hence the extra day).
        last = at + days * DAY_S
        candidates = _transitions(tz, at, last)
        for k in range(-1, days + 2):
            candidates.extend(_boundaries(tz, hours, today + timedelta(days=k)))
        for c in sorted(c for c in candidates if at < c <= last):
            if _open_in(tz, hours, c) == want_open:
                return c
    return None


def window_open(zones: Sequence[str], hours: CallingHours, at: float) -> bool:
    """Inside the calling window in every one of ``zones`` at ``at``."""
    return all(_open_in(zone_info(z), hours, at) for z in zones)


def window_next_open(zones: Sequence[str], hours: CallingHours, at: float) -> float | None:
    """Earliest instant ≥ ``at`` inside the window in all ``zones``; None if never."""
    t = at
    while t - at <= _MAX_SEARCH_S:
        moved = False
        for z in zones:
            nxt = _next_in(zone_info(z), hours, t, True)
            if nxt is None:
                return None
            if nxt > t:
                t, moved = nxt, True
        if not moved:
            return t
    return None


def window_next_close(zones: Sequence[str], hours: CallingHours, at: float) -> float | None:
    """First instant ≥ ``at`` outside the window in some zone; None if not within a week."""
    closes = [_next_in(zone_info(z), hours, at, False) for z in zones]
    found = [c for c in closes if c is not None]
    return min(found) if found else None


def is_callable(lead: Lead, campaign: Campaign, at: float) -> bool:
    """Is ``at`` inside the campaign's calling window in the callee's local time?"""
    return window_open(lead.zones, campaign.hours, at)


def next_window_open(lead: Lead, campaign: Campaign, at: float) -> float | None:
    """When the callee's window next opens (``at`` itself if open now); None if never."""
    return window_next_open(lead.zones, campaign.hours, at)


def next_local_day_open(lead: Lead, campaign: Campaign, at: float) -> float | None:
    """The first window opening on the callee's next local day (the "machine → next
    day" retry), read in the lead's first zone."""
    tz = zone_info(lead.zone)
    tomorrow = datetime.fromtimestamp(at, tz).date() + timedelta(days=1)
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=tz).timestamp()
    return window_next_open(lead.zones, campaign.hours, max(midnight, at))


def local_time(at: float, zone: str) -> str:
    """``Mon 2026-03-09 08:00 local (America/New_York)``: how people read a refusal."""
    return f"{datetime.fromtimestamp(at, zone_info(zone)):%a %Y-%m-%d %H:%M} local ({zone})"


def utc_time(at: float) -> str:
    return f"{datetime.fromtimestamp(at, zone_info('UTC')):%Y-%m-%d %H:%M:%S} UTC"


# --- do not call ---------------------------------------------------------------------


class DncList:
    """Numbers never to dial: one global list and one per campaign, in E.164.

    Entries are read leniently (a number must parse, not be "valid"): a DNC request
    for a number ccd would not dial anyway does no harm, refusing it would.
    """

    def __init__(self, *, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self._global: set[str] = set()
        self._campaign: dict[str, set[str]] = {}

    def normalise(self, number: str, *, where: str = "dnc") -> str:
        try:
            parsed = phonenumbers.parse(number, self.region)
        except (phonenumbers.NumberParseException, TypeError):
            raise InputError(where, f"{number!r} is not a phone number") from None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def add(self, number: str, campaign: str | None = None, *, where: str = "dnc") -> str:
        e164 = self.normalise(number, where=where)
        (self._global if campaign is None else self._campaign.setdefault(campaign, set())).add(e164)
        return e164

    def add_all(self, numbers: Iterable[str], campaign: str | None = None, *, where: str = "dnc") -> int:
        count = 0
        for i, number in enumerate(numbers):
            self.add(number, campaign, where=f"{where}[{i}]")
            count += 1
        return count

    def remove(self, number: str, campaign: str | None = None, *, where: str = "dnc") -> bool:
        e164 = self.normalise(number, where=where)
        entries = self._global if campaign is None else self._campaign.get(campaign, set())
        if e164 in entries:
            entries.discard(e164)
            return True
        return False

    def check(self, e164: str, campaign: str) -> str | None:
        """``"global"`` or ``"campaign"`` if ``e164`` is listed for ``campaign``, else None."""
        if e164 in self._global:
            return "global"
        listed = self._campaign.get(campaign)
        if listed is not None and e164 in listed:
            return "campaign"
        return None

    def __len__(self) -> int:
        return len(self._global) + sum(len(s) for s in self._campaign.values())


# --- per-number history: rolling limits and the UK 72 h rule ---------------------------


class CallHistory:
    """Recent dials and the last abandon per number, shared by all campaigns.

    ``retention_s`` must cover the longest call-limit window in use; older dials are
    forgotten as new ones are recorded.
    """

    def __init__(self, *, retention_s: float = 30 * DAY_S) -> None:
        self.retention_s = retention_s
        self._dials: dict[str, list[float]] = {}
        self._abandoned: dict[str, float] = {}

    def record_dial(self, number: str, at: float) -> None:
        times = self._dials.setdefault(number, [])
        if times and times[-1] > at:
            bisect.insort(times, at)
        else:
            times.append(at)
        if times[0] <= at - self.retention_s:
            del times[: bisect.bisect_right(times, at - self.retention_s)]

    def withdraw_dial(self, number: str, at: float) -> None:
        """Forget one dial recorded at ``at`` (a lead served but not dialled after all)."""
        times = self._dials.get(number)
        if not times:
            return
        i = bisect.bisect_left(times, at)
        if i < len(times) and times[i] == at:
            del times[i]
            if not times:
                del self._dials[number]

    def record_abandon(self, number: str, at: float) -> None:
        self._abandoned[number] = max(at, self._abandoned.get(number, at))

    def dials_within(self, number: str, window_s: float, at: float) -> int:
        times = self._dials.get(number, ())
        return bisect.bisect_right(times, at) - bisect.bisect_right(times, at - window_s)

    def limit_until(
        self, number: str, limits: Iterable[CallLimit], at: float
    ) -> tuple[CallLimit, float] | None:
        """The binding limit and when dialling ``number`` is allowed again, or None."""
        times = self._dials.get(number)
        if not times:
            return None
        hi = bisect.bisect_right(times, at)
        worst: tuple[CallLimit, float] | None = None
        for limit in limits:
            lo = bisect.bisect_right(times, at - limit.window_s)
            inside = hi - lo
            if inside >= limit.count:
                # the oldest (inside - count + 1) dials must leave the window first
                until = times[lo + inside - limit.count] + limit.window_s
                if worst is None or until > worst[1]:
                    worst = (limit, until)
        return worst

    def last_abandon(self, number: str) -> float | None:
        return self._abandoned.get(number)

    def no_recall_until(self, number: str, at: float) -> float | None:
        """Under UK rules: until when ``number`` may not be called after an abandon."""
        last = self._abandoned.get(number)
        if last is None or at >= last + UK_NO_RECALL_S:
            return None
        return last + UK_NO_RECALL_S


# --- the abandonment ledger ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HumanAnswer:
    """One human answer as the ledger classified it (kept for reports and audits)."""

    at: float
    connect_delay_s: float | None  # None: never reached an agent
    abandoned: bool
    reason: str


def classify_answer(connect_delay_s: float | None, *, cause: str = "") -> tuple[bool, str]:
    """(abandoned?, why) for a human answer connected ``connect_delay_s`` after the
    greeting; the 2 s tolerance is the regulators', not a setting."""
    if connect_delay_s is None or not math.isfinite(connect_delay_s):
        return True, f"not connected to an agent ({cause or 'no agent'})"
    if connect_delay_s < 0:
        raise ValueError(f"connect delay {connect_delay_s!r} is negative")
    if connect_delay_s > CONNECT_TOLERANCE_S:
        return True, f"connected after {connect_delay_s:.2f} s (> {CONNECT_TOLERANCE_S:g} s)"
    return False, f"connected after {connect_delay_s:.2f} s"


class AbandonLedger:
    """Human answers and abandons of one campaign over a rolling window (see module)."""

    __slots__ = ("_abandons", "_buckets", "_estimated", "_humans", "resolution_s", "window_s")

    def __init__(self, window_s: float = 30 * DAY_S, *, resolution_s: float = 1.0) -> None:
        if not window_s > 0 or not math.isfinite(window_s):
            raise InputError("abandon_window", f"{window_s!r} must be a positive duration")
        if not 0 < resolution_s <= window_s:
            raise InputError("resolution", f"{resolution_s!r} must be in (0, window]")
        self.window_s = window_s
        self.resolution_s = resolution_s
        # [bucket index, humans, abandons, estimated AMD false positives]
        self._buckets: deque[list[float]] = deque()
        self._humans = 0
        self._abandons = 0
        self._estimated = 0.0

    @classmethod
    def for_campaign(cls, campaign: Campaign, *, resolution_s: float = 1.0) -> AbandonLedger:
        return cls(campaign.window_s, resolution_s=resolution_s)

    def _bucket(self, at: float) -> list[float]:
        index = math.floor(at / self.resolution_s)
        if self._buckets and self._buckets[-1][0] >= index:
            return self._buckets[-1]  # late records join the newest bucket (they stay longer)
        bucket = [float(index), 0.0, 0.0, 0.0]
        self._buckets.append(bucket)
        return bucket

    def record_answer(self, at: float, connect_delay_s: float | None, *, cause: str = "") -> HumanAnswer:
        """A human answered at ``at``; connected after ``connect_delay_s`` (None: never)."""
        abandoned, reason = classify_answer(connect_delay_s, cause=cause)
        bucket = self._bucket(at)
        bucket[1] += 1
        self._humans += 1
        if abandoned:
            bucket[2] += 1
            self._abandons += 1
        return HumanAnswer(at, connect_delay_s, abandoned, reason)

    def record_estimated_false_positives(self, at: float, count: float) -> None:
        """UK rule: humans AMD probably took for machines count as answered and abandoned."""
        if not count >= 0 or not math.isfinite(count):
            raise ValueError(f"estimated false positives {count!r} must be ≥ 0")
        self._bucket(at)[3] += count
        self._estimated += count

    def _expire(self, at: float) -> None:
        edge = at - self.window_s
        buckets = self._buckets
        while buckets and buckets[0][0] * self.resolution_s <= edge:
            _, humans, abandons, estimated = buckets.popleft()
            self._humans -= int(humans)
            self._abandons -= int(abandons)
            self._estimated -= estimated
        if not buckets:
            self._estimated = 0.0  # no drift from float subtraction

    def counts(self, at: float) -> tuple[float, float]:
        """(human answers, abandons) in the window ending at ``at``."""
        self._expire(at)
        return self._humans + self._estimated, self._abandons + self._estimated

    def rate(self, at: float) -> float:
        """Abandons ÷ human answers in the window (0 with no human answers yet)."""
        humans, abandons = self.counts(at)
        return abandons / humans if humans > 0 else 0.0

    def allowed_abandons(self, at: float, target: float) -> float:
        """How many more abandons the window can take now without exceeding ``target``
        (pacing's headroom; more human answers add ``target`` each)."""
        humans, abandons = self.counts(at)
        return max(0.0, target * humans - abandons)


# --- the check at the moment of dialling ------------------------------------------------


class Reason(StrEnum):
    """Why a lead is not being dialled (shared by :func:`check_dial` and the hopper)."""

    WINDOW = "window"
    NO_WINDOW = "no_window"
    DNC_GLOBAL = "dnc_global"
    DNC_CAMPAIGN = "dnc_campaign"
    MAX_ATTEMPTS = "max_attempts"
    CALL_LIMIT = "call_limit"
    UK_NO_RECALL = "uk_no_recall"
    INVALID = "invalid"
    DONE = "done"
    DIALLING = "dialling"
    RETRY_DELAY = "retry_delay"
    CALLBACK = "callback"
    QUEUED = "queued"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Not now: ``until`` is when the reason lifts (None: not by waiting)."""

    reason: Reason
    until: float | None
    detail: str

    def __str__(self) -> str:
        return self.detail


def check_dial(
    lead: Lead, campaign: Campaign, dnc: DncList, history: CallHistory, at: float
) -> Refusal | None:
    """None if ``lead`` may be dialled at ``at``, else the first rule that forbids it.

    Called at the moment of dialling; the DNC list is consulted last so that nothing
    between the check and the dial can be older than the freshest DNC entry.
    """
    if lead.state is LeadState.INVALID:
        return Refusal(Reason.INVALID, None, f"invalid number {lead.number} ({lead.detail or 'invalid'})")
    if lead.state is LeadState.DNC:
        return Refusal(Reason.DNC_GLOBAL, None, f"DNC ({lead.detail or 'listed'})")
    if lead.callback_at is None and len(lead.attempts) >= campaign.max_attempts:
        n = len(lead.attempts)
        return Refusal(Reason.MAX_ATTEMPTS, None, f"max attempts reached ({n}/{campaign.max_attempts})")
    if not is_callable(lead, campaign, at):
        opens = next_window_open(lead, campaign, at)
        if opens is None:
            return Refusal(
                Reason.NO_WINDOW, None, f"the campaign's hours never open in {', '.join(lead.zones)}"
            )
        return Refusal(
            Reason.WINDOW, opens, f"outside its calling window until {local_time(opens, lead.zone)}"
        )
    if campaign.call_limits:
        bound = history.limit_until(lead.number, campaign.call_limits, at)
        if bound is not None:
            limit, until = bound
            return Refusal(
                Reason.CALL_LIMIT, until, f"call limit ({limit.describe()}) until {utc_time(until)}"
            )
    if campaign.uk_rules:
        until_uk = history.no_recall_until(lead.number, at)
        if until_uk is not None:
            return Refusal(Reason.UK_NO_RECALL, until_uk, f"UK 72 h after abandon until {utc_time(until_uk)}")
    listed = dnc.check(lead.number, campaign.name)
    if listed == "global":
        return Refusal(Reason.DNC_GLOBAL, None, "DNC (global)")
    if listed == "campaign":
        return Refusal(Reason.DNC_CAMPAIGN, None, f"DNC (campaign {campaign.name})")
    return None
