"""Calling windows across DST, DNC, per-number limits, the UK 72 h rule, the ledger, check_dial."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.errors import InputError
from dialer.campaign import DAY_S, HOUR_S, CallingHours, CallLimit, Campaign, Window
from dialer.compliance import (
    AbandonLedger,
    CallHistory,
    DncList,
    Reason,
    check_dial,
    classify_answer,
    is_callable,
    local_time,
    next_local_day_open,
    next_window_open,
    window_next_close,
    window_next_open,
    window_open,
)
from dialer.leads import Attempt, Lead, Outcome, new_lead


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()


def local(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, *, fold: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(zone), fold=fold).timestamp()


NY = "America/New_York"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"
KOLKATA = "Asia/Kolkata"
ZONES = [NY, LONDON, LORD_HOWE, KOLKATA, "Australia/Sydney", "Asia/Kathmandu", "America/Sao_Paulo"]
# DST transitions of 2026 (UTC): New York, London, Lord Howe (30-minute shift).
TRANSITIONS = [
    utc(2026, 3, 8, 7),
    utc(2026, 11, 1, 6),
    utc(2026, 3, 29, 1),
    utc(2026, 10, 25, 1),
    utc(2026, 4, 4, 15),
    utc(2026, 10, 3, 15, 30),
]
DEFAULT = CallingHours()


# --- calling windows -----------------------------------------------------------------


def test_window_is_read_on_the_local_clock() -> None:
    assert not window_open([NY], DEFAULT, local(NY, 2026, 7, 1, 7, 59, 59))
    assert window_open([NY], DEFAULT, local(NY, 2026, 7, 1, 8))
    assert window_open([NY], DEFAULT, local(NY, 2026, 7, 1, 20, 59, 59))
    assert not window_open([NY], DEFAULT, local(NY, 2026, 7, 1, 21))
    assert window_next_open([KOLKATA], DEFAULT, utc(2026, 7, 1, 16)) == local(KOLKATA, 2026, 7, 2, 8)


def test_a_window_starting_in_the_spring_gap_opens_when_the_clock_jumps() -> None:
    hours = CallingHours.every_day((150, 1440))  # 02:30-24:00; 02:30 does not exist on 2026-03-08
    opens = window_next_open([NY], hours, local(NY, 2026, 3, 8, 0, 30))
    assert opens == utc(2026, 3, 8, 7)  # 03:00 EDT, the transition itself
    assert local_time(opens, NY) == "Sun 2026-03-08 03:00 local (America/New_York)"


def test_the_repeated_hour_reopens_a_window_that_ended_inside_it() -> None:
    hours = CallingHours.every_day((0, 90))  # 00:00-01:30, and 01:00-01:59 happens twice on 2026-11-01
    first_close = window_next_close([NY], hours, local(NY, 2026, 11, 1, 0, 10))
    assert first_close == local(NY, 2026, 11, 1, 1, 30, fold=0)
    reopen = window_next_open([NY], hours, first_close)
    assert reopen == utc(2026, 11, 1, 6)  # the clock falls back to 01:00 EST
    assert window_next_close([NY], hours, reopen) == local(NY, 2026, 11, 1, 1, 30, fold=1)


def test_lord_howe_moves_by_thirty_minutes() -> None:
    # 2026-10-04 02:00 LHST becomes 02:30 LHDT: a window from 02:15 opens at 02:30.
    hours = CallingHours.every_day((135, 1440))
    assert window_next_open([LORD_HOWE], hours, local(LORD_HOWE, 2026, 10, 4, 1)) == utc(2026, 10, 3, 15, 30)
    # 2026-04-05 02:00 LHDT falls back to 01:30 LHST: the clock reads 01:30-02:00 twice.
    hours = CallingHours.every_day((0, 105))  # until 01:45
    close1 = window_next_close([LORD_HOWE], hours, local(LORD_HOWE, 2026, 4, 5, 0, 30))
    assert close1 == local(LORD_HOWE, 2026, 4, 5, 1, 45, fold=0)
    assert window_next_open([LORD_HOWE], hours, close1) == utc(2026, 4, 4, 15)


def test_several_zones_must_all_be_open() -> None:
    # A mid-June instant: Perth 20:00 (open), Lord Howe 22:30 (closed).
    at = utc(2026, 6, 1, 12)
    zones = [LORD_HOWE, "Australia/Perth"]
    assert not window_open(zones, DEFAULT, at)
    assert window_next_open(zones, DEFAULT, at) == local("Australia/Perth", 2026, 6, 2, 8)
    assert window_next_close(zones, DEFAULT, local("Australia/Perth", 2026, 6, 2, 8)) == local(
        LORD_HOWE, 2026, 6, 2, 21
    )


def test_closed_hours_never_open() -> None:
    closed = CallingHours(((),) * 7)
    assert window_next_open([NY], closed, utc(2026, 1, 1)) is None
    only_sunday = CallingHours(((),) * 6 + (((600, 660),),))
    assert window_next_open([NY], only_sunday, local(NY, 2026, 3, 2, 12)) == local(NY, 2026, 3, 8, 10)
    # Zones 14 hours apart with one short window each never agree.
    assert window_next_open(["Pacific/Kiritimati", "Pacific/Pago_Pago"], only_sunday, utc(2026, 3, 2)) is None


def _hours() -> st.SearchStrategy[CallingHours]:
    @st.composite
    def day(draw: st.DrawFn) -> tuple[Window, ...]:
        cuts = sorted(draw(st.sets(st.integers(0, 96).map(lambda q: q * 15), max_size=4)))
        return tuple((a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if a < b)

    return st.lists(day(), min_size=7, max_size=7).map(lambda days: CallingHours(tuple(days)))


def _instants() -> st.SearchStrategy[float]:
    near = st.builds(lambda t, d: t + d, st.sampled_from(TRANSITIONS), st.integers(-36 * 3600, 36 * 3600))
    anywhere = st.integers(int(utc(2026, 1, 1)), int(utc(2027, 1, 1)))
    return st.one_of(near, anywhere).map(float)


@settings(max_examples=60, deadline=None)
@given(_hours(), st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True), _instants())
def test_next_open_is_the_first_open_instant(hours: CallingHours, zones: list[str], at: float) -> None:
    """Checked against the local clock minute by minute: every window edge and every
    UTC-offset change of these zones falls on a whole minute, so openness is constant
    between minute marks and the check is exhaustive."""
    opens = window_next_open(zones, hours, at)
    if opens is None:
        assert not any(window_open(zones, hours, at + k * 900) for k in range(15 * 96))
        return
    assert opens >= at and window_open(zones, hours, opens)
    minute = at - at % 60 + 60
    assert opens == at or not window_open(zones, hours, at)
    while minute < opens:
        assert not window_open(zones, hours, minute), local_time(minute, zones[0])
        minute += 60
    closes = window_next_close(zones, hours, opens)
    if closes is not None:
        assert closes > opens and not window_open(zones, hours, closes)
        assert all(window_open(zones, hours, t) for t in range(int(opens), int(closes), 60))


def test_machine_retry_goes_to_the_next_local_day() -> None:
    campaign = Campaign("c", "+12025550123", "q")
    lead = new_lead("L", "+12125550123")
    # 20:30 New York on Saturday 7 March: next day is Sunday, the DST day; it opens 08:00 EDT.
    assert next_local_day_open(lead, campaign, local(NY, 2026, 3, 7, 20, 30)) == local(NY, 2026, 3, 8, 8)
    # 00:30 local: "next day" is tomorrow, not today's opening.
    assert next_local_day_open(lead, campaign, local(NY, 2026, 3, 9, 0, 30)) == local(NY, 2026, 3, 10, 8)


# --- do not call ---------------------------------------------------------------------


def test_dnc_is_kept_in_e164_globally_and_per_campaign() -> None:
    dnc = DncList(region="GB")
    assert dnc.add("020 7946 0958") == "+442079460958"
    dnc.add("+1 (212) 555-0123", campaign="renewals")
    assert dnc.check("+442079460958", "anything") == "global"
    assert dnc.check("+12125550123", "renewals") == "campaign"
    assert dnc.check("+12125550123", "other") is None
    assert dnc.remove("+44 20 7946 0958") and not dnc.remove("+44 20 7946 0958")
    assert dnc.check("+442079460958", "anything") is None
    assert len(dnc) == 1
    with pytest.raises(InputError, match=r"dnc\.csv\[1\]: 'n/a' is not a phone number"):
        dnc.add_all(["+12125550100", "n/a"], where="dnc.csv")


# --- per-number limits and the UK rule --------------------------------------------------


def test_three_in_24_hours() -> None:
    history = CallHistory()
    limits = (CallLimit(3, DAY_S),)
    for t in (0.0, 100.0, 200.0):
        assert history.limit_until("+1", limits, t) is None
        history.record_dial("+1", t)
    assert history.limit_until("+1", limits, 300.0) == (limits[0], DAY_S)
    assert history.limit_until("+1", limits, DAY_S - 0.001) == (limits[0], DAY_S)
    assert history.limit_until("+1", limits, DAY_S) is None  # the first dial has left the window
    assert history.dials_within("+1", DAY_S, DAY_S) == 2
    # two limits: the later release wins
    week = (CallLimit(3, DAY_S), CallLimit(4, 7 * DAY_S))
    history.record_dial("+1", DAY_S + 1)
    assert history.limit_until("+1", week, DAY_S + 2) == (week[1], 7 * DAY_S)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 10 * 86400), max_size=12),
    st.integers(1, 4),
    st.integers(60, 3 * 86400),
    st.integers(0, 2 * 86400),
)
def test_call_limits_match_a_brute_force_count(dials: list[int], count: int, window: int, later: int) -> None:
    at = max(dials, default=0) + later  # asked at the moment of dialling: after every recorded dial
    history = CallHistory()
    for t in dials:
        history.record_dial("+1", float(t))
    limit = CallLimit(count, float(window))

    def inside(now: float) -> int:
        return sum(1 for t in dials if now - window < t <= now)

    bound = history.limit_until("+1", [limit], float(at))
    if inside(at) < count:
        assert bound is None
    else:
        assert bound is not None
        until = bound[1]
        assert inside(until) < count and inside(until - 1) >= count


def test_uk_no_recall_for_72_hours_after_an_abandon() -> None:
    history = CallHistory()
    history.record_abandon("+44", 1000.0)
    assert history.no_recall_until("+44", 1000.0 + 72 * HOUR_S - 1) == 1000.0 + 72 * HOUR_S
    assert history.no_recall_until("+44", 1000.0 + 72 * HOUR_S) is None


# --- the abandonment ledger ------------------------------------------------------------


def test_an_abandon_is_any_human_not_with_an_agent_within_two_seconds() -> None:
    assert classify_answer(2.0) == (False, "connected after 2.00 s")
    assert classify_answer(2.01)[0]
    assert classify_answer(None, cause="channel error") == (True, "not connected to an agent (channel error)")
    ledger = AbandonLedger()
    record = ledger.record_answer(10.0, None, cause="lost before routing")
    assert record.abandoned and "lost before routing" in record.reason


@pytest.mark.parametrize("window", [30 * DAY_S, DAY_S])
def test_the_window_rolls_and_its_edge_is_exact(window: float) -> None:
    ledger = AbandonLedger(window)
    ledger.record_answer(1000.0, 0.5)
    ledger.record_answer(1000.0, 3.0)
    ledger.record_answer(5000.0, 1.0)
    assert ledger.counts(5000.0) == (3, 1)
    assert ledger.rate(5000.0) == pytest.approx(1 / 3)
    assert ledger.counts(1000.0 + window - 1) == (3, 1)  # a record at r counts while r > at - window
    assert ledger.counts(1000.0 + window) == (1, 0)
    assert ledger.rate(5000.0 + window) == 0.0


def test_uk_false_positive_estimates_count_as_humans_and_abandons() -> None:
    ledger = AbandonLedger(DAY_S)
    for t in range(97):
        ledger.record_answer(float(t), 0.4)
    ledger.record_estimated_false_positives(100.0, 3.0)
    assert ledger.rate(200.0) == pytest.approx(3 / 100)
    assert ledger.allowed_abandons(200.0, 0.03) == pytest.approx(0.0)
    assert ledger.rate(100.0 + DAY_S) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.one_of(st.none(), st.floats(0, 5))), max_size=40),
    st.sampled_from([50, 500, 5000]),
)
def test_ledger_matches_a_brute_force_window(steps: list[tuple[int, float | None]], window: int) -> None:
    ledger = AbandonLedger(float(window))
    kept: list[tuple[float, bool]] = []
    now = 0.0
    for gap, delay in steps:
        now += gap
        kept.append((now, ledger.record_answer(now, delay).abandoned))
        query = now + gap  # queries never go back in time
        humans = sum(1 for t, _ in kept if t > query - window)
        abandons = sum(1 for t, a in kept if a and t > query - window)
        assert ledger.counts(query) == (humans, abandons)
        now = query


def test_ledger_settings_are_checked() -> None:
    with pytest.raises(InputError, match="abandon_window"):
        AbandonLedger(0.0)
    assert AbandonLedger.for_campaign(Campaign("c", "+12025550123", "q", uk_rules=True)).window_s == DAY_S


# --- check_dial -------------------------------------------------------------------------


def _lead(number: str = "+12125550123", **kw: object) -> Lead:
    return new_lead("L", number, **kw)  # type: ignore[arg-type]


def test_check_dial_names_the_first_rule_that_forbids() -> None:
    campaign = Campaign("c", "+12025550123", "q", uk_rules=True, call_limits=(CallLimit(2, DAY_S),))
    dnc, history = DncList(), CallHistory()
    lead = _lead()
    noon = local(NY, 2026, 3, 9, 12)
    assert check_dial(lead, campaign, dnc, history, noon) is None
    night = check_dial(lead, campaign, dnc, history, local(NY, 2026, 3, 9, 22))
    assert night is not None and night.reason is Reason.WINDOW and night.until == local(NY, 2026, 3, 10, 8)
    assert str(night) == "outside its calling window until Tue 2026-03-10 08:00 local (America/New_York)"
    history.record_dial(lead.number, noon - 60)
    history.record_dial(lead.number, noon - 30)
    limited = check_dial(lead, campaign, dnc, history, noon)
    assert limited is not None and limited.reason is Reason.CALL_LIMIT and limited.until == noon - 60 + DAY_S
    assert "call limit (2 in 1 d)" in limited.detail
    other = _lead("+12125550199")
    history.record_abandon(other.number, noon - HOUR_S)
    uk = check_dial(other, campaign, dnc, history, noon)
    assert uk is not None and uk.reason is Reason.UK_NO_RECALL and uk.until == noon - HOUR_S + 72 * HOUR_S
    assert check_dial(other, Campaign("c", "+12025550123", "q"), dnc, history, noon) is None
    third = _lead("+12125550177")
    dnc.add("+12125550177", campaign="c")
    refusal = check_dial(third, campaign, dnc, history, noon)
    assert refusal is not None and refusal.reason is Reason.DNC_CAMPAIGN and refusal.until is None
    dnc.add("212 555 0177")
    refusal = check_dial(third, campaign, dnc, history, noon)
    assert refusal is not None and refusal.reason is Reason.DNC_GLOBAL


def test_check_dial_counts_attempts_except_for_callbacks() -> None:
    campaign = Campaign("c", "+12025550123", "q", max_attempts=2)
    lead = _lead()
    lead.record(Attempt(0.0, Outcome.BUSY))
    lead.record(Attempt(1.0, Outcome.BUSY))
    noon = local(NY, 2026, 3, 9, 12)
    refusal = check_dial(lead, campaign, DncList(), CallHistory(), noon)
    assert refusal is not None and refusal.reason is Reason.MAX_ATTEMPTS and refusal.detail.endswith("(2/2)")
    lead.callback_at = noon
    assert check_dial(lead, campaign, DncList(), CallHistory(), noon) is None


def test_is_callable_and_next_window_open_use_the_leads_zones() -> None:
    campaign = Campaign("c", "+12025550123", "q")
    lead = _lead("+61 412 345 678")  # every Australian zone
    at = utc(2026, 6, 1, 12)
    assert not is_callable(lead, campaign, at)
    opens = next_window_open(lead, campaign, at)
    assert opens is not None and is_callable(lead, campaign, opens)
    assert all(window_open([z], campaign.hours, opens) for z in lead.zones)
