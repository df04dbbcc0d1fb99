"""Leads (numbers, zones, lifecycle) and campaign settings (defaults, TOML, errors)."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_timezone

from acd.errors import InputError
from dialer.campaign import (
    DAY_S,
    HOUR_S,
    MINUTE_S,
    UK_NO_RECALL_S,
    AmdAction,
    CallingHours,
    CallLimit,
    Campaign,
    RetryRule,
    parse_campaign,
)
from dialer.leads import (
    Attempt,
    IllegalLeadTransitionError,
    Lead,
    LeadState,
    Outcome,
    ZoneSource,
    new_lead,
    normalise_number,
)

# --- numbers and zones ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164", "zones"),
    [
        ("(212) 555-0123", "US", "+12125550123", ("America/New_York",)),
        ("+1 310 555 0199", "GB", "+13105550199", ("America/Los_Angeles",)),
        ("020 7946 0958", "GB", "+442079460958", ("Europe/London",)),
        ("02 9876 5432", "AU", "+61298765432", ("Australia/Sydney",)),
        ("098123 45678", "IN", "+919812345678", ("Asia/Calcutta",)),
    ],
)
def test_numbers_are_normalised_and_placed(raw: str, region: str, e164: str, zones: tuple[str, ...]) -> None:
    lead = new_lead("L1", raw, region=region)
    assert lead.number == e164
    assert lead.zones == zones
    assert lead.zone_source is ZoneSource.NUMBER
    assert normalise_number(raw, region=region) == e164


def test_a_number_with_several_zones_keeps_them_all_sorted() -> None:
    mobile = new_lead("m", "+61 412 345 678")
    assert mobile.zone_source is ZoneSource.NUMBER_AMBIGUOUS
    assert "Australia/Lord_Howe" in mobile.zones and "Australia/Perth" in mobile.zones
    assert list(mobile.zones) == sorted(mobile.zones)
    uk = new_lead("u", "07911 123456", region="GB")
    assert uk.zones == ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London")


def test_an_explicit_zone_wins() -> None:
    lead = new_lead("x", "+61 412 345 678", zone="Australia/Lord_Howe")
    assert lead.zones == ("Australia/Lord_Howe",)
    assert lead.zone_source is ZoneSource.EXPLICIT


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("+1 212 555", "US", "'+1 212 555' is not a valid number for region US (too short)"),
        ("555 0100", "US", "not a valid number for region US"),
        ("+44 20 7946 09581234", "GB", "not a valid number"),
        ("hello", "US", "'hello' is not a phone number (not a number)"),
        ("", "US", "'' is not a phone number"),
        ("+999 1234567", "US", "'+999 1234567' is not a phone number (missing or unknown country code)"),
    ],
)
def test_bad_numbers_are_named_with_where_and_why(raw: str, region: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        new_lead("L7", raw, region=region, where="leads.csv:418")
    assert info.value.where == "leads.csv:418.number"
    assert message in info.value.problem


def test_bad_zone_region_and_unknown_zone_are_input_errors() -> None:
    with pytest.raises(InputError, match=r"lead L1\.zone: 'Mars/Olympus' is not a known time zone"):
        new_lead("L1", "+12125550123", zone="Mars/Olympus")
    with pytest.raises(InputError, match=r"lead L1\.zone: '\.\./etc/passwd' is not a time zone name"):
        new_lead("L1", "+12125550123", zone="../etc/passwd")
    with pytest.raises(InputError, match=r"lead L1\.region: 'XX' is not a known region"):
        new_lead("L1", "+12125550123", region="XX")
    # A universal freephone number has no place, so no local time: ask for one.
    with pytest.raises(InputError, match=r"lead F\.zone: no time zone is known for \+80012345678"):
        new_lead("F", "+800 1234 5678")
    assert new_lead("F", "+800 1234 5678", zone="Europe/Paris").zones == ("Europe/Paris",)


def test_call_data_must_be_text() -> None:
    lead = new_lead("L", "+12125550123", data={"name": "Ada"})
    assert lead.data == {"name": "Ada"}
    with pytest.raises(InputError, match=r"lead L\.data"):
        new_lead("L", "+12125550123", data={"age": 3})  # type: ignore[dict-item]


def test_the_constructor_checks_shape_only() -> None:
    with pytest.raises(InputError, match=r"lead x\.number: '2125550123' is not in E\.164 form"):
        Lead("x", "2125550123", ("America/New_York",))
    with pytest.raises(InputError, match=r"lead x\.zones"):
        Lead("x", "+12125550123", ())


@given(st.text(max_size=20), st.sampled_from(["US", "GB", "AU", "IN", "DE"]))
def test_parsing_any_text_either_works_or_says_why(raw: str, region: str) -> None:
    try:
        lead = new_lead("L", raw, region=region)
    except InputError as exc:
        assert exc.where == "lead L.number"
    else:
        assert lead.number.startswith("+") and lead.zones


def test_lifecycle_moves_follow_the_table() -> None:
    lead = new_lead("L", "+12125550123")
    lead.move(LeadState.DIALLING)
    lead.move(LeadState.SCHEDULED)
    lead.move(LeadState.DNC, "global DNC")
    assert lead.detail == "global DNC"
    with pytest.raises(IllegalLeadTransitionError, match="dnc -> scheduled"):
        lead.move(LeadState.SCHEDULED)


def test_attempts_check_their_times() -> None:
    assert Attempt(10.0, "busy").outcome is Outcome.BUSY  # type: ignore[arg-type]
    assert Attempt(10.0, Outcome.BUSY, ended_at=30.0).finished_at == 30.0
    with pytest.raises(ValueError, match="before"):
        Attempt(10.0, Outcome.BUSY, ended_at=5.0)
    with pytest.raises(ValueError, match="finite"):
        Attempt(float("nan"), Outcome.BUSY)


# --- campaigns -----------------------------------------------------------------------


def test_campaign_defaults() -> None:
    c = Campaign("renewals", "(202) 555-0123", "sales")
    assert c.caller_id == "+12025550123"
    assert c.hours.on(0) == ((8 * 60, 21 * 60),) and c.hours.on(6) == ((8 * 60, 21 * 60),)
    assert c.retry_rule(Outcome.BUSY) == RetryRule(10 * MINUTE_S)
    assert c.retry_rule(Outcome.NO_ANSWER) == RetryRule(2 * HOUR_S)
    assert c.retry_rule(Outcome.MACHINE).next_day
    assert c.retry_rule(Outcome.CONGESTION) == c.retry_rule(Outcome.FAILED) == RetryRule(15 * MINUTE_S)
    assert c.retry_rule(Outcome.HUMAN).final and c.retry_rule(Outcome.INVALID).final
    assert c.abandon_target == 0.03 and c.window_s == 30 * DAY_S
    assert c.min_ring_s == 15.0 and not c.uk_rules and c.call_limits == ()
    uk = Campaign("uk", "+442079460958", "sales", uk_rules=True)
    assert uk.window_s == DAY_S
    assert uk.retry_rule(Outcome.ABANDONED) == RetryRule(UK_NO_RECALL_S)


FULL: dict[str, Any] = {
    "name": "renewals-uk",
    "caller_id": "020 7946 0000",
    "default_region": "GB",
    "queue": "sales",
    "dial_mode": "predictive",
    "pacing": {"max_ratio": 3.0, "estimates": {"window": "1h"}},
    "hours": {"default": "09:00-20:00", "sat": ["10:00-12:30", "14:00-17:00"], "sun": "closed"},
    "retry": {"busy": "5m", "machine": "next_day", "no_answer": "3h", "failed": "never", "abandoned": "4d"},
    "max_attempts": 7,
    "abandon_target": 0.02,
    "abandon_window": "12h",
    "uk_rules": True,
    "safe_harbour": "sorry-msg",
    "amd": True,
    "amd_action": "message",
    "amd_message": "leave-msg",
    "amd_false_positive_rate": 0.015,
    "min_ring": "20s",
    "call_limits": [{"count": 3, "window": "24h"}, {"count": 10, "window": "7d"}],
}


def test_parse_campaign_reads_every_setting() -> None:
    c = parse_campaign(FULL, "campaigns[0]")
    assert c.caller_id == "+442079460000" and c.dial_mode == "predictive"
    assert c.pacing["max_ratio"] == 3.0
    assert c.hours.on(0) == ((540, 1200),)
    assert c.hours.on(5) == ((600, 750), (840, 1020))
    assert c.hours.on(6) == ()
    assert c.retry_rule(Outcome.BUSY).delay_s == 300 and c.retry_rule(Outcome.FAILED).final
    assert c.retry_rule(Outcome.CONGESTION).delay_s == 900  # default kept
    assert c.retry_rule(Outcome.ABANDONED).delay_s == 4 * DAY_S
    assert (c.max_attempts, c.abandon_target, c.window_s, c.min_ring_s) == (7, 0.02, 12 * HOUR_S, 20.0)
    assert c.amd and c.amd_action is AmdAction.MESSAGE and c.amd_message == "leave-msg"
    assert c.amd_false_positive_rate == 0.015
    assert c.call_limits == (CallLimit(3, DAY_S), CallLimit(10, 7 * DAY_S))
    assert parse_campaign({"name": "x", "caller_id": "+12025550123", "queue": "q"}) == Campaign(
        "x", "+12025550123", "q"
    )


def _with(**changes: Any) -> dict[str, Any]:
    table = dict(FULL)
    for key, value in changes.items():
        if value is None:
            table.pop(key)
        else:
            table[key] = value
    return table


@pytest.mark.parametrize(
    ("table", "where", "problem"),
    [
        (_with(hours={"sat": "9-17"}), "campaigns[0].hours.sat", "'9-17' is not HH:MM-HH:MM"),
        (_with(hours={"mon": "21:00-02:00"}), "campaigns[0].hours.mon", "a window past midnight is split"),
        (_with(hours={"tue": ["08:00-12:00", "11:00-13:00"]}), "campaigns[0].hours.tue", "overlap"),
        (_with(hours={"wed": "08:00-24:30"}), "campaigns[0].hours.wed", "is not HH:MM-HH:MM"),
        (_with(hours={"fri": "08:60-09:00"}), "campaigns[0].hours.fri", "is not HH:MM-HH:MM"),
        (_with(hours={"funday": "08:00-09:00"}), "campaigns[0].hours.funday", "unknown key"),
        (_with(min_ring="10s"), "campaigns[0].min_ring", "must ring at least 15 s"),
        (_with(retry={"abandoned": "1h"}), "campaigns[0].retry.abandoned", "72 h UK no-recall"),
        (_with(retry={"hung_up": "1h"}), "campaigns[0].retry.hung_up", "unknown outcome"),
        (_with(retry={"busy": "soon"}), "campaigns[0].retry.busy", "is not a duration"),
        (_with(dial_mode="psychic"), "campaigns[0].dial_mode", "unknown dial mode 'psychic'"),
        (_with(amd_message=None), "campaigns[0].amd_message", "required when amd_action = 'message'"),
        (_with(amd_action="sing"), "campaigns[0].amd_action", "unknown value 'sing'"),
        (_with(caller_id="12"), "campaigns[0].caller_id", "not a valid number for region GB"),
        (_with(max_attempts=0), "campaigns[0].max_attempts", "must be at least 1"),
        (_with(abandon_target=3), "campaigns[0].abandon_target", "between 0 and 1"),
        (_with(abandon_window="0s"), "campaigns[0].abandon_window", "longer than 0"),
        (
            _with(call_limits=[{"count": 0, "window": "1h"}]),
            "campaigns[0].call_limits[0].count",
            "at least 1",
        ),
        (_with(call_limits=[{"count": 3}]), "campaigns[0].call_limits[0].window", "is required"),
        (_with(uk_rules="yes"), "campaigns[0].uk_rules", "not true or false"),
        (_with(name="my campaign"), "campaigns[0].name", "labels metrics"),
        (_with(queue=None), "campaigns[0].queue", "is required"),
        (_with(colour="red"), "campaigns[0].colour", "unknown key"),
        (_with(pacing=3), "campaigns[0].pacing", "must be a table"),
    ],
)
def test_bad_campaign_settings_name_their_key(table: dict[str, Any], where: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        parse_campaign(table, "campaigns[0]")
    assert info.value.where == where
    assert problem in info.value.problem


def test_registered_modes_extend_the_dial_modes() -> None:
    c = parse_campaign(_with(dial_mode="vicidial_adapt"), known_modes={"vicidial_adapt", "predictive"})
    assert c.dial_mode == "vicidial_adapt"


def test_calling_hours_check_themselves() -> None:
    with pytest.raises(InputError, match="needs 7 weekdays"):
        CallingHours(((0, 60),) * 3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"hours\.mon: 10:00-09:00"):
        CallingHours.every_day((600, 540))
    assert CallingHours(((),) * 7).never


_REGIONS = ("US", "GB", "AU", "FR", "DE", "IN", "BR", "JP", "CA", "IM")


@settings(max_examples=400)
@given(
    region=st.sampled_from(_REGIONS),
    digits=st.text("0123456789", min_size=4, max_size=14),
    plus=st.booleans(),
)
def test_validity_and_zones_match_phonenumbers(region: str, digits: str, plus: bool) -> None:
    """The one-pass type check gives what is_valid_number + time_zones_for_number give."""
    raw = ("+" if plus else "") + digits
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return
    expected_valid = phonenumbers.is_valid_number(parsed)
    try:
        lead = new_lead("x", raw, region=region)
    except InputError as exc:
        # Valid but refused: no zone known, or longer than E.164's 15 digits.
        assert not expected_valid or "no time zone" in exc.problem or "E.164" in exc.problem
        return
    assert expected_valid
    zones = sorted(z for z in phone_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown")
    assert list(lead.zones) == zones
