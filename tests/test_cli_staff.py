"""``ccd staff`` as a planner uses it: flags in, table or JSON out, exit 2 on bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ccd.cli import main

FORECAST = Path(__file__).resolve().parent.parent / "config" / "forecast-example.csv"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["staff", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_staff_json_published_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "--calls", "100", "--period", "30m", "--aht", "180s", "--sl", "80/20", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["agents"] == 14
    assert data["model"] == "erlang-c"
    assert data["p_abandon"] == 0.0
    assert data["service_level"] == pytest.approx(0.8883500191794669, rel=1e-12)
    assert data["p_wait"] == pytest.approx(0.1741319335950498, rel=1e-12)
    assert data["asa_s"] == pytest.approx(7.83593701177724, rel=1e-12)
    assert data["occupancy"] == pytest.approx(10 / 14)
    assert data["scheduled"] == 14
    assert err == ""


def test_staff_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "--calls", "100", "--period", "30m", "--aht", "3m", "--sl", "80/20", "--shrinkage", "30%"
    )
    assert code == 0
    assert "agents              14" in out
    assert "scheduled heads     20" in out
    assert "88.8 % of offered calls answered within 20 s" in out


def test_patience_selects_erlang_a_and_warns_about_abandonment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "--calls",
        "640",
        "--period",
        "1h",
        "--aht",
        "195s",
        "--patience",
        "20s",
        "--sl",
        "80/60",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "erlang-a"
    assert data["p_abandon"] > 0.05
    assert "warning:" in err and "--max-abandon" in err
    # With a ceiling the warning goes and the staffing meets it.
    code, out, err = run(
        capsys,
        *("--calls", "640", "--period", "1h", "--aht", "195s", "--patience", "20s", "--sl", "80/60"),
        *("--max-abandon", "0.05", "--json"),
    )
    assert err == ""
    assert json.loads(out)["p_abandon"] <= 0.05
    assert json.loads(out)["agents"] > data["agents"]


def test_evaluate_given_staffing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *("--calls", "640", "--period", "1h", "--aht", "195s", "--patience", "60s"),
        *("--agents", "37", "--target-time", "10s", "--json"),
    )
    assert code == 0
    data = json.loads(out)
    assert data["agents"] == 37
    assert data["target_s"] == 10
    for key in ("service_level", "p_wait", "p_abandon", "asa_s", "occupancy", "mean_wait_s"):
        assert 0 <= data[key] < 1e6


def test_forecast_json_and_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_csv = tmp_path / "plan.csv"
    code, out, _ = run(
        capsys,
        *("--forecast", str(FORECAST), "--sl", "80/20", "--patience", "120s", "--max-abandon", "5%"),
        *("--shrinkage", "0.3", "--out", str(out_csv), "--json"),
    )
    assert code == 0
    rows = json.loads(out)
    assert isinstance(rows, list) and len(rows) == 30
    assert rows[0]["interval_start"] == "07:00"
    assert all(r["service_level"] >= 0.8 and r["p_abandon"] <= 0.05 for r in rows)
    assert all(r["scheduled"] >= r["agents"] for r in rows)
    with out_csv.open() as f:
        written = list(csv.DictReader(f))
    assert [int(r["agents"]) for r in written] == [r["agents"] for r in rows]


def test_forecast_table_has_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--forecast", str(FORECAST), "--sl", "80/20")
    assert code == 0
    assert "30 intervals of 30 min" in out
    assert "agent-hours" in out and "peak" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--calls", "-3", "--period", "1h", "--aht", "3m", "--sl", "80/20"],
            "--calls: '-3' must be a number above 0",
        ),
        (
            ["--calls", "100", "--period", "1h", "--aht", "3x", "--sl", "80/20"],
            "--aht: '3x' is not a duration",
        ),
        (["--calls", "100", "--period", "0", "--aht", "3m", "--sl", "80/20"], "--period: '0' must be longer"),
        (["--calls", "100", "--aht", "3m", "--sl", "80/20"], "--period: is required"),
        (["--calls", "100", "--period", "1h", "--aht", "3m", "--sl", "100/20"], "below 100 %"),
        (["--calls", "100", "--period", "1h", "--aht", "3m", "--sl", "0.8/20"], "percentage below 1"),
        (["--calls", "100", "--period", "1h", "--aht", "3m", "--sl", "80"], "is not P/T"),
        (["--calls", "100", "--period", "1h", "--aht", "3m"], "give a target"),
        (["--calls", "100", "--period", "1h", "--aht", "3m", "--max-abandon", "0.05"], "needs Erlang A"),
        (
            ["--calls", "100", "--period", "1h", "--aht", "3m", "--model", "erlang-a", "--sl", "80/20"],
            "needs a patience",
        ),
        (["--calls", "100", "--period", "1h", "--aht", "3m", "--sl", "80/20", "--shrinkage", "1"], "below 1"),
        (["--calls", "1", "--period", "1h", "--aht", "3m", "--agents", "x"], "not a whole number"),
        (["--forecast", "no-such-file.csv", "--sl", "80/20"], "no-such-file.csv: No such file"),
        (["--forecast", "f.csv", "--calls", "3", "--sl", "80/20"], "--calls: does not go with --forecast"),
    ],
)
def test_bad_input_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err, err


def test_unknown_flag_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["staff", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --bogus" in err


def test_bad_forecast_row_names_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "day.csv"
    bad.write_text("interval_start,calls,aht_s\n08:00,10,180\n08:30,lots,180\n")
    code, _, err = run(capsys, "--forecast", str(bad), "--sl", "80/20")
    assert code == 2
    assert f"{bad}:3: calls: 'lots' is not a number" in err
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(capsys, "--forecast", str(binary), "--sl", "80/20")
    assert code == 2 and "not UTF-8" in err


def test_installed_command_runs() -> None:
    # The console script as a user calls it, in a fresh interpreter.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccd",
            "staff",
            "--calls",
            "100",
            "--period",
            "30m",
            "--aht",
            "180",
            "--sl",
            "80/20",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["agents"] == 14
    proc = subprocess.run(
        [sys.executable, "-m", "ccd", "staff", "--calls", "x"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
