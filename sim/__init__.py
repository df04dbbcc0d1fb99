"""The virtual world: discrete-event engine, workload models and a simulated PBX."""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES

# The simulator's hot path, as setup.py compiles it (a regular install, see setup.py).
HOT_MODULES = ("acd.router", "sim.engine")


def core() -> str:
    """Which build of the hot path runs: "compiled" (mypyc extensions) or "interpreted".

    The results are the same either way and compiled runs several times as fast, so
    a timing means something only next to this.
    """
    files = [importlib.import_module(name).__file__ or "" for name in HOT_MODULES]
    return "compiled" if all(f.endswith(tuple(EXTENSION_SUFFIXES)) for f in files) else "interpreted"
