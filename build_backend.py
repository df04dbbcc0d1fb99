"""PEP 517 build backend: setuptools, plus mypy and numpy when ``CCD_COMPILE=1``.

A pure-Python install needs nothing but setuptools; a compiled one (see setup.py)
needs mypyc, and numpy's type information for the engine. Asking for them here, only
when compiling, keeps ``pip install .`` working in any environment either way.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (every hook not overridden below)

COMPILE_REQUIRES = ["mypy>=1.11", "numpy>=1.26", "sortedcontainers-stubs"]


def _compiling() -> bool:
    return os.environ.get("CCD_COMPILE", "") == "1"


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    if _compiling():  # setuptools' own answer would run setup.py, which needs mypyc already
        return list(COMPILE_REQUIRES)
    return list(_setuptools.get_requires_for_build_wheel(config_settings))


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    _refuse_editable()  # before setuptools runs setup.py, which would miss mypyc
    return list(_setuptools.get_requires_for_build_editable(config_settings))


def _refuse_editable() -> None:
    if _compiling():
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
