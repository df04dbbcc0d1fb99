"""The predictive pacing model on hand-built views: exact cases worked by hand, the
exact and normal computations against each other, monotonicity, the budget and the
feedback loop."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.errors import InputError
from dialer.pacing import BusyAgent, HumanOutcome, PacingView, RollingEstimates, get_pacing
from dialer.predictive import Predictive, Survival, _Model, safe_risk

HUGE = 10**9  # a sample size that makes the Wilson bound equal the estimate


def estimates(
    *,
    p: float = 0.3,
    dials: int = 1000,
    ring: tuple[float, ...] = tuple(np.linspace(3.0, 15.0, 60)),
    other: tuple[float, ...] = (25.0,) * 40 + (3.0,) * 20,
    talk: tuple[float, ...] = tuple(np.linspace(20.0, 220.0, 200)),
    wrap: tuple[float, ...] = (5.0,) * 10,
) -> RollingEstimates:
    return RollingEstimates(
        dials=dials,
        human_rate=p,
        ring_to_answer_mean_s=float(np.mean(ring)),
        ring_to_answer_s=ring,
        other_ring_s=other,
        talk_mean_s=float(np.mean(talk)),
        talk_s=talk,
        wrap_mean_s=float(np.mean(wrap)) if wrap else 0.0,
        wrap_s=wrap,
    )


def view(
    *,
    ready: int = 0,
    busy: tuple[float, ...] = (),
    ringing: tuple[float, ...] = (),
    waiting: int = 0,
    est: RollingEstimates | None = None,
    humans_window: int = 10_000,
    abandons_window: int = 0,
    **kw: Any,
) -> PacingView:
    agents = tuple(BusyAgent(a) for a in busy)
    return PacingView(
        at=0.0,
        campaign="c",
        agents_logged_in=ready + len(agents),
        agents_ready=ready,
        busy=agents,
        ringing=ringing,
        humans_waiting=waiting,
        hopper_size=10_000,
        estimates=estimates() if est is None else est,
        humans_window=humans_window,
        abandons_window=abandons_window,
        **kw,
    )


# --- the model, worked by hand -----------------------------------------------------


def test_marginal_risks_match_a_case_worked_by_hand() -> None:
    # Every talk lasts exactly 100 s and there is no wrap-up, so the agent 95 s into
    # a call is free at 5 s for sure; every human answers exactly 4 s after launch.
    # The first new call (answer at 4, agent free by 4 + 2) is safe; the second is
    # lost if the first was a human (p); the third if either of the two was (1 − (1 − p)²).
    est = estimates(p=0.5, dials=HUGE, ring=(4.0,) * 10, other=(), talk=(100.0,) * 50, wrap=())
    model = _Model(view(busy=(95.0,), est=est), 2.0)
    assert model.p == pytest.approx(0.5, abs=1e-4)
    risks = model.marginal_risks(3)
    assert risks[:3] == pytest.approx([0.0, 0.5, 0.75], abs=1e-3)


def test_a_call_that_ends_too_late_gives_no_supply() -> None:
    # The agent is free at 50 s; the human answers at 4 s and waits 2 s: lost for sure.
    est = estimates(p=1.0, dials=HUGE, ring=(4.0,) * 10, other=(), talk=(100.0,) * 50, wrap=())
    risks = _Model(view(busy=(50.0,), est=est), 2.0).marginal_risks(1)
    assert risks[0] == pytest.approx(1.0)


def test_ringing_calls_are_conditioned_on_their_age() -> None:
    # Humans answer within 10 s; a call that has rung 12 s will not bring one any more,
    # so it takes no agent: the new call keeps the single ready agent.
    est = estimates(p=0.5, dials=HUGE, ring=tuple(np.linspace(1.0, 10.0, 30)), other=(25.0,) * 30)
    young = _Model(view(ready=1, ringing=(0.0,), est=est), 2.0).marginal_risks(0)[0]
    old = _Model(view(ready=1, ringing=(12.0,), est=est), 2.0).marginal_risks(0)[0]
    assert old == pytest.approx(0.0, abs=1e-9)
    assert young > 0.2


def test_elapsed_talk_time_conditions_the_remaining_time() -> None:
    # Talk times spread over 20-220 s: an agent 200 s in is nearly done, one 20 s in is not.
    long_in = _Model(view(busy=(200.0,)), 2.0).marginal_risks(0)[0]
    just_in = _Model(view(busy=(20.0,)), 2.0).marginal_risks(0)[0]
    # 20 s in: 200 s to go at most, uniformly; P(done within ~10 s) is a few percent.
    # 200 s in: at most 20 s to go, so the chance is large.
    assert just_in > 0.9
    assert long_in < 0.8


def test_exact_and_normal_computations_agree() -> None:
    rng = np.random.default_rng(3)
    v = view(ready=2, busy=tuple(rng.uniform(0, 200, 35)), ringing=tuple(rng.uniform(0, 10, 5)))
    model = _Model(v, 2.0)
    x = model.p * model.f_new
    own_exact, end_exact = model._exact(6, x, stop_above=2.0)
    own_normal, end_normal = model._normal(6, x)
    # 40 Bernoulli terms: the CLT with a continuity correction is within a few points.
    assert np.max(np.abs(own_exact - own_normal)) < 0.03
    assert np.max(np.abs(end_exact - end_normal)) < 0.05
    assert np.all(np.diff(own_exact) >= -1e-12) and np.all(np.diff(end_exact) >= -1e-12)


def test_a_burst_counts_the_agents_it_takes_from_later_answers() -> None:
    # 20 ready agents, humans answer 1-15 s after launch, nobody frees up: a call's own
    # chance of finding an agent stays high while the burst is under ~20 humans on
    # average, but the end-of-horizon shortfall grows as soon as it may exceed 20.
    est = estimates(p=0.3, dials=HUGE, ring=tuple(np.linspace(1.0, 15.0, 60)), talk=(600.0,) * 50)
    model = _Model(view(ready=20, busy=(1.0,) * 5, est=est), 2.0)
    risks = model.marginal_risks(120, stop_above=2.0)
    x = model.p * model.f_new
    own, _ = model._exact(120, x, stop_above=2.0)
    k = 80  # 24 humans expected from 80 calls against 20 agents
    assert risks[k] > own[k] + 0.2
    assert Predictive().dials_now(view(ready=20, busy=(1.0,) * 5, est=est)) < 70


# --- the policy ----------------------------------------------------------------------


def test_falls_back_to_progressive_without_evidence() -> None:
    policy = get_pacing("predictive", where="p")
    v = view(ready=4, est=estimates(dials=10))
    assert policy.dials_now(v) == 4
    assert isinstance(policy, Predictive) and policy.last is not None
    assert policy.last.mode == "progressive"


def test_an_exhausted_budget_means_progressive() -> None:
    # 3 % of 100 humans is 3 abandons: with 3 already, nothing beyond progressive.
    rich = view(ready=3, busy=(150.0,) * 20, humans_window=100, abandons_window=0)
    spent = view(ready=3, busy=(150.0,) * 20, humans_window=100, abandons_window=3)
    assert Predictive().dials_now(rich) > 3
    policy = Predictive()
    # The three ready agents are certain to take their humans (risk 0), the fourth
    # call is not: it would spend budget the window does not have.
    assert policy.dials_now(spent) == 3


def test_early_in_a_campaign_the_budget_is_a_fraction_of_a_call() -> None:
    # 20 humans so far: the window can absorb 0.6 of an abandon, so the policy plans
    # less than that over the calls it launches beyond the ready agents.
    policy = Predictive(gain_range=(0.05, 100.0))
    policy.log_gain = math.log(100.0)  # the threshold would allow a lot: the budget decides
    n = policy.dials_now(view(ready=2, busy=(150.0,) * 10, humans_window=20))
    assert policy.last is not None
    assert policy.last.mode == "predictive"
    assert policy.last.planned <= 0.6 + 1e-9
    policy.dials_now(view(ready=2, busy=(150.0,) * 10, humans_window=10_000))
    assert policy.last is not None and n < policy.last.dials  # a full window: more calls


def test_respects_the_dial_level_cap() -> None:
    policy = Predictive(gain_range=(0.05, 1000.0))
    policy.log_gain = math.log(1000.0)  # anything goes, except the cap
    v = view(ready=2, busy=(150.0,) * 8, max_dial_level=1.5)
    assert policy.dials_now(v) == math.floor(1.5 * 10) - 8


def test_feedback_moves_the_threshold_towards_the_aim() -> None:
    policy = Predictive(aim=0.5, step=0.05)
    policy.dials_now(view(ready=1))
    start = policy.threshold
    policy.observe(HumanOutcome(0.0, "c", abandoned=True))
    assert policy.threshold < start
    for _ in range(200):
        policy.observe(HumanOutcome(0.0, "c", abandoned=False))
    assert policy.threshold > start
    # At exactly the aimed rate (1.5 %: 3 in 200) the drift is zero.
    before = policy.log_gain
    for i in range(200):
        policy.observe(HumanOutcome(0.0, "c", abandoned=i % 200 < 3))
    assert policy.log_gain == pytest.approx(before, abs=1e-9)


def test_blending_competition_means_fewer_calls() -> None:
    alone = Predictive().dials_now(view(ready=1, busy=(150.0,) * 30))
    shared = Predictive().dials_now(view(ready=1, busy=(150.0,) * 30, competing_rate_per_s=0.5))
    assert shared <= alone


def test_settings_are_strict() -> None:
    assert isinstance(get_pacing("predictive", {"aim": 0.7, "step": 0.02}, where="p"), Predictive)
    with pytest.raises(InputError, match=r"p\.aimm"):
        get_pacing("predictive", {"aimm": 0.7}, where="p")
    with pytest.raises(InputError, match=r"p\.aim"):
        get_pacing("predictive", {"aim": 1.5}, where="p")


# --- invariants ------------------------------------------------------------------------

small = st.integers(min_value=0, max_value=6)
Ages = tuple[float, ...]
ages = st.lists(st.floats(min_value=0.0, max_value=400.0), max_size=12).map(tuple)
rings = st.lists(st.floats(min_value=0.0, max_value=30.0), max_size=8).map(tuple)


@settings(max_examples=60, deadline=None)
@given(small, ages, rings, small)
def test_more_ready_agents_never_mean_fewer_calls(
    ready: int, busy: tuple[float, ...], ringing, waiting
) -> None:
    base = Predictive().dials_now(view(ready=ready, busy=busy, ringing=ringing, waiting=waiting))
    more = Predictive().dials_now(view(ready=ready + 1, busy=busy, ringing=ringing, waiting=waiting))
    assert more >= base


@settings(max_examples=60, deadline=None)
@given(small, ages, rings, small)
def test_more_humans_waiting_never_mean_more_calls(
    ready: int, busy: tuple[float, ...], ringing, waiting
) -> None:
    base = Predictive().dials_now(view(ready=ready, busy=busy, ringing=ringing, waiting=waiting))
    more = Predictive().dials_now(view(ready=ready, busy=busy, ringing=ringing, waiting=waiting + 1))
    assert more <= base


@settings(max_examples=60, deadline=None)
@given(small, ages, rings)
def test_never_fewer_than_progressive_nor_beyond_the_cap(
    ready: int, busy: tuple[float, ...], ringing
) -> None:
    v = view(ready=ready, busy=busy, ringing=ringing)
    n = Predictive().dials_now(v)
    assert n >= max(0, ready - len(ringing))
    cap = math.floor(v.max_dial_level * (ready + len(busy))) - len(ringing) - len(busy)
    assert n <= max(cap, ready - len(ringing), 0)


# --- the pieces: Kaplan–Meier and the safe risk ---------------------------------------


def test_kaplan_meier_counts_running_calls_as_censored() -> None:
    # Finished 1, 2, 3; one call running at 2.5. At 1: 4 at risk, S = 3/4; at 2: 3 at
    # risk (2, 2.5, 3), S = 1/2; at 3: 1 at risk, S = 0.
    km = Survival(np.asarray([1.0, 2.0, 3.0]), np.asarray([2.5]))
    assert km.at(np.asarray([0.5, 1.0, 2.0, 2.9, 3.0])) == pytest.approx([1.0, 0.75, 0.5, 0.5, 0.0])
    # Without running calls it is the empirical survival function.
    plain = Survival(np.asarray([1.0, 2.0, 3.0, 4.0]), np.zeros(0))
    assert plain.at(np.asarray([0.0, 1.5, 3.5])) == pytest.approx([1.0, 0.75, 0.25])


def test_kaplan_meier_is_not_fooled_by_the_start_of_a_shift() -> None:
    # 200 calls started together 120 s ago with exponential(600 s) talk: the ~36 that
    # have ended are all short. The plain empirical mean says ~60 s; with the 164
    # running calls censored, the remaining time of a running call is right (memoryless:
    # P(done within 60 s) = 1 − e^(−60/600) ≈ 0.095).
    rng = np.random.default_rng(5)
    talk = rng.exponential(600.0, 200)
    finished, running = talk[talk <= 120.0], np.full(int((talk > 120.0).sum()), 120.0)
    q = Survival(finished, running).residual(np.asarray([120.0]), np.asarray([60.0]))[0, 0]
    naive = Survival(finished, np.zeros(0)).residual(np.asarray([110.0]), np.asarray([60.0]))[0, 0]
    assert q == pytest.approx(1 - math.exp(-0.1), abs=0.04)
    assert naive > 0.5  # what an estimate from finished calls alone would believe


def test_safe_risk_solves_lundberg_and_tends_to_the_target() -> None:
    target, ruin = 0.03, 0.02
    assert safe_risk(0.0, target, ruin) == 0.0
    last = 0.0
    for slack in (0.5, 1.0, 2.0, 5.0, 20.0, 200.0):
        r = safe_risk(slack, target, ruin)
        rate = math.log(1 / ruin) / slack
        assert (1 - r) * math.exp(-rate * target) + r * math.exp(rate * (1 - target)) == pytest.approx(1.0)
        assert last < r < target
        last = r
    assert safe_risk(1e6, target, ruin) == pytest.approx(target, rel=1e-3)


def test_safe_risk_keeps_the_window_under_target_in_a_random_walk() -> None:
    # From a slack of 2 abandons, humans abandoned with the safe risk: the share of
    # walks that ever go below 0 within 2,000 humans is at most the ruin probability
    # (Lundberg's bound holds for any horizon; 4,000 walks give ±0.5 % at 2 %).
    target, ruin, slack = 0.03, 0.02, 2.0
    r = safe_risk(slack, target, ruin)
    rng = np.random.default_rng(11)
    steps = np.where(rng.random((4000, 2000)) < r, target - 1.0, target)
    ruined = (slack + np.cumsum(steps, axis=1) < 0).any(axis=1).mean()
    assert ruined <= ruin + 0.01


def test_no_prediction_until_finished_calls_have_rung_as_long_as_the_ringing_ones() -> None:
    # Six seconds into a run, the only finished calls are the quick ones: every call
    # still ringing would look hopeless and the policy would flood the agents.
    young = estimates(ring=(2.0, 4.0, 6.0) * 20, other=(3.0,) * 40)
    policy = Predictive()
    assert policy.dials_now(view(ready=5, ringing=(6.0,) * 5, est=young)) == 0
    assert policy.last is not None and policy.last.mode == "progressive"


def test_no_progressive_floor_for_blended_agents() -> None:
    # Every ready agent is covered by progressive on a pure outbound team; with inbound
    # calls arriving on the same agents at 2/s, covering them is no longer safe.
    busy = (5.0,) * 10  # calls that just started: nobody frees up soon
    alone = Predictive().dials_now(view(ready=3, busy=busy))
    shared = Predictive()
    n = shared.dials_now(view(ready=3, busy=busy, competing_rate_per_s=2.0))
    assert alone >= 3
    assert n < 3 and shared.last is not None and shared.last.mode == "predictive"
