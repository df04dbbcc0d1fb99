"""Build hook for the compiled simulator core; the rest is in pyproject.toml.

A regular install compiles the modules on the simulator's hot path with mypyc, the
compiler that ships with mypy: the same type-checked sources become C extensions, for
several times the simulated calls per second (bench/README.md) with identical
results. build_backend.py says when (``CCD_COMPILE``): ``1`` compile or fail, ``auto``
(a regular install's default) compile or fall back to pure Python, anything else pure
Python (editable installs, ``CCD_COMPILE=0``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

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

FALLBACK = (
    "ccd: could not compile the simulator core ({why}); installing it as pure Python. "
    "Results are the same, simulations several times slower. For the compiled core "
    "install a C compiler and the Python headers, then reinstall "
    "(CCD_COMPILE=1 makes this an error instead)."
)


def choice() -> str:
    return os.environ.get("CCD_COMPILE", "")


# Built modules go to a directory of each build's own, removed afterwards. In the
# tree's build/ a wheel would pick up what earlier builds left there: a compiled module
# since dropped from COMPILED, say, would shadow its source and fail to import.
WORK = tempfile.mkdtemp(prefix="ccd-build-")
atexit.register(shutil.rmtree, WORK, ignore_errors=True)


def ext_modules() -> list[object]:
    if choice() not in ("1", "auto"):
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 (present in the build only when compiling)

        # Only the listed files must type-check here: the modules they import are
        # checked by the project's own mypy run, and may need packages this build lacks.
        # (The C it generates goes to build/: setuptools wants sources by relative path.
        # Each build rewrites it in full.)
        return list(mypycify(["--follow-imports=silent", *COMPILED], opt_level="3"))
    except (Exception, SystemExit) as exc:
        if choice() == "1":
            raise
        print(FALLBACK.format(why=f"mypyc: {exc}"), file=sys.stderr)
        return []


class OptionalBuildExt(build_ext):
    """Compiles the core; by default, a compiler that fails leaves pure Python behind."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError, OSError) as exc:
            if choice() == "1":
                raise
            print(FALLBACK.format(why=f"the C compiler failed: {type(exc).__name__}"), file=sys.stderr)
            # Some modules may have been built before the failure: leave none, as a
            # compiled module without the shared library it links to cannot import.
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            self.extensions = []


setup(
    ext_modules=ext_modules(),
    cmdclass={"build_ext": OptionalBuildExt},
    options={"build": {"build_base": os.path.join(WORK, "build")}},
)
