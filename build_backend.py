"""PEP 517 build backend: setuptools, plus mypy and numpy for the compiled core.

A regular install (``pip install .``, a wheel) compiles the simulator's hot path with
mypyc by default (setup.py): that build needs mypy, and numpy's type information for
the engine, which this backend asks for. ``CCD_COMPILE`` chooses:

* unset: compile, and if that fails (no C compiler, say) install pure Python, with a
  warning: the results are the same, only slower;
* ``1``: compile or fail, for builds that must be compiled (benchmarks, the tests);
* ``0``: pure Python, nothing more to fetch.

An editable install (``pip install -e .``) is pure Python whatever the default, and
refuses ``CCD_COMPILE=1``: compiled modules beside the sources would silently shadow
every later edit of them.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (every hook not overridden below)

COMPILE_REQUIRES = ["mypy>=1.11", "numpy>=1.26", "sortedcontainers-stubs"]


def _choice() -> str:
    return os.environ.get("CCD_COMPILE", "")


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    if _choice() != "0":  # setuptools' own answer would run setup.py, which needs mypyc already
        return list(COMPILE_REQUIRES)
    return list(_setuptools.get_requires_for_build_wheel(config_settings))


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    # setup.py runs in this process: tell it that compiling is the default here.
    if _choice() == "":
        os.environ["CCD_COMPILE"] = "auto"
    return str(_setuptools.build_wheel(wheel_directory, config_settings, metadata_directory))


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    _refuse_editable()  # before setuptools runs setup.py, which would miss mypyc
    return list(_setuptools.get_requires_for_build_editable(config_settings))


def _refuse_editable() -> None:
    if _choice() == "1":
        raise SystemExit(
            "CCD_COMPILE=1 needs a regular install (pip install .), not an editable one: "
            "compiled modules beside the sources would silently shadow every later edit"
        )


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    _refuse_editable()
    return str(_setuptools.build_editable(wheel_directory, config_settings, metadata_directory))
