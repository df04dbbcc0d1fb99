"""The compiled simulator core (a regular ``pip install .``) is the same program.

setup.py compiles the routing core and the simulation engine with mypyc. These tests
build it the way a user would (an sdist, installed with no setting: compiling is a
regular install's default) into a directory of their own, and check, in processes that
import from there:

* that the listed modules really are compiled (a silent fallback to the sources would
  make every other check here pass for the wrong reason);
* that ``ccd simulate --json`` gives the same figures, digit for digit, as the sources,
  with worker processes (``--jobs 2``: scenarios and run logs cross process lines);
* that the router's and the simulator's own tests pass against it, the router's
  hypothesis state machine included, and so do the live service's: mypyc checks types
  at run time that Python only hints, so a wrong annotation is a crash there, not a
  style issue;
* that without a working C compiler a regular install falls back to pure Python, and
  that ``CCD_COMPILE=1`` makes that an error.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tests of the compiled modules' behaviour; the rest of the suite does not depend on them.
CORE_TESTS = [
    "test_agenda.py",
    "test_events.py",
    "test_router.py",
    "test_router_stateful.py",
    "test_stats.py",
    "test_sim_validation.py",
    "test_sim_scenario.py",
    "test_sim_outbound.py",
]


# The live service's tests: a regular install runs the service on the compiled router
# and events too, fed by values parsed from AMI frames and HTTP bodies, where a type
# the annotations do not admit is an error only in the compiled build.
SERVICE_TESTS = [
    "test_serve_e2e.py",
    "test_telephony_ami.py",
    "test_telephony_calls.py",
    "test_telephony_outbound.py",
    "test_sim_ami_server.py",
    "test_cli_serve.py",
    "test_outbound_e2e.py",
    "test_demo_outbound.py",
]


def compiled_modules() -> list[str]:
    """setup.py's COMPILED list, as module names (read, not imported: it runs setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets
        ):
            paths = ast.literal_eval(node.value)
            return [p.removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py has no COMPILED list")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a user installs it: from its sdist, built the default way (compiled),
    into a directory of its own. (The sdist must carry everything the build needs.)"""
    tmp = tmp_path_factory.mktemp("compiled")
    sdist = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert sdist.returncode == 0, f"sdist build failed:\n{sdist.stdout}\n{sdist.stderr}"
    (tarball,) = (tmp / "dist").glob("ccd-*.tar.gz")
    env = {k: v for k, v in os.environ.items() if k != "CCD_COMPILE"}
    done = pip_install(tmp / "site", env, source=tarball)
    assert done.returncode == 0, f"compiled build failed:\n{done.stdout}\n{done.stderr}"
    return tmp / "site"


def pip_install(target: Path, env: dict[str, str], source: Path = ROOT) -> subprocess.CompletedProcess[str]:
    args = ["install", "--verbose", "--no-deps", "--target", str(target), str(source)]
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def run_compiled(
    site: Path, args: list[str], cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run Python with the compiled install first on the path, away from the sources.

    The working directory must not be the repository: ``python -m`` puts it first on
    the path, and the sources there would shadow the compiled modules.
    """
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_listed_modules_are_compiled(site: Path, tmp_path: Path) -> None:
    modules = compiled_modules()
    assert "acd.router" in modules and "sim.engine" in modules
    code = "import importlib, json, sys\n"
    code += "print(json.dumps({m: importlib.import_module(m).__file__ for m in sys.argv[1:]}))"
    done = run_compiled(site, ["-c", code, *modules], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)
    for module, file in files.items():
        assert Path(file).is_relative_to(site), f"{module} came from {file}, not the compiled install"
        assert file.endswith(".so"), f"{module} is not compiled: {file}"


@pytest.mark.parametrize("scenario", ["mmn.toml", "multiskill-day.toml", "overload.toml"])
def test_same_figures_as_the_sources(site: Path, tmp_path: Path, scenario: str) -> None:
    args = ["simulate", str(ROOT / "config" / "scenarios" / scenario), "--seed", "11"]
    args += ["--replications", "4", "--jobs", "2", "--json"]
    compiled = run_compiled(site, ["-m", "ccd", *args], cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    source = subprocess.run(
        [sys.executable, "-m", "ccd", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert source.returncode == 0, source.stderr
    figures = [json.loads(done.stdout) for done in (compiled, source)]
    assert [f.pop("core") for f in figures] == ["compiled", "interpreted"]
    for f in figures:  # how long it took is the one other thing that differs
        del f["cpu_s"], f["wall_s"]
    assert figures[0] == figures[1]


@pytest.mark.parametrize("suite", [CORE_TESTS, SERVICE_TESTS], ids=["router+simulator", "live service"])
def test_tests_pass_compiled(site: Path, tmp_path: Path, suite: list[str]) -> None:
    tests = [str(ROOT / "tests" / name) for name in suite]
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]
    args += ["-c", str(ROOT / "pyproject.toml"), *tests]
    done = run_compiled(site, args, cwd=tmp_path, timeout=1800)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_an_editable_compiled_install_is_refused(tmp_path: Path) -> None:
    """Compiled modules beside the sources would shadow every later edit of them."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "-e", str(ROOT)],
        env={**os.environ, "CCD_COMPILE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode != 0
    assert "CCD_COMPILE=1 needs a regular install" in done.stdout + done.stderr


def test_without_a_compiler_a_regular_install_is_pure_python(tmp_path: Path) -> None:
    """No C compiler must not mean no ccd: the same program, slower, and said so."""
    env = {k: v for k, v in os.environ.items() if k != "CCD_COMPILE"}
    done = pip_install(tmp_path / "site", {**env, "CC": "false"})  # a compiler that always fails
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ccd: could not compile the simulator core" in done.stdout + done.stderr
    assert not list((tmp_path / "site").rglob("*.so")), "a module half built would not import"
    probe = run_compiled(tmp_path / "site", ["-c", "import sim; print(sim.core())"], cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "interpreted"


def test_ccd_compile_1_makes_a_failed_compile_an_error(tmp_path: Path) -> None:
    done = pip_install(tmp_path / "site", {**os.environ, "CCD_COMPILE": "1", "CC": "false"})
    assert done.returncode != 0
    assert "ccd: could not compile" not in done.stdout + done.stderr
