"""The AMI connection: the only code in ccd that touches panoramisk.

Theory of operation
-------------------
panoramisk 1.4 (the PyPI release) parses AMI well but its session handling has traps
(the AMI integration brief, §0 and §1). ``AmiClient`` keeps panoramisk's parser and
response matching (``AMIProtocol``, ``Action``, ``Message``) and replaces everything
around them:

* **Connection and reconnection** are ours: one supervisor task connects, logs in,
  runs ``on_connected`` (the service resyncs there), then waits for the connection to
  die and reconnects with exponential backoff and jitter. panoramisk's own
  ``Manager.connect`` (an endless uncancellable retry, a re-login that resends old
  actions on ``FullyBooted``) is never used. The Manager is created inside the running
  loop (``loop=asyncio.get_running_loop()``), never at import time.
* **Bad credentials** raise :class:`AmiAuthError` and stop the client: retrying a
  refused password every few seconds only fills Asterisk's security log.
* **Liveness**: panoramisk's pinger never checks the Pong. Ours sends ``Ping`` every
  ``ping_interval_s`` and aborts the transport if no reply comes within
  ``ping_timeout_s``: a half-open TCP connection or a stalled Asterisk is a reconnect,
  not a silent hang.
* **Every action** gets our own ``ActionID`` (``<prefix>-<n>``) and a timeout
  (:class:`AmiTimeout`); an ``Error`` response raises :class:`AmiActionError`; actions
  still pending when the connection dies fail at once with :class:`AmiDisconnected`
  (panoramisk would leave them pending forever or resend them after the next login).
* **Single responses** are sent with ``as_list=False``, so the first reply completes
  the action. This is what makes ``Originate`` (``Async: true`` forced) and ``AGI``
  safe: the ack completes the action and removes its ActionID from panoramisk's
  pending table, so the later ``OriginateResponse`` / ``AsyncAGIExec`` is no longer
  swallowed by a pending action and reaches ``on_event`` like any event. It also
  defuses the 1.4 misclassification of ``QueueAdd``/``AGI`` acks as list starts.
* **List actions** are sent with ``as_list=None``: an ``EventList: start`` reply makes
  the action collect items up to the ``*Complete`` event, while an ``Error`` reply
  completes it at once (with ``as_list=True`` an error reply would hang).
* **OriginateResponse is broadcast** by Asterisk to every AMI session: those whose
  ActionID lacks our prefix are dropped (counted). Late list items of an action that
  timed out are dropped too.
* **Events** reach ``on_event`` from one synchronous dispatch that catches and counts
  whatever the handler raises: in 1.4 an exception escaping a sync callback kills the
  transport. ``data_received`` is guarded the same way.
* **Secrets**: the secret is held only by this object, sent only inside the Login
  action, absent from reprs and exceptions, and redacted from any log record of the
  loggers we give panoramisk.
* ``panoramisk.testing`` is never imported (it switches the line ending process-wide);
  if something else did, :meth:`start` restores CRLF.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from panoramisk import actions as pano_actions
from panoramisk import utils as pano_utils
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

log = logging.getLogger("ccd.telephony.ami")
_pano_log = logging.getLogger("ccd.telephony.ami.panoramisk")

AmiHeaders = Mapping[str, str | list[str]]
AmiEvent = dict[str, str | list[str]]


# --- errors ------------------------------------------------------------------------------


class AmiError(Exception):
    """Anything that went wrong talking to Asterisk."""


class AmiAuthError(AmiError):
    """Asterisk refused our credentials: a configuration error, not retried."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error`` (the message says why)."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class AmiTimeout(AmiError, TimeoutError):  # noqa: N818 (the name the service and its tests use)
    """No reply in time: the outcome of the action is unknown."""


class AmiDisconnected(AmiError, ConnectionError):  # noqa: N818
    """Not connected, or the connection died before the reply came."""


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AmiConfig:
    """Where and as whom to log in. The secret never appears in the repr."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ccd"
    secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, prefix: str = "CCD_AMI_") -> AmiConfig:
        """``CCD_AMI_HOST``, ``_PORT``, ``_USERNAME``, ``_SECRET``; defaults for what is unset."""
        e = os.environ if env is None else env
        port_text = e.get(f"{prefix}PORT", "5038")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"{prefix}PORT: {port_text!r} is not a port number") from None
        if not 0 < port < 65536:
            raise ValueError(f"{prefix}PORT: {port} is out of range")
        return cls(
            host=e.get(f"{prefix}HOST", "127.0.0.1"),
            port=port,
            username=e.get(f"{prefix}USERNAME", "ccd"),
            secret=e.get(f"{prefix}SECRET", ""),
        )


class _Redact(logging.Filter):
    """Blank the secret out of any record of the loggers handed to panoramisk."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            text = record.getMessage()
            if self.secret in text:
                record.msg, record.args = text.replace(self.secret, "********"), ()
        return True


# --- panoramisk, tamed ---------------------------------------------------------------------


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager as a passive factory: dispatch and loss go to the client."""

    def __init__(self, client: AmiClient, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop, log=_pano_log, ping_delay=0, ping_interval=0, reconnect_timeout=0)
        self.client = client

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("AmiClient owns the connection")  # 1.4's retry loop is never used

    def ping(self) -> None:  # 1.4's pinger never checks the Pong; we have a watchdog
        return None

    def dispatch(self, event: Message) -> list[str]:
        self.client._dispatch(event)
        return []

    def connection_lost(self, exc: BaseException | None) -> None:
        return None  # the protocol tells the client; no reconnect from here


class _Protocol(AMIProtocol):  # type: ignore[misc]
    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.factory = self.client._manager
        self.encoding = "utf8"
        self.log = _pano_log
        self.config: dict[str, Any] = {}

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        except Exception:
            # Never let a parsing surprise become asyncio's "fatal error" and a dropped link.
            self.client.protocol_errors += 1
            log.exception("AMI data could not be handled")

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().connection_lost(exc)
        except Exception:
            log.exception("error while closing the AMI protocol")
        finally:
            self.client._lost(self, exc)
            if not self.lost.done():
                self.lost.set_result(None)


# --- the client ----------------------------------------------------------------------------


class AmiClient:
    """One AMI session to one Asterisk, kept alive; see the module docstring."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        on_event: Callable[[AmiEvent], None],
        on_connected: Callable[[], Awaitable[None]] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        ping_interval_s: float = 5.0,
        ping_timeout_s: float = 3.0,
        action_timeout_s: float = 5.0,
        reconnect_min_s: float = 0.1,
        reconnect_max_s: float = 10.0,
        action_id_prefix: str | None = None,
        events: str = "call,user,system,agi",
    ) -> None:
        if not (ping_interval_s > 0 and ping_timeout_s > 0 and action_timeout_s > 0):
            raise ValueError("ping_interval_s, ping_timeout_s and action_timeout_s must be positive")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
        self.host = host
        self.port = port
        self.username = username
        self.__secret = secret
        self.on_event = on_event
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.action_timeout_s = action_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.action_id_prefix = action_id_prefix or f"ccd-{secrets.token_hex(4)}"
        # Only the classes ccd uses: "on" would also bring the dialplan class (Newexten,
        # VarSet), by far the busiest, whenever manager.conf grants it.
        self.events = events
        # State and counters (read by the service, /metrics and tests).
        self.connected = False
        self.reconnects = 0  # successful logins after the first
        self.last_error = ""
        self.auth_failed = False
        self.handler_errors = 0  # on_event raised
        self.protocol_errors = 0  # panoramisk choked on input
        self.foreign_dropped = 0  # OriginateResponses of other AMI clients
        self.stale_dropped = 0  # late replies to actions we gave up on
        self._ids = itertools.count(1)
        self._rng = random.Random()
        self._manager: _Manager | None = None
        self._protocol: _Protocol | None = None
        self._inflight: dict[str, tuple[_Protocol, asyncio.Future[Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._closing = False
        self._redact = _Redact(secret)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<AmiClient {self.username}@{self.host}:{self.port} {state}>"

    # --- life cycle ---------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Start the connection supervisor.

        With ``wait`` (the default) return once the first login succeeded and
        ``on_connected`` completed; while Asterisk refuses or does not answer the TCP
        connection this keeps retrying with backoff (bound it with ``asyncio.timeout``
        if needed: the supervisor keeps running, ``close()`` stops it). Raises
        :class:`AmiAuthError` at once when the credentials are refused, and then does
        not retry. With ``wait=False`` return at once; watch ``connected``.
        """
        if self._task is not None or self._closing:
            raise RuntimeError("an AmiClient starts once (make a new one after close())")
        loop = asyncio.get_running_loop()
        if pano_utils.EOL != "\r\n":  # something imported panoramisk.testing
            log.warning("panoramisk line ending was %r: restored to CRLF", pano_utils.EOL)
            pano_utils.EOL = "\r\n"
        if self._redact not in _pano_log.filters:
            _pano_log.addFilter(self._redact)
            log.addFilter(self._redact)
        self._manager = _Manager(self, loop)
        self._first = loop.create_future()
        self._first.add_done_callback(_retrieve)
        self._task = asyncio.create_task(self._supervise(), name="ccd-ami-supervisor")
        if wait:
            await asyncio.shield(self._first)

    async def close(self) -> None:
        """Stop reconnecting, fail what is pending, close the socket and wait until it is closed."""
        self._closing = True
        task, self._task = self._task, None
        proto = self._protocol
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if proto is not None:
            await self._shut(proto, abort=False)
        self._fail_inflight(None, "client closed")
        if self._first is not None and not self._first.done():
            self._first.set_exception(AmiDisconnected("client closed"))
        _pano_log.removeFilter(self._redact)
        log.removeFilter(self._redact)

    # --- actions --------------------------------------------------------------------------

    def next_action_id(self) -> str:
        return f"{self.action_id_prefix}-{next(self._ids)}"

    async def send(self, headers: AmiHeaders) -> AmiEvent:
        """Send one action, return its single response; ``Response: Error`` raises AmiActionError."""
        msg = await self._request(headers, as_list=False)
        return self._checked(headers, msg)

    def send_nowait(self, headers: AmiHeaders) -> asyncio.Future[AmiEvent]:
        """Write one action now and return a future of its checked reply.

        The write happens before this returns, so actions sent one after the other
        reach Asterisk in that order (a Setvar before its Redirect) with no task and
        no await between an event and the action it causes: the live service sends
        its decisions from inside the event that prompted them. The future fails with
        AmiActionError, AmiTimeout or AmiDisconnected as ``send`` would raise.
        """
        loop = asyncio.get_running_loop()
        result: asyncio.Future[AmiEvent] = loop.create_future()
        proto = self._protocol if self.connected else None
        if proto is None or proto.lost.done() or self._manager is None:
            result.set_exception(AmiDisconnected(f"not connected to {self.host}:{self.port}"))
            return result
        aid = self.next_action_id()
        fields: dict[str, str | list[str]] = {}
        for k, v in headers.items():
            if k.lower() != "actionid":
                fields[k] = [str(x) for x in v] if isinstance(v, list) else str(v)
        fields["ActionID"] = aid
        self._manager.protocol = proto
        fut: asyncio.Future[Any] = self._manager.send_action(pano_actions.Action(fields, as_list=False))
        self._inflight[aid] = (proto, fut)
        name = str(headers.get("Action", "?"))
        timeout = self.action_timeout_s

        def expire() -> None:
            if not fut.done():
                fut.set_exception(AmiTimeout(f"{name}: no reply within {timeout:g} s"))

        timer = loop.call_later(timeout, expire)

        def settle(f: asyncio.Future[Any]) -> None:
            timer.cancel()
            self._inflight.pop(aid, None)
            proto.responses.pop(aid, None)  # a late reply is then dropped, not leaked
            if result.done():
                return
            if f.cancelled():
                result.set_exception(AmiDisconnected(f"{name}: cancelled"))
                return
            exc = f.exception()
            if exc is not None:
                result.set_exception(exc if isinstance(exc, AmiError) else AmiDisconnected(str(exc)))
                return
            try:
                result.set_result(self._checked(headers, f.result()))
            except AmiActionError as err:
                result.set_exception(err)

        fut.add_done_callback(settle)
        return result

    async def send_list(self, headers: AmiHeaders) -> list[AmiEvent]:
        """Send a list action (CoreShowChannels, Status, ...) and return its items, without
        the initial response and the final ``*Complete`` event."""
        result = await self._request(headers, as_list=None)
        if not isinstance(result, list):
            self._checked(headers, result)
            return []  # a plain success without a list
        items = [_plain(m) for m in result[1:]]
        if items and str(items[-1].get("Event", "")).endswith("Complete"):
            items.pop()
        return items

    async def originate(self, headers: AmiHeaders) -> str:
        """Send an ``Originate`` with ``Async: true``; return its ActionID once queued.

        The outcome arrives later as an ``OriginateResponse`` through ``on_event``. A
        caller-chosen ActionID is kept when it bears our prefix (so the service can
        correlate the response), else replaced.
        """
        h = dict(headers)
        h["Action"] = "Originate"
        h["Async"] = "true"
        aid = str(h.get("ActionID", ""))
        if not aid.startswith(f"{self.action_id_prefix}-") or aid in self._inflight:
            aid = self.next_action_id()
        h["ActionID"] = aid
        msg = await self._request(h, as_list=False, action_id=aid)
        if "event" in msg:
            # The OriginateResponse overtook the ack and completed the action: pass it on.
            self._dispatch(msg)
            return aid
        self._checked(h, msg)
        return aid

    async def agi(self, channel: str, command: str) -> str:
        """Queue an AsyncAGI command; return its CommandID after the ack (``AsyncAGIExec``,
        carrying that ``CommandId``, arrives later through ``on_event``)."""
        aid = self.next_action_id()
        command_id = f"{aid}-agi"
        h = {"Action": "AGI", "Channel": channel, "Command": command, "CommandID": command_id}
        msg = await self._request(h, as_list=False, action_id=aid)
        self._checked(h, msg)
        return command_id

    # --- internals ------------------------------------------------------------------------

    def _checked(self, headers: AmiHeaders, msg: Message) -> AmiEvent:
        plain = _plain(msg)
        if str(plain.get("Response", "")).lower() in ("error", "fail", "failure"):
            raise AmiActionError(str(headers.get("Action", "?")), str(plain.get("Message", "")))
        return plain

    async def _request(
        self,
        headers: AmiHeaders,
        *,
        as_list: bool | None,
        timeout: float | None = None,
        action_id: str | None = None,
        proto: _Protocol | None = None,
    ) -> Any:
        proto = proto or (self._protocol if self.connected else None)
        if proto is None or proto.lost.done() or self._manager is None:
            raise AmiDisconnected(f"not connected to {self.host}:{self.port}")
        aid = action_id or self.next_action_id()
        fields: dict[str, str | list[str]] = {}
        for k, v in headers.items():
            if k.lower() != "actionid":
                fields[k] = [str(x) for x in v] if isinstance(v, list) else str(v)
        fields["ActionID"] = aid
        action = pano_actions.Action(fields, as_list=as_list)
        self._manager.protocol = proto
        fut: asyncio.Future[Any] = self._manager.send_action(action, as_list=as_list)
        self._inflight[aid] = (proto, fut)
        try:
            async with asyncio.timeout(timeout or self.action_timeout_s):
                return await fut
        except TimeoutError:
            name = str(headers.get("Action", "?"))
            raise AmiTimeout(f"{name}: no reply within {timeout or self.action_timeout_s:g} s") from None
        finally:
            self._inflight.pop(aid, None)
            proto.responses.pop(aid, None)  # a late reply is then dropped, not leaked

    def _dispatch(self, message: Message) -> None:
        """Every event goes through here; nothing raised by ccd's handler escapes."""
        try:
            event = _plain(message)
            action_id = str(event.get("ActionID", "") or "")
            if event.get("Event") == "OriginateResponse":
                if not action_id.startswith(f"{self.action_id_prefix}-"):
                    self.foreign_dropped += 1  # broadcast to every session: not ours
                    return
            elif action_id.startswith(f"{self.action_id_prefix}-"):
                self.stale_dropped += 1  # an item of a list we stopped waiting for
                return
            self.on_event(event)
        except Exception:
            self.handler_errors += 1
            log.exception("AMI event handler failed (the connection stays up)")

    def _lost(self, proto: _Protocol, exc: BaseException | None) -> None:
        if self._manager is not None:
            self._manager.awaiting_actions.clear()  # never resent after a re-login
        self._fail_inflight(proto, f"connection lost{f': {exc}' if exc else ''}")

    def _fail_inflight(self, proto: _Protocol | None, why: str) -> None:
        for p, fut in list(self._inflight.values()):
            if (proto is None or p is proto) and not fut.done():
                fut.set_exception(AmiDisconnected(why))

    async def _shut(self, proto: _Protocol, *, abort: bool) -> None:
        transport = getattr(proto, "transport", None)
        if transport is not None and not transport.is_closing():
            if abort:
                transport.abort()
            else:
                transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.shield(proto.lost)

    async def _supervise(self) -> None:
        attempt = 0
        ever = False
        while not self._closing:
            proto: _Protocol | None = None
            try:
                proto = self._protocol = await self._connect()
                await self._login(proto)
            except AmiAuthError as exc:
                self.auth_failed = True
                self.last_error = str(exc)
                if proto is not None:
                    await self._shut(proto, abort=True)
                if self._first is not None and not self._first.done():
                    self._first.set_exception(exc)  # start() raises it: its caller reports it
                else:
                    log.error("%s", exc)  # refused on a re-login: nobody else will say it
                return
            except (OSError, AmiError) as exc:
                self.last_error = f"connect/login failed: {exc}"
                if proto is not None:
                    await self._shut(proto, abort=True)
                delay = min(self.reconnect_max_s, self.reconnect_min_s * 2**attempt)
                delay *= 0.5 + self._rng.random() / 2
                attempt += 1
                log.warning("AMI %s:%s: %s; retrying in %.2f s", self.host, self.port, exc, delay)
                await asyncio.sleep(delay)
                continue
            self.connected = True
            if ever:
                self.reconnects += 1
            ever = True
            log.info("AMI connected to %s:%s as %s", self.host, self.port, self.username)
            watchdog = asyncio.create_task(self._watchdog(proto), name="ccd-ami-watchdog")
            try:
                if self.on_connected is not None:
                    await self.on_connected()
                attempt = 0
                if self._first is not None and not self._first.done():
                    self._first.set_result(None)
                await asyncio.shield(proto.lost)
                self.last_error = "connection lost"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A failed resync must be retried: drop the session and start again.
                self.last_error = f"on_connected failed: {type(exc).__name__}: {exc}"
                log.warning("AMI %s; reconnecting", self.last_error)
                attempt += 1
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
                self.connected = False
                if not proto.lost.done():
                    await self._shut(proto, abort=True)
                if self.on_disconnected is not None and not self._closing:
                    try:
                        self.on_disconnected()
                    except Exception:
                        log.exception("on_disconnected failed")
            if not self._closing:
                log.warning("AMI connection to %s:%s lost; reconnecting", self.host, self.port)
                delay = min(self.reconnect_max_s, self.reconnect_min_s * 2**attempt)
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.action_timeout_s):
            _, proto = await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
        assert isinstance(proto, _Protocol)
        return proto

    async def _login(self, proto: _Protocol) -> None:
        # Asterisk answers a bad secret only after a 1 s sleep: allow for it.
        headers = {
            "Action": "Login",
            "Username": self.username,
            "Secret": self.__secret,
            "Events": self.events,
        }
        msg = await self._request(headers, as_list=False, timeout=self.action_timeout_s + 1.5, proto=proto)
        if not msg.success:
            raise AmiAuthError(f"AMI login as {self.username!r} refused: {msg.get('Message', '')}")

    async def _watchdog(self, proto: _Protocol) -> None:
        """Ping; no reply within ``ping_timeout_s`` means the link is dead: abort it."""
        while not proto.lost.done():
            await asyncio.sleep(self.ping_interval_s)
            try:
                ping = {"Action": "Ping"}
                await self._request(ping, as_list=False, timeout=self.ping_timeout_s, proto=proto)
            except AmiTimeout:
                self.last_error = f"no Pong within {self.ping_timeout_s:g} s"
                log.warning("AMI %s: %s; reconnecting", self.host, self.last_error)
                proto.transport.abort()
                return
            except AmiDisconnected:
                return


def _plain(message: Mapping[str, Any]) -> AmiEvent:
    """A panoramisk Message as a plain dict of headers (its ``content`` pseudo-header dropped)."""
    # Straight from the case-insensitive dict's store (key as sent, value): the generic
    # Mapping methods of panoramisk's dict cost more than the rest of a routing decision.
    store = getattr(message, "_store", None)
    pairs = store.values() if isinstance(store, dict) else message.items()
    out: AmiEvent = {}
    for k, v in pairs:
        if k == "content" and not v:
            continue
        if isinstance(v, str):
            out[k] = v
        else:
            out[k] = [str(x) for x in v] if isinstance(v, list) else str(v)
    return out


def _retrieve(fut: asyncio.Future[None]) -> None:
    """Mark an exception as seen (start(wait=False) never awaits the first-login future)."""
    if not fut.cancelled():
        fut.exception()
