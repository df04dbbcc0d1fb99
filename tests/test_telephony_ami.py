"""AmiClient over real TCP: each panoramisk 1.4 pitfall, shown to be contained.

Two servers: ``FakeAmi`` below speaks the exact frames a test needs (including the odd
orderings a real Asterisk 22 produces: an OriginateResponse broadcast to every session,
or overtaking its own ack), and the simulated Asterisk of ``sim.ami_server`` when it is
available, for the same client against a stateful PBX.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from panoramisk import utils as pano_utils

from acd.events import AgentLoggedIn, AgentLoggedOut, CallAnswered, CallArrived, CallEnded, ConnectToAgent
from telephony.ami import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiConfig,
    AmiDisconnected,
    AmiError,
    AmiTimeout,
)
from telephony.calls import CallTracker

SECRET = "s3cret-Zq9-never-in-logs"
Frame = dict[str, str | list[str]]


def encode(frame: Frame) -> bytes:
    lines = []
    for k, v in frame.items():
        for item in v if isinstance(v, list) else [v]:
            lines.append(f"{k}: {item}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class FakeAmi:
    """A loopback AMI server that answers exactly the frames the tests need."""

    def __init__(self, *, secret: str = SECRET, port: int = 0) -> None:
        self.secret = secret
        self.port = port
        self.server: asyncio.Server | None = None
        self.sessions: list[asyncio.StreamWriter] = []
        self.received: list[Frame] = []
        self.logins = 0
        self.stalled = False
        self.originate_first = False  # send the OriginateResponse before the ack
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for w in self.sessions:
            w.transport.abort()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def drop_sessions(self) -> None:
        for w in self.sessions:
            w.transport.abort()

    def broadcast(self, frame: Frame) -> None:
        for w in self.sessions:
            if not w.is_closing():
                w.write(encode(frame))

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            fn()

        t = asyncio.create_task(run())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.sessions.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        authed = False
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                if self.stalled:
                    continue  # read and ignore: a hung Asterisk
                frame: Frame = {}
                for line in raw.decode().split("\r\n"):
                    k, sep, v = line.partition(": ")
                    if sep:
                        old = frame.get(k)
                        frame[k] = v if old is None else [*(old if isinstance(old, list) else [old]), v]
                self.received.append(frame)
                action = str(frame.get("Action", "")).lower()
                aid = str(frame.get("ActionID", ""))
                if action == "login":
                    self.logins += 1
                    if frame.get("Secret") != self.secret:
                        await asyncio.sleep(0.05)
                        writer.write(
                            encode({"Response": "Error", "ActionID": aid, "Message": "Authentication failed"})
                        )
                        await writer.drain()
                        break
                    authed = True
                    writer.write(
                        encode({"Response": "Success", "ActionID": aid, "Message": "Authentication accepted"})
                    )
                    writer.write(
                        encode({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"})
                    )
                elif not authed:
                    writer.write(
                        encode({"Response": "Error", "ActionID": aid, "Message": "Permission denied"})
                    )
                else:
                    self._answer(action, aid, frame, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.sessions.remove(writer)
            writer.transport.abort()
            self._tasks.discard(task)

    def _answer(self, action: str, aid: str, frame: Frame, writer: asyncio.StreamWriter) -> None:
        def reply(**headers: str | list[str]) -> None:
            writer.write(encode({"Response": "Success", "ActionID": aid, **headers}))

        if action == "ping":
            reply(Ping="Pong", Timestamp="1795422550.713367")
        elif action == "originate":
            uid = str(frame.get("ChannelId", "<unknown>"))
            response: Frame = {
                "Event": "OriginateResponse",
                "Privilege": "call,all",
                "ActionID": aid,
                "Response": "Success",
                "Channel": "PJSIP/1001-00000001",
                "Context": "ccd-agent-session",
                "Exten": "s",
                "Reason": "4",
                "Uniqueid": uid,
                "CallerIDNum": "1001",
                "CallerIDName": "ccd",
            }
            if self.originate_first:
                writer.write(encode(response))
                reply(Message="Originate successfully queued")
            else:
                reply(Message="Originate successfully queued")
                # Another client's originate: broadcast to every session too.
                foreign = {**response, "ActionID": "other-app-17", "Uniqueid": "1795422999.3"}
                self.later(0.02, lambda: self.broadcast(foreign))
                self.later(0.05, lambda: self.broadcast(response))
        elif action == "agi":
            reply(Message="Added AGI command to queue")
            exec_event: Frame = {
                "Event": "AsyncAGIExec",
                "Privilege": "agi,all",
                "Channel": str(frame.get("Channel", "")),
                "Uniqueid": "1795422489.34",
                "Result": "200%20result%3D0%0A",
                "CommandId": str(frame.get("CommandID", "")),
            }
            self.later(0.05, lambda: self.broadcast(exec_event))
        elif action == "coreshowchannels":
            reply(EventList="start", Message="Channels will follow")
            for i in range(3):
                writer.write(
                    encode(
                        {
                            "Event": "CoreShowChannel",
                            "ActionID": aid,
                            "Channel": f"PJSIP/t-{i}",
                            "Uniqueid": f"1795422453.{i}",
                            "Context": "ccd-hold",
                            "AccountCode": "",
                        }
                    )
                )
            writer.write(
                encode(
                    {
                        "Event": "CoreShowChannelsComplete",
                        "ActionID": aid,
                        "EventList": "Complete",
                        "ListItems": "3",
                    }
                )
            )
        elif action == "status":
            writer.write(encode({"Response": "Error", "ActionID": aid, "Message": "No such channel"}))
        elif action == "redirect":
            writer.write(
                encode(
                    {
                        "Response": "Error",
                        "ActionID": aid,
                        "Message": f"Channel does not exist: {frame.get('Channel')}",
                    }
                )
            )
        elif action == "queueadd":
            reply(Message="Added interface to queue")  # 1.4 mistakes this for a list start
        elif action == "emit":
            for n in range(int(str(frame.get("Count", "1")))):
                writer.write(
                    encode({"Event": "UserEvent", "Privilege": "user,all", "UserEvent": "Test", "N": str(n)})
                )
            reply(Message="Event Sent")
        elif action == "blackhole":
            pass  # never answered
        else:
            writer.write(
                encode(
                    {
                        "Response": "Error",
                        "ActionID": aid,
                        "Message": f"Invalid/unknown command: {frame.get('Action')}.",
                    }
                )
            )


class Recorder:
    def __init__(self, raising: bool = False) -> None:
        self.events: list[Frame] = []
        self.connected = 0
        self.disconnected = 0
        self.raising = raising

    def on_event(self, event: Frame) -> None:
        self.events.append(event)
        if self.raising:
            raise RuntimeError("handler bug")

    async def on_connected(self) -> None:
        self.connected += 1

    def on_disconnected(self) -> None:
        self.disconnected += 1

    def named(self, name: str) -> list[Frame]:
        return [e for e in self.events if e.get("Event") == name]


async def until(what: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not what():
            await asyncio.sleep(0.01)


def client_for(port: int, rec: Recorder, *, secret: str = SECRET, **kw: Any) -> AmiClient:
    opts: dict[str, Any] = {"ping_interval_s": 5.0, "action_timeout_s": 1.0, "reconnect_min_s": 0.02}
    opts.update(kw)
    return AmiClient(
        host="127.0.0.1",
        port=port,
        username="ccd",
        secret=secret,
        on_event=rec.on_event,
        on_connected=rec.on_connected,
        on_disconnected=rec.on_disconnected,
        **opts,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    srv = FakeAmi()
    await srv.start()
    yield srv
    await srv.stop()


@contextlib.asynccontextmanager
async def running(client: AmiClient) -> AsyncIterator[AmiClient]:
    try:
        await client.start()
        yield client
    finally:
        await client.close()


# --- basics -------------------------------------------------------------------------------


async def test_login_ping_and_own_action_ids(fake: FakeAmi) -> None:
    rec = Recorder()
    async with running(client_for(fake.port, rec, action_id_prefix="ccd-t1")) as ami:
        assert ami.connected and rec.connected == 1
        pong = await ami.send({"Action": "Ping", "ActionID": "caller-chosen"})
        assert pong["Ping"] == "Pong"
        assert pong["ActionID"].startswith("ccd-t1-")
        ids = [f["ActionID"] for f in fake.received]
        assert all(str(i).startswith("ccd-t1-") for i in ids)
        assert len(set(map(str, ids))) == len(ids)
        await until(lambda: bool(rec.named("FullyBooted")))
    assert not ami.connected


async def test_not_connected_fails_fast() -> None:
    ami = client_for(1, Recorder())
    with pytest.raises(AmiDisconnected):
        await ami.send({"Action": "Ping"})


async def test_action_error_and_list_actions(fake: FakeAmi) -> None:
    async with running(client_for(fake.port, Recorder())) as ami:
        with pytest.raises(AmiActionError, match="Channel does not exist: PJSIP/gone") as err:
            await ami.send({"Action": "Redirect", "Channel": "PJSIP/gone", "Context": "ccd-hold"})
        assert err.value.message == "Channel does not exist: PJSIP/gone"
        items = await ami.send_list({"Action": "CoreShowChannels"})
        assert [i["Uniqueid"] for i in items] == ["1795422453.0", "1795422453.1", "1795422453.2"]
        assert all(i["Event"] == "CoreShowChannel" for i in items)
        # A list action answered with an error completes at once (1.4 with as_list=True would hang).
        with pytest.raises(AmiActionError, match="No such channel"):
            await ami.send_list({"Action": "Status", "Channel": "PJSIP/gone"})
        # QueueAdd's ack looks like a list start to 1.4 and would never complete.
        ack = await ami.send({"Action": "QueueAdd", "Queue": "q", "Interface": "PJSIP/1"})
        assert ack["Message"] == "Added interface to queue"


async def test_timeout_then_the_connection_still_works(fake: FakeAmi) -> None:
    async with running(client_for(fake.port, Recorder(), action_timeout_s=0.2)) as ami:
        with pytest.raises(AmiTimeout):
            await ami.send({"Action": "Blackhole"})
        assert (await ami.send({"Action": "Ping"}))["Ping"] == "Pong"
        assert ami._manager is not None and ami._protocol is not None
        assert ami._protocol.responses == {}  # nothing left pending inside panoramisk


# --- pitfall: events swallowed by a pending ActionID; broadcast OriginateResponse ----------


async def test_originate_response_reaches_on_event_and_foreign_ones_are_dropped(fake: FakeAmi) -> None:
    rec = Recorder()
    async with running(client_for(fake.port, rec)) as ami:
        mine = f"{ami.action_id_prefix}-login-1001-1"
        headers = {
            "Action": "Originate",
            "Channel": "PJSIP/1001",
            "ChannelId": "ccd-agent-1001-1",
            "ActionID": mine,
        }
        action_id = await ami.originate(headers)
        assert action_id == mine  # a prefixed caller ActionID is kept for correlation
        sent = fake.received[-1]
        assert sent["Async"] == "true"
        await until(lambda: bool(rec.named("OriginateResponse")))
        await asyncio.sleep(0.05)
        (resp,) = rec.named("OriginateResponse")
        assert resp["ActionID"] == mine and resp["Uniqueid"] == "ccd-agent-1001-1"
        assert ami.foreign_dropped == 1
        # Async is forced even when the caller asked otherwise, and a foreign ActionID is replaced.
        other = await ami.originate({"Channel": "PJSIP/1002", "Async": "false", "ActionID": "x-1"})
        assert other.startswith(f"{ami.action_id_prefix}-") and other != "x-1"
        assert fake.received[-1]["Async"] == "true"
        await until(lambda: len(rec.named("OriginateResponse")) == 2)


async def test_originate_response_overtaking_its_ack(fake: FakeAmi) -> None:
    rec = Recorder()
    fake.originate_first = True
    async with running(client_for(fake.port, rec)) as ami:
        action_id = await ami.originate({"Channel": "PJSIP/1001", "ChannelId": "ccd-agent-1001-2"})
        assert [e["ActionID"] for e in rec.named("OriginateResponse")] == [action_id]
        assert (await ami.send({"Action": "Ping"}))["Ping"] == "Pong"


async def test_agi_returns_after_the_ack(fake: FakeAmi) -> None:
    rec = Recorder()
    async with running(client_for(fake.port, rec)) as ami:
        async with asyncio.timeout(1.0):  # 1.4's send_agi_command never returns on Asterisk 12+
            command_id = await ami.agi("PJSIP/t-1", "ANSWER")
        await until(lambda: bool(rec.named("AsyncAGIExec")))
        assert rec.named("AsyncAGIExec")[0]["CommandId"] == command_id
        sent = fake.received[-1]
        assert sent["Action"] == "AGI" and sent["CommandID"] == command_id


# --- pitfall: a raising sync callback drops the connection ---------------------------------


async def test_raising_handler_does_not_drop_the_connection(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(raising=True)
    async with running(client_for(fake.port, rec)) as ami:
        await ami.send({"Action": "Emit", "Count": "5"})
        await until(lambda: len(rec.named("UserEvent")) == 5)
        assert ami.handler_errors >= 5
        # Same session, still alive, and an async Originate still completes.
        assert (await ami.send({"Action": "Ping"}))["Ping"] == "Pong"
        await ami.originate({"Channel": "PJSIP/1001"})
        assert ami.reconnects == 0 and rec.connected == 1 and rec.disconnected == 0
    assert "handler failed" in caplog.text


# --- pitfall: Ping never checks Pong; reconnect; pending actions hang ----------------------


async def test_stalled_server_triggers_the_watchdog_and_a_resync(fake: FakeAmi) -> None:
    rec = Recorder()
    async with running(client_for(fake.port, rec, ping_interval_s=0.1, ping_timeout_s=0.2)) as ami:
        fake.stalled = True
        await until(lambda: rec.disconnected == 1)
        fake.stalled = False
        await until(lambda: rec.connected == 2 and ami.connected)
        assert ami.reconnects == 1
        assert (await ami.send({"Action": "Ping"}))["Ping"] == "Pong"


async def test_drop_fails_pending_actions_and_reconnects(fake: FakeAmi) -> None:
    rec = Recorder()
    async with running(client_for(fake.port, rec, action_timeout_s=5.0)) as ami:
        pending = asyncio.create_task(ami.send({"Action": "Blackhole"}))
        await until(lambda: any(f.get("Action") == "Blackhole" for f in fake.received))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fake.drop_sessions()
        with pytest.raises(AmiDisconnected):
            await pending
        assert loop.time() - t0 < 1.0  # failed at once, not after the 5 s timeout
        await until(lambda: rec.connected == 2 and ami.connected)
        assert ami.reconnects == 1 and rec.disconnected == 1
        # Not re-sent after the new login (1.4 resends unanswered actions on FullyBooted).
        await asyncio.sleep(0.1)
        assert sum(1 for f in fake.received if f.get("Action") == "Blackhole") == 1


async def test_start_waits_through_refused_connections() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = Recorder()
    ami = client_for(port, rec, reconnect_min_s=0.02, reconnect_max_s=0.1)
    starting = asyncio.create_task(ami.start())
    await asyncio.sleep(0.3)
    assert not starting.done() and "connect/login failed" in ami.last_error
    srv = FakeAmi(port=port)
    await srv.start()
    try:
        async with asyncio.timeout(2.0):
            await starting
        assert ami.connected and rec.connected == 1
    finally:
        await ami.close()
        await srv.stop()


async def test_close_while_connecting_and_pending() -> None:
    ami = client_for(1, Recorder())
    await ami.start(wait=False)
    await asyncio.sleep(0.05)
    await ami.close()
    assert not ami.connected


# --- credentials ------------------------------------------------------------------------------


async def test_bad_credentials_raise_and_are_not_retried(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    ami = client_for(fake.port, rec, secret="wrong-" + SECRET)
    try:
        with pytest.raises(AmiAuthError) as err:
            await ami.start()
        await asyncio.sleep(0.3)
        assert fake.logins == 1 and ami.auth_failed and not ami.connected
        assert rec.connected == 0
    finally:
        await ami.close()
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)
    for record in caplog.records:
        assert SECRET not in record.getMessage()


async def test_the_secret_appears_in_no_log_record_or_repr(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    ami = client_for(fake.port, rec, ping_interval_s=0.1, ping_timeout_s=0.2)
    async with running(ami):
        await ami.send({"Action": "Ping"})
        with contextlib.suppress(AmiError):
            await ami.send({"Action": "Nonsense"})
        fake.drop_sessions()
        await until(lambda: rec.connected == 2)
        assert SECRET not in repr(ami)
        # panoramisk's own logger gets its records redacted even when it formats an action.
        logging.getLogger("ccd.telephony.ami.panoramisk").warning("Fail to send %s", f"Secret: {SECRET}")
    assert caplog.records, "expected some logging"
    for record in caplog.records:
        assert SECRET not in record.getMessage()
    cfg = AmiConfig(secret=SECRET)
    assert SECRET not in repr(cfg)


def test_config_from_env() -> None:
    cfg = AmiConfig.from_env({"CCD_AMI_HOST": "10.0.0.5", "CCD_AMI_PORT": "5039", "CCD_AMI_SECRET": "x"})
    assert (cfg.host, cfg.port, cfg.username, cfg.secret) == ("10.0.0.5", 5039, "ccd", "x")
    assert AmiConfig.from_env({}) == AmiConfig()
    with pytest.raises(ValueError, match="PORT"):
        AmiConfig.from_env({"CCD_AMI_PORT": "abc"})


def test_panoramisk_testing_is_never_imported() -> None:
    assert "panoramisk.testing" not in sys.modules
    assert pano_utils.EOL == "\r\n"


async def test_start_restores_crlf_if_something_switched_it(
    fake: FakeAmi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pano_utils, "EOL", "\n")  # what importing panoramisk.testing does
    async with running(client_for(fake.port, Recorder())) as ami:
        assert pano_utils.EOL == "\r\n"
        assert (await ami.send({"Action": "Ping"}))["Ping"] == "Pong"


# --- against the simulated Asterisk (a stateful PBX running the contract's dialplan) --------

SIM_SECRET = "sim-" + SECRET


@pytest.fixture
async def sim() -> AsyncIterator[Any]:
    ami_server = pytest.importorskip("sim.ami_server")
    srv = ami_server.SimulatedAsterisk(
        None, speed=20.0, username="ccd", secret=SIM_SECRET, auth_delay_s=0.01, workload=False
    )
    await srv.start()
    yield srv
    await srv.stop()


def sim_client(srv: Any, rec: Recorder, **kw: Any) -> AmiClient:
    return client_for(srv.port, rec, secret=SIM_SECRET, **kw)


async def test_sim_a_whole_call_through_the_tracker(sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tracker = CallTracker()
    tracker.set_agent("1001", device="PJSIP/1001")
    domain: list[Any] = []
    resyncs: list[int] = []
    ami: AmiClient

    def on_event(event: Frame) -> None:
        domain.extend(tracker.on_ami(event, 0.0))

    async def on_connected() -> None:
        resyncs.append(len(await ami.send_list({"Action": "CoreShowChannels"})))

    ami = AmiClient(
        host="127.0.0.1",
        port=sim.port,
        username="ccd",
        secret=SIM_SECRET,
        on_event=on_event,
        on_connected=on_connected,
    )
    sim.pbx.add_agent("1001")
    async with running(ami):
        assert resyncs == [0]
        await ami.send(tracker.heartbeat_action(sim.pbx.now()))
        login = tracker.login_action("1001", 1)
        await ami.originate(login)
        await until(lambda: AgentLoggedIn(0.0, "1001") in domain)
        call_id = sim.pbx.place_call("sales", caller="5551230101", patience_s=None, handle_s=2.0)
        await until(lambda: any(isinstance(e, CallArrived) for e in domain))
        for action in tracker.actions_for(ConnectToAgent(call_id, "1001", "sales")):
            await ami.send(action)
        await until(lambda: CallAnswered(0.0, call_id, "1001") in domain)
        await until(lambda: any(isinstance(e, CallEnded) for e in domain))
        items = await ami.send_list({"Action": "CoreShowChannels"})
        assert [i["Uniqueid"] for i in items] == ["ccd-agent-1001-1"]
        assert tracker.resync(items, 1.0) == []
        logout = tracker.logout_action("1001")
        assert logout is not None
        await ami.send(logout)
        await until(lambda: AgentLoggedOut(0.0, "1001") in domain)
    assert tracker.malformed == 0
    for record in caplog.records:
        if record.name.startswith(("ccd", "panoramisk", "asyncio")):
            assert SIM_SECRET not in record.getMessage()


async def test_sim_agi_returns_after_the_ack(sim: Any) -> None:
    rec = Recorder()
    async with running(sim_client(sim, rec)) as ami:
        await ami.send(CallTracker().heartbeat_action(sim.pbx.now()))  # else callers go to the fallback
        call_id = sim.pbx.place_call("sales", patience_s=None)
        await until(lambda: any(e.get("UserEvent") == "CCDCallWaiting" for e in rec.events))
        channel = next(e["Channel"] for e in rec.events if e.get("Uniqueid") == call_id and "Channel" in e)
        async with asyncio.timeout(2.0):
            command_id = await ami.agi(str(channel), "ANSWER")
        assert command_id.startswith(ami.action_id_prefix)
        with pytest.raises(AmiActionError, match="does not exist"):
            await ami.agi("PJSIP/nobody-00000099", "ANSWER")


async def test_sim_originate_response_is_broadcast_and_filtered(sim: Any) -> None:
    mine, theirs = Recorder(), Recorder()
    sim.pbx.add_agent("1001")
    async with running(sim_client(sim, mine)) as a, running(sim_client(sim, theirs)) as b:
        assert a.action_id_prefix != b.action_id_prefix
        action_id = await a.originate(
            {"Channel": "PJSIP/1001", "Context": "ccd-agent-session", "Exten": "s", "Priority": "1"}
        )
        await until(lambda: bool(mine.named("OriginateResponse")))
        assert mine.named("OriginateResponse")[0]["ActionID"] == action_id
        await until(lambda: b.foreign_dropped == 1)
        assert theirs.named("OriginateResponse") == []


async def test_sim_raising_handler_keeps_the_session(sim: Any) -> None:
    rec = Recorder(raising=True)
    async with running(sim_client(sim, rec)) as ami:
        sim.pbx.place_call("sales", patience_s=None)
        await until(lambda: ami.handler_errors >= 2)
        assert (await ami.send({"Action": "Ping"}))["Ping"] == "Pong"
        assert ami.reconnects == 0 and rec.disconnected == 0


async def test_sim_stall_watchdog_reconnect_and_resync(sim: Any) -> None:
    rec = Recorder()
    async with running(
        sim_client(sim, rec, ping_interval_s=0.1, ping_timeout_s=0.2, action_timeout_s=0.3)
    ) as ami:
        sim.stall_sessions(True)
        pending = asyncio.create_task(ami.send({"Action": "Ping"}))
        await until(lambda: rec.disconnected == 1)
        with pytest.raises((AmiDisconnected, AmiTimeout)):
            await pending
        await asyncio.sleep(0.5)  # new sessions hang too: logins time out and back off
        assert not ami.connected and rec.connected == 1
        sim.stall_sessions(False)
        await until(lambda: rec.connected == 2 and ami.connected)
        assert ami.reconnects == 1


async def test_sim_drop_sessions_fails_pending_and_reconnects(sim: Any) -> None:
    rec = Recorder()
    async with running(sim_client(sim, rec, action_timeout_s=5.0)) as ami:
        sim.stall_sessions(True)  # so that an action is surely pending when the link drops
        pending = asyncio.create_task(ami.send({"Action": "CoreShowChannels"}))
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sim.drop_sessions()
        with pytest.raises(AmiDisconnected):
            await pending
        assert loop.time() - t0 < 1.0
        sim.stall_sessions(False)
        await until(lambda: rec.connected == 2 and ami.connected)
        assert ami.reconnects == 1 and rec.disconnected == 1
        assert (await ami.send({"Action": "Ping"}))["Ping"] == "Pong"


async def test_sim_bad_credentials(sim: Any) -> None:
    ami = client_for(sim.port, Recorder(), secret="not-it")
    try:
        with pytest.raises(AmiAuthError, match="refused: Authentication failed"):
            await ami.start()
        await asyncio.sleep(0.2)
        assert ami.auth_failed and not sim.sessions  # gave up: no retry loop
    finally:
        await ami.close()


def test_construction_needs_no_event_loop() -> None:
    """Built anywhere (config time); the panoramisk Manager only exists inside start()."""
    ami = client_for(5038, Recorder())
    assert ami._manager is None and not ami.connected
    assert SECRET not in repr(ami)
    with pytest.raises(ValueError):
        client_for(5038, Recorder(), reconnect_min_s=5.0, reconnect_max_s=1.0)
