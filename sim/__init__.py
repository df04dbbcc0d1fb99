"""The virtual world: discrete-event engine, workload models and a simulated PBX."""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES

# The simulator's hot path, as setup.py compiles it with CCD_COMPILE=1.
HOT_MODULES = ("acd.router", "sim.engine")


def core() -> str:
    """"compiled" when the routing core and the engine run as mypyc extensions, else
    "interpreted": the same results either way, about twice the speed compiled, so a
    timing is only meaningful next to this."""
    files = [importlib.import_module(name).__file__ or "" for name in HOT_MODULES]
    return "compiled" if all(f.endswith(tuple(EXTENSION_SUFFIXES)) for f in files) else "interpreted"
