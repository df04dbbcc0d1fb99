"""Outbound campaigns in the simulator: the scenario format, the books, pacing's effects.

The simulator drives :class:`dialer.runner.CampaignRunner` and the router through
their public methods only, so these tests check the driver (conservation, the pacing
trigger, blending, the warm-up, reproducibility) and a few consequences of the
pacing policies that hold exactly or statistically.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from acd.errors import InputError
from ccd.cli import main
from dialer.runner import CampaignRunner
from sim.engine import RunLog, Simulation
from sim.outbound import CampaignLog
from sim.results import summarise
from sim.scenario import Scenario, parse_scenario

SIMULATION = """
[simulation]
duration = "1h"
seed = 5
"""

TEAM = """
[[agents]]
group = "team"
count = 10
skills = { sales = 1.0 }
"""

CAMPAIGN = """
[[campaigns]]
name = "c"
queue = "sales"
leads = 3000
answer = { human = 0.3, machine = 0.2, busy = 0.1, no_answer = 0.35, invalid = 0.05 }
talk = { dist = "exponential", mean = "60s" }
wrap = { dist = "fixed", mean = "5s" }
amd = true
amd_accuracy = 0.8
"""

BASE = SIMULATION + TEAM + CAMPAIGN

SUPPORT = """
[[queues]]
name = "support"
arrivals = { rate_per_hour = 120 }
handle_time = { dist = "exponential", mean = "120s" }
patience = { dist = "exponential", mean = "60s" }
[[agents]]
group = "support"
count = 6
skills = { support = 1.0 }
"""


def scenario(text: str) -> Scenario:
    return parse_scenario(tomllib.loads(text), source="s.toml", base=Path("."))


def run(text: str, seed: int = 1, **kw: float) -> tuple[RunLog, CampaignLog]:
    log = Simulation(scenario(text), seed).run(**kw)
    return log, log.campaigns[0]


def conserved(c: CampaignLog) -> None:
    """Every dial launched in the measured period finished or is still in progress."""
    assert c.dials == sum(c.outcomes.values()) + c.in_progress - c.in_progress_at_warmup
    assert c.humans == c.connects + c.abandons


# --- the scenario format -------------------------------------------------------------


def test_campaign_defaults() -> None:
    sc = scenario(BASE)
    (c,) = sc.campaigns
    assert (c.pacing, c.ring_timeout_s, c.pace_every_s, c.amd_accuracy) == ("progressive", 25.0, 1.0, 0.8)
    assert c.skills == {"sales": 0.0} and c.answer.congestion == 0.0 and c.acd_queue == "outbound:c"
    assert c.ring_time.mean == 8.0 and c.machine_talk.mean == 5.0 and c.fail_time.mean == 3.0
    campaign = c.campaign()
    assert campaign.abandon_target == 0.03 and campaign.amd and campaign.max_attempts == 5
    assert campaign.hours.on(0) == ((0, 1440),)  # simulated campaigns call all day by default
    assert sc.start_epoch == 1767603600.0  # 2026-01-05T09:00:00Z, a Monday
    assert sc.queues == ()  # a pure outbound scenario needs no [[queues]]


def test_campaign_takes_a_queues_skills_and_groups() -> None:
    text = (
        BASE.replace('queue = "sales"', 'queue = "inbound"')
        + """
[[queues]]
name = "inbound"
arrivals = { rate_per_hour = 10 }
handle_time = { dist = "exponential", mean = "60s" }
skills = { sales = 0.5 }
groups = ["team"]
"""
    )
    (c,) = scenario(text).campaigns
    assert c.skills == {"sales": 0.5} and c.groups == ("team",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("no_answer = 0.35", "no_answer = 0.25"),
            r"s\.toml: campaigns\[0\]\.answer: the probabilities sum to 0\.9",
        ),
        (("amd = true", "amd = true\nspeed = 2"), r"campaigns\[0\]\.speed: unknown key"),
        (("invalid = 0.05", "invalid = 0.05, fax = 0"), r"campaigns\[0\]\.answer\.fax: unknown key"),
        (("human = 0.3", "human = 1.3"), r"campaigns\[0\]\.answer\.human: 1\.3 must be between 0 and 1"),
        (
            ("amd = true", "amd = true\nring_timeout = '10s'"),
            r"campaigns\[0\]\.ring_timeout: 10 s: unanswered",
        ),
        (
            ("amd = true", "amd = true\npacing = 'psychic'"),
            r"campaigns\[0\]\.pacing: unknown pacing policy 'psychic'",
        ),
        (
            ("amd = true", "amd = true\npacing = 'ratio'\npacing_settings = { ratoi = 3 }"),
            r"campaigns\[0\]\.pacing_settings\.ratoi: unknown key",
        ),
        (("amd = true", "amd = 'yes'"), r"campaigns\[0\]\.amd: 'yes' is not true or false"),
        (
            ("amd = true", "amd = true\nretry = { bsy = '5m' }"),
            r"campaigns\[0\]\.retry\.bsy: unknown outcome",
        ),
        (
            ("amd = true", "amd = true\nabandon_target = 0"),
            r"campaigns\[0\]\.abandon_target: 0 must be a share",
        ),
        (
            ('queue = "sales"', 'queue = "support"'),
            r"campaigns\[0\]\.queue: no \[\[agents\]\] group can take",
        ),
        (('name = "c"', 'name = "c d"'), r"campaigns\[0\]\.name: 'c d': use letters"),
        (("leads = 3000", "leads = 0"), r"campaigns\[0\]\.leads: 0 must be at least 1"),
        (('talk = { dist = "exponential", mean = "60s" }', ""), r"campaigns\[0\]\.talk: is required"),
        (("seed = 5", "seed = 5\nstart = 'monday'"), r"simulation\.start: 'monday' is not an ISO date-time"),
        (
            ("amd = true", "amd = true\nhours = { mon = '9-17' }"),
            r"campaigns\[0\]\.hours\.mon: '9-17' is not",
        ),
    ],
)
def test_campaign_errors_name_the_key(change: tuple[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        scenario(BASE.replace(*change, 1))


def test_two_campaigns_need_two_names() -> None:
    with pytest.raises(InputError, match=r"campaigns\[1\]\.name: two campaigns are named 'c'"):
        scenario(BASE + CAMPAIGN)


# --- the engine ------------------------------------------------------------------------


def test_conservation_and_the_calls_still_in_progress() -> None:
    _, c = run(BASE, drain_s=0.0)  # stop at the hour: calls are left in progress
    conserved(c)
    assert c.in_progress > 0 and c.in_progress_at_warmup == 0
    assert c.machines > 0 and c.amd_false_positives > 0 and c.outcomes["busy"] > 0
    assert c.talk_s > 0 and c.groups == (0,)
    _, drained = run(BASE)
    conserved(drained)
    assert drained.in_progress == 0 and drained.dials == c.dials  # nothing dialled after the hour


def test_warmup_is_left_out_and_the_books_still_balance() -> None:
    _, whole = run(BASE)
    _, measured = run(BASE.replace("seed = 5", "seed = 5\nwarmup = '20m'"))
    conserved(measured)
    assert 0 < measured.dials < whole.dials and measured.talk_s < whole.talk_s


def test_progressive_never_abandons_on_an_outbound_team() -> None:
    # Each progressive dial covers a ready agent, and on a team with no pauses and no
    # inbound work only another answered call can take that agent: never an abandon.
    # Machines AMD lets through go to agents too (accuracy 0.8) and must be covered.
    _, c = run(BASE.replace("count = 10", "count = 4"))
    conserved(c)
    assert c.connects > 100 and c.abandons == 0


def test_ratio_three_at_a_human_rate_of_30_percent_abandons() -> None:
    text = BASE.replace("amd = true", "amd = false\npacing = 'ratio'\npacing_settings = { ratio = 3 }")
    text = text.replace("human = 0.3, machine = 0.2", "human = 0.3, machine = 0.0").replace(
        "no_answer = 0.35", "no_answer = 0.55"
    )
    _, c = run(text)
    conserved(c)
    # 3 dials per ready agent bring 0.9 humans on average, more than one for many agents.
    assert c.humans > 300 and c.abandons / c.humans > 0.02


def test_pacing_runs_at_most_once_per_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulation(scenario(BASE.replace('duration = "1h"', 'duration = "20m"')), 1)
    assert sim.outbound is not None
    runner = sim.outbound.runs[0].runner
    times: list[float] = []
    real = CampaignRunner.pace

    def spy(self: CampaignRunner, at: float, *args: object, **kw: float) -> object:
        times.append(at)
        return real(self, at, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(type(runner), "pace", spy)
    sim.run()
    assert len(times) == len(set(times)) > 1200  # every tick, plus after freed agents
    start = sim.scenario.start_epoch
    off_tick = [at for at in times if (at - start) % 1.0]
    assert off_tick  # paced right after calls ended, between ticks
    assert max(times) < start + 1200  # nothing after the duration


def test_blended_agents_serve_both_and_pacing_sees_the_inbound_rate() -> None:
    blended = TEAM.replace("count = 10", "count = 6").replace(
        "{ sales = 1.0 }", "{ sales = 1.0, support = 1.0 }"
    )
    sim = Simulation(scenario(SIMULATION + SUPPORT + blended + CAMPAIGN), 3)
    log = sim.run()
    (c,) = log.campaigns
    conserved(c)
    queue = log.entry_queue == 0
    answered = int((log.entry_outcome[queue] == 1).sum())
    assert queue.sum() > 80 and answered > 0.9 * queue.sum() and c.connects > 50
    assert sim.outbound is not None
    (run_,) = sim.outbound.runs
    # Half of the support queue's 12 agents are the blended ones: half its rate competes.
    assert run_.competing == [("support", 0.5)]
    expected = 0.5 * 120 / 3600
    assert 0.5 * expected < run_.competing_rate < 1.5 * expected  # ~30 calls in the 15 min window


def test_a_separate_outbound_team_leaves_inbound_calls_bit_identical() -> None:
    # The campaign's random streams come after the inbound ones: every inbound call
    # arrives, waits, is answered and ends exactly as without the campaign.
    alone = Simulation(scenario(SIMULATION + SUPPORT), 4).run()
    both = Simulation(scenario(SIMULATION + SUPPORT + TEAM + CAMPAIGN), 4).run()
    assert both.campaigns and both.campaigns[0].dials > 0
    for name in ("entry_arrived", "entry_answered", "entry_left", "entry_ended", "entry_outcome"):
        np.testing.assert_array_equal(getattr(alone, name), getattr(both, name))


def test_progressive_connects_follow_the_human_probability_when_leads_run_out() -> None:
    # One attempt per lead, AMD always right: each lead is a Bernoulli trial whose success
    # is a human answering before the 25 s ring timeout, and progressive dialling loses
    # none of them (previous test), so connects ~ Binomial(leads, p).
    text = (
        BASE.replace("leads = 3000", "leads = 1500")
        .replace("amd_accuracy = 0.8", "amd_accuracy = 1.0\nmax_attempts = 1")
        .replace('duration = "1h"', 'duration = "3h"')
    )
    _, c = run(text, seed=2)
    assert c.leads_open == 0 and c.dials == 1500  # the list was exhausted
    sigma2 = math.log1p(0.5**2)  # the default ring time: lognormal, mean 8 s, cv 0.5
    answered_in_time = stats.lognorm.cdf(25.0, math.sqrt(sigma2), scale=8.0 * math.exp(-sigma2 / 2))
    p = 0.3 * answered_in_time
    mean, sd = 1500 * p, math.sqrt(1500 * p * (1 - p))
    # 4 standard deviations: a false alarm once in ~16,000 seeds.
    assert abs(c.connects - mean) < 4 * sd and c.abandons == 0
    assert c.machines == c.outcomes["machine"] and c.amd_false_positives == 0


# --- results and the CLI ----------------------------------------------------------------


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["simulate", *argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("wall_s", "cpu_s"):
        data.pop(key)
    return data  # type: ignore[no-any-return]


def test_cli_json_same_seed_same_result_whatever_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(BASE.replace('duration = "1h"', 'duration = "30m"'))
    one = _json(capsys, str(path), "--replications", "2", "--jobs", "1")
    two = _json(capsys, str(path), "--replications", "2", "--jobs", "2")
    assert one == two
    c = one["campaigns"]["c"]  # type: ignore[index]
    for key in ("dials", "humans", "connects", "abandons", "abandon_rate", "agent_utilization"):
        assert key in c and f"{key}_ci95" in c
    assert c["pacing"] == "progressive" and 0 < c["agent_utilization"] < 1
    assert c["humans"] == c["connects"] + c["abandons"]


def test_cli_pacing_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        BASE.replace('duration = "1h"', 'duration = "30m"').replace(
            "amd = true", "amd = true\npacing = 'ratio'\npacing_settings = { ratio = 3 }"
        )
    )
    as_written = _json(capsys, str(path), "--jobs", "1")["campaigns"]["c"]  # type: ignore[index]
    assert as_written["pacing"] == "ratio" and as_written["abandons"] > 0
    overridden = _json(capsys, str(path), "--jobs", "1", "--pacing", "progressive")["campaigns"]["c"]  # type: ignore[index]
    assert overridden["pacing"] == "progressive" and overridden["abandons"] == 0
    assert main(["simulate", str(path), "--pacing", "telepathic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--pacing: unknown pacing policy 'telepathic'" in err
    assert main(["simulate", str(path), "--jobs", "1", "--replications", "2"]) == 0
    table = capsys.readouterr().out
    assert "campaign" in table and "abandon_rate" in table and "ratio" in table


def test_callbacks_go_back_to_the_agent_who_booked_them() -> None:
    # Every conversation books a callback 10 minutes later; the hour holds dozens.
    text = BASE.replace("amd = true", 'amd = true\ncallbacks = { probability = 1.0, after = "10m" }')
    sim = Simulation(scenario(text), 3)
    sim.run()
    assert sim.outbound is not None
    hopper = sim.outbound.runs[0].runner.hopper
    pairs = []
    for lead_id in (f"c-{i}" for i in range(1, 3001)):
        attempts = [a for a in hopper.get(lead_id).attempts if a.outcome.value == "human"]
        pairs += [(a.agent_id, b.agent_id) for a, b in itertools.pairwise(attempts)]
    assert len(pairs) > 20
    same = sum(a == b for a, b in pairs)
    # Ten agents: by chance a callback would meet its agent one time in ten. They are
    # held for it, so it does nearly always (not always: an agent may be busy for the
    # whole 15 minutes of grace).
    assert same / len(pairs) > 0.8


def test_preview_campaigns_dial_without_abandons() -> None:
    text = BASE.replace("leads = 3000", 'leads = 3000\npacing = "preview"\npreview = { skip = 0.2 }')
    _log, c = run(text)
    conserved(c)
    assert c.dials > 100 and c.humans > 20
    assert c.abandons == 0  # the callee is the previewing agent's: nobody else takes them
    # Skipped leads were given back without an attempt: fewer dials than leads looked at.
    sim = Simulation(scenario(text), 1)
    sim.run()
    assert sim.outbound is not None
    hopper = sim.outbound.runs[0].runner.hopper
    assert sum(len(hopper.get(f"c-{i}").attempts) for i in range(1, 3001)) == c.dials - c.in_progress


def test_preview_books_balance_and_nothing_is_dialled_after_the_day() -> None:
    # A minute of preview per lead: many leads are in agents' hands at the end.
    text = BASE.replace(
        "leads = 3000",
        'leads = 3000\npacing = "preview"\npreview = { time = { dist = "fixed", mean = "60s" } }',
    )
    for seed in (1, 2, 3):
        sim = Simulation(scenario(text), seed)
        log = sim.run()
        c = log.campaigns[0]
        conserved(c)
        assert sim.outbound is not None
        hopper = sim.outbound.runs[0].runner.hopper
        launched = [a.at for i in range(1, 3001) for a in hopper.get(f"c-{i}").attempts]
        assert max(launched) < sim.outbound.epoch + 3600.0


def test_held_agents_count_as_available_time() -> None:
    # Preview with a 60 s look per lead: agents spend much of the hour held, which the
    # router counts as paused. Utilisation is talk over all their time (10 agents, 1 h).
    text = BASE.replace(
        "leads = 3000",
        'leads = 3000\npacing = "preview"\npreview = { time = { dist = "fixed", mean = "60s" } }',
    )
    log, c = run(text)
    figures = summarise(log, scenario(text))["campaigns"]["c"]
    assert figures["agent_utilization"] == pytest.approx(c.talk_s / (10 * 3600.0), rel=0.02)


def test_a_break_waits_for_the_personal_call_of_a_held_agent() -> None:
    # Breaks every 4 minutes: without deferring them, an agent previewing or waiting for
    # their callback to answer walked away and the callee was abandoned.
    breaks = "\n".join(f'[[agents.shifts.breaks]]\nstart = "{m}m"\nduration = "1m"' for m in range(6, 58, 4))
    team = TEAM + '[[agents.shifts]]\nstart = "0h"\nend = "1h"\n' + breaks + "\n"
    campaign = CAMPAIGN.replace(
        "leads = 3000", 'leads = 3000\npacing = "preview"\ncallbacks = { probability = 0.3, after = "5m" }'
    )
    for seed in (1, 2):
        _, c = run(SIMULATION + team + campaign, seed)
        conserved(c)
        assert c.humans > 50 and c.abandons == 0
