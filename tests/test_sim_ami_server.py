"""The simulated Asterisk over real TCP: wire protocol, sessions, and the ccd dialplan.

Clients here are raw asyncio streams (to see every byte and header order, as recorded
from a real Asterisk 22.10) and panoramisk 1.4's ``Manager`` (the library ccd uses).
The PBX runs 50x faster than real time, so a 10 s ring timeout takes 0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from panoramisk import Manager

from sim.ami_server import BANNER, FrameParser, SimulatedAsterisk, event_mask
from sim.pbx import ActionRequest, Pbx
from sim.scenario import Scenario, parse_scenario

SPEED = 50.0
Msg = list[tuple[str, str]]


def scenario(groups: list[dict[str, Any]] | None = None, queues: tuple[str, ...] = ("support",)) -> Scenario:
    data = {
        "simulation": {"duration": "1h"},
        "agents": groups or [{"group": "tier1", "count": 2, "skills": {"support": 1.0}}],
        "queues": [
            {
                "name": q,
                "arrivals": {"rate_per_hour": 3600},
                "handle_time": {"dist": "fixed", "mean": 30},
                "service_target": "20s",
                "priority": 3,
            }
            for q in queues
        ],
    }
    return parse_scenario(data, source="test", base=Path("."))


def get(msg: Msg, name: str) -> str | None:
    return next((v for k, v in msg if k == name), None)


class Client:
    """A raw AMI client: writes bytes, reads whole messages, keeps everything it read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: list[Msg] = []
        self._pos = 0
        self._n = 0

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.banner = await asyncio.wait_for(reader.readline(), 2)
        return client

    def send(self, eol: str = "\r\n", **headers: str | list[str]) -> str:
        if "ActionID" not in headers and "Action" in headers:
            self._n += 1
            headers["ActionID"] = f"t-{self._n}"
        lines = []
        for key, value in headers.items():
            for v in value if isinstance(value, list) else [value]:
                lines.append(f"{key}: {v}")
        self.writer.write((eol.join(lines) + eol + eol).encode())
        return str(headers.get("ActionID", ""))

    async def _read(self, timeout: float) -> Msg:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        msg = [tuple(line.split(": ", 1)) for line in raw.decode().split("\r\n") if line]
        return [(k, v) for k, v in msg]  # type: ignore[misc]

    async def until(self, pred: Callable[[Msg], bool], timeout: float = 3.0) -> Msg:
        """The next message (after those already returned) that matches."""
        deadline = time.monotonic() + timeout
        while True:
            while self._pos < len(self.seen):
                msg = self.seen[self._pos]
                self._pos += 1
                if pred(msg):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message; last seen: {self.seen[-5:]}")
            self.seen.append(await self._read(left))

    async def response(self, action_id: str, timeout: float = 3.0) -> Msg:
        return await self.until(
            lambda m: get(m, "Response") is not None and get(m, "ActionID") == action_id, timeout
        )

    async def event(self, name: str, timeout: float = 3.0, **match: str) -> Msg:
        return await self.until(
            lambda m: get(m, "Event") == name and all(get(m, k) == v for k, v in match.items()), timeout
        )

    async def seen_event(self, start: int, name: str, timeout: float = 3.0, **match: str) -> Msg:
        """A matching event anywhere from ``start`` on, even one an earlier wait went past
        (for events whose relative order varies, like OriginateResponse)."""

        def ok(m: Msg) -> bool:
            return get(m, "Event") == name and all(get(m, k) == v for k, v in match.items())

        found = next((m for m in self.seen[start:] if ok(m)), None)
        return found if found is not None else await self.until(ok, timeout)

    async def action(self, **headers: str | list[str]) -> Msg:
        return await self.response(self.send(**headers))

    async def login(self, events: str = "on", secret: str = "ccd") -> Msg:
        return await self.action(Action="Login", Username="ccd", Secret=secret, Events=events)

    def names_since(self, start: int) -> list[str]:
        return [get(m, "Event") or f"Response:{get(m, 'Response')}" for m in self.seen[start:]]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedAsterisk]:
    server = SimulatedAsterisk(scenario(), speed=SPEED, auth_delay_s=0.05, workload=False)
    await server.start()
    yield server
    await server.stop()
    assert not server.pbx.errors


@pytest.fixture
async def client(pbx: SimulatedAsterisk) -> AsyncIterator[Client]:
    c = await Client.connect(pbx.port)
    assert (await c.login())[0] == ("Response", "Success")
    await c.action(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(pbx.pbx.now())))
    yield c
    await c.close()


# --- wire protocol and sessions ------------------------------------------------------------------


async def test_banner_login_and_fully_booted(pbx: SimulatedAsterisk) -> None:
    c = await Client.connect(pbx.port)
    assert c.banner == BANNER
    reply = await c.login()
    assert reply == [("Response", "Success"), ("ActionID", "t-1"), ("Message", "Authentication accepted")]
    booted = await c.event("FullyBooted")
    assert booted[1] == ("Privilege", "system,all")
    assert get(booted, "Status") == "Fully Booted"
    again = await c.login()
    assert get(again, "Message") == "Already authenticated"
    await c.close()


async def test_bad_secret_is_refused_after_a_delay_then_closed(pbx: SimulatedAsterisk) -> None:
    c = await Client.connect(pbx.port)
    started = time.monotonic()
    reply = await c.login(secret="wrong")
    assert time.monotonic() - started >= 0.05
    assert reply == [("Response", "Error"), ("ActionID", "t-1"), ("Message", "Authentication failed")]
    assert await asyncio.wait_for(c.reader.read(), 2) == b""  # EOF
    await c.close()


async def test_before_login_only_login_is_allowed_and_the_session_stays(pbx: SimulatedAsterisk) -> None:
    c = await Client.connect(pbx.port)
    reply = await c.action(Action="Ping")
    assert reply == [("Response", "Error"), ("ActionID", "t-1"), ("Message", "Permission denied")]
    reply = await c.action(
        Action="Originate", Channel="PJSIP/tier1-1", Context="ccd-hold", Exten="s", Priority="1"
    )
    assert get(reply, "Message") == "Permission denied"
    assert get(await c.login(), "Response") == "Success"
    await c.close()


async def test_unknown_and_missing_action(client: Client) -> None:
    reply = await client.action(Action="BogusAction", ActionID="bogus")
    assert reply == [
        ("Response", "Error"),
        ("ActionID", "bogus"),
        (
            "Message",
            "Invalid/unknown command: BogusAction. Use Action: ListCommands to show available commands.",
        ),
    ]
    client.send(ActionID="no-action", Foo="bar")
    reply = await client.response("no-action")
    assert reply == [
        ("Response", "Error"),
        ("ActionID", "no-action"),
        ("Message", "Missing action in request"),
    ]
    assert get(await client.action(Action="Ping"), "Ping") == "Pong"  # still connected


async def test_ping_pong_and_pbx_timestamp(client: Client, pbx: SimulatedAsterisk) -> None:
    reply = await client.action(Action="Ping")
    assert [k for k, _ in reply] == ["Response", "ActionID", "Ping", "Timestamp"]
    stamp = get(reply, "Timestamp")
    assert stamp is not None and len(stamp.split(".")[1]) == 6
    assert abs(float(stamp) - pbx.pbx.now()) < 5 * SPEED


async def test_pipelined_actions_lf_only_and_case_insensitive_headers(pbx: SimulatedAsterisk) -> None:
    c = await Client.connect(pbx.port)
    payload = (
        "action: login\nusername: ccd\nSECRET: ccd\nactionid: a1\nEvents: off\n\n"
        "Action: Ping\nActionID: a2\nActionID: ignored\n\n"
        "\n\nAction: Getvar\nVariable: NOPE\nActionID: a3\n\n"
    )
    for i in range(0, len(payload), 7):  # dribbled in small writes
        c.writer.write(payload[i : i + 7].encode())
        await c.writer.drain()
    assert get(await c.response("a1"), "Message") == "Authentication accepted"
    assert get(await c.response("a2"), "Ping") == "Pong"
    reply = await c.response("a3")
    assert reply == [("Response", "Success"), ("ActionID", "a3"), ("Variable", "NOPE"), ("Value", "")]
    assert all(get(m, "Event") is None for m in c.seen)  # Events: off: not even FullyBooted
    await c.close()


async def test_events_masks_filter_by_class(pbx: SimulatedAsterisk, client: Client) -> None:
    calls_only = await Client.connect(pbx.port)
    await calls_only.login(events="call")
    quiet = await Client.connect(pbx.port)
    await quiet.login(events="off")
    await quiet.action(Action="Events", EventMask="user")
    reply = await calls_only.action(Action="Events", EventMask="call,system", ActionID="ev")
    assert reply == [("Response", "Success"), ("ActionID", "ev"), ("Events", "On")]
    await client.action(Action="UserEvent", UserEvent="Marker", ActionID="mark", Note="x")
    marker = await quiet.event("UserEvent")
    assert marker == [
        ("Event", "UserEvent"),
        ("Privilege", "user,all"),
        ("UserEvent", "Marker"),
        ("ActionID", "mark"),
        ("Note", "x"),
    ]
    uid = pbx.pbx.place_call("support", caller="5551112222")
    await calls_only.event("Newchannel", Uniqueid=uid)
    await client.event("UserEvent", UserEvent="CCDCallWaiting")
    await calls_only.action(Action="Ping")
    assert not [m for m in calls_only.seen if get(m, "Event") == "UserEvent"]
    assert not [m for m in quiet.seen if get(m, "Event") not in (None, "UserEvent")]
    off = await quiet.action(Action="Events", EventMask="off")
    assert get(off, "Events") == "Off"
    for c in (calls_only, quiet):
        await c.close()


async def test_logoff(client: Client) -> None:
    reply = await client.action(Action="Logoff", ActionID="bye")
    assert reply == [("Response", "Goodbye"), ("ActionID", "bye"), ("Message", "Thanks for all the fish.")]
    assert await asyncio.wait_for(client.reader.read(), 2) == b""


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12), st.booleans())
def test_frame_parser_gives_the_same_actions_however_the_stream_is_split(cuts: list[int], lf: bool) -> None:
    eol = "\n" if lf else "\r\n"
    text = eol.join(
        [
            "Action: Originate",
            "ActionID: o-1",
            "Variable: A=1",
            "variable: B=2,C=3",
            "Channel:PJSIP/x",
            "",
            "",
            "Action: Ping",
            "ActionID: p",
            "no colon here",
            "",
            "ActionID: lonely",
            "",
            "",
        ]
    )
    data = text.encode()
    whole = [r.headers for r in FrameParser().receive_data(data)]
    parser = FrameParser()
    pieces = []
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        pieces += parser.receive_data(data[last:cut])
        last = cut
    pieces += parser.receive_data(data[last:])
    assert [r.headers for r in pieces] == whole
    assert len(whole) == 3
    first = FrameParser().receive_data(data)[0]
    assert first.get("CHANNEL") == "PJSIP/x"
    assert first.get_all("Variable") == ["A=1", "B=2,C=3"]


@given(st.binary(max_size=3000))
def test_frame_parser_never_crashes(data: bytes) -> None:
    for req in FrameParser().receive_data(data):
        assert isinstance(req.action, str)


def test_event_masks() -> None:
    assert event_mask("on") == event_mask("all")
    assert event_mask("off") == 0
    assert event_mask("call,user") == 2 | 64
    assert event_mask("") is None
    assert event_mask("3") == 3


# --- panoramisk 1.4 as ccd uses it -------------------------------------------------------------


async def test_panoramisk_login_ping_and_async_originate_of_an_agent(pbx: SimulatedAsterisk) -> None:
    manager = Manager(
        host="127.0.0.1",
        port=pbx.port,
        username="ccd",
        secret="ccd",
        ping_delay=60,
        loop=asyncio.get_running_loop(),
    )
    seen: list[str] = []
    manager.register_event("*", lambda _m, msg: seen.append(msg.event))
    try:
        await manager.connect()
        login = await asyncio.wait_for(manager.authenticated_future, 3)
        assert login.success
        pong = await asyncio.wait_for(manager.send_action({"Action": "Ping"}), 3)
        assert pong.ping == "Pong"
        result = await asyncio.wait_for(
            manager.send_action(
                {
                    "Action": "Originate",
                    "Channel": "PJSIP/tier1-1",
                    "Context": "ccd-agent-session",
                    "Exten": "s",
                    "Priority": "1",
                    "Async": "true",
                    "ChannelId": "ccd-agent-tier1-1-1",
                    "Variable": "CCD_AGENT=tier1-1",
                }
            ),
            3,
        )
        assert [m.get("Response") for m in result] == ["Success", "Success"]
        assert result[1].event == "OriginateResponse" and result[1].uniqueid == "ccd-agent-tier1-1-1"
        lst = await asyncio.wait_for(manager.send_action({"Action": "CoreShowChannels"}), 3)
        assert lst[-1].event == "CoreShowChannelsComplete" and lst[-1].listitems == "1"
        for _ in range(100):
            if "ConfbridgeJoin" in seen:
                break
            await asyncio.sleep(0.01)
        assert "ConfbridgeJoin" in seen
    finally:
        manager.close()


# --- the ccd dialplan: inbound callers, agent sessions, ring-per-call ----------------------------

SNAPSHOT = [
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
]


async def login_agent(c: Client, agent: str, n: int = 1) -> Msg:
    """ccd's agent login: Originate the phone into ccd-agent-session; returns its ConfbridgeJoin."""
    leg = f"ccd-agent-{agent}-{n}"
    start = len(c.seen)
    reply = await c.action(
        Action="Originate",
        Channel=f"PJSIP/{agent}",
        Context="ccd-agent-session",
        Exten="s",
        Priority="1",
        Async="true",
        ChannelId=leg,
        Variable=f"CCD_AGENT={agent}",
    )
    assert get(reply, "Message") == "Originate successfully queued"
    done = await c.seen_event(start, "OriginateResponse", Uniqueid=leg)
    assert get(done, "Response") == "Success" and get(done, "Reason") == "4"
    return await c.seen_event(start, "ConfbridgeJoin", Uniqueid=leg)


async def test_inbound_caller_waits_on_hold_with_a_ccd_call_waiting(
    client: Client, pbx: SimulatedAsterisk
) -> None:
    uid = pbx.pbx.place_call("support", caller="5551230001")
    new = await client.event("Newchannel", Uniqueid=uid)
    assert [k for k, _ in new] == ["Event", "Privilege", *SNAPSHOT]
    assert get(new, "ChannelStateDesc") == "Ring" and get(new, "Context") == "ccd-inbound"
    assert (get(new, "Channel") or "").startswith("PJSIP/trunk-")
    assert get(new, "Linkedid") == uid and uid.split(".")[0].isdigit()
    await client.event("Newstate", Uniqueid=uid, ChannelStateDesc="Up")
    waiting = await client.event("UserEvent", UserEvent="CCDCallWaiting")
    assert [k for k, _ in waiting] == ["Event", "Privilege", *SNAPSHOT, "UserEvent", "Queue", "CCDPriority"]
    # The body's header is not called "Priority": the snapshot has one (the dialplan's).
    assert [v for k, v in waiting if k == "Priority"] == ["2"]
    assert get(waiting, "CCDPriority") == "3"
    assert get(waiting, "Queue") == "support"
    assert get(waiting, "Uniqueid") == uid and get(waiting, "Context") == "ccd-hold"
    assert get(waiting, "CallerIDNum") == "5551230001"
    moh = await client.event("MusicOnHoldStart", Uniqueid=uid)
    assert moh[-1] == ("Class", "default")
    reply = await client.action(Action="Getvar", Channel=get(new, "Channel") or "", Variable="CCD_MAX_HOLD")
    assert get(reply, "Value") == "300"


async def test_agent_session_and_redirect_into_the_conference(client: Client, pbx: SimulatedAsterisk) -> None:
    start = len(client.seen)
    join = await login_agent(client, "tier1-1")
    assert client.names_since(start)[:1] == ["Response:Success"]
    names = client.names_since(start)
    assert names.index("Newchannel") < names.index("DialBegin") < names.index("DialEnd")
    assert "OriginateResponse" in names  # anywhere: its position varies (quirk 3)
    assert names.index("BridgeCreate") < names.index("ConfbridgeStart")
    assert (get(join, "Channel") or "").startswith("PJSIP/tier1-1-")
    assert get(join, "Conference") == "ccd-agent-tier1-1"
    assert get(join, "BridgeNumChannels") == "2"  # the hidden announcer counts
    assert get(join, "BridgeType") == "base" and get(join, "BridgeTechnology") == "softmix"
    assert get(join, "BridgeCreator") == "ConfBridge" and get(join, "BridgeName") == "ccd-agent-tier1-1"
    uid = pbx.pbx.place_call("support", caller="5551230002", handle_s=5.0)
    waiting = await client.event("UserEvent", UserEvent="CCDCallWaiting", Uniqueid=uid)
    chan = get(waiting, "Channel") or ""
    await client.event("MusicOnHoldStart", Uniqueid=uid)
    assert get(
        await client.action(Action="Setvar", Channel=chan, Variable="CCD_AGENT", Value="tier1-1"), "Message"
    ) == ("Variable Set")
    start = len(client.seen)
    reply = await client.action(
        Action="Redirect", Channel=chan, Context="ccd-agent-join", Exten="s", Priority="1"
    )
    assert get(reply, "Message") == "Redirect successful"
    assert client.names_since(start) == ["Response:Success"]  # the response comes before any event
    await client.event("MusicOnHoldStop", Uniqueid=uid)
    # BridgeEnter and ConfbridgeJoin come in either order (quirk 6); both count the customer.
    enter = await client.seen_event(start, "BridgeEnter", Uniqueid=uid)
    assert get(enter, "BridgeNumChannels") == "3"
    assert get(enter, "BridgeUniqueid") == get(join, "BridgeUniqueid")
    customer = await client.seen_event(start, "ConfbridgeJoin", Uniqueid=uid)
    assert customer[-2:] == [("Admin", "No"), ("Muted", "No")]
    assert get(customer, "BridgeNumChannels") == "3"
    rooms = await client.action(Action="ConfbridgeListRooms", ActionID="rooms")
    assert get(rooms, "EventList") == "start"
    room = await client.event("ConfbridgeListRooms")
    assert room[:3] == [
        ("Event", "ConfbridgeListRooms"),
        ("ActionID", "rooms"),
        ("Conference", "ccd-agent-tier1-1"),
    ]
    assert get(room, "Parties") == "2" and get(room, "Marked") == "1"
    # After 5 s of talk the agent side ends the call: the customer is hung up.
    start = len(client.seen)
    hangup = await client.event("Hangup", Uniqueid=uid)
    assert hangup[-2:] == [("Cause", "16"), ("Cause-txt", "Normal Clearing")]
    names = client.names_since(start)
    assert "ConfbridgeLeave" in names and "BridgeLeave" in names
    counters = pbx.pbx.counters
    assert (counters.arrived, counters.connected, counters.ended, counters.abandoned) == (1, 1, 1, 0)
    assert counters.agent_calls == {"tier1-1": 1}
    assert counters.agent_talk_s["tier1-1"] == pytest.approx(5.0, abs=2.0)
    assert pbx.pbx.calls[uid].outcome == "completed"


async def test_redirect_out_of_the_conference_and_agent_logout(
    client: Client, pbx: SimulatedAsterisk
) -> None:
    join = await login_agent(client, "tier1-2")
    leg = get(join, "Channel") or ""
    uid = pbx.pbx.place_call("support", handle_s=600.0)
    chan = get(await client.event("UserEvent", UserEvent="CCDCallWaiting", Uniqueid=uid), "Channel") or ""
    await client.action(Action="Setvar", Channel=chan, Variable="CCD_AGENT", Value="tier1-2")
    await client.action(Action="Redirect", Channel=chan, Context="ccd-agent-join", Exten="s", Priority="1")
    await client.event("ConfbridgeJoin", Uniqueid=uid)
    start = len(client.seen)
    await client.action(Action="Redirect", Channel=chan, Context="ccd-hold", Exten="wait", Priority="1")
    await client.seen_event(start, "ConfbridgeLeave", Uniqueid=uid)
    result = await client.seen_event(start, "VarSet", Uniqueid=uid, Variable="CONFBRIDGE_RESULT")
    assert get(result, "Value") == "HANGUP"
    await client.event("MusicOnHoldStart", Uniqueid=uid)
    reply = await client.action(Action="Hangup", Channel=leg, Cause="16")
    assert get(reply, "Message") == "Channel Hungup"
    await client.event("ConfbridgeEnd", Conference="ccd-agent-tier1-2")  # as captured: before the requests
    await client.event("SoftHangupRequest", Channel=leg, Cause="16")
    await client.event("Hangup", Channel=leg, Cause="16")
    assert get(await client.action(Action="Hangup", Channel=leg), "Message") == "No such channel"
    assert pbx.pbx.find(chan) is not None  # the customer is still on hold


async def test_caller_gives_up_while_on_hold(client: Client, pbx: SimulatedAsterisk) -> None:
    uid = pbx.pbx.place_call("support", patience_s=3.0)
    await client.event("MusicOnHoldStart", Uniqueid=uid)
    start = len(client.seen)
    hangup = await client.event("Hangup", Uniqueid=uid)
    assert client.names_since(start) == ["HangupRequest", "MusicOnHoldStop", "Hangup"]
    assert get(hangup, "Cause") == "16" and get(hangup, "ChannelStateDesc") == "Up"
    assert pbx.pbx.counters.abandoned == 1 and pbx.pbx.calls[uid].outcome == "abandoned"


async def test_originate_of_an_unknown_device_fails_for_every_session(
    client: Client, pbx: SimulatedAsterisk
) -> None:
    other = await Client.connect(pbx.port)
    await other.login(events="call")
    reply = await client.action(
        Action="Originate",
        Channel="PJSIP/nobody",
        Context="ccd-agent-session",
        Exten="s",
        Priority="1",
        Async="true",
        ActionID="login-nobody",
        ChannelId="ccd-agent-nobody-1",
    )
    assert get(reply, "Message") == "Originate successfully queued"
    hangup = await other.event("Hangup", Uniqueid="ccd-agent-nobody-1")
    assert hangup[-2:] == [("Cause", "20"), ("Cause-txt", "Subscriber absent")]
    mine = await client.event("OriginateResponse", ActionID="login-nobody")
    assert mine == [
        ("Event", "OriginateResponse"),
        ("Privilege", "call,all"),
        ("ActionID", "login-nobody"),
        ("Response", "Failure"),
        ("Channel", "PJSIP/nobody"),
        ("Context", "ccd-agent-session"),
        ("Exten", "s"),
        ("Reason", "0"),
        ("Uniqueid", "<unknown>"),
        ("CallerIDNum", "<unknown>"),
        ("CallerIDName", "<unknown>"),
    ]
    # Broadcast; as captured, it comes before the leg's Hangup.
    assert await other.seen_event(0, "OriginateResponse", ActionID="login-nobody") == mine
    await other.close()


async def test_originate_validation_errors(client: Client) -> None:
    cases = [
        ({"Context": "ccd-hold", "Exten": "s", "Priority": "1"}, "Channel not specified"),
        (
            {"Channel": "PJSIP/tier1-1", "Context": "nowhere", "Exten": "s", "Priority": "1"},
            "Extension does not exist.",
        ),
        (
            {
                "Channel": "PJSIP/tier1-1",
                "Context": "ccd-hold",
                "Exten": "s",
                "Priority": "1",
                "Timeout": "abc",
            },
            "Invalid timeout",
        ),
    ]
    for headers, message in cases:
        reply = await client.action(Action="Originate", Async="true", **headers)
        assert (get(reply, "Response"), get(reply, "Message")) == ("Error", message)


async def test_error_texts_of_call_control_actions(client: Client) -> None:
    ghost = "PJSIP/nobody-00000099"
    cases = [
        (
            {"Action": "Redirect", "Channel": ghost, "Context": "ccd-hold", "Exten": "s", "Priority": "1"},
            f"Channel does not exist: {ghost}",
        ),
        (
            {"Action": "Redirect", "Context": "ccd-hold", "Exten": "s", "Priority": "1"},
            "Channel not specified",
        ),
        ({"Action": "Hangup", "Channel": ghost, "Cause": "16"}, "No such channel"),
        ({"Action": "Status", "Channel": ghost}, "No such channel"),
        ({"Action": "Getvar", "Channel": ghost, "Variable": "X"}, "No such channel"),
        ({"Action": "Setvar", "Channel": ghost, "Value": "1"}, "No variable specified"),
        (
            {"Action": "Bridge", "Channel1": ghost, "Channel2": "PJSIP/x-1"},
            f"Channel1 does not exist: {ghost}",
        ),
        ({"Action": "AGI", "Channel": ghost, "Command": "ANSWER"}, f"Channel {ghost} does not exist."),
        ({"Action": "ConfbridgeList", "Conference": "no-such-conf"}, "No active conferences."),
        (
            {"Action": "ConfbridgeKick", "Conference": "no-such-conf", "Channel": "all"},
            "No active conferences.",
        ),
    ]
    for headers, message in cases:
        reply = await client.action(**headers)
        assert (get(reply, "Response"), get(reply, "Message")) == ("Error", message), headers
    aid = client.send(Action="Hangup", Channel="/^PJSIP\\/nobody.*$/")
    reply = await client.response(aid)
    assert reply == [
        ("Response", "Success"),
        ("ActionID", aid),
        ("EventList", "start"),
        ("Message", "Channels hung up will follow"),
    ]
    done = await client.event("ChannelsHungupListComplete")
    assert done == [
        ("Event", "ChannelsHungupListComplete"),
        ("ActionID", aid),
        ("EventList", "Complete"),
        ("ListItems", "0"),
    ]


async def test_core_show_channels_and_status_lists(client: Client, pbx: SimulatedAsterisk) -> None:
    uid = pbx.pbx.place_call("support", caller="5551230009")
    chan = get(await client.event("MusicOnHoldStart", Uniqueid=uid), "Channel") or ""
    aid = client.send(Action="CoreShowChannels")
    reply = await client.response(aid)
    assert reply == [
        ("Response", "Success"),
        ("ActionID", aid),
        ("EventList", "start"),
        ("Message", "Channels will follow"),
    ]
    item = await client.event("CoreShowChannel")
    assert [k for k, _ in item] == [
        "Event",
        "ActionID",
        *SNAPSHOT,
        "Application",
        "ApplicationData",
        "Duration",
        "BridgeId",
    ]
    assert (
        get(item, "Application") == "MusicOnHold" and get(item, "ApplicationData") == "default,10"
    )  # a 10 s slice
    assert get(item, "Context") == "ccd-hold"
    done = await client.event("CoreShowChannelsComplete")
    assert done == [
        ("Event", "CoreShowChannelsComplete"),
        ("ActionID", aid),
        ("EventList", "Complete"),
        ("ListItems", "1"),
    ]
    aid = client.send(Action="Status", Channel=chan, Variables="CCD_QUEUE,CCD_PRIORITY,CCD_AGENT")
    await client.response(aid)
    status = await client.event("Status")
    assert status[1] == ("Privilege", "Call") and status[-1] == ("ActionID", aid)
    assert [v for k, v in status if k == "Variable"] == [
        "CCD_QUEUE=support",
        "CCD_PRIORITY=3",
        "CCD_AGENT=(null)",
    ]
    done = await client.event("StatusComplete")
    assert done[-2:] == [("ListItems", "1"), ("Items", "1")]


async def test_no_heartbeat_sends_callers_to_the_fallback(pbx: SimulatedAsterisk) -> None:
    c = await Client.connect(pbx.port)
    await c.login()
    uid = pbx.pbx.place_call("support")
    fallback = await c.event("UserEvent", UserEvent="CCDFallback")
    assert get(fallback, "Uniqueid") == uid and get(fallback, "Queue") == "support"
    assert not [m for m in c.seen if get(m, "UserEvent") == "CCDCallWaiting"]
    assert pbx.pbx.fallback_calls == [uid] and pbx.pbx.counters.fallback == 1
    # With a fresh heartbeat the caller waits, until CCD_MAX_HOLD sends them to the fallback anyway.
    await c.action(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(pbx.pbx.now())))
    uid2 = pbx.pbx.place_call("support")
    chan = get(await c.event("UserEvent", UserEvent="CCDCallWaiting", Uniqueid=uid2), "Channel") or ""
    await c.action(Action="Setvar", Channel=chan, Variable="CCD_MAX_HOLD", Value="2")
    await c.action(Action="Redirect", Channel=chan, Context="ccd-hold", Exten="wait", Priority="1")
    await c.event("UserEvent", UserEvent="CCDFallback", Uniqueid=uid2)
    assert pbx.pbx.fallback_calls == [uid, uid2]
    await c.close()


async def ring_pbx(groups: list[dict[str, Any]]) -> tuple[SimulatedAsterisk, Client]:
    server = SimulatedAsterisk(scenario(groups), speed=SPEED, auth_delay_s=0.05, workload=False)
    await server.start()
    c = await Client.connect(server.port)
    await c.login()
    await c.action(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(server.pbx.now())))
    return server, c


async def offer(c: Client, server: SimulatedAsterisk, agent: str, **call: Any) -> tuple[str, str]:
    uid = server.pbx.place_call("support", **call)
    chan = get(await c.event("UserEvent", UserEvent="CCDCallWaiting", Uniqueid=uid), "Channel") or ""
    for var, value in (
        ("CCD_AGENT", agent),
        ("CCD_AGENT_DEVICE", f"PJSIP/{agent}"),
        ("CCD_RING_TIMEOUT", "10"),
    ):
        assert (
            get(await c.action(Action="Setvar", Channel=chan, Variable=var, Value=value), "Response")
            == "Success"
        )
    await c.action(Action="Redirect", Channel=chan, Context="ccd-ring", Exten="s", Priority="1")
    return uid, chan


async def test_ring_per_call_answered(pbx: SimulatedAsterisk) -> None:
    server, c = await ring_pbx(
        [
            {
                "group": "good",
                "count": 1,
                "skills": {"support": 1.0},
                "answer_delay": {"dist": "fixed", "mean": 2},
            }
        ]
    )
    try:
        uid, _ = await offer(c, server, "good-1", handle_s=4.0)
        begin = await c.event("DialBegin", Uniqueid=uid)
        assert [k for k, _ in begin] == [
            "Event",
            "Privilege",
            *SNAPSHOT,
            *(f"Dest{k}" for k in SNAPSHOT),
            "DialString",
        ]
        assert get(begin, "DialString") == "good-1" and get(begin, "DestLinkedid") == uid
        end = await c.event("DialEnd", Uniqueid=uid)
        assert get(end, "DialStatus") == "ANSWER"
        create = await c.event("BridgeCreate")
        assert [
            get(create, k) for k in ("BridgeType", "BridgeTechnology", "BridgeCreator", "BridgeName")
        ] == ["basic", "simple_bridge", "<unknown>", "<unknown>"]
        agent_enter = await c.event("BridgeEnter", BridgeNumChannels="1")
        assert get(agent_enter, "Channel") == get(begin, "DestChannel")
        await c.event("BridgeEnter", Uniqueid=uid, BridgeNumChannels="2")
        hangup = await c.event("Hangup", Uniqueid=uid)  # the agent hangs up after 4 s; the caller follows
        assert get(hangup, "Cause") == "16"
        assert server.pbx.counters.connected == 1 and server.pbx.counters.ended == 1
        assert server.pbx.counters.agent_calls == {"good-1": 1}
    finally:
        await c.close()
        await server.stop()
    assert not server.pbx.errors


async def test_ring_per_call_not_answered_goes_back_on_hold(pbx: SimulatedAsterisk) -> None:
    server, c = await ring_pbx(
        [{"group": "lazy", "count": 1, "skills": {"support": 1.0}, "no_answer_probability": 1.0}]
    )
    try:
        uid, _ = await offer(c, server, "lazy-1")
        await c.event("DialState", Uniqueid=uid, DialStatus="RINGING")
        start = len(c.seen)
        failed = await c.event("UserEvent", UserEvent="CCDRingFailed")
        assert failed[-3:] == [
            ("UserEvent", "CCDRingFailed"),
            ("Agent", "lazy-1"),
            ("DialStatus", "NOANSWER"),
        ]
        assert get(failed, "Uniqueid") == uid
        names = c.names_since(start)
        assert names[:1] == ["DialEnd"] and "Hangup" in names
        assert get(c.seen[start], "DialStatus") == "NOANSWER"
        moh = await c.event("MusicOnHoldStart", Uniqueid=uid)
        assert get(moh, "Context") == "ccd-hold" and get(moh, "Exten") == "wait"
        assert not [m for m in c.seen[start:] if get(m, "UserEvent") == "CCDCallWaiting"]
        assert server.pbx.counters.ring_no_answer == 1 and server.pbx.counters.connected == 0
    finally:
        await c.close()
        await server.stop()
    assert not server.pbx.errors


async def test_caller_hangs_up_while_the_agent_rings(pbx: SimulatedAsterisk) -> None:
    server, c = await ring_pbx(
        [{"group": "lazy", "count": 1, "skills": {"support": 1.0}, "no_answer_probability": 1.0}]
    )
    try:
        uid, _ = await offer(c, server, "lazy-1", patience_s=5.0)
        await c.event("DialState", Uniqueid=uid)
        start = len(c.seen)
        await c.event("Hangup", Uniqueid=uid)
        names = c.names_since(start)
        assert names[0] == "HangupRequest" and "DialEnd" in names
        assert get(c.seen[start + names.index("DialEnd")], "DialStatus") == "CANCEL"
        assert server.pbx.counters.abandoned == 1
    finally:
        await c.close()
        await server.stop()


async def test_bridge_action_hangs_up_the_other_party(client: Client, pbx: SimulatedAsterisk) -> None:
    await login_agent(client, "tier1-1")
    uid = pbx.pbx.place_call("support", handle_s=600.0)
    chan = get(await client.event("MusicOnHoldStart", Uniqueid=uid), "Channel") or ""
    leg = pbx.pbx.find("ccd-agent-tier1-1-1")
    assert leg is not None
    reply = await client.action(Action="Bridge", Channel1=chan, Channel2=leg.name, Tone="no")
    assert get(reply, "Message") == "Channels have been bridged"
    await client.event("BridgeEnter", Uniqueid="ccd-agent-tier1-1-1", BridgeNumChannels="2")
    customer = pbx.pbx.find(chan)
    assert customer is not None  # the older linkedid (the agent leg's) wins in a basic bridge
    assert customer.linkedid == leg.linkedid == "ccd-agent-tier1-1-1"
    await client.action(Action="Hangup", Channel=leg.name)
    await client.event("Hangup", Uniqueid=uid)  # quirk: the bridged party goes down too
    assert pbx.pbx.counters.connected == 1


async def test_async_agi_commands_queue_and_break(client: Client, pbx: SimulatedAsterisk) -> None:
    uid = pbx.pbx.place_call("support")
    chan = get(await client.event("MusicOnHoldStart", Uniqueid=uid), "Channel") or ""
    reply = await client.action(Action="AGI", Channel=chan, Command="ANSWER", CommandID="c-1")
    assert get(reply, "Message") == "Added AGI command to queue"  # queued though not in AGI yet
    await client.action(Action="AGI", Channel=chan, Command="EXEC Wait 1", CommandID="c-2")
    await client.action(Action="AGI", Channel=chan, Command="ASYNCAGI BREAK", CommandID="c-3")
    pbx.pbx.start_async_agi(chan)
    start = await client.event("AsyncAGIStart", Uniqueid=uid)
    env = get(start, "Env") or ""
    assert env.startswith("agi_request%3A%20async%0Aagi_channel%3A%20PJSIP%2Ftrunk-") and env.endswith(
        "%0A%0A"
    )
    first = await client.event("AsyncAGIExec", CommandId="c-1")
    assert first[-2:] == [("Result", "200%20result%3D0%0A"), ("CommandId", "c-1")]
    assert "ActionID" not in dict(first)
    await client.event("AsyncAGIExec", CommandId="c-2")
    await client.event("AsyncAGIExec", CommandId="c-3")
    await client.event("AsyncAGIEnd", Uniqueid=uid)
    status = await client.event("VarSet", Uniqueid=uid, Variable="AGISTATUS")
    assert get(status, "Value") == "SUCCESS"
    execs = [m for m in client.seen if get(m, "Event") == "AGIExecStart"]
    assert [get(m, "Command") for m in execs] == ["ANSWER", "EXEC Wait 1", "ASYNCAGI BREAK"]


async def test_drop_and_stall_sessions(client: Client, pbx: SimulatedAsterisk) -> None:
    pbx.stall_sessions(True)
    aid = client.send(Action="Ping")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 0.2)
    pbx.stall_sessions(False)
    assert get(await client.response(aid), "Ping") == "Pong"
    pbx.drop_sessions()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
    again = await Client.connect(pbx.port)
    assert get(await again.login(), "Response") == "Success"
    await again.close()


# --- ConfBridge end_marked, hold slices, and the seeded order variations ------------------------


async def connect_customer(c: Client, server: SimulatedAsterisk, agent: str, **call: Any) -> tuple[str, str]:
    """A caller arrives and ccd puts them into ``agent``'s conference; returns (uid, channel)."""
    uid = server.pbx.place_call("support", **call)
    chan = get(await c.event("UserEvent", UserEvent="CCDCallWaiting", Uniqueid=uid), "Channel") or ""
    start = len(c.seen)
    await c.action(Action="Setvar", Channel=chan, Variable="CCD_AGENT", Value=agent)
    await c.action(Action="Redirect", Channel=chan, Context="ccd-agent-join", Exten="s", Priority="1")
    await c.seen_event(start, "ConfbridgeJoin", Uniqueid=uid)
    return uid, chan


async def test_end_marked_puts_the_customer_back_on_hold_when_the_agent_leg_drops(
    client: Client, pbx: SimulatedAsterisk
) -> None:
    # ccd's heartbeat is not under test: kept fresh, or a slow machine (30 s of silence
    # is 0.6 s at SPEED) sends the held customer to the fallback before ccd takes them.
    client.send(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(pbx.pbx.now()) + 10**6))
    join = await login_agent(client, "tier1-1")
    leg = get(join, "Channel") or ""
    uid, chan = await connect_customer(client, pbx, "tier1-1", handle_s=600.0)
    listed = await client.action(Action="ConfbridgeList", Conference="ccd-agent-tier1-1")
    assert get(listed, "Response") == "Success"
    item = await client.event("ConfbridgeList", Uniqueid=uid)
    assert (get(item, "WaitMarked"), get(item, "EndMarked"), get(item, "MarkedUser")) == ("Yes", "Yes", "No")
    await asyncio.sleep(10 / SPEED)  # they talk for about 10 s
    start = len(client.seen)
    await client.action(Action="Hangup", Channel=leg, Cause="16")
    moh = await client.seen_event(start, "MusicOnHoldStart", Uniqueid=uid)
    assert (get(moh, "Context"), get(moh, "Exten")) == ("ccd-hold", "wait")
    result = await client.seen_event(start, "VarSet", Uniqueid=uid, Variable="CONFBRIDGE_RESULT")
    assert get(result, "Value") == "ENDMARKED"
    leave = await client.seen_event(start, "ConfbridgeLeave", Uniqueid=uid)
    assert get(leave, "Conference") == "ccd-agent-tier1-1"
    await client.seen_event(start, "BridgeLeave", Uniqueid=uid)
    await client.seen_event(start, "ConfbridgeEnd", Conference="ccd-agent-tier1-1")
    await client.seen_event(start, "Hangup", Uniqueid="ccd-agent-tier1-1-1")
    customer = [m for m in client.seen[start:] if get(m, "Uniqueid") == uid]
    names = [get(m, "Event") for m in customer]
    # KICKED/ENDMARKED is set before the user leaves; the dialplan goes on after both leave events.
    assert names.index("VarSet") < min(names.index("ConfbridgeLeave"), names.index("BridgeLeave"))
    assert max(names.index("ConfbridgeLeave"), names.index("BridgeLeave")) < names.index("MusicOnHoldStart")
    assert "Hangup" not in names and pbx.pbx.find(chan) is not None
    # No new CCDCallWaiting: ccd already knows the call (it requeues it on the leg's Hangup).
    assert not [m for m in client.seen[start:] if get(m, "UserEvent") == "CCDCallWaiting"]
    call = pbx.pbx.calls[uid]
    assert call.talking_since is None and call.outcome is None
    talked = pbx.pbx.counters.agent_talk_s["tier1-1"]
    assert talked == pytest.approx(10.0, abs=3.0)
    assert call.remaining_s == pytest.approx(600.0 - talked)
    # ccd routes the call again: the conversation resumes with what was left of it.
    await login_agent(client, "tier1-2")
    start = len(client.seen)
    await client.action(Action="Setvar", Channel=chan, Variable="CCD_AGENT", Value="tier1-2")
    await client.action(Action="Redirect", Channel=chan, Context="ccd-agent-join", Exten="s", Priority="1")
    await client.seen_event(start, "ConfbridgeJoin", Uniqueid=uid, Conference="ccd-agent-tier1-2")
    assert call.talking_since is not None and call.agents == ["tier1-1", "tier1-2"]
    assert pbx.pbx.counters.connected == 1  # one call, connected once


async def test_a_kicked_customer_goes_back_on_hold_and_is_not_hung_up(
    client: Client, pbx: SimulatedAsterisk
) -> None:
    client.send(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(pbx.pbx.now()) + 10**6))  # as above
    await login_agent(client, "tier1-1")
    uid, chan = await connect_customer(client, pbx, "tier1-1", handle_s=600.0)
    start = len(client.seen)
    reply = await client.action(Action="ConfbridgeKick", Conference="ccd-agent-tier1-1", Channel=chan)
    assert get(reply, "Message") == "User kicked"
    moh = await client.seen_event(start, "MusicOnHoldStart", Uniqueid=uid)
    assert get(moh, "Exten") == "wait"
    result = await client.seen_event(start, "VarSet", Uniqueid=uid, Variable="CONFBRIDGE_RESULT")
    assert get(result, "Value") == "KICKED"
    assert pbx.pbx.find(chan) is not None and pbx.pbx.conferences  # the agent stays in the room


async def test_callers_on_hold_reach_the_fallback_soon_after_ccd_stops_beating(
    pbx: SimulatedAsterisk,
) -> None:
    c = await Client.connect(pbx.port)
    await c.login()
    beat = pbx.pbx.now()
    await c.action(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(beat)))
    uid = pbx.pbx.place_call("support")  # holds with CCD_MAX_HOLD 300; then ccd "crashes"
    await c.event("UserEvent", UserEvent="CCDCallWaiting", Uniqueid=uid)
    start = len(c.seen)
    await c.event("UserEvent", UserEvent="CCDFallback", Uniqueid=uid, timeout=60 / SPEED + 2)
    waited = pbx.pbx.now() - beat
    assert 30 < waited <= 42, waited  # stale after 30 s, noticed at the end of a 10 s slice
    names = c.names_since(start)
    # Each slice ends its music and the next starts it again.
    assert names.count("MusicOnHoldStop") >= 3 and names.count("MusicOnHoldStart") >= 2
    assert names[-2:] == ["MusicOnHoldStop", "UserEvent"]
    assert pbx.pbx.calls[uid].outcome == "fallback"
    await c.close()


async def test_total_hold_is_capped_at_ccd_max_hold_across_take_backs(
    client: Client, pbx: SimulatedAsterisk
) -> None:
    client.send(Action="Setvar", Variable="CCD_HEARTBEAT", Value=str(int(pbx.pbx.now()) + 10**6))
    arrived = pbx.pbx.now()
    uid = pbx.pbx.place_call("support")
    chan = get(await client.event("UserEvent", UserEvent="CCDCallWaiting", Uniqueid=uid), "Channel") or ""
    await client.action(Action="Setvar", Channel=chan, Variable="CCD_MAX_HOLD", Value="25")
    await asyncio.sleep(12 / SPEED)
    # A take-back in the middle (ccd-hold,wait) keeps the wait's start: 25 s in all, not 12 + 25.
    await client.action(Action="Redirect", Channel=chan, Context="ccd-hold", Exten="wait", Priority="1")
    await client.event("UserEvent", UserEvent="CCDFallback", Uniqueid=uid, timeout=60 / SPEED + 2)
    held = pbx.pbx.now() - arrived
    assert 24 <= held <= 28, held
    assert pbx.pbx.find(chan) is not None and pbx.pbx.calls[uid].outcome == "fallback"


# Direct Pbx runs (no TCP), to look at the seeded order variations across many seeds.

FAST = 2000.0


async def record(seed: int, script: Callable[[Pbx], Awaitable[None]]) -> list[tuple[str, dict[str, str]]]:
    """Run ``script(pbx)`` on a fresh PBX with ``seed``; returns (event, headers) in order."""
    pbx = Pbx(speed=FAST, seed=seed)
    out: list[tuple[str, dict[str, str]]] = []
    pbx.listeners.append(lambda e: out.append((e.name, dict(e.headers))))
    pbx.globals["CCD_HEARTBEAT"] = str(int(pbx.now()) + 10**6)
    pbx.add_agent("tier1-1")
    pbx.add_agent("slow-1", answer_delay_s=2.0)
    pbx.add_agent("lazy-1", never_answers=True)

    try:
        await script(pbx)
    finally:
        pbx.close()
    assert not pbx.errors
    return out


def act(pbx: Pbx, **headers: str) -> Any:
    return pbx.handle(ActionRequest(headers.items()))


async def vsleep(seconds: float) -> None:
    await asyncio.sleep(seconds / FAST + 0.005)


def login(pbx: Pbx, agent: str) -> None:
    act(
        pbx,
        Action="Originate",
        Channel=f"PJSIP/{agent}",
        Context="ccd-agent-session",
        Exten="s",
        Priority="1",
        Async="true",
        ChannelId=f"ccd-agent-{agent}-1",
        Variable=f"CCD_AGENT={agent}",
    )


async def conference_call(pbx: Pbx) -> None:
    login(pbx, "tier1-1")
    login(pbx, "slow-1")
    await vsleep(3)
    uid = pbx.place_call("support", handle_s=5.0)
    ch = pbx.find(uid)
    assert ch is not None
    ch.variables["CCD_AGENT"] = "tier1-1"
    act(pbx, Action="Redirect", Channel=ch.name, Context="ccd-agent-join", Exten="s", Priority="1")
    await vsleep(7)  # the agent side ends the call after 5 s


def order_of(events: list[tuple[str, dict[str, str]]], first: str, second: str, uid: str) -> str:
    names = [n for n, h in events if h.get("Uniqueid") == uid and n in (first, second)]
    return ",".join(names[:2])


async def test_originate_response_floats_and_the_seed_decides() -> None:
    positions: set[str] = set()
    for seed in range(1, 41):
        events = await record(seed, conference_call)
        for leg in ("ccd-agent-tier1-1-1", "ccd-agent-slow-1-1"):
            mine = [n for n, h in events if h.get("Uniqueid") == leg or h.get("DestUniqueid") == leg]
            at = mine.index("OriginateResponse")
            rest = mine[:at] + mine[at + 1 :]
            where = rest[at] if at < len(rest) else "end"
            positions.add(f"{leg.split('-')[2]}:before {where}")
            assert sum(n == "OriginateResponse" for n in mine) == 1
    # tier1-1 answers at once: the response can even overtake Newchannel; slow-1 rings for 2 s.
    assert "tier1:before Newchannel" in positions
    assert "slow:before Newchannel" not in positions
    assert {"slow:before DialEnd", "slow:before Newstate"} & positions  # between DialBegin and DialEnd
    assert {"tier1:before end", "slow:before end"} & positions  # after ConfbridgeJoin
    assert {"tier1:before ConfbridgeJoin", "slow:before ConfbridgeJoin"} & positions
    # Deterministic for a seed (uniqueids aside: they carry the PBX clock's seconds).
    runs = [
        [(n, h.get("Channel"), h.get("Response")) for n, h in await record(7, conference_call)] for _ in "ab"
    ]
    assert runs[0] == runs[1]


async def test_conference_join_and_leave_orders_vary_with_the_seed() -> None:
    joins, leaves = set(), set()
    for seed in range(1, 21):
        events = await record(seed, conference_call)
        uid = next(
            h["Uniqueid"] for n, h in events if n == "Newchannel" and h["Channel"].startswith("PJSIP/trunk")
        )
        joins.add(order_of(events, "BridgeEnter", "ConfbridgeJoin", uid))
        leaves.add(order_of(events, "BridgeLeave", "ConfbridgeLeave", uid))
        join = next(h for n, h in events if n == "ConfbridgeJoin" and h["Uniqueid"] == uid)
        leave = next(h for n, h in events if n == "ConfbridgeLeave" and h["Uniqueid"] == uid)
        assert (join["BridgeNumChannels"], leave["BridgeNumChannels"]) == ("3", "3")
    assert joins == {"BridgeEnter,ConfbridgeJoin", "ConfbridgeJoin,BridgeEnter"}
    assert leaves == {"BridgeLeave,ConfbridgeLeave", "ConfbridgeLeave,BridgeLeave"}


async def ring_then_abandon(pbx: Pbx) -> None:
    uid = pbx.place_call("support", patience_s=5.0)
    ch = pbx.find(uid)
    assert ch is not None
    ch.variables.update(CCD_AGENT="lazy-1", CCD_AGENT_DEVICE="PJSIP/lazy-1", CCD_RING_TIMEOUT="30")
    act(pbx, Action="Redirect", Channel=ch.name, Context="ccd-ring", Exten="s", Priority="1")
    await vsleep(7)


async def test_an_abandon_while_the_agent_rings_gives_two_dial_end_cancel_and_hangups_in_any_order() -> None:
    orders = set()
    for seed in range(1, 21):
        events = await record(seed, ring_then_abandon)
        ends = [h for n, h in events if n == "DialEnd"]
        assert len(ends) == 2 and ends[0] == ends[1] and ends[0]["DialStatus"] == "CANCEL"
        hangups = [h["Channel"].split("-")[0] for n, h in events if n == "Hangup"]
        assert sorted(hangups) == ["PJSIP/lazy", "PJSIP/trunk"]
        orders.add(",".join(hangups))
    assert orders == {"PJSIP/lazy,PJSIP/trunk", "PJSIP/trunk,PJSIP/lazy"}
