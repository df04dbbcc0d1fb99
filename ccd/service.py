"""The live ACD: AMI events in, router decisions out, on one asyncio loop.

This is only a driver. ``telephony.CallTracker`` turns AMI events into domain events,
``acd.Router`` decides, and the tracker turns the router's commands back into AMI
actions; this module moves them between the AMI connection, the router's timers, the
REST API and the metrics. Everything touching the router runs on the loop's thread, so
the router needs no locks.

Time: the router runs on a *service clock*, epoch seconds scaled by ``speed`` (1 in
production; a demo against the simulated Asterisk may run 10x faster, and the
simulated Asterisk then runs at the same speed).

Never strand a caller: after every (re)connection the service reconciles the router
with the channels Asterisk really has (``CoreShowChannels`` and ``Status``); a call
taken back from an agent is put back on hold; at shutdown every waiting caller is
sent to the dialplan's fallback and the heartbeat is withdrawn so that Asterisk stops
handing calls to a ccd that is going away.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from acd.agents import AgentState, IllegalTransitionError
from acd.errors import RouterError
from acd.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentReady,
    CallArrived,
    CallEnded,
    CallOutcome,
    CallRecord,
    CancelOffer,
    Command,
    ConnectToAgent,
    Event,
)
from acd.router import CallState, Router
from ccd.config import AgentSettings, ServiceConfig
from ccd.kv import KvError, open_kv
from ccd.metrics import Metrics
from ccd.outbound import LiveCampaign, OutboundManager
from ccd.store import Store
from dialer.campaign import AmdAction
from dialer.leads import Outcome
from dialer.runner import (
    HOLD_REASON,
    AgentPicture,
    Dial,
    DialState,
    acd_queue_config,
    competing_rate,
    competing_shares,
    picture_from_router,
)
from telephony.ami import AmiActionError, AmiClient, AmiDisconnected, AmiError
from telephony.calls import CallTracker
from telephony.outbound import DialAnswered, DialEnded, DialEvent, DialFailed, OutboundTracker

log = logging.getLogger("ccd.service")

LOGINS_PER_TICK = 100  # agent login calls placed together
LOGIN_TICK_S = 0.05
MAX_OFFER_FAILURES = 3  # refused connections of one call before it goes to the fallback
HEARTBEAT_EVERY_S = 10.0  # wall seconds; the dialplan gives up on ccd after 30 s of silence


@dataclass(frozen=True, slots=True)
class _Out:
    """One AMI action on its way, with what the service must do if it fails."""

    action: Mapping[str, Any]
    received: float  # perf_counter when the event that caused it arrived
    offer: tuple[str, str] | None = None  # (call, agent) when this action connects them
    login: str | None = None  # the agent whose session this Originate starts


class ServiceError(Exception):
    """A request the service cannot carry out (unknown agent, wrong state...)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServiceClock:
    """Epoch seconds, run ``speed`` times faster than the wall clock."""

    speed: float = 1.0

    def __post_init__(self) -> None:
        self._origin = time.time()
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._t0) * self.speed

    def wall_delay(self, virtual_s: float) -> float:
        return max(0.0, virtual_s / self.speed)


class AcdService:
    def __init__(self, config: ServiceConfig, *, speed: float = 1.0) -> None:
        self.config = config
        self.clock = ServiceClock(speed)
        self.metrics = Metrics(lambda: self.router)
        # The last calls to leave a queue, for the API and for tests to read back.
        self.recent: deque[CallRecord] = deque(maxlen=1000)
        self.router = Router(
            config.queues,
            start=self.clock.now(),
            call_selection=config.call_selection,
            observers=[self.metrics.on_record, self._on_record],
        )
        self.tracker = CallTracker(ring_timeout_s=config.ring_timeout_s, max_hold_s=config.max_hold_s)
        self.agents: dict[str, AgentSettings] = {}
        for a in config.agents:
            self.agents[a.profile.agent_id] = a
            self.router.register_agent(a.profile)
            self.tracker.set_agent(a.profile.agent_id, mode=a.mode, device=a.device)
        # agent -> ("pending" | "failed: ...", wall time) while not logged in
        self.login_status: dict[str, tuple[str, float]] = {}
        self._login_actions: dict[str, str] = {}  # originate ActionID -> agent
        self._login_seq = itertools.count(1)
        self.ami = AmiClient(
            host=config.ami.host,
            port=config.ami.port,
            username=config.ami.username,
            secret=config.ami.secret,
            on_event=self._on_ami_event,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            ping_interval_s=config.ami.ping_interval_s,
            action_timeout_s=config.ami.action_timeout_s,
        )
        self.ready = False  # connected and reconciled: /readyz
        self.logins = 0
        self.accepting = True
        self._stopped = False
        self.router_errors = 0
        # Seconds from the AMI event that made the decision to writing the connecting
        # action; kept only when a benchmark asks (a list set here).
        self.latency_samples: list[float] | None = None
        self._in_flight: set[asyncio.Future[Any]] = set()  # actions awaiting their reply
        self._wake_logins = asyncio.Event()
        self._logins: collections.deque[_Out] = collections.deque()  # paced login calls
        # Until a (re)connection is reconciled, AMI events wait here: applied before the
        # snapshot is taken, they would be undone by it (a call seen arriving, then
        # "gone" because the older snapshot does not show it).
        self._resyncing = True
        self._held_events: list[tuple[Mapping[str, Any], float]] = []
        self.failed = ""  # a background task died: /healthz reports it
        self._offer_failures: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Outbound: campaigns kept in the store, dials tracked on the wire.
        self.outbound = OutboundManager(Store(open_kv(config.store_url)), now=self.clock.now)
        self.dials = OutboundTracker()
        self._arrivals: dict[str, CallArrived] = {}  # answered humans, until they reach ccd-hold
        self._dial_seq = itertools.count(1)
        self._flush_task: asyncio.Task[None] | None = None
        self._cps_window: dict[str, deque[float]] = {}
        self._held_for: dict[str, str] = {}  # call id -> agent held for a personal call
        self._stored_agents: dict[str, tuple[str, str | None, float]] = {}
        # Blending: per campaign, the inbound queues sharing its agents, with the share.
        self._shares: dict[str, list[tuple[str, float]]] = {}
        self._started_at = self.clock.now()
        self.metrics.watch_campaigns(self.campaign_progress)

    def _on_record(self, rec: CallRecord) -> None:
        self.recent.append(rec)
        self._offer_failures.pop(rec.call_id, None)
        if rec.queue.startswith("outbound:") and self.outbound.state_of(rec.call_id) is DialState.WAITING:
            # The router's verdict on an answered human: put through (and when), or not.
            if rec.outcome is CallOutcome.ANSWERED and rec.agent_id is not None:
                self.outbound.connected(rec.left_at, rec.call_id, rec.agent_id)
            else:
                self.outbound.abandoned(rec.left_at, rec.call_id, rec.detail or rec.outcome.value)
                self._release_hold(rec.call_id)
            self._flush_soon()

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.outbound.load()
        # Pauses are ccd's own decisions (Asterisk does not know them): put back after
        # the first reconciliation those of agents whose sessions are still up.
        self._stored_agents = await self.outbound.store.agents()
        for live in self.outbound.campaigns.values():
            try:
                self.install_campaign_queue(live)
            except ServiceError as exc:
                log.error("%s: the campaign cannot dial until its queue is configured again", exc)
        self._tasks = [
            asyncio.create_task(self._login_pacer(), name="ccd-login-pacer"),
            asyncio.create_task(self._timers(), name="ccd-router-timers"),
            asyncio.create_task(self._heartbeat(), name="ccd-heartbeat"),
            asyncio.create_task(self._dialer(), name="ccd-dialer"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        await self.ami.start()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """None of the service's loops may end while it runs: say so loudly if one does."""
        if task.cancelled() or self._stopped:
            return
        exc = task.exception()
        self.failed = f"{task.get_name()} stopped: {exc!r}"
        log.error("%s", self.failed, exc_info=exc)

    async def stop(self) -> None:
        """Graceful: no new calls, waiting callers to the fallback, decisions flushed, AMI closed."""
        if self._stopped:
            return
        self._stopped = True
        self.accepting = False
        # The heartbeat first, so that no beat in flight can follow the withdrawal.
        for task in self._tasks:
            if task.get_name() == "ccd-heartbeat":
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.ami.connected:
            with contextlib.suppress(AmiError, asyncio.TimeoutError):
                await self.ami.send(self.tracker.heartbeat_action(0))
            for q in self.router.queue_names:
                for call_id in self.router.waiting_calls(q):
                    if self.outbound.state_of(call_id) is DialState.WAITING:
                        self.outbound.abandoned(self.clock.now(), call_id, "ccd stopping")
                    for action in self.tracker.fallback_actions(call_id):
                        self._send(_Out(action, time.perf_counter()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drain(), 5.0)
            # Dials still ringing end within their ring timeout (answered or not): wait
            # for them, so their outcomes are booked now rather than as "unknown" at the
            # next start. Conversations go on after ccd has gone; they are not waited for.
            ring_s = max(
                (live.runner.ring_timeout_s for live in self.outbound.campaigns.values()), default=0.0
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ringing_over(), self.clock.wall_delay(ring_s + 5.0))
        for task in self._tasks:
            task.cancel()
        # gather, not a loop of awaits under suppress(CancelledError): a cancellation of
        # stop() itself must propagate, not be taken for one of its tasks ending.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(KvError):
            await self.outbound.flush()
        await self.outbound.store.close()
        await self.ami.close()

    async def _ringing_over(self) -> None:
        while any(self.outbound.state_of(c) is DialState.RINGING for c in self.outbound.active_calls()):
            await asyncio.sleep(0.05)

    async def _drain(self) -> None:
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    # --- AMI in -----------------------------------------------------------------------

    def _on_ami_event(self, msg: Mapping[str, Any]) -> None:
        received = time.perf_counter()
        self.metrics.ami_events.inc()
        if self._resyncing:
            self._held_events.append((msg, received))
            return
        self._handle_ami(msg, received)

    def _handle_ami(self, msg: Mapping[str, Any], received: float) -> None:
        if msg.get("Event") == "OriginateResponse":
            self._login_result(msg)
        malformed = self.tracker.malformed
        events = self.tracker.on_ami(msg, self.clock.now())
        if self.tracker.malformed != malformed:
            self.metrics.ami_malformed.inc(self.tracker.malformed - malformed)
        for event in events:
            if isinstance(event, CallArrived) and event.queue.startswith("outbound:"):
                self._outbound_arrived(event, received)
                continue
            if isinstance(event, CallArrived) and not self.accepting:
                for action in self.tracker.fallback_actions(event.call_id):
                    self._send(_Out(action, received))
                continue
            self._apply(event, received)
        for dial_event in self.dials.on_ami(msg, self.clock.now()):
            self._dial_event(dial_event)

    def _login_result(self, msg: Mapping[str, Any]) -> None:
        agent = self._login_actions.pop(str(msg.get("ActionID", "")), None)
        if agent is None:
            return
        if msg.get("Response") == "Success":
            # The phone answered; ConfbridgeJoin will log them in. It may also already
            # be hanging up (an OriginateResponse can come after the leg's Hangup): the
            # pending state then expires, and a new login is possible.
            return
        else:
            self.login_status[agent] = (f"failed: reason {msg.get('Reason', '?')}", time.monotonic())
            self.tracker.login_failed(agent)
            log.warning("agent %s: login call failed (OriginateResponse reason %s)", agent, msg.get("Reason"))

    def _apply(self, event: Event, received: float) -> None:
        """Hand one domain event to the router and queue the actions it decides."""
        held_call = None
        if isinstance(event, AgentLoggedOut):
            held_call = self.router.agent(event.agent_id).call_id
            self.login_status.pop(event.agent_id, None)
            if event.agent_id in self.agents:
                self._note_agent(event.agent_id, "logged_out", None)
        if isinstance(event, AgentLoggedIn):
            self.login_status.pop(event.agent_id, None)
        t0 = time.perf_counter()
        try:
            commands = self.router.handle(event)
        except (RouterError, IllegalTransitionError, KeyError) as exc:
            # The PBX and the router disagree (an event for an unknown agent, a late
            # duplicate): log it and carry on; the next resync reconciles.
            self.router_errors += 1
            log.warning("event %s not applied: %s", type(event).__name__, exc)
            if isinstance(event, CallArrived):
                # A caller the router cannot take (an unknown queue): not on hold for
                # nothing until the dialplan's limit, but to the fallback now.
                for action in self.tracker.fallback_actions(event.call_id):
                    self._send(_Out(action, received))
            return
        self.metrics.decision.observe(time.perf_counter() - t0)
        self._execute(commands, received)
        if held_call is not None:
            snap = self.router.call(held_call)
            # Cut off from their agent with nobody free: back on hold, not in a dead room.
            if snap is not None and snap.state is CallState.WAITING:
                for action in self.tracker.hold_actions(held_call):
                    self._send(_Out(action, received))
        self._wake.set()

    def _execute(self, commands: Sequence[Command], received: float) -> None:
        for cmd in commands:
            if isinstance(cmd, CancelOffer) and self.router.call(cmd.call_id) is None:
                continue
            actions = self.tracker.actions_for(cmd)
            for k, action in enumerate(actions):
                # The last action of a ConnectToAgent is the one that connects (the Redirect).
                offer = (
                    (cmd.call_id, cmd.agent_id)
                    if isinstance(cmd, ConnectToAgent) and k == len(actions) - 1
                    else None
                )
                self._send(_Out(action, received, offer=offer))

    def _send(self, out: _Out) -> None:
        """Write an action at once, from inside the event that decided it.

        No queue, no task: the action is on the wire before the next event is read,
        in the order decided (a Setvar before its Redirect); its reply is handled by
        a callback. Logins (Originates that ring a phone) are paced instead.
        """
        if out.login is not None:
            self._logins.append(out)
            self._wake_logins.set()
            return
        if out.offer is not None:
            latency = time.perf_counter() - out.received
            self.metrics.handoff.observe(latency)
            if self.latency_samples is not None:
                self.latency_samples.append(latency)
        fut = self.ami.send_nowait(out.action)
        self._in_flight.add(fut)
        fut.add_done_callback(lambda f: self._sent(out, f))

    async def _login_pacer(self) -> None:
        """At most LOGINS_PER_TICK login calls per tick: a shift starting must not flood
        Asterisk (or ccd's own event stream) with thousands of ringing phones at once."""
        while True:
            await self._wake_logins.wait()
            self._wake_logins.clear()
            while self._logins:
                batch = [self._logins.popleft() for _ in range(min(LOGINS_PER_TICK, len(self._logins)))]
                await asyncio.gather(*(self._originate(out) for out in batch))
                await asyncio.sleep(LOGIN_TICK_S)

    async def _originate(self, out: _Out) -> None:
        try:
            await self.ami.originate(out.action)
            self.metrics.ami_actions.labels("Originate", "ok").inc()
        except AmiError as exc:
            self.metrics.ami_actions.labels("Originate", "failed").inc()
            log.warning("Originate not sent: %s", exc)
            if out.login is not None:
                self.login_status[out.login] = ("failed: the login call was not placed", time.monotonic())
                self.tracker.login_failed(out.login)

    def _sent(self, out: _Out, fut: asyncio.Future[Any]) -> None:
        self._in_flight.discard(fut)
        name = str(out.action.get("Action", "?"))
        exc = fut.exception()
        if exc is None:
            self.metrics.ami_actions.labels(name, "ok").inc()
            return
        if isinstance(exc, AmiActionError):
            self.metrics.ami_actions.labels(name, "error").inc()
            log.info("%s refused: %s", name, exc)
            # A channel gone while the action was on its way: its Hangup tells the router.
            lost = "not exist" not in exc.message and "No such channel" not in exc.message
        elif isinstance(exc, AmiDisconnected):
            # The resync after the reconnection finds where the caller really is.
            self.metrics.ami_actions.labels(name, "failed").inc()
            log.warning("%s not sent: %s", name, exc)
            lost = False
        else:
            self.metrics.ami_actions.labels(name, "failed").inc()
            log.warning("%s not sent: %s", name, exc)
            lost = True
        if out.offer is not None and lost:
            call_id, _ = out.offer
            self._offer_failures[call_id] = failures = self._offer_failures.get(call_id, 0) + 1
            for event in self.tracker.offer_failed(call_id, self.clock.now()):
                self._apply(event, time.perf_counter())
            if failures >= MAX_OFFER_FAILURES and self.router.call(call_id) is not None:
                # Asterisk keeps refusing to connect this caller (a permission missing in
                # manager.conf, a broken dialplan): do not loop, let the dialplan have them.
                log.error("call %s: %d connections refused; sent to the fallback", call_id, failures)
                self._apply(CallEnded(self.clock.now(), call_id, "ccd_error"), time.perf_counter())
                for action in self.tracker.fallback_actions(call_id):
                    self._send(_Out(action, time.perf_counter()))

    # --- connection -------------------------------------------------------------------

    async def _on_connected(self) -> None:
        """After every login: reconcile with what Asterisk really has, then go live.

        AMI events are held meanwhile and applied after the reconciliation; router
        timers wait too (a ring time-out must not fire for a Redirect that was only
        lost with the link: the resync reports that as a failed offer instead).
        """
        self.metrics.ami_connected.set(1)
        self.logins += 1
        if self.logins > 1:
            self.metrics.ami_reconnects.inc()
        self.metrics.resyncs.inc()
        channels = await self.ami.send_list({"Action": "CoreShowChannels"})
        details: list[Mapping[str, Any]] = []
        for ch in channels:
            if self.tracker.needs_status(ch):
                with contextlib.suppress(AmiActionError):  # hung up since the list
                    details.extend(
                        await self.ami.send_list(
                            {
                                "Action": "Status",
                                "Channel": ch["Channel"],
                                "Variables": self.tracker.status_vars,
                            }
                        )
                    )
        received = time.perf_counter()
        for event in self.tracker.resync(list(channels), details, self.clock.now()):
            if isinstance(event, CallArrived) and event.queue.startswith("outbound:"):
                self._outbound_arrived(event, received)
            else:
                self._apply(event, received)
        for dial_event in self.dials.resync(list(channels), self.clock.now()):
            self._dial_event(dial_event)
        held, self._held_events = self._held_events, []
        for msg, at in held:
            self._handle_ami(msg, at)
        self._resyncing = False
        await self._send_heartbeat()
        self._restore_pauses()
        self.ready = True
        self._wake.set()
        for agent_id, a in self.agents.items():
            if a.auto_login and self.router.agent(agent_id).state is AgentState.LOGGED_OUT:
                with contextlib.suppress(ServiceError):
                    self.login(agent_id)

    def _restore_pauses(self) -> None:
        stored, self._stored_agents = self._stored_agents, {}
        for agent_id, (state, reason, _) in stored.items():
            if state != "paused" or agent_id not in self.agents or reason in (None, HOLD_REASON):
                continue
            if self.router.agent(agent_id).state is AgentState.READY:
                with contextlib.suppress(ServiceError):
                    self._checked(AgentPaused(self.clock.now(), agent_id, str(reason)))
                    log.info("agent %s: paused again (%s), as before the restart", agent_id, reason)

    def _on_disconnected(self) -> None:
        self.ready = False
        self._resyncing = True
        # Events of a session whose reconciliation never finished: the next snapshot
        # supersedes them, and replayed after it they could resurrect calls long gone.
        self._held_events.clear()
        self.metrics.ami_connected.set(0)

    async def _send_heartbeat(self) -> None:
        # Asterisk's own clock (from the Pong) so that ccd and PBX clocks need not agree.
        pong = await self.ami.send({"Action": "Ping"})
        raw = pong.get("Timestamp", "")
        try:
            stamp = float(raw) if isinstance(raw, str) and raw else time.time()
        except ValueError:
            stamp = time.time()
        if self.accepting:  # stop() may have withdrawn the heartbeat during the Ping
            await self.ami.send(self.tracker.heartbeat_action(stamp))

    async def _heartbeat(self) -> None:
        while True:
            # The stamp is Asterisk's clock, which a demo runs `speed` times faster.
            await asyncio.sleep(HEARTBEAT_EVERY_S / self.clock.speed)
            if self.ami.connected and self.accepting:
                with contextlib.suppress(AmiError, asyncio.TimeoutError):
                    await self._send_heartbeat()

    # --- router timers ----------------------------------------------------------------

    async def _timers(self) -> None:
        while True:
            deadline = self.router.next_deadline() if self.ready else None
            self._wake.clear()
            if deadline is not None:
                now = self.clock.now()
                if deadline <= now:
                    received = time.perf_counter()
                    self._execute(self.router.on_timer(now), received)
                    self._wake.set()
                    continue
                delay = self.clock.wall_delay(deadline - now)
            else:
                delay = None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    # --- requests from the API --------------------------------------------------------

    def _agent_settings(self, agent_id: str) -> AgentSettings:
        a = self.agents.get(agent_id)
        if a is None:
            raise ServiceError(f"unknown agent {agent_id!r}", 404)
        return a

    def login(self, agent_id: str) -> str:
        a = self._agent_settings(agent_id)
        if self.router.agent(agent_id).state is not AgentState.LOGGED_OUT:
            return "logged_in"
        if a.mode == "ring":
            self._apply(AgentLoggedIn(self.clock.now(), agent_id), time.perf_counter())
            return "logged_in"
        if not self.ready:
            raise ServiceError("not connected to Asterisk", 503)
        status = self.login_status.get(agent_id)
        # A login call rings the phone for the ring time-out at most; give it that and
        # some slack before a new attempt may replace it.
        patience = self.config.ring_timeout_s / self.clock.speed + 10.0
        if status is not None and status[0] == "pending" and time.monotonic() - status[1] < patience:
            return "pending"
        action = dict(self.tracker.login_action(agent_id, next(self._login_seq)))
        action_id = f"{self.ami.action_id_prefix}-login-{agent_id}-{next(self._login_seq)}"
        action["ActionID"] = action_id
        self._login_actions[action_id] = agent_id
        self.login_status[agent_id] = ("pending", time.monotonic())
        self._send(_Out(action, time.perf_counter(), login=agent_id))
        return "pending"

    def logout(self, agent_id: str, *, force: bool = False) -> str:
        a = self._agent_settings(agent_id)
        state = self.router.agent(agent_id).state
        if state in (AgentState.RESERVED, AgentState.TALKING) and not force:
            # Hanging up their phone would pull the caller out of the conversation.
            raise ServiceError(
                f"agent {agent_id!r} is {state.value}: pause them (the pause waits for the call) "
                "and log out after, or force the logout",
                409,
            )
        action = self.tracker.logout_action(agent_id) if a.mode == "session" else None
        if action is not None:
            if not self.ready:
                raise ServiceError("not connected to Asterisk", 503)
            self._send(_Out(action, time.perf_counter()))
            return "pending"
        self._apply(AgentLoggedOut(self.clock.now(), agent_id), time.perf_counter())
        return "logged_out"

    def pause(self, agent_id: str, reason: str) -> str:
        self._agent_settings(agent_id)
        self._checked(AgentPaused(self.clock.now(), agent_id, reason))
        self._note_agent(agent_id, "paused", reason)
        return self.router.agent(agent_id).state.value

    def make_ready(self, agent_id: str) -> str:
        self._agent_settings(agent_id)
        self._checked(AgentReady(self.clock.now(), agent_id))
        self._note_agent(agent_id, "ready", None)
        return self.router.agent(agent_id).state.value

    def _note_agent(self, agent_id: str, state: str, reason: str | None) -> None:
        self.outbound.note(self.outbound.store.agent_ops(agent_id, state, reason, self.clock.now()))
        self._flush_soon()

    def _checked(self, event: Event) -> None:
        """Apply a request's event, turning an illegal move into a 409 for the caller."""
        try:
            commands = self.router.handle(event)
        except (RouterError, IllegalTransitionError) as exc:
            raise ServiceError(str(exc), 409) from None
        self._execute(commands, time.perf_counter())
        self._wake.set()

    def hangup(self, call_id: str) -> None:
        action = self.tracker.hangup_action(call_id)
        if action is None or self.router.call(call_id) is None:
            raise ServiceError(f"unknown call {call_id!r}", 404)
        if not self.ready:
            raise ServiceError("not connected to Asterisk", 503)
        self._send(_Out(action, time.perf_counter()))

    def transfer(self, call_id: str, queue: str) -> None:
        snap = self.router.call(call_id)
        if snap is None:
            raise ServiceError(f"unknown call {call_id!r}", 404)
        if queue not in self.router.queue_names:
            raise ServiceError(f"unknown queue {queue!r}", 404)
        if snap.state is not CallState.TALKING:
            raise ServiceError(f"call {call_id!r} is {snap.state.value}, not talking to an agent")
        if not self.ready:
            raise ServiceError("not connected to Asterisk", 503)
        for action in self.tracker.transfer_actions(call_id, queue):
            self._send(_Out(action, time.perf_counter()))

    # --- outbound ---------------------------------------------------------------------

    def campaign_picture(self, name: str) -> AgentPicture | None:
        queue = f"outbound:{name}"
        return picture_from_router(self.router, queue) if queue in self.router.queue_names else None

    def campaign_progress(self) -> list[dict[str, Any]]:
        return [self.outbound.progress(n, self.campaign_picture(n)) for n in list(self.outbound.campaigns)]

    def install_campaign_queue(self, live: LiveCampaign) -> None:
        """The ACD queue a campaign's answered humans wait in, served by the agents of
        the queue the campaign names (blended agents serve both)."""
        name = f"outbound:{live.name}"
        if name in self.router.queue_names:
            return
        base = live.campaign.queue
        if base not in self.router.queue_names:
            raise ServiceError(f"campaign {live.name}: unknown ACD queue {base!r}", 409)
        cfg = self.router.queue_config(base)
        out = self.router.add_queue(
            acd_queue_config(live.campaign, skills=cfg.skills, groups=cfg.groups, wrap_up_s=cfg.wrap_up_s)
        )
        for agent_id, a in self.agents.items():
            queues = a.profile.queues
            if queues and base in queues and name not in queues:
                profile = replace(a.profile, queues=(*queues, name))
                self.agents[agent_id] = replace(a, profile=profile)
                out += self.router.register_agent(profile)
        self._shares.clear()
        self._execute(out, time.perf_counter())

    def _flush_soon(self) -> None:
        """Write the outbound facts noted so far, behind the event that made them."""
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await self.outbound.flush()
        except KvError as exc:  # kept in the journal; the next flush retries
            log.error("outbound store: %s", exc)

    async def _dialer(self) -> None:
        """Pace every running campaign, every ``pace_every`` of service time."""
        settings = self.config.outbound
        while True:
            await asyncio.sleep(self.clock.wall_delay(settings.pace_every_s))
            now = self.clock.now()
            for event in self.dials.reap(now):
                self._dial_event(event)
            if not self.ready or not self.accepting:
                continue
            self._execute(self.router.on_timer(now), time.perf_counter())
            for live in self.outbound.running():
                try:
                    await self._pace(live, now)
                except Exception:  # one campaign's trouble must not stop the others' dialling
                    log.exception("campaign %s: pacing failed", live.name)

    async def _pace(self, live: LiveCampaign, now: float) -> None:
        settings = self.config.outbound
        queue = f"outbound:{live.name}"
        if queue not in self.router.queue_names:
            return  # its ACD queue could not be installed (see start): nobody to take the calls
        free = settings.max_channels - len(self.dials.calls)
        sent = self._cps_window.setdefault(live.name, deque())
        while sent and sent[0] <= now - 1.0:
            sent.popleft()
        room = min(free, math.floor(settings.max_cps) - len(sent))
        if room <= 0:
            return
        picture = picture_from_router(self.router, queue)
        shares = self._shares.get(live.name)
        if shares is None:
            profiles = [a.profile for a in self.agents.values()]
            shares = self._shares[live.name] = competing_shares(self.router, queue, profiles)
        competing = competing_rate(self.router, shares, since_s=now - self._started_at)
        try:
            dials = await self.outbound.launch(
                live.name, now, picture, competing_rate_per_s=competing, max_dials=room
            )
        except KvError as exc:
            # Not on record, so not sent: no call may go out that a restart could not see.
            log.error("campaign %s: not dialling, the store failed: %s", live.name, exc)
            return
        for dial in dials:
            sent.append(now)
            try:
                self._originate_dial(live, dial, now)
            except Exception as exc:  # one bad dial must not stop the dialler
                log.error("call %s: not placed: %s", dial.call_id, exc)
                self.dials.forget(dial.call_id)
                self.outbound.failed(now, dial.call_id, Outcome.FAILED, f"not placed: {exc}")
                self._release_hold(dial.call_id)
                self._flush_soon()

    def _originate_dial(self, live: LiveCampaign, dial: Dial, now: float) -> None:
        if dial.agent_id is not None:
            # A personal call (callback, preview): its agent is held for it meanwhile.
            with contextlib.suppress(ServiceError):
                self._checked(AgentPaused(now, dial.agent_id, HOLD_REASON))
                self._held_for[dial.call_id] = dial.agent_id
        campaign = live.campaign
        self.dials.track(dial, now)
        action = self.dials.originate_action(
            dial,
            action_id=f"{self.ami.action_id_prefix}-dial-{next(self._dial_seq)}",
            trunk=self.config.outbound.trunk,
            amd=campaign.amd,
            amd_message=campaign.amd_message if campaign.amd_action is AmdAction.MESSAGE else None,
            safe_harbour=campaign.safe_harbour,
        )
        # originate() keeps our ActionID: a failed Originate is known only by it.
        task = asyncio.get_running_loop().create_task(self._send_dial(dial.call_id, action))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send_dial(self, call_id: str, action: Mapping[str, Any]) -> None:
        try:
            await self.ami.originate(action)
        except AmiActionError as exc:
            self.metrics.ami_actions.labels("Originate", "error").inc()
            log.warning("call %s: Originate refused: %s", call_id, exc)
            if self.outbound.state_of(call_id) is DialState.RINGING:
                self.dials.forget(call_id)
                self.outbound.failed(self.clock.now(), call_id, Outcome.FAILED, f"Originate refused: {exc}")
                self._release_hold(call_id)
                self._flush_soon()
            return
        except AmiError as exc:
            # No reply (a timeout, the link lost): the Originate may be ringing a phone
            # right now. The dial stays tracked; its events, the resync or the reaper
            # settle it.
            self.metrics.ami_actions.labels("Originate", "failed").inc()
            log.warning("call %s: Originate sent, no reply: %s", call_id, exc)
            return
        self.metrics.ami_actions.labels("Originate", "ok").inc()

    def _dial_event(self, event: DialEvent) -> None:
        call_id = event.call_id
        state = self.outbound.state_of(call_id)
        if state is None:
            return  # not ours, or settled already (a router record got there first)
        if isinstance(event, DialFailed) and state is DialState.RINGING:
            self.outbound.failed(event.at, call_id, event.outcome, event.detail)
            self._release_hold(call_id)
        elif isinstance(event, DialAnswered) and state is DialState.RINGING:
            arrived = self.outbound.answered(event.at, call_id, human=event.human)
            if arrived is not None:
                self._arrivals[call_id] = arrived
        elif isinstance(event, (DialEnded, DialFailed)):
            at = event.at
            if state in (DialState.CONNECTED, DialState.MACHINE):
                self.outbound.ended(at, call_id)
            elif state is DialState.WAITING:
                self._arrivals.pop(call_id, None)
                self.outbound.abandoned(at, call_id, "hung up before an agent took the call")
            else:  # answered and gone without a verdict
                self.outbound.failed(at, call_id, Outcome.FAILED, "hung up before AMD's verdict")
            self._release_hold(call_id)
        self._flush_soon()

    def _outbound_arrived(self, event: CallArrived, received: float) -> None:
        """A human the dialer called reached ccd-hold: the runner's arrival, not the
        dialplan's, goes to the router (it carries the personal agent and the data)."""
        arrived = self._arrivals.pop(event.call_id, None)
        if arrived is None and self.outbound.state_of(event.call_id) is DialState.RINGING:
            # In ccd-hold, so a human (or AMD let them through), though the verdict's
            # UserEvent was lost with the link: book the answer now.
            arrived = self.outbound.answered(event.at, event.call_id, human=True)
            self._flush_soon()
        if arrived is not None and not self.accepting:
            # ccd is stopping: the caller goes to the fallback, which for this call is
            # an abandon (booked now, not lost with the process).
            self.outbound.abandoned(event.at, event.call_id, "ccd stopping")
            self._release_hold(event.call_id)
            self._flush_soon()
            arrived = None
        if arrived is None:
            # Not a call this ccd placed (a restart lost it): do not leave them in silence.
            for action in self.tracker.fallback_actions(event.call_id):
                self._send(_Out(action, received))
            return
        self._apply(replace(arrived, at=max(arrived.at, event.at)), received)
        if arrived.agent_id is not None:
            self._release_hold(event.call_id, agent_id=arrived.agent_id)

    def _release_hold(self, call_id: str, *, agent_id: str | None = None) -> None:
        """The agent held for a personal call is ready again (for it, or for anything)."""
        agent = agent_id if agent_id is not None else self._held_for.pop(call_id, None)
        if agent_id is not None:
            self._held_for.pop(call_id, None)
        if agent is None:
            return
        snap = self.router.agent(agent)
        if snap.state is AgentState.PAUSED and snap.reason == HOLD_REASON:
            with contextlib.suppress(ServiceError):
                self._checked(AgentReady(self.clock.now(), agent))
