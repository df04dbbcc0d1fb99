"""Build hook for the optional compiled simulator core; the rest is in pyproject.toml.

``CCD_COMPILE=1 pip install .`` compiles the modules on the simulator's hot path with
mypyc, the compiler that ships with mypy: the same type-checked sources become C
extensions, for about twice the simulated calls per second (bench/README.md) with
identical results. Without the variable the package is pure Python, as it always was;
the build backend (build_backend.py) adds mypy to the build only when it is needed.
"""

from __future__ import annotations

import os

from setuptools import setup

# The simulator's hot path: the routing core, the events and commands it exchanges
# (built three or four times per call), and the engine that drives it.
COMPILED = [
    "acd/agents.py",
    "acd/events.py",
    "acd/policies.py",
    "acd/queues.py",
    "acd/router.py",
    "acd/stats.py",
    "sim/agenda.py",
    "sim/engine.py",
    "sim/workload.py",
]


def compiling() -> bool:
    return os.environ.get("CCD_COMPILE", "") == "1"


def ext_modules() -> list[object]:
    if not compiling():
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 (present in the build only when compiling)

    # Only the listed files must type-check here: the modules they import are checked
    # by the project's own mypy run, and may need packages this build does not have.
    return list(mypycify(["--follow-imports=silent", *COMPILED], opt_level="3"))


setup(ext_modules=ext_modules())
