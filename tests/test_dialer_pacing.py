"""Pacing policies decide from hand-built views; the VICIdial policy follows its Perl source.

The expected numbers in the VICIdial tables are worked by hand from
bin/AST_VDadapt.pl and bin/AST_VDauto_dial.pl (see dialer/vicidial.py for the lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.errors import InputError
from dialer.pacing import (
    PACINGS,
    BusyAgent,
    PacingPolicy,
    PacingView,
    Progressive,
    Ratio,
    RollingEstimates,
    clamp_dials,
    get_pacing,
    notify,
    register_pacing,
)
from dialer.vicidial import (
    SAMPLES,
    DropStats,
    VicidialAdaptive,
    adapt_level,
    calls_to_place,
)


def view(
    *,
    at: float = 0.0,
    ready: int = 0,
    talking: int = 0,
    wrapping: int = 0,
    paused: int = 0,
    ringing: int = 0,
    waiting: int = 0,
    hopper: int = 1000,
    **kw: Any,
) -> PacingView:
    busy = tuple(BusyAgent(talk_s=60.0) for _ in range(talking)) + tuple(
        BusyAgent(talk_s=60.0, wrap_s=5.0) for _ in range(wrapping)
    )
    return PacingView(
        at=at,
        campaign="c",
        agents_logged_in=ready + talking + wrapping + paused,
        agents_ready=ready,
        busy=busy,
        ringing=tuple(3.0 for _ in range(ringing)),
        humans_waiting=waiting,
        hopper_size=hopper,
        **kw,
    )


def no_drops(at: float = 0.0) -> DropStats:
    return DropStats(at, 0, 0, 0, 0, 0)


# --- the view ----------------------------------------------------------------------


def test_view_derived_counts() -> None:
    v = view(ready=2, talking=3, wrapping=1, paused=4, ringing=5, waiting=1)
    assert (v.agents_talking, v.agents_wrapping, v.agents_paused) == (3, 1, 4)
    assert v.calls_in_progress == 6
    assert view(humans_window=200, abandons_window=5).abandon_rate_window == 0.025
    assert view().abandon_rate_today == 0.0
    assert BusyAgent(10.0, 2.0).in_wrap and not BusyAgent(10.0).in_wrap


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"at": float("nan")}, "at"),
        ({"agents_ready": -1}, "agents_ready"),
        ({"agents_ready": 3}, "agents_logged_in"),  # more ready agents than logged in
        ({"hopper_size": -2}, "hopper_size"),
        ({"ringing": (-1.0,)}, "ringing"),
        ({"abandon_target": 0.0}, "abandon_target"),
        ({"abandon_target": 3.0}, "abandon_target"),  # a percentage where a fraction is meant
        ({"max_dial_level": 0.5}, "max_dial_level"),
    ],
)
def test_view_rejects_impossible_snapshots(kw: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {"at": 0.0, "campaign": "c", "agents_logged_in": 2, "agents_ready": 1}
    with pytest.raises(ValueError, match=field):
        PacingView(**(base | kw))


def test_estimates_are_checked() -> None:
    with pytest.raises(ValueError, match="human_rate"):
        RollingEstimates(human_rate=1.5)
    with pytest.raises(ValueError, match="talk_s"):
        BusyAgent(talk_s=-1.0)


# --- the simple policies -----------------------------------------------------------


def test_preview_never_dials() -> None:
    assert get_pacing("preview", where="p").dials_now(view(ready=10)) == 0


@pytest.mark.parametrize(
    ("ready", "ringing", "waiting", "hopper", "expected"),
    [
        (5, 0, 0, 100, 5),  # one call per ready agent
        (5, 2, 0, 100, 3),  # two agents already covered by ringing calls
        (5, 2, 1, 100, 2),  # and one by a human waiting
        (2, 3, 0, 100, 0),  # over-covered: never negative
        (5, 0, 0, 3, 3),  # not more than the hopper holds
        (0, 0, 0, 100, 0),
    ],
)
def test_progressive(ready: int, ringing: int, waiting: int, hopper: int, expected: int) -> None:
    v = view(ready=ready, ringing=ringing, waiting=waiting, hopper=hopper, talking=4)
    assert get_pacing("progressive", where="p").dials_now(v) == expected


@pytest.mark.parametrize(
    ("ratio", "ready", "ringing", "waiting", "hopper", "max_level", "expected"),
    [
        (2.0, 3, 0, 0, 100, 3.0, 6),
        (2.0, 3, 4, 1, 100, 3.0, 1),
        (2.5, 3, 0, 0, 100, 3.0, 8),  # round(7.5) = 8 (half to even)
        (2.5, 1, 0, 0, 100, 3.0, 2),  # round(2.5) = 2 (half to even, like sprintf %.0f)
        (1.0, 3, 1, 0, 100, 3.0, 2),  # ratio 1 is progressive
        (4.0, 2, 0, 0, 100, 3.0, 6),  # capped at the campaign's max_dial_level
        (2.0, 3, 9, 0, 100, 3.0, 0),
        (2.0, 3, 0, 0, 4, 3.0, 4),
    ],
)
def test_ratio(
    ratio: float, ready: int, ringing: int, waiting: int, hopper: int, max_level: float, expected: int
) -> None:
    v = view(ready=ready, ringing=ringing, waiting=waiting, hopper=hopper, max_dial_level=max_level)
    assert get_pacing("ratio", {"ratio": ratio}, where="p").dials_now(v) == expected


def test_ratio_defaults_to_one() -> None:
    assert get_pacing("ratio", where="p").dials_now(view(ready=4, ringing=1)) == 3


# --- registry and settings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "settings", "where", "problem"),
    [
        ("predictve", {}, "campaigns[0].pacing", "unknown pacing policy 'predictve'"),
        ("ratio", {"ratio": 0.5}, "campaigns[0].pacing.ratio", "0.5 must be at least 1"),
        ("ratio", {"ratio": "2"}, "campaigns[0].pacing.ratio", "'2' is not a number"),
        ("ratio", {"ratoi": 2}, "campaigns[0].pacing.ratoi", "unknown key"),
        ("progressive", {"ratio": 2}, "campaigns[0].pacing.ratio", "unknown key"),
        ("preview", {"x": 1}, "campaigns[0].pacing.x", "unknown key"),
        ("vicidial_adaptive", {"intensity": 50}, "campaigns[0].pacing.intensity", "between -40 and 40"),
        ("vicidial_adaptive", {"max_level": 0.9}, "campaigns[0].pacing.max_level", "at least 1"),
        ("vicidial_adaptive", {"initial_level": 4}, "campaigns[0].pacing.initial_level", "between 1 and 3"),
        ("vicidial_adaptive", {"diff_target": 41}, "campaigns[0].pacing.diff_target", "between -40 and 40"),
        ("vicidial_adaptive", {"diff_target": 1.5}, "campaigns[0].pacing.diff_target", "whole number"),
        ("vicidial_adaptive", {"method": "tapered"}, "campaigns[0].pacing.method", "not one of"),
        ("vicidial_adaptive", {"available_only": "Y"}, "campaigns[0].pacing.available_only", "true or"),
    ],
)
def test_bad_names_and_settings_name_their_place(
    name: str, settings: Mapping[str, Any], where: str, problem: str
) -> None:
    with pytest.raises(InputError) as err:
        get_pacing(name, settings, where="campaigns[0].pacing")
    assert err.value.where == where
    assert problem in err.value.problem


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"known: .*preview, progressive, ratio.*vicidial_adaptive"):
        get_pacing("nope", where="--pacing")


def test_each_campaign_gets_its_own_instance() -> None:
    a = get_pacing("vicidial_adaptive", where="a")
    b = get_pacing("vicidial_adaptive", where="b")
    assert a is not b


def test_third_parties_register_their_own() -> None:
    class Fixed:
        def __init__(self, n: int) -> None:
            self.n = n
            self.seen: list[object] = []

        def dials_now(self, view: PacingView) -> int:
            return clamp_dials(self.n, view)

        def observe(self, event: object) -> None:
            self.seen.append(event)

    def factory(settings: Mapping[str, Any], *, where: str) -> PacingPolicy:
        return Fixed(int(settings.get("n", 1)))

    register_pacing("fixed_for_test", factory)
    try:
        policy = get_pacing("fixed_for_test", {"n": 7}, where="p")
        assert policy.dials_now(view(hopper=5)) == 5
        notify(policy, "answered")
        assert isinstance(policy, Fixed) and policy.seen == ["answered"]
        notify(Progressive(), "ignored")  # no observe(): nothing happens
    finally:
        del PACINGS["fixed_for_test"]
    with pytest.raises(InputError, match="needs a name"):
        register_pacing("", factory)


def test_ratio_class_checks_its_argument() -> None:
    with pytest.raises(ValueError, match="ratio"):
        Ratio(0.9)


# --- VICIdial: the level update (calculate_dial_level) ---------------------------------


@pytest.mark.parametrize(
    ("level", "ready", "waiting", "agents", "diff_target", "intensity", "expected"),
    [
        (1.0, 2.0, 2.0, 10.0, 0, 0, 1.0),  # balanced: no change
        (1.0, 2.0, 0.0, 10.0, 0, 0, 1.2),  # 2 of 10 agents idle: +20 %
        (2.0, 0.0, 2.0, 10.0, 0, 0, 1.6),  # 2 callers waiting: −20 %
        (1.0, 2.0, 0.0, 10.0, 0, 20, 1.24),  # intensity +20 speeds a rise: ×1.2
        (2.0, 0.0, 2.0, 10.0, 0, 20, 1.68),  # ... and slows a fall: ×0.8
        (1.0, 2.0, 0.0, 10.0, 0, -20, 1.16),  # intensity −20 slows a rise: ×0.8
        (2.0, 0.0, 2.0, 10.0, 0, -20, 1.52),  # ... and speeds a fall: ×1.2
        (1.5, 1.0, 0.0, 10.0, -1, 0, 1.5),  # diff target −1: one idle agent is the aim
        (1.5, 0.0, 0.0, 10.0, 1, 0, 1.65),  # diff target +1: aim at one caller waiting
        (1.0, 1.0, 0.0, 3.0, 0, 0, 1.333),  # rounded to three decimals (sprintf %.3f)
        (1.0, 2.0, 0.0, 3.0, 0, 0, 1.667),
        (2.5, 2.0, 0.0, 4.0, 0, 0, 3.0),  # 3.75 capped at max_level
        (1.2, 0.0, 3.0, 4.0, 0, 0, 1.0),  # 0.3 raised to the floor of 1
        (2.0, 5.0, 0.0, 0.0, 0, 0, 2.0),  # no agents on average: no step
    ],
)
def test_adapt_level_equation(
    level: float,
    ready: float,
    waiting: float,
    agents: float,
    diff_target: int,
    intensity: float,
    expected: float,
) -> None:
    step = adapt_level(
        level=level,
        ready_avg=ready,
        waiting_avg=waiting,
        agents_avg=agents,
        drops=no_drops(),
        drop_limit_pct=3.0,
        diff_target=diff_target,
        intensity=intensity,
        max_level=3.0,
    )
    assert step.level == pytest.approx(expected, abs=1e-12)
    assert not step.halved_for_minute and not step.over_limit_today


@pytest.mark.parametrize(
    ("dials", "drops", "halved"),
    [
        (21, 11, True),  # 52.38 % of 21
        (20, 20, False),  # needs strictly more than 20 dials
        (22, 11, False),  # exactly 50.00 %: needs strictly more
        (22, 12, True),
        (100, 50, False),
        (100, 51, True),
    ],
)
def test_halving_rule_thresholds(dials: int, drops: int, halved: bool) -> None:
    stats = DropStats(0.0, dials, drops, 0, 0, 0)
    step = adapt_level(
        level=2.4, ready_avg=0, waiting_avg=0, agents_avg=5, drops=stats, drop_limit_pct=3.0, max_level=3.0
    )
    assert step.halved_for_minute is halved
    assert step.level == (1.2 if halved else 2.4)


def test_halving_comes_after_the_cap_and_never_goes_under_one() -> None:
    stats = DropStats(0.0, 30, 20, 0, 0, 0)
    # 2.9 × 1.5 = 4.35, capped to 3.0 first, then halved: 1.5 (not 2.175)
    capped = adapt_level(
        level=2.9, ready_avg=5, waiting_avg=0, agents_avg=10, drops=stats, drop_limit_pct=3.0, max_level=3.0
    )
    assert capped.suggested == 4.35 and capped.level == 1.5
    floored = adapt_level(
        level=1.5, ready_avg=0, waiting_avg=0, agents_avg=10, drops=stats, drop_limit_pct=3.0, max_level=3.0
    )
    assert floored.halved_for_minute and floored.level == 1.0


@pytest.mark.parametrize(
    ("dials", "answers", "drops", "limit", "forced"),
    [
        (51, 100, 4, 3.0, True),  # 4 % of human answers over a 3 % target
        (50, 100, 4, 3.0, False),  # needs strictly more than 50 dials
        (51, 100, 3, 3.0, False),  # exactly at the target is not over it
        (51, 99, 3, 3.03, False),  # 3.0303 % rounds to 3.03: not over 3.03
        (51, 98, 3, 3.03, True),  # 3.0612 % rounds to 3.06
        (51, 0, 1, 3.0, True),  # no answers counted: divided by 1, 100 %
        (400, 40, 2, 3.0, True),  # the rate is per human answer, not per dial (0.5 % of dials)
    ],
)
def test_force_to_one_rule_thresholds(
    dials: int, answers: int, drops: int, limit: float, forced: bool
) -> None:
    stats = DropStats(0.0, 0, 0, dials, answers, drops)
    step = adapt_level(
        level=2.4, ready_avg=0, waiting_avg=0, agents_avg=5, drops=stats, drop_limit_pct=limit, max_level=3.0
    )
    assert step.over_limit_today is forced
    assert step.level == (1.0 if forced else 2.4)


def test_adapt_average_halves_instead_and_both_rules_stack() -> None:
    stats = DropStats(0.0, 30, 20, 100, 100, 10)
    hard = adapt_level(
        level=2.0, ready_avg=10, waiting_avg=0, agents_avg=10, drops=stats, drop_limit_pct=3.0, max_level=3.0
    )
    assert hard.level == 1.0
    average = adapt_level(
        level=3.0,
        ready_avg=0,
        waiting_avg=0,
        agents_avg=10,
        drops=DropStats(0.0, 0, 0, 100, 100, 10),
        drop_limit_pct=3.0,
        max_level=3.0,
        method="average",
    )
    assert average.level == 1.5
    assert (
        adapt_level(
            level=3.0,
            ready_avg=0,
            waiting_avg=0,
            agents_avg=10,
            drops=stats,
            drop_limit_pct=3.0,
            max_level=3.0,
            method="average",
        ).level
        == 1.0  # 3.0 / 2 / 2 = 0.75, raised to 1.0
    )


@pytest.mark.parametrize(
    ("level", "agents", "existing", "expected"),
    [(1.0, 5, 3, 2), (2.0, 5, 3, 7), (1.5, 3, 0, 4), (2.5, 1, 0, 2), (1.25, 2, 0, 2), (1.0, 2, 5, -3)],
)
def test_calls_to_place(level: float, agents: int, existing: int, expected: int) -> None:
    assert calls_to_place(level=level, agents=agents, existing=existing) == expected


# --- VICIdial: the policy over time ------------------------------------------------------


def run(policy: VicidialAdaptive, views: list[PacingView]) -> list[int]:
    return [policy.dials_now(v) for v in views]


def test_level_changes_only_every_15_seconds() -> None:
    policy = VicidialAdaptive()
    # 10 agents, 5 of them idle all the time: the level wants to rise by 50 % per update.
    views = [view(at=100.0 + t, ready=5, talking=5) for t in range(31)]
    levels = []
    for v in views:
        policy.dials_now(v)
        levels.append(policy.level)
    assert levels[:15] == [1.0] * 15  # t = 100 .. 114
    assert levels[15] == 1.5  # t = 115
    assert levels[16:30] == [1.5] * 14
    assert levels[30] == 2.25  # t = 130
    assert policy.last_step is not None and policy.last_step.at == 130.0


def test_calls_placed_from_the_level() -> None:
    policy = VicidialAdaptive(initial_level=2.0)
    v = view(ready=2, talking=3, wrapping=1, paused=2, ringing=4, waiting=1)
    # round(2 × (2 ready + 3 talking)) − (4 ringing + 1 waiting + 3 talked on) = 10 − 8
    assert policy.dials_now(v) == 2
    only_ready = VicidialAdaptive(initial_level=2.0, available_only=True)
    assert only_ready.dials_now(v) == 0  # round(2 × 2) − 5 < 0
    assert VicidialAdaptive(initial_level=2.0, available_only=True).dials_now(view(ready=4, ringing=1)) == 7
    placed = VicidialAdaptive(initial_level=2.0, diff_target=-1, diff_target_method="calls_placed")
    assert placed.dials_now(v) == 0  # round(2 × (5 − 1)) − 8
    assert VicidialAdaptive(initial_level=3.0).dials_now(view(ready=5, hopper=4)) == 4


def test_moving_averages_over_the_last_15_seconds() -> None:
    policy = VicidialAdaptive()
    for t in range(5):  # early on: the mean of the samples there are
        policy.dials_now(view(at=float(t), ready=t, waiting=1, paused=10))
    assert policy.averages() == (2.0, 1.0, 12.0)
    for t in range(5, 40):
        policy.dials_now(view(at=float(t), ready=t, paused=10))
    assert len(policy.samples) == SAMPLES
    assert policy.averages()[0] == sum(range(25, 40)) / 15


def test_samples_fill_the_one_second_grid_between_views() -> None:
    policy = VicidialAdaptive()
    policy.dials_now(view(at=0.0, ready=5))
    policy.dials_now(view(at=0.5, ready=3))  # between grid instants: no sample yet
    policy.dials_now(view(at=10.0, ready=0))
    # t = 0 saw 5; t = 1 .. 9 held the state of the view at 0.5 (3); t = 10 sees 0.
    assert [s.ready for s in policy.samples] == [5] + [3] * 9 + [0]
    policy.dials_now(view(at=1000.0, ready=1))  # a long gap keeps only what fits
    assert [s.ready for s in policy.samples] == [0] * 14 + [1]


def test_empty_hopper_records_zero_samples_and_blocks_updates() -> None:
    policy = VicidialAdaptive()
    for t in range(20):
        assert policy.dials_now(view(at=float(t), ready=5, talking=5, hopper=0)) == 0
    assert policy.level == 1.0  # no update with an empty hopper
    assert policy.averages() == (0.0, 0.0, 0.0)
    policy.dials_now(view(at=20.0, ready=5, talking=5))
    # The clock ran on, so this first view with leads updates at once, from
    # averages that are mostly the empty-hopper zeros: (5 / 15) / (10 / 15) = +50 %.
    assert policy.last_step is not None and policy.last_step.at == 20.0
    assert policy.averages() == pytest.approx((5 / 15, 0.0, 10 / 15))
    assert policy.level == 1.5


def test_no_agents_no_update() -> None:
    policy = VicidialAdaptive(initial_level=2.0)
    for t in range(30):
        policy.dials_now(view(at=float(t)))
    assert policy.level == 2.0 and policy.last_step is None


def test_drop_figures_are_a_minute_old_at_most() -> None:
    policy = VicidialAdaptive(initial_level=3.0)
    levels = {}
    for t in range(0, 76):
        bad_minute = t >= 20  # from t = 20 the last minute shows 30 dials, 20 dropped
        v = view(
            at=float(t),
            ready=1,
            waiting=1,
            talking=8,
            dials_last_minute=30 if bad_minute else 0,
            abandons_last_minute=20 if bad_minute else 0,
        )
        policy.dials_now(v)
        levels[t] = policy.level
    # The figures taken at t = 0 hold until t = 60: no halving at 15, 30, 45.
    assert levels[15] == levels[30] == levels[45] == 3.0
    assert levels[60] == 1.5  # refreshed at 60, halved at the update of the same loop
    assert levels[75] == 1.0  # the same figures, halved again: 0.75 raised to 1.0


def test_day_over_target_forces_level_one() -> None:
    policy = VicidialAdaptive(initial_level=3.0)
    over = {"dials_today": 51, "humans_today": 100, "abandons_today": 4}
    for t in range(16):
        policy.dials_now(view(at=float(t), ready=2, talking=8, **over))
    assert policy.level == 1.0
    at_target = VicidialAdaptive(initial_level=2.0)
    for t in range(16):
        at_target.dials_now(view(at=float(t), ready=0, talking=10, **over, abandon_target=0.04))
    assert at_target.level == 2.0  # 4 % is not over a 4 % target


def test_level_one_dials_like_progressive() -> None:
    policy = VicidialAdaptive()
    for ready, talking, ringing, waiting in [(5, 3, 2, 1), (0, 4, 0, 0), (3, 0, 5, 0), (7, 7, 0, 2)]:
        v = view(ready=ready, talking=talking, ringing=ringing, waiting=waiting)
        assert policy.dials_now(v) == Progressive().dials_now(v)


def test_max_level_is_capped_by_the_campaign() -> None:
    policy = VicidialAdaptive(max_level=3.0)
    for t in range(16):
        policy.dials_now(view(at=float(t), ready=10, talking=0, max_dial_level=1.25))
    assert policy.level == 1.25


def test_settings_reach_the_policy() -> None:
    policy = get_pacing(
        "vicidial_adaptive",
        {
            "initial_level": 1.5,
            "max_level": 4,
            "intensity": -10,
            "diff_target": -2,
            "diff_target_method": "calls_placed",
            "method": "average",
            "available_only": True,
        },
        where="p",
    )
    assert isinstance(policy, VicidialAdaptive)
    assert (policy.level, policy.max_level, policy.intensity, policy.diff_target) == (1.5, 4.0, -10.0, -2)
    assert (policy.diff_target_method, policy.method, policy.available_only) == (
        "calls_placed",
        "average",
        True,
    )


# --- every policy: never negative, never more than the hopper -----------------------------


@st.composite
def views(draw: st.DrawFn, at: float) -> PacingView:
    ready = draw(st.integers(0, 60))
    talking = draw(st.integers(0, 60))
    wrapping = draw(st.integers(0, 10))
    paused = draw(st.integers(0, 10))
    dials_today = draw(st.integers(0, 5000))
    humans_today = draw(st.integers(0, dials_today))
    dials_minute = draw(st.integers(0, 200))
    return view(
        at=at,
        ready=ready,
        talking=talking,
        wrapping=wrapping,
        paused=paused,
        ringing=draw(st.integers(0, 200)),
        waiting=draw(st.integers(0, 20)),
        hopper=draw(st.integers(0, 300)),
        dials_last_minute=dials_minute,
        abandons_last_minute=draw(st.integers(0, dials_minute)),
        dials_today=dials_today,
        humans_today=humans_today,
        abandons_today=draw(st.integers(0, humans_today)),
        max_dial_level=draw(st.floats(1.0, 5.0)),
    )


POLICY_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("preview", {}),
    ("progressive", {}),
    ("ratio", {"ratio": 2.7}),
    ("vicidial_adaptive", {}),
    ("vicidial_adaptive", {"intensity": 40, "diff_target": 40, "diff_target_method": "calls_placed"}),
    ("vicidial_adaptive", {"max_level": 10, "initial_level": 10, "available_only": True}),
]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), steps=st.lists(st.floats(0.0, 40.0), min_size=1, max_size=12))
def test_no_policy_dials_a_negative_number_or_more_than_the_hopper(
    data: st.DataObject, steps: list[float]
) -> None:
    policies = [get_pacing(name, s, where="p") for name, s in POLICY_SETTINGS]
    at = 0.0
    for dt in steps:
        at += dt
        v = data.draw(views(at))
        for policy in policies:
            n = policy.dials_now(v)
            assert isinstance(n, int)
            assert 0 <= n <= v.hopper_size
