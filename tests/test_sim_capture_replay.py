"""Replay flows of the real Asterisk 22.10 capture against the simulated Asterisk.

The expected sequences live in ``tests/fixtures/asterisk22/`` (their README says how they
were derived and normalised: our own compact format, not copies of the capture, which
the tests never read). Each test sends the same actions as the capture did, over TCP, to
a fresh :class:`sim.ami_server.SimulatedAsterisk`, collects everything the session
receives until a closing Ping, normalises channels to roles (CUST, AGENT), uniqueids to
the same roles and bridge ids to B1, B2..., keeps only the event names the fixture
mentions, and compares. Where the capture itself says the order varies, the fixture
says so (floating lines, blocks in any order) and every seed must give an accepted
order; the conference flows run under several seeds for that reason.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

# The raw TCP client of the simulator tests (pytest puts tests/ on sys.path).
from test_sim_ami_server import Client, Msg, get, login_agent, scenario

from sim.ami_server import SimulatedAsterisk

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "asterisk22"
SPEED = 20.0  # a 10 s music-on-hold slice is 0.5 s of wall time: none ends inside a flow
SEEDS = (1, 2, 3, 4, 5, 6)
END = "replay-end"

# --- the fixture format ------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One expected message: its kind (event name, ``Response``, or ``VarSet:<Variable>``
    / ``UserEvent:<name>``), the key headers it must have, maybe the exact header order."""

    kind: str
    headers: tuple[tuple[str, str], ...]
    keys: tuple[str, ...] | None = None
    floating: bool = False

    def matches(self, msg: Normalised) -> bool:
        if msg.kind != self.kind:
            return False
        if self.keys is not None and msg.keys != self.keys:
            return False
        for key, want in self.headers:
            have = msg.headers.get(key)
            if have is None:
                return False
            if want.startswith("re:"):
                if not re.fullmatch(want[3:], have):
                    return False
            elif have != want:
                return False
        return True

    def __str__(self) -> str:
        return " ".join([("~" if self.floating else "") + self.kind, *(f"{k}={v}" for k, v in self.headers)])


Block = list[Line]
Element = Line | list[Block]  # a line, or blocks that may come in any order


def kind_of(name: str, headers: dict[str, str]) -> str:
    if name == "VarSet":
        return f"VarSet:{headers.get('Variable', '')}"
    if name == "UserEvent":
        return f"UserEvent:{headers.get('UserEvent', '')}"
    return name


def words(text: str) -> list[str]:
    """shlex words, quotes honoured, backslashes kept (they belong to the regexes)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    return list(lexer)


def parse_line(text: str) -> Line:
    floating = text.startswith("~")
    words_ = words(text.lstrip("~"))
    name, pairs = words_[0], [w.partition("=") for w in words_[1:]]
    keys = next((tuple(v.split(",")) for k, _, v in pairs if k == "@keys"), None)
    headers = tuple((k, v) for k, _, v in pairs if k != "@keys")
    return Line(kind_of(name, dict(headers)), headers, keys, floating)


def load(name: str) -> list[Element]:
    out: list[Element] = []
    group: list[Block] | None = None
    for raw in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text == "{":
            group = [[]]
        elif text == "|":
            assert group is not None, f"{name}: '|' outside a group"
            group.append([])
        elif text == "}":
            assert group is not None, f"{name}: '}}' without '{{'"
            out.append(group)
            group = None
        elif group is not None:
            group[-1].append(parse_line(text))
        else:
            out.append(parse_line(text))
    assert group is None, f"{name}: unclosed group"
    return out


def accepted_orders(elements: list[Element]) -> list[list[Line]]:
    """Every sequence the fixture accepts (floating lines aside)."""
    choices: list[list[list[Line]]] = []
    for el in elements:
        if isinstance(el, Line):
            if not el.floating:
                choices.append([[el]])
        else:
            choices.append(
                [[line for block in perm for line in block] for perm in itertools.permutations(el)]
            )
    return [[line for part in combo for line in part] for combo in itertools.product(*choices)]


def all_lines(elements: list[Element]) -> list[Line]:
    return [
        line for el in elements for line in ([el] if isinstance(el, Line) else [x for b in el for x in b])
    ]


# --- normalising what the simulator sent -------------------------------------------------------

ROLE_HEADERS = (
    "Channel",
    "DestChannel",
    "Uniqueid",
    "Linkedid",
    "DestUniqueid",
    "DestLinkedid",
    "Conference",
    "BridgeName",
)


@dataclass(frozen=True)
class Normalised:
    kind: str
    headers: dict[str, str]
    keys: tuple[str, ...]

    def __str__(self) -> str:
        shown = ("Channel", "DestChannel", "DialStatus", "Response", "Message", "Reason", "Value", "Cause")
        return " ".join([self.kind, *(f"{k}={self.headers[k]}" for k in shown if k in self.headers)])


def normalise(
    messages: list[Msg], roles: dict[str, str], bridges: dict[str, str] | None = None
) -> list[Normalised]:
    """Roles for channels and uniqueids, B1.. for bridge ids (``bridges``: ids named before
    the flow began, like the agent's conference); messages about channels that have no
    role (somebody else's calls) are dropped."""
    bridges = dict(bridges or {})
    out = []
    for msg in messages:
        headers = dict(msg)
        name = headers.get("Event") or "Response"
        channel = headers.get("Channel")
        if channel is not None and name not in ("Response", "OriginateResponse") and channel not in roles:
            continue
        for key in ROLE_HEADERS:
            if key in headers:
                headers[key] = roles.get(headers[key], headers[key])
        if "BridgeUniqueid" in headers:
            bid = headers["BridgeUniqueid"]
            headers["BridgeUniqueid"] = bridges.setdefault(bid, f"B{len(bridges) + 1}")
        out.append(Normalised(kind_of(name, headers), headers, tuple(k for k, _ in msg)))
    return out


def roles_from(messages: list[Msg], by_uid: dict[str, str], **extra: str) -> dict[str, str]:
    """Role of every channel name seen with one of the given uniqueids (and the uniqueids)."""
    roles = dict(by_uid)
    for msg in messages:
        h = dict(msg)
        for prefix in ("", "Dest"):
            uid, chan = h.get(f"{prefix}Uniqueid"), h.get(f"{prefix}Channel")
            if uid in by_uid and chan:
                roles[chan] = by_uid[uid]
    roles.update({v: k for k, v in extra.items()})
    return roles


def check(
    fixture: str, messages: list[Msg], roles: dict[str, str], bridges: dict[str, str] | None = None
) -> None:
    elements = load(fixture)
    lines = all_lines(elements)
    vocabulary = {line.kind for line in lines}
    actual = [m for m in normalise(messages, roles, bridges) if m.kind in vocabulary]
    for line in (x for x in lines if x.floating):
        found = [m for m in actual if line.matches(m)]
        assert len(found) == 1, f"{fixture}: {line} expected once, got {[str(m) for m in actual]}"
        actual.remove(found[0])
    orders = accepted_orders(elements)
    for order in orders:
        if len(order) == len(actual) and all(line.matches(m) for line, m in zip(order, actual, strict=True)):
            return
    best = orders[0]
    detail = "\n".join(
        f"  {'ok ' if i < len(actual) and line.matches(actual[i]) else 'BAD'} {line}  <->  "
        f"{actual[i] if i < len(actual) else '(nothing)'}"
        for i, line in enumerate(best)
    )
    extra = "\n".join(f"  extra: {m}" for m in actual[len(best) :])
    raise AssertionError(f"{fixture}: no accepted order matches\n{detail}\n{extra}")


# --- driving the simulator -----------------------------------------------------------------------


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[SimulatedAsterisk]:
    srv = SimulatedAsterisk(scenario(), speed=SPEED, seed=request.param, auth_delay_s=0.05, workload=False)
    await srv.start()
    yield srv
    await srv.stop()
    assert not srv.pbx.errors


@pytest.fixture
async def client(server: SimulatedAsterisk) -> AsyncIterator[Client]:
    c = await Client.connect(server.port)
    await c.login()
    # A heartbeat far ahead: ccd is "alive" for the whole test, whatever the wall clock does.
    await c.action(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(server.pbx.now()) + 10**6))
    yield c
    await c.close()


async def flow(c: Client, step: Callable[[], Awaitable[object]], settle_s: float = 0.05) -> list[Msg]:
    """Everything the session received from ``step`` on, until the answer to a closing Ping."""
    start = len(c.seen)
    await step()
    await asyncio.sleep(settle_s)
    await c.action(Action="Ping", ActionID=END)
    return [m for m in c.seen[start:] if get(m, "ActionID") != END]


def send(c: Client, **headers: str) -> Callable[[], Awaitable[Msg]]:
    return lambda: c.action(**headers)


async def held_caller(c: Client, server: SimulatedAsterisk, **call: float) -> tuple[str, str]:
    uid = server.pbx.place_call("support", caller="5551230101", **call)  # type: ignore[arg-type]
    chan = get(await c.event("MusicOnHoldStart", Uniqueid=uid), "Channel") or ""
    return uid, chan


AGENT, LEG, CONF = "tier1-1", "ccd-agent-tier1-1-1", "ccd-agent-tier1-1"


def login_headers() -> dict[str, str]:
    return {
        "Action": "Originate",
        "Channel": f"PJSIP/{AGENT}",
        "Context": "ccd-agent-session",
        "Exten": "s",
        "Priority": "1",
        "Async": "true",
        "ChannelId": LEG,
        "Variable": f"CCD_AGENT={AGENT}",
    }


# --- the flows --------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_login_then_fully_booted(server: SimulatedAsterisk) -> None:
    c = await Client.connect(server.port)
    messages = await flow(c, c.login)
    check("login.txt", messages, {})
    await c.close()


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_ping_pong(client: Client) -> None:
    check("ping.txt", await flow(client, send(client, Action="Ping")), {})


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_bad_actions_get_the_captured_replies(client: Client) -> None:
    ghost = "PJSIP/nobody-00000099"
    rows = 0
    for raw in (FIXTURES / "bad_actions.txt").read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        request, _, reply = raw.partition("=>")
        headers = dict(w.partition("=")[::2] for w in words(request))
        headers = {
            k: v.replace("GHOST2", "PJSIP/nobody2-00000098").replace("GHOST", ghost)
            for k, v in headers.items()
        }
        response, message = words(reply)
        message = message.replace("GHOST", ghost)
        aid = client.send(**headers) if headers else client.send(ActionID=f"noaction-{rows}")
        got = await client.response(aid)
        assert (get(got, "Response"), get(got, "Message")) == (response, message), raw
        rows += 1
    assert rows == 15
    assert get(await client.action(Action="Ping"), "Ping") == "Pong"  # the session stayed up


async def test_agent_login_into_a_conference(client: Client) -> None:
    messages = await flow(client, send(client, **login_headers()))
    check("agent_login.txt", messages, roles_from(messages, {LEG: "AGENT"}, CONF=CONF))


async def test_redirect_of_a_held_caller_into_the_conference(
    client: Client, server: SimulatedAsterisk
) -> None:
    await login_agent(client, AGENT)
    uid, chan = await held_caller(client, server, handle_s=600.0)
    await client.action(Action="Setvar", Channel=chan, Variable="CCD_AGENT", Value=AGENT)
    messages = await flow(
        client,
        send(client, Action="Redirect", Channel=chan, Context="ccd-agent-join", Exten="s", Priority="1"),
    )
    room = {server.pbx.conferences[CONF].uniqueid: "B1"}
    check("redirect_into_conference.txt", messages, {chan: "CUST", uid: "CUST", CONF: "CONF"}, room)


async def test_caller_hangs_up_in_the_conference(client: Client, server: SimulatedAsterisk) -> None:
    await login_agent(client, AGENT)
    uid, chan = await held_caller(client, server, handle_s=2.0)
    await client.action(Action="Setvar", Channel=chan, Variable="CCD_AGENT", Value=AGENT)
    start = len(client.seen)
    await client.action(Action="Redirect", Channel=chan, Context="ccd-agent-join", Exten="s", Priority="1")
    await client.seen_event(start, "ConfbridgeJoin", Uniqueid=uid)
    await client.seen_event(start, "BridgeEnter", Uniqueid=uid)
    messages = await flow(client, lambda: client.event("Hangup", Uniqueid=uid, timeout=5.0))
    room = {server.pbx.conferences[CONF].uniqueid: "B1"}  # the agent stays in the room
    check("caller_hangup_in_conference.txt", messages, {chan: "CUST", uid: "CUST", CONF: "CONF"}, room)


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_controller_hangup_with_cause_17(client: Client, server: SimulatedAsterisk) -> None:
    uid, chan = await held_caller(client, server)
    messages = await flow(client, send(client, Action="Hangup", Channel=chan, Cause="17"))
    check("hangup_cause17.txt", messages, {chan: "CUST", uid: "CUST"})


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_core_show_channels_list(client: Client, server: SimulatedAsterisk) -> None:
    uid, chan = await held_caller(client, server)
    messages = await flow(client, send(client, Action="CoreShowChannels"))
    check("core_show_channels.txt", messages, {chan: "CUST", uid: "CUST"})


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_status_list(client: Client, server: SimulatedAsterisk) -> None:
    uid, chan = await held_caller(client, server)
    messages = await flow(client, send(client, Action="Status"))
    check("status.txt", messages, {chan: "CUST", uid: "CUST"})


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_originate_failure_reason_0(client: Client) -> None:
    headers = {**login_headers(), "Channel": "PJSIP/nobody", "ChannelId": "ccd-agent-nobody-1"}
    messages = await flow(client, send(client, **headers))
    roles = roles_from(messages, {"ccd-agent-nobody-1": "AGENT"}, DIALSTRING="PJSIP/nobody")
    check("originate_failure.txt", messages, roles)


# --- the checker itself ------------------------------------------------------------------------------


def test_the_checker_accepts_documented_orders_and_rejects_others() -> None:
    def msg(event: str, **h: str) -> Msg:
        return [("Event", event), *h.items()]

    roles = {"PJSIP/c-1": "CUST", "1.1": "CUST"}
    enter = msg(
        "BridgeEnter",
        Channel="PJSIP/c-1",
        BridgeUniqueid="x",
        BridgeType="base",
        BridgeTechnology="softmix",
        BridgeNumChannels="3",
    )
    join = msg(
        "ConfbridgeJoin", Channel="PJSIP/c-1", Conference="CONF", BridgeUniqueid="x", BridgeNumChannels="3"
    )
    stop = msg("MusicOnHoldStop", Channel="PJSIP/c-1", Uniqueid="1.1")
    ok = [("Response", "Success"), ("Message", "Redirect successful")]
    noise = msg("Newstate", Channel="PJSIP/c-1")
    other = msg("MusicOnHoldStop", Channel="PJSIP/someone-else-2", Uniqueid="9.9")
    check("redirect_into_conference.txt", [ok, stop, noise, enter, other, join], roles)
    check("redirect_into_conference.txt", [ok, stop, join, enter], roles)
    for wrong in ([stop, ok, enter, join], [ok, stop, enter], [ok, stop, enter, join, join]):
        with pytest.raises(AssertionError):
            check("redirect_into_conference.txt", wrong, roles)
