"""docs/asterisk.md is a contract between three parts that cannot import one another:
the sample dialplan, the adapter (telephony) and the simulated Asterisk (sim). The
end-to-end tests prove the adapter and the simulator agree in behaviour; this checks that
the names a site copies into its Asterisk (config/asterisk) are the same ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acd.events import OverflowAction
from sim import pbx
from telephony import calls, outbound

ROOT = Path(__file__).resolve().parent.parent
DIALPLAN = (ROOT / "config" / "asterisk" / "extensions.conf").read_text(encoding="utf-8")
DOC = (ROOT / "docs" / "asterisk.md").read_text(encoding="utf-8")
MODULES = {"calls": calls, "outbound": outbound}
NAMES = sorted(
    {
        (mod, n)
        for mod, module in MODULES.items()
        for n in dir(module)
        if re.fullmatch(r"(CTX|UE|VAR)_[A-Z_]+", n)
    }
)


def test_the_simulator_uses_the_adapters_contexts() -> None:
    contexts = {(mod, n) for mod, n in NAMES if n.startswith("CTX_")}
    assert len({n for _, n in contexts}) == 8
    for mod, name in contexts:
        assert getattr(pbx, name) == getattr(MODULES[mod], name), name


def test_every_overflow_action_has_an_extension() -> None:
    """The router's overflow actions (but ``queue``, handled inside the ACD) are extensions
    of [ccd-overflow] in the sample dialplan and in the simulated Asterisk."""
    section = DIALPLAN.split("[ccd-overflow]", 1)[1].split("\n[", 1)[0]
    for action in OverflowAction:
        if action is OverflowAction.QUEUE:
            continue
        assert re.search(rf"^exten => {action.value},1,", section, re.M), action
        assert action.value in pbx.OVERFLOW_ACTIONS, action
        assert f"ccd-overflow,{action.value}" in DOC or f"`{action.value}`" in DOC, action


@pytest.mark.parametrize(("module", "name"), NAMES)
def test_the_sample_dialplan_and_the_doc_use_every_name(module: str, name: str) -> None:
    value = getattr(MODULES[module], name)
    if name.startswith("CTX_"):
        assert re.search(rf"^\[{re.escape(value)}\]", DIALPLAN, re.M), f"[{value}] missing in extensions.conf"
    else:
        assert value in DIALPLAN, f"{value} missing in extensions.conf"
    assert value in DOC, f"{value} missing in docs/asterisk.md"
    # The simulated Asterisk runs the same dialplan: it must use the name too.
    assert value in Path(pbx.__file__).read_text(encoding="utf-8")
