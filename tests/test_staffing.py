"""Staffing: minimal, meets every target, fast at any size, clear when impossible."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.erlang import erlang_a_kpis, erlang_c_kpis
from acd.errors import InfeasibleTargetError, InputError
from acd.staffing import StaffingTargets, evaluate, plan, required_agents, scheduled_heads

SL_80_20 = StaffingTargets(service_level=0.8, target_s=20)


def test_published_example_needs_fourteen() -> None:
    # Call Centre Helper / pyworkforce README: 100 calls in 30 min, AHT 180 s, 80/20 -> 14.
    assert required_agents(load=10.0, aht_s=180, targets=SL_80_20).tolist() == [14]


def test_each_target_alone_and_together() -> None:
    load, aht = 10.0, 180.0
    asa = required_agents(load=load, aht_s=aht, targets=StaffingTargets(max_asa_s=15))[0]
    occ = required_agents(load=load, aht_s=aht, targets=StaffingTargets(max_occupancy=0.6))[0]
    both = required_agents(
        load=load, aht_s=aht, targets=StaffingTargets(service_level=0.8, max_asa_s=15, max_occupancy=0.6)
    )[0]
    assert occ == 17  # 10 / 17 = 0.588 <= 0.6 < 10 / 16
    assert both == max(14, asa, occ)
    # ASA: minimal by definition.
    assert erlang_c_kpis(agents=asa, load=load, aht_s=aht, target_s=20).asa_s <= 15
    assert erlang_c_kpis(agents=asa - 1, load=load, aht_s=aht, target_s=20).asa_s > 15


def test_erlang_a_can_staff_below_the_load_and_says_so() -> None:
    # Overloaded: 120 Erlangs, very impatient callers; 50 % in 60 s is reachable with
    # fewer agents than Erlangs because half the callers give up.
    targets = StaffingTargets(service_level=0.5, target_s=60)
    n = required_agents(load=120.0, aht_s=300, targets=targets, patience_s=10)[0]
    assert n < 120
    k = erlang_a_kpis(agents=n, load=120.0, aht_s=300, patience_s=10, target_s=60)
    assert k.service_level >= 0.5
    assert k.p_abandon > 0.2
    capped = required_agents(
        load=120.0,
        aht_s=300,
        targets=StaffingTargets(service_level=0.5, target_s=60, max_abandon=0.02),
        patience_s=10,
    )[0]
    assert capped > n
    assert erlang_a_kpis(agents=capped, load=120.0, aht_s=300, patience_s=10, target_s=60).p_abandon <= 0.02


def test_day_of_intervals_with_zero_load_and_huge_load() -> None:
    loads = np.array([0.0, 0.3, 10.0, 20_000.0, 0.0])
    agents = required_agents(load=loads, aht_s=180, targets=SL_80_20)
    assert agents[0] == 0 and agents[-1] == 0
    for n, a in zip(agents[1:4], loads[1:4], strict=True):
        assert erlang_c_kpis(agents=n, load=a, aht_s=180, target_s=20).service_level >= 0.8
        if n - 1 > a:
            assert erlang_c_kpis(agents=n - 1, load=a, aht_s=180, target_s=20).service_level < 0.8


def test_hundred_thousand_agents() -> None:
    n = required_agents(load=99_000.0, aht_s=300, targets=SL_80_20)[0]
    assert 99_000 < n < 99_300
    assert erlang_c_kpis(agents=n, load=99_000.0, aht_s=300, target_s=20).service_level >= 0.8
    assert erlang_c_kpis(agents=n - 1, load=99_000.0, aht_s=300, target_s=20).service_level < 0.8


def test_plan_reports_kpis_and_shrinkage() -> None:
    p = plan(load=[10.0, 0.0], aht_s=180, targets=SL_80_20, shrinkage=0.3)
    assert p.agents.tolist() == [14, 0]
    assert p.scheduled.tolist() == [20, 0]  # 14 / 0.7 = 20 exactly: no rounding up to 21
    assert p.kpis.service_level[0] == pytest.approx(0.8883500191794669, rel=1e-12)
    assert p.kpis.service_level[1] == 1.0 and p.kpis.occupancy[1] == 0.0
    assert p.model == "erlang-c"


def test_scheduled_heads_rounds_up() -> None:
    assert scheduled_heads(np.array([1, 7, 10]), shrinkage=0.35).tolist() == [2, 11, 16]
    with pytest.raises(InputError, match="shrinkage"):
        scheduled_heads(1, shrinkage=1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service_level": 1.0}, "below 100 %"),
        ({"service_level": 0.0}, "above 0 %"),
        ({"max_asa_s": 0.0}, "above 0 seconds"),
        ({"max_abandon": 0.0}, "above 0"),
        ({"max_occupancy": 1.5}, "at most 1"),
        ({"service_level": 0.8, "target_s": -1.0}, ">= 0 seconds"),
    ],
)
def test_impossible_or_bad_targets(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        StaffingTargets(**kwargs)


def test_no_target_or_abandon_without_patience() -> None:
    with pytest.raises(InputError, match="at least one target"):
        required_agents(load=1.0, aht_s=1, targets=StaffingTargets())
    with pytest.raises(InputError, match="patience"):
        required_agents(load=1.0, aht_s=1, targets=StaffingTargets(max_abandon=0.1))


def test_target_beyond_double_precision_is_reported() -> None:
    # 1 - 1e-17 rounds to 1.0 as a float: rejected up front as a 100 % target.
    with pytest.raises(InfeasibleTargetError):
        StaffingTargets(service_level=1 - 1e-17)


def test_evaluate_matches_kpis() -> None:
    k = evaluate(agents=37, load=640 / 3600 * 195, aht_s=195, target_s=10, patience_s=60)
    ref = erlang_a_kpis(agents=37, load=640 / 3600 * 195, aht_s=195, patience_s=60, target_s=10)
    assert k == ref


@settings(max_examples=150, deadline=None)
@given(
    load=st.floats(min_value=0.05, max_value=5000),
    aht=st.floats(min_value=20, max_value=1200),
    sl=st.floats(min_value=0.05, max_value=0.99),
    t=st.floats(min_value=0, max_value=120),
    patience=st.one_of(st.none(), st.floats(min_value=5, max_value=1800)),
)
def test_staffing_is_minimal_and_sufficient(
    load: float, aht: float, sl: float, t: float, patience: float | None
) -> None:
    targets = StaffingTargets(service_level=sl, target_s=t)
    n = int(required_agents(load=load, aht_s=aht, targets=targets, patience_s=patience)[0])
    k = evaluate(agents=n, load=load, aht_s=aht, target_s=t, patience_s=patience)
    assert k.service_level >= sl
    if n > 1:
        below = evaluate(agents=n - 1, load=load, aht_s=aht, target_s=t, patience_s=patience)
        assert below.service_level < sl
