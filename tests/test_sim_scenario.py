"""Scenario files: the examples load; every mistake names the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from acd.errors import InputError
from ccd.cli import main
from sim.engine import Simulation
from sim.scenario import load_scenario
from sim.workload import Empirical, Gamma, LogNormal, Never

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "config" / "scenarios").glob("*.toml"))

BASE = """
[simulation]
duration = "1h"
seed = 3
[[agents]]
group = "g"
count = 2
skills = { q = 1.0 }
[[queues]]
name = "q"
arrivals = { rate_per_hour = 30 }
handle_time = { dist = "exponential", mean = "60s" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_examples_load(path: Path) -> None:
    sc = load_scenario(path)
    assert (sc.queues or sc.campaigns) and sc.agents


def test_at_least_three_examples() -> None:
    assert {p.stem for p in SCENARIOS} >= {"mmn", "multiskill-day", "overload"}


def test_defaults_and_distributions(tmp_path: Path) -> None:
    (tmp_path / "talk.csv").write_text("duration\n100\n200s\n5m\n")
    sc = load_scenario(
        write(
            tmp_path,
            BASE.replace(
                'handle_time = { dist = "exponential", mean = "60s" }',
                'handle_time = { dist = "empirical", file = "talk.csv" }',
            )
            + """
[[queues]]
name = "r"
arrivals = { rate_per_hour = 10 }
handle_time = { dist = "lognormal", mean = "3m", cv = 0.5 }
patience = { dist = "gamma", mean = "90s", cv = 2 }
skills = { q = 0.5 }
""",
        )
    )
    q, r = sc.queues
    assert q.config.skills == {"q": 0.0}  # a queue needs the skill named like it
    assert isinstance(q.handle_time, Empirical) and q.handle_time.values == (100.0, 200.0, 300.0)
    assert isinstance(q.patience, Never)
    assert isinstance(r.handle_time, LogNormal) and isinstance(r.patience, Gamma)
    assert sc.interval_s == 1800 and sc.warmup_s == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seed = 3", "seed = 3\nspeed = 2"), r"s\.toml: simulation\.speed: unknown key"),
        (('duration = "1h"', 'duration = "1x"'), r"simulation\.duration: '1x' is not a duration"),
        (('mean = "60s"', 'mean = "0s"'), r"queues\[0\]\.handle_time\.mean: must be longer than 0"),
        (
            ('dist = "exponential"', 'dist = "weibull"'),
            r"queues\[0\]\.handle_time\.dist: unknown distribution 'weibull'",
        ),
        (("count = 2", "count = 0"), r"agents\[0\]\.count: 0 must be at least 1"),
        (("count = 2", 'count = "two"'), r"agents\[0\]\.count: 'two' is not a whole number"),
        (("q = 1.0", "q = 7"), r"agents\[0\]\.skills\.q: 7 must be a proficiency"),
        (("rate_per_hour = 30", 'forecast = "nope.csv"'), r"queues\[0\]\.arrivals\.forecast: cannot read"),
        (("rate_per_hour = 30", "rate_per_hour = 30, forecast = 'x.csv'"), r"give exactly one of"),
        (('name = "q"', 'name = "q"\npolicy = "fastest"'), r"queues\[0\]\.policy: unknown policy 'fastest'"),
        (('group = "g"', 'group = "g"\nqueues = ["z"]'), r"agents\[0\]\.queues: unknown queue 'z'"),
        (
            ("[simulation]", "[[campaigns]]\nname = 'x'\n[simulation]"),
            r"s\.toml: campaigns\[0\]\.queue: is required",
        ),
        (("seed = 3", "seed = 3\nwarmup = '2h'"), r"simulation\.warmup: must be shorter than the duration"),
        (('name = "q"', 'name = "q"\nmax_wait = "60s"'), r"needs an overflow rule"),
        (("[simulation]", "[simulation\n"), r"s\.toml: not valid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_scenario(write(tmp_path, BASE.replace(*change, 1)))


def test_cli_json_keys_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    report = tmp_path / "report"
    code = main(
        ["simulate", str(path), "--replications", "3", "--jobs", "1", "--json", "--report", str(report)]
    )
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    q = data["queues"]["q"]
    for key in (
        "offered",
        "answered",
        "abandoned",
        "service_level",
        "asa_s",
        "p_abandon",
        "p_wait",
        "mean_wait_s",
    ):
        assert key in q and f"{key}_ci95" in q
    assert "occupancy" in data["groups"]["g"] and "occupancy_ci95" in data["groups"]["g"]
    assert data["replications"] == 3 and len(data["intervals"]) == 2
    page = (report / "index.html").read_text()
    assert page.count("<svg") == 4 and "Service level" in page
    assert (report / "intervals.csv").read_text().startswith("start_s,end_s,kind,name,figure,value,ci95")


def test_cli_table_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    assert main(["simulate", str(path), "--seed", "5"]) == 0
    assert "occupancy" in capsys.readouterr().out
    assert main(["simulate", str(path), "--replications", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--replications" in err
    assert main(["simulate", str(tmp_path / "missing.toml")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_forecast_drives_handle_time_and_patience_per_interval(tmp_path: Path) -> None:
    (tmp_path / "fc.csv").write_text(
        "interval_start,calls,aht_s,patience_s\n08:00,400,60,30\n09:00,400,600,3000\n"
    )
    text = (
        BASE.replace("{ rate_per_hour = 30 }", '{ forecast = "fc.csv" }')
        .replace(
            'handle_time = { dist = "exponential", mean = "60s" }',
            'handle_time = { dist = "lognormal", cv = 0.5 }',
        )
        .replace('duration = "1h"', 'duration = "2h"')
        .replace("count = 2", "count = 200")
    )
    sc = load_scenario(write(tmp_path, text))
    q = sc.queues[0]
    assert q.handle_scale == (60.0, 600.0) and q.patience_scale == (30.0, 3000.0)
    assert isinstance(q.handle_time, LogNormal) and q.handle_time.mean == 1.0
    log = Simulation(sc, 3).run()
    talk = log.entry_ended - log.entry_answered
    first = (log.entry_arrived < 3600) & ~np.isnan(talk)
    second = (log.entry_arrived >= 3600) & ~np.isnan(talk)
    # ~400 calls each; lognormal cv 0.5: the sample mean is within 4 standard errors.
    assert abs(talk[first].mean() - 60) < 4 * 0.5 * 60 / np.sqrt(first.sum())
    assert abs(talk[second].mean() - 600) < 4 * 0.5 * 600 / np.sqrt(second.sum())
    # A mean given explicitly wins over the forecast.
    fixed = load_scenario(write(tmp_path, text.replace("cv = 0.5 }", 'cv = 0.5, mean = "2m" }')))
    assert fixed.queues[0].handle_scale is None and fixed.queues[0].handle_time.mean == 120.0


def test_report_checks_the_scenarios_goals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = BASE.replace('name = "q"', 'name = "q"\nsl_goal = 0.999\nmax_abandon = 0.5').replace(
        "count = 2", "count = 2\nmax_occupancy = 0.9"
    )
    sc = load_scenario(write(tmp_path, text))
    assert sc.queues[0].sl_goal == 0.999 and sc.agents[0].max_occupancy == 0.9
    assert main(["simulate", str(tmp_path / "s.toml"), "--report", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    page = (tmp_path / "r" / "index.html").read_text()
    assert "q service level" in page and "against 99.9 %" in page and "against 50 %" in page
    assert "g occupancy" in page
    with pytest.raises(InputError, match=r"queues\[0\]\.sl_goal: 80 must be between 0 and 1"):
        load_scenario(write(tmp_path, BASE.replace('name = "q"', 'name = "q"\nsl_goal = 80')))
