"""docs/asterisk.md is a contract between three parts that cannot import one another:
the sample dialplan, the adapter (telephony) and the simulated Asterisk (sim). The
end-to-end tests prove the adapter and the simulator agree in behaviour; this checks that
the names a site copies into its Asterisk (config/asterisk) are the same ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim import pbx
from telephony import calls

ROOT = Path(__file__).resolve().parent.parent
DIALPLAN = (ROOT / "config" / "asterisk" / "extensions.conf").read_text(encoding="utf-8")
DOC = (ROOT / "docs" / "asterisk.md").read_text(encoding="utf-8")
NAMES = [n for n in dir(calls) if re.fullmatch(r"(CTX|UE|VAR)_[A-Z_]+", n)]


def test_the_simulator_uses_the_adapters_contexts() -> None:
    contexts = [n for n in NAMES if n.startswith("CTX_")]
    assert len(contexts) == 7
    for name in contexts:
        assert getattr(pbx, name) == getattr(calls, name), name


@pytest.mark.parametrize("name", NAMES)
def test_the_sample_dialplan_and_the_doc_use_every_name(name: str) -> None:
    value = getattr(calls, name)
    if name.startswith("CTX_"):
        assert re.search(rf"^\[{re.escape(value)}\]", DIALPLAN, re.M), f"[{value}] missing in extensions.conf"
    else:
        assert value in DIALPLAN, f"{value} missing in extensions.conf"
    assert value in DOC, f"{value} missing in docs/asterisk.md"
    # The simulated Asterisk runs the same dialplan: it must use the name too.
    assert value in Path(pbx.__file__).read_text(encoding="utf-8")
