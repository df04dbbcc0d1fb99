"""The hopper: order, retry rules, callbacks, DNC, explanations, and the never-wrong-dial property."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.errors import InputError
from dialer.campaign import DAY_S, HOUR_S, MINUTE_S, CallingHours, CallLimit, Campaign
from dialer.compliance import CallHistory, DncList, Reason, is_callable, local_time
from dialer.hopper import Hopper, HopperError
from dialer.leads import Attempt, Lead, LeadState, Outcome, new_lead

NY = "America/New_York"


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()


def ny(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(NY)).timestamp()


NOON = ny(2026, 3, 9, 12)  # a Monday
ALWAYS = CallingHours.every_day((0, 1440))


def campaign(**kw: object) -> Campaign:
    return Campaign("c1", "+12025550123", "sales", **kw)  # type: ignore[arg-type]


def ny_lead(i: int, priority: int = 0) -> Lead:
    return new_lead(f"L{i}", f"+1212555{i:04d}", priority=priority)


def test_order_is_callbacks_then_priority_then_due_then_load_order() -> None:
    hopper = Hopper(campaign())
    leads = [ny_lead(1), ny_lead(2, priority=5), ny_lead(3), ny_lead(4, priority=5)]
    leads[2].next_due = NOON - 3600  # overdue for an hour: before L1 at the same priority
    hopper.load(leads, NOON)
    hopper.load([ny_lead(5)], NOON + 1)
    hopper.schedule_callback("L5", NOON + 2, agent_id="a7")
    served = [hopper.next(NOON + 10) for _ in range(6)]
    assert [lead.lead_id if lead else None for lead in served] == ["L5", "L2", "L4", "L3", "L1", None]
    assert served[0] is not None and served[0].callback_agent == "a7"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-3600, 3600)), min_size=1, max_size=40))
def test_hopper_order_matches_a_sort(spec: list[tuple[int, int]]) -> None:
    hopper = Hopper(campaign(hours=ALWAYS))
    leads = []
    for i, (priority, offset) in enumerate(spec):
        lead = ny_lead(i, priority)
        lead.next_due = NOON + offset
        leads.append(lead)
    hopper.load(leads, NOON)
    due = sorted(
        (lead for lead in leads if (lead.next_due or 0) <= NOON), key=lambda x: (-x.priority, x.next_due)
    )
    expected = [lead.lead_id for lead in due]
    served = [lead.lead_id for lead in hopper_drain(hopper, NOON)]
    assert served == expected  # sorted() is stable: ties keep load order
    later = [lead.lead_id for lead in hopper_drain(hopper, NOON + 3600)]
    assert sorted(later) == sorted(lead.lead_id for lead in leads if lead.lead_id not in served)


def hopper_drain(hopper: Hopper, at: float) -> list[Lead]:
    out = []
    while (lead := hopper.next(at)) is not None:
        out.append(lead)
    return out


@pytest.mark.parametrize(
    ("outcome", "due"),
    [
        (Outcome.BUSY, NOON + 30 + 10 * MINUTE_S),
        (Outcome.NO_ANSWER, NOON + 30 + 2 * HOUR_S),
        (Outcome.CONGESTION, NOON + 30 + 15 * MINUTE_S),
        (Outcome.FAILED, NOON + 30 + 15 * MINUTE_S),
        (Outcome.MACHINE, ny(2026, 3, 10, 8)),
        (Outcome.ABANDONED, NOON + 30 + 2 * HOUR_S),
    ],
)
def test_retry_rules_reschedule(outcome: Outcome, due: float) -> None:
    hopper = Hopper(campaign())
    hopper.load([ny_lead(1)], NOON)
    lead = hopper.next(NOON)
    assert lead is not None and lead.state is LeadState.DIALLING
    hopper.complete("L1", Attempt(NOON, outcome, ended_at=NOON + 30))
    assert lead.state is LeadState.SCHEDULED and lead.next_due == due
    why = hopper.why("L1", NOON + 60)
    assert why.reason is Reason.RETRY_DELAY and why.until == due and str(outcome) in why.detail
    assert hopper.next(due - 1) is None
    assert hopper.next(due) is lead


def test_uk_abandon_waits_72_hours_and_says_so() -> None:
    history = CallHistory()
    hopper = Hopper(campaign(uk_rules=True), history=history)
    hopper.load([ny_lead(1)], NOON)
    hopper.next(NOON)
    hopper.complete("L1", Attempt(NOON, Outcome.ABANDONED, ended_at=NOON + 5))
    assert hopper.get("L1").next_due == NOON + 5 + 72 * HOUR_S
    # a second lead with the same number is held back by the per-number rule
    twin = new_lead("twin", "+12125550001")
    hopper.load([twin], NOON + 10)
    why = hopper.why("twin", NOON + 10)
    assert why.reason is Reason.UK_NO_RECALL and why.until == NOON + 5 + 72 * HOUR_S
    assert "UK 72 h after abandon until" in why.detail
    assert hopper.next(NOON + 10) is None
    assert hopper.why("twin", NOON + 11).reason is Reason.UK_NO_RECALL  # rescheduled for the lift


def test_final_outcomes_and_max_attempts() -> None:
    hopper = Hopper(campaign(max_attempts=2))
    hopper.load([ny_lead(1), ny_lead(2), ny_lead(3)], NOON)
    for _ in range(3):
        hopper.next(NOON)
    hopper.complete("L1", Attempt(NOON, Outcome.HUMAN, agent_id="a1"))
    hopper.complete("L2", Attempt(NOON, Outcome.INVALID, detail="SIT tone"))
    hopper.complete("L3", Attempt(NOON, Outcome.BUSY))
    assert hopper.get("L1").state is LeadState.DONE
    assert hopper.why("L1", NOON).detail == "already done (human (no retry))"
    assert hopper.get("L2").state is LeadState.INVALID
    assert hopper.why("L2", NOON).detail == "invalid number +12125550002 (SIT tone)"
    assert hopper.next(NOON + 10 * MINUTE_S) is hopper.get("L3")
    hopper.complete("L3", Attempt(NOON + 10 * MINUTE_S, Outcome.NO_ANSWER))
    assert hopper.get("L3").state is LeadState.MAX_ATTEMPTS
    why = hopper.why("L3", NOON + DAY_S)
    assert why.reason is Reason.MAX_ATTEMPTS and why.detail == "max attempts reached (2/2)"
    with pytest.raises(HopperError, match="not being dialled"):
        hopper.complete("L3", Attempt(NOON, Outcome.BUSY))


def test_a_callback_reopens_a_finished_lead_and_skips_max_attempts() -> None:
    hopper = Hopper(campaign(max_attempts=1))
    hopper.load([ny_lead(1)], NOON)
    hopper.next(NOON)
    hopper.schedule_callback("L1", NOON + DAY_S, agent_id="a9")  # booked during the call
    lead = hopper.complete("L1", Attempt(NOON, Outcome.HUMAN, agent_id="a9"))
    assert lead.state is LeadState.SCHEDULED
    why = hopper.why("L1", NOON + 60)
    assert why.reason is Reason.CALLBACK and why.until == NOON + DAY_S
    assert why.detail == "callback with agent a9 at Tue 2026-03-10 12:00 local (America/New_York)"
    assert hopper.next(NOON + DAY_S) is lead and lead.callback_agent == "a9"
    hopper.complete("L1", Attempt(NOON + DAY_S, Outcome.HUMAN, agent_id="a9"))
    assert lead.state is LeadState.DONE and lead.callback_agent is None


def test_callbacks_obey_the_window() -> None:
    hopper = Hopper(campaign())
    hopper.load([ny_lead(1)], NOON)
    hopper.schedule_callback("L1", ny(2026, 3, 9, 22))
    assert hopper.next(ny(2026, 3, 9, 22)) is None
    why = hopper.why("L1", ny(2026, 3, 9, 22, 30))
    assert why.reason is Reason.WINDOW and why.until == ny(2026, 3, 10, 8)
    assert hopper.next(ny(2026, 3, 10, 8)) is hopper.get("L1")


def test_why_window_dnc_limits_dialling_and_position() -> None:
    dnc = DncList()
    hopper = Hopper(campaign(call_limits=(CallLimit(1, DAY_S),)), dnc=dnc)
    leads = [ny_lead(1), ny_lead(2), ny_lead(3), new_lead("LDN", "+442079460958"), ny_lead(4)]
    hopper.load(leads, NOON)  # 16:00 in London: both open
    assert hopper.why("L3", NOON).detail == "due now: position 3 in the hopper (2 leads due before it)"
    dnc.add("+12125550004")  # added to the list behind the hopper's back
    assert hopper.why("L4", NOON).reason is Reason.DNC_GLOBAL
    assert hopper.mark_dnc("212-555-0003", campaign="c1") == 1
    why = hopper.why("L3", NOON)
    assert why.reason is Reason.DNC_CAMPAIGN and why.detail == "DNC (campaign c1 DNC)"
    assert hopper.next(NOON) is hopper.get("L1")
    assert hopper.why("L1", NOON).detail == "currently being dialled (since 2026-03-09 16:00:00 UTC)"
    twin = new_lead("twin", "+12125550001")
    hopper.load([twin], NOON)
    why = hopper.why("twin", NOON + 1)
    assert why.reason is Reason.CALL_LIMIT and why.until == NOON + DAY_S
    assert why.detail == "call limit (1 in 1 d) until 2026-03-10 16:00:00 UTC"
    evening = ny(2026, 3, 9, 21, 30)
    why = hopper.why("L2", evening)
    assert why.reason is Reason.WINDOW
    assert why.detail == "outside its calling window until Tue 2026-03-10 08:00 local (America/New_York)"
    assert hopper.why("LDN", evening).detail.endswith("08:00 local (Europe/London)")
    with pytest.raises(InputError, match="lead nobody: is not in this campaign's hopper"):
        hopper.why("nobody", NOON)


def test_summary_explains_an_empty_hopper() -> None:
    hopper = Hopper(campaign())
    hopper.load([ny_lead(i) for i in range(5)] + [new_lead("syd", "+61298765432")], NOON)
    hopper.mark_dnc("+12125550000")
    for _ in range(2):
        lead = hopper.next(NOON)
        assert lead is not None
        hopper.complete(lead.lead_id, Attempt(NOON, Outcome.BUSY))
    summary = hopper.summary(NOON + 60)
    assert summary.by_state == {"dnc": 1, "new": 3, "scheduled": 2}
    assert summary.waiting == {"retry_delay": 2, "window": 1}  # Sydney is asleep
    assert summary.due_now == 2
    assert "waiting (window): 1" in str(summary)
    hopper_drain(hopper, NOON + 60)
    empty = hopper.summary(NOON + 120)
    assert empty.due_now == 0 and empty.by_state["dialling"] == 2 and empty.waiting["window"] == 1


def test_window_groups_wake_only_when_their_window_opens() -> None:
    hopper = Hopper(campaign())
    hopper.load([new_lead("syd", "+61298765432")], NOON)  # 04:00 in Sydney
    opens = utc(2026, 3, 9, 21)  # 08:00 AEDT
    assert hopper.next_deadline() == opens
    assert hopper.next(opens - 1) is None
    assert hopper.next(opens) is hopper.get("syd")


def test_load_and_remove() -> None:
    hopper = Hopper(campaign())
    hopper.load([ny_lead(1)], NOON)
    with pytest.raises(InputError, match="lead L1: is loaded twice"):
        hopper.load([ny_lead(1)], NOON)
    hopper.remove("L1")
    assert "L1" not in hopper and len(hopper) == 0
    assert hopper.next(NOON) is None
    hopper.load([ny_lead(2)], NOON)
    hopper.next(NOON)
    with pytest.raises(InputError, match="being dialled"):
        hopper.remove("L2")


# --- the property: never outside the window, never DNC ------------------------------------

NUMBERS = [
    ("+12125550123", None),
    ("+13105550199", None),
    ("+442079460958", None),
    ("+447911123456", None),  # 4 zones
    ("+61298765432", None),
    ("+61412345678", None),  # every Australian zone, Lord Howe included
    ("+61412345679", "Australia/Lord_Howe"),
    ("+919812345678", None),
    ("+919812345679", "Asia/Kolkata"),
    ("+5511987654321", None),
]
STARTS = [
    utc(2026, 3, 8, 1),
    utc(2026, 10, 31, 20),
    utc(2026, 3, 28, 18),
    utc(2026, 4, 4, 8),
    utc(2026, 10, 3, 8),
]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(NUMBERS) - 1), st.integers(0, 3)), min_size=1, max_size=25),
    st.sampled_from(STARTS),
    st.lists(st.integers(1, 3 * 3600), min_size=5, max_size=40),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_no_lead_is_served_outside_its_window_or_when_dnc(
    spec: list[tuple[int, int]], start: float, steps: list[int], seed: int, narrow: bool
) -> None:
    rng = random.Random(seed)
    hours = CallingHours.every_day((90, 180), (600, 630), (1200, 1440)) if narrow else CallingHours()
    c = campaign(hours=hours, call_limits=(CallLimit(2, 6 * HOUR_S),), uk_rules=rng.random() < 0.5)
    dnc = DncList()
    hopper = Hopper(c, dnc=dnc)
    leads = [
        new_lead(f"L{i}", NUMBERS[n][0], zone=NUMBERS[n][1], priority=p) for i, (n, p) in enumerate(spec)
    ]
    hopper.load(leads, start)
    dialled: dict[str, list[float]] = {}
    at = start
    for step in steps:
        at += step
        if rng.random() < 0.2:  # a DNC request arrives, sometimes only on the list
            number = rng.choice(NUMBERS)[0]
            if rng.random() < 0.5:
                hopper.mark_dnc(number)
            else:
                dnc.add(number, campaign="c1")
        while (lead := hopper.next(at)) is not None:
            assert is_callable(lead, c, at), (lead.zones, local_time(at, lead.zone))
            assert dnc.check(lead.number, "c1") is None
            times = dialled.setdefault(lead.number, [])
            assert sum(1 for t in times if t > at - 6 * HOUR_S) < 2
            times.append(at)
            outcome = rng.choice(list(Outcome))
            hopper.complete(lead.lead_id, Attempt(at, outcome, ended_at=at + rng.randint(0, 60)))
        summary = hopper.summary(at)
        assert summary.total == len(leads) and sum(summary.by_state.values()) == len(leads)
        for lead in leads:
            assert hopper.why(lead.lead_id, at).reason is not Reason.QUEUED or is_callable(lead, c, at)


def test_a_selection_asked_for_an_earlier_instant_refuses_without_spinning() -> None:
    hopper = Hopper(campaign())
    hopper.load([ny_lead(1)], NOON)  # the hopper's clock is at noon, the window open
    assert hopper.next(ny(2026, 3, 9, 7)) is None  # 07:00 is outside it: refused, set aside
    assert hopper.next(NOON) is hopper.get("L1")


def test_release_gives_a_lead_back_undialled() -> None:
    # A preview the agent skipped: no attempt, no dial against the number's limits,
    # back to NEW and served again later.
    hopper = Hopper(campaign(call_limits=(CallLimit(1, DAY_S),)))
    hopper.load([ny_lead(1), ny_lead(2)], NOON)
    lead = hopper.next(NOON)
    assert lead is not None and lead.lead_id == "L1"
    hopper.release("L1", NOON + 5, due=NOON + 600)
    assert lead.state is LeadState.NEW and lead.attempts == ()
    assert hopper.history.dials_within(lead.number, DAY_S, NOON + 5) == 0
    assert hopper.why("L1", NOON + 10).reason is Reason.RETRY_DELAY
    served = hopper.next(NOON + 10)
    assert served is not None and served.lead_id == "L2"
    assert hopper.next(NOON + 600) is lead  # the call limit does not hold it back
    hopper.complete("L2", Attempt(NOON + 10, Outcome.BUSY))
    with pytest.raises(HopperError, match="not being dialled"):
        hopper.release("L2", NOON + 700)


def test_release_keeps_a_callback_for_its_agent() -> None:
    hopper = Hopper(campaign())
    hopper.load([ny_lead(1), ny_lead(2)], NOON)
    hopper.schedule_callback("L1", NOON + 60, agent_id="a7")
    lead = hopper.next(NOON + 60)
    assert lead is not None and lead.lead_id == "L1" and lead.callback_at is None
    # a7 is on a call: try again in 30 s, still a callback for a7, still first in line.
    hopper.release("L1", NOON + 60, due=NOON + 90)
    assert lead.callback_at == NOON + 60 and lead.callback_agent == "a7"  # booked for then
    why = hopper.why("L1", NOON + 61)
    assert why.reason is Reason.CALLBACK and why.until == NOON + 90
    assert hopper.next(NOON + 90) is lead
    assert hopper.served_callback("L1") == NOON + 60  # the grace still counts from here
