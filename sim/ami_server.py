"""The simulated Asterisk's AMI: a TCP server that speaks the manager protocol of Asterisk 22.

Layers, as in h11: :class:`FrameParser` turns bytes into actions and cannot crash (no
IO; any split of the stream gives the same actions); :func:`encode` turns headers into
bytes; :class:`_Session` is the thin asyncio adapter for one connection (banner, login,
serial action processing, event delivery); :class:`SimulatedAsterisk` owns the
listening socket, the sessions and the :class:`sim.pbx.Pbx` behind them.

Wire behaviour kept from the real manager.c (Asterisk 22.10, AMI 11.0.0):

* banner ``Asterisk Call Manager/11.0.0`` on one line; CRLF or bare LF accepted, CRLF
  sent, a blank line ends every message; header names case-insensitive, the first
  occurrence wins (``Variable:`` accumulates); a frame without ``Action`` gets
  ``Missing action in request``, an unknown one ``Invalid/unknown command: X. Use Action:
  ListCommands to show available commands.``, and the session stays up;
* before Login everything but Login/Logoff/Challenge is ``Permission denied``; a bad
  login waits (1 s by default), answers ``Authentication failed`` and closes; Login's
  ``Events:`` and the ``Events`` action set the session's class mask, and FullyBooted
  follows a login whose mask has ``system``;
* actions of a session run one at a time and the events an action causes are written
  after its response; list actions answer ``EventList: start``, then items without
  Privilege, then ``…Complete`` with ``EventList: Complete`` and ``ListItems``;
* every event goes to every logged-in session whose mask has its class, so an
  ``OriginateResponse`` reaches all sessions with ``call`` (not only the originator).

Test hooks: :meth:`SimulatedAsterisk.drop_sessions` aborts every connection (an RST);
:meth:`SimulatedAsterisk.stall_sessions` freezes them (and new ones) without closing:
nothing is read, answered or written until unstalled, as with a hung Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Iterable
from typing import Any

from sim.pbx import PBX_ACTIONS, ActionRequest, AmiEvent, CalleeModel, Pbx, Reply, error, ok
from sim.pbx_world import Arrivals, build_world
from sim.scenario import Scenario

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_LINE = 1024  # manager.c's input buffer: longer lines are discarded
MAX_HEADERS = 128  # AST_MAX_MANHEADERS
MAX_WRITE_BUFFER = 8 * 1024 * 1024  # a reader this far behind is dropped (Asterisk's writetimeout)

# Event classes (include/asterisk/manager.h EVENT_FLAG_*).
EVENT_CLASSES = {
    "system": 1 << 0,
    "call": 1 << 1,
    "log": 1 << 2,
    "verbose": 1 << 3,
    "command": 1 << 4,
    "agent": 1 << 5,
    "user": 1 << 6,
    "config": 1 << 7,
    "dtmf": 1 << 8,
    "reporting": 1 << 9,
    "cdr": 1 << 10,
    "dialplan": 1 << 11,
    "originate": 1 << 12,
    "agi": 1 << 13,
    "cc": 1 << 14,
    "aoc": 1 << 15,
    "test": 1 << 16,
    "security": 1 << 17,
    "message": 1 << 18,
}
ALL_EVENTS = (1 << 19) - 1
PRE_LOGIN_ACTIONS = ("login", "logoff", "challenge")
UNKNOWN_HINT = "Use Action: ListCommands to show available commands."
SESSION_ACTIONS = ("login", "logoff", "challenge", "ping", "events", "listcommands")


def event_mask(text: str) -> int | None:
    """manager.c ``strings_to_mask``: digits, a boolean, or a class list; None if empty."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text) & ALL_EVENTS
    low = text.lower()
    if low in ("no", "false", "n", "f", "0", "off"):
        return 0
    if low in ("yes", "true", "y", "t", "1", "on"):
        return ALL_EVENTS
    mask = 0
    for word in (w.strip() for w in low.split(",")):
        mask |= ALL_EVENTS if word == "all" else EVENT_CLASSES.get(word, 0)
    return mask


def _clean(value: str) -> str:
    """No CR/LF inside a value: one header must stay one line."""
    return value.replace("\r", " ").replace("\n", " ")


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    """One AMI message: ``Key: Value`` lines with CRLF and a blank line (empty values keep the
    space: ``AccountCode: ``)."""
    return ("".join(f"{k}: {_clean(v)}\r\n" for k, v in headers) + "\r\n").encode("utf-8", "replace")


class FrameParser:
    """Bytes in, actions out; no IO. Lines end with LF (a CR before it is dropped); a blank
    line ends a message; blank lines between messages are ignored. A line without ``:`` is
    kept (it makes a message, as in manager.c) but matches no header name. An over-long line
    is discarded, like everything past the 128th header."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._discarding = False

    def receive_data(self, data: bytes) -> list[ActionRequest]:
        out: list[ActionRequest] = []
        self._buf += data
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end < 0:
                break
            raw = bytes(self._buf[start:end])
            start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            self._line(raw, out)
        del self._buf[:start]
        if len(self._buf) > MAX_LINE:
            self._buf.clear()
            self._discarding = True
        return out

    def _line(self, raw: bytes, out: list[ActionRequest]) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > MAX_LINE:
            return
        if not raw:
            if self._headers:
                out.append(ActionRequest(self._headers))
                self._headers = []
            return
        if len(self._headers) >= MAX_HEADERS:
            return
        line = raw.decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        self._headers.append((name, value.lstrip(" \t")) if sep else ("", line))


def _reply_bytes(reply: Reply, action_id: str) -> bytes:
    head: list[tuple[str, str]] = [("Response", reply.response)]
    if action_id:
        head.append(("ActionID", action_id))
    if reply.items is not None:
        head.append(("EventList", "start"))
    if reply.message is not None:
        head.append(("Message", reply.message))
    head += reply.headers
    parts = [encode(head)]
    if reply.items is not None:
        aid = [("ActionID", action_id)] if action_id else []
        for item in reply.items:
            if item.status_style:
                parts.append(encode([("Event", item.name), ("Privilege", "Call"), *item.headers, *aid]))
            else:
                parts.append(encode([("Event", item.name), *aid, *item.headers]))
        parts.append(
            encode(
                [
                    ("Event", reply.complete),
                    *aid,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(reply.items))),
                    *reply.complete_extra,
                ]
            )
        )
    return b"".join(parts)


def _event_bytes(event: AmiEvent) -> bytes:
    return encode([("Event", event.name), ("Privilege", f"{event.category},all"), *event.headers])


class _Session:
    """One AMI connection."""

    def __init__(
        self, server: SimulatedAsterisk, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.parser = FrameParser()
        self.authenticated = False
        self.mask = ALL_EVENTS
        self.challenge = ""
        self.closing = False
        self._holding = False
        self._held: list[bytes] = []
        self._backlog: list[bytes] = []

    # --- output -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closing:
            return
        if self.server.stalled:
            self._backlog.append(data)
            return
        if self._backlog:
            data = b"".join([*self._backlog, data])
            self._backlog.clear()
        transport = self.writer.transport
        if transport.is_closing():
            return
        self.writer.write(data)
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("simulated AMI: dropping a session that does not read")
            self.abort()

    def flush_backlog(self) -> None:
        if self._backlog and not self.server.stalled:
            self.write(b"")

    def deliver(self, event: AmiEvent) -> None:
        if not self.authenticated or not self.mask & EVENT_CLASSES.get(event.category, 0):
            return
        data = _event_bytes(event)
        if self._holding:
            self._held.append(data)
        else:
            self.write(data)

    def abort(self) -> None:
        self.closing = True
        self.writer.transport.abort()

    # --- input --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.server.unstalled()
            self.write(BANNER)
            while not self.closing:
                data = await self.reader.read(65536)
                if not data:
                    break
                for req in self.parser.receive_data(data):
                    await self.server.unstalled()
                    if self.closing:
                        break
                    await self._process(req)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closing = True
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await self.writer.wait_closed()

    async def _process(self, req: ActionRequest) -> None:
        action_id = req.get("ActionID")
        self._holding = True
        close_after = False
        try:
            reply, close_after = await self._dispatch(req)
            self.write(_reply_bytes(reply, action_id))
        finally:
            self._holding = False
            held, self._held = self._held, []
            for data in held:
                self.write(data)
        if close_after:
            self.closing = True
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()
            self.writer.close()

    async def _dispatch(self, req: ActionRequest) -> tuple[Reply, bool]:
        name = req.action
        if not name:
            return error("Missing action in request"), False
        low = name.lower()
        if not self.authenticated and low not in PRE_LOGIN_ACTIONS:
            return error("Permission denied"), False
        if low == "login":
            return await self._login(req)
        if low == "logoff":
            return Reply("Goodbye", "Thanks for all the fish."), True
        if low == "challenge":
            return self._challenge(req), False
        if low == "ping":
            return ok(None, ("Ping", "Pong"), ("Timestamp", f"{self.server.pbx.now():.6f}")), False
        if low == "events":
            mask = event_mask(req.get("EventMask"))
            if mask is None:
                return error("Invalid event mask"), False
            self.mask = mask
            return ok(None, ("Events", "On" if mask else "Off")), False
        if low == "listcommands":
            names = sorted({*SESSION_ACTIONS, *PBX_ACTIONS})
            return ok(None, *((n, f"{n} (Priv: <none>)") for n in names)), False
        result = self.server.pbx.handle(req)
        if result is None:
            return error(f"Invalid/unknown command: {name}. {UNKNOWN_HINT}"), False
        if isinstance(result, asyncio.Future):
            return await result, False
        return result, False

    def _challenge(self, req: ActionRequest) -> Reply:
        if req.get("AuthType").lower() != "md5":
            return error("Must specify AuthType")
        if not self.challenge:
            self.challenge = str(random.SystemRandom().randrange(10**8, 10**9))
        return ok(None, ("Challenge", self.challenge))

    async def _login(self, req: ActionRequest) -> tuple[Reply, bool]:
        if self.authenticated:
            return ok("Already authenticated"), False
        server = self.server
        user = req.get("Username")
        if req.get("AuthType").lower() == "md5":
            expected = hashlib.md5((self.challenge + server.secret).encode()).hexdigest()
            good = bool(self.challenge) and req.get("Key").lower() == expected
        else:
            good = req.has("Secret") and req.get("Secret") == server.secret
        if not (good and user == server.username):
            await asyncio.sleep(server.auth_delay_s)
            return error("Authentication failed"), True
        if req.has("Events"):
            self.mask = event_mask(req.get("Events")) or 0
        self.authenticated = True
        if self.mask & EVENT_CLASSES["system"]:
            uptime = str(int(server.pbx.now() - server.pbx.booted_at))
            self._held.append(
                _event_bytes(
                    AmiEvent(
                        "FullyBooted",
                        "system",
                        (("Uptime", uptime), ("LastReload", uptime), ("Status", "Fully Booted")),
                    )
                )
            )
        return ok("Authentication accepted"), False


class SimulatedAsterisk:
    """A loopback AMI server in front of a simulated PBX (see the module docstring).

    ``speed``: virtual seconds per wall second for everything the PBX does. ``workload``:
    start the scenario's Poisson callers with the server (``scenario=None``: nobody calls
    unless a test uses ``pbx.place_call``). ``auth_delay_s``: the wall-clock pause before
    ``Authentication failed``. ``outbound_customers``: who answers the numbers ccd dials
    (e.g. ``sim.pbx_world.OutboundCustomers``); default: the scenario's campaigns' callees
    if it has campaigns, else everybody answers after 2 s.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        speed: float = 1.0,
        seed: int = 1,
        username: str = "ccd",
        secret: str = "ccd",
        host: str = "127.0.0.1",
        port: int = 0,
        auth_delay_s: float = 1.0,
        workload: bool = True,
        outbound_customers: CalleeModel | None = None,
    ) -> None:
        self.scenario = scenario
        self.username = username
        self.secret = secret
        self.host = host
        self.port = port
        self.auth_delay_s = auth_delay_s
        self.workload = workload
        world: tuple[Pbx, Arrivals | None] = build_world(scenario, speed=speed, seed=seed)
        self.pbx: Pbx = world[0]
        self.arrivals: Arrivals | None = world[1]
        if outbound_customers is not None:
            self.pbx.outbound_customers = outbound_customers
        self.pbx.listeners.append(self._broadcast)
        self.sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._running: asyncio.Event | None = None
        self.stalled = False
        self._stopping = False

    async def start(self) -> None:
        self._running = asyncio.Event()
        self._running.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.workload and self.arrivals is not None:
            self.arrivals.start()

    async def stop(self) -> None:
        if self.arrivals is not None:
            self.arrivals.stop()
        self.pbx.close()
        if self._server is not None:
            self._server.close()
        self._stopping = True
        self.stalled = False
        if self._running is not None:
            self._running.set()
        for session in list(self.sessions):
            session.abort()
        tasks = list(self._tasks)
        if tasks:
            # Aborted sessions end by themselves; one stuck in an action (a login delay, a
            # synchronous Originate) is cancelled, and _accept turns that into a normal end.
            _, stuck = await asyncio.wait(tasks, timeout=1.0)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session = _Session(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Ours, from stop(): asyncio's start_server would log a cancelled handler as an error.
        finally:
            self.sessions.discard(session)
            self._tasks.discard(task)

    async def unstalled(self) -> None:
        if self._running is not None:
            await self._running.wait()

    def _broadcast(self, event: AmiEvent) -> None:
        for session in list(self.sessions):
            session.deliver(event)

    def drop_sessions(self) -> None:
        """Abort every client connection at once, as a crashed link or an RST would."""
        for session in list(self.sessions):
            session.abort()

    def stall_sessions(self, stalled: bool) -> None:
        """Freeze (True) or thaw (False) all sessions: no reading, answering or writing."""
        self.stalled = stalled
        if self._running is None:
            return
        if stalled:
            self._running.clear()
        else:
            self._running.set()
            for session in list(self.sessions):
                session.flush_backlog()
