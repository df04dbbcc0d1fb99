"""Benchmark: routed calls per second through the full live path, and the hand-off latency.

Run with ``python bench/ami.py`` (about 3.5 minutes; ``-v`` for every window, the PBX's
counters and what ccd logged; ``--agents 1000 --rate 1000`` for one case).

The path measured: the simulated Asterisk (``ccd simulate-pbx``, its own process, so
that it has its own core of the two) places Poisson callers in its ``ccd-hold``
dialplan; each ``UserEvent CCDCallWaiting`` crosses TCP and panoramisk 1.4 into
``AcdService`` (``telephony.AmiClient`` -> ``CallTracker`` -> ``acd.Router`` ->
metrics), whose ``Setvar`` + ``Redirect`` go back the same way and put the caller in
the agent's conference; the PBX hangs the caller up after the handle time and that
``Hangup`` frees the agent. About 13 AMI events per call cross the wire (Newchannel,
Newstate, UserEvent, MusicOnHold*, ConfbridgeJoin, Bridge*, HangupRequest, Hangup...)
plus the two responses. ccd runs in this process, without its HTTP server.

Cases: 100, 1,000 and 5,000 agents on persistent sessions (``auto_login``, built by
``demo_config`` as for ``ccd serve --demo``), one queue, Poisson arrivals at a wall-clock
rate (``--rate``, default 1,000 and 2,000 callers/s), callers who never hang up, and
exponential handle times sized so that occupancy is 0.6 (mean handle time in wall
seconds = 0.6 x agents / rate: 60 ms for 100 agents at 1,000/s, 3 s for 5,000). At 0.6
a free agent is nearly always there, so what is timed is the path, not queueing; 2,000/s
is there to find where each side saturates. The PBX runs at ``--speed`` 10: its 30 s
heartbeat check is then 3 wall seconds and ccd's heartbeat 1 s; the speed only rescales
the scenario, the wall-clock rate is what is set.

Method, per case: start the PBX with a generated scenario (free port, random secret in
``CCD_AMI_SECRET``), connect, wait until every agent is logged in and the queue has
emptied, warm up for max(2 s, 3 mean handle times) so that hang-ups run at the arrival
rate, then measure ``--repeats`` consecutive windows of ``--seconds``. A window's
figures: callers offered (CCDCallWaiting received) and routed (connecting Redirects
written) per wall second, callers waiting at its end, callers the dialplan sent to its
fallback during it (CCDFallback: ccd too slow or silent); the CPU time of this process
(``time.process_time``: ccd and a probe of a few µs per call, nothing else) per routed
call and its inverse, routed calls per ccd CPU-second, which is what one core could
route if ccd had it to itself; this process's and the PBX process's CPU (``/proc/<pid>
/stat``) as a share of the window, to show which side saturates; the hand-off latency,
``AcdService.latency_samples``: from receiving the AMI event that led to the decision
to writing the connecting Redirect (p50, p99, max); and the round trip as the caller
sees it, from receiving CCDCallWaiting to receiving the caller's ConfbridgeJoin (both
processes and TCP twice). The window reported is the one with the least CPU per call
(noise only ever adds); ``-v`` shows the others.

Reference, same run, same PBX: "bare", a raw panoramisk ``Manager`` with no routing
core. It logs the same agents in (same Originate), sends the same heartbeat, answers
each CCDCallWaiting with the same Setvar + Redirect to an agent taken from a free list
(round robin) and puts the agent back on the caller's Hangup: no tracker, router or
metrics, and the two actions are written inline in the event callback. The ratio ccd
÷ bare of CPU per call is the cost of ccd's logic over the transport floor (panoramisk's
parsing is in both); the latency ratio is the cost of ccd's outbox and sender task,
which write an action only after the event loop has finished the socket read that
brought the event (often hundreds of events) and the replies of the previous batch.

``--profile`` runs ccd alone on the first --agents/--rate case under cProfile (measured
windows only; use a rate ccd sustains under the profiler's ~2x slow-down, e.g. 500)
and prints the top functions and the busy time by part, C functions and dict helpers
charged to their callers. The simulated PBX prints its counters when it stops; they
include callers of the start-up and the shutdown (sent to the fallback while ccd is
not yet or no longer there), so the window columns are the ones to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import itertools
import logging
import math
import os
import platform
import pstats
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from panoramisk import Manager

# bench/sim.py is named like the package "sim" that ccd imports: drop this script's folder
# from the import path before importing ccd (as bench/sim.py does).
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from acd.agents import AgentState  # noqa: E402
from ccd.serve_command import demo_config  # noqa: E402
from ccd.service import AcdService  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

OCCUPANCY = 0.6
QUEUE = "q"
GROUP = "a"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOGIN_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 10.0
CHILDREN: set[int] = set()  # pids of PBX processes, killed at exit whatever happens


# --- the simulated Asterisk, in its own process -----------------------------------------------


def scenario_toml(agents: int, rate: float, speed: float, duration_wall_s: float) -> str:
    """One queue, ``rate`` callers per wall second, occupancy OCCUPANCY, no abandonment."""
    rate_virtual = rate / speed
    handle_virtual = OCCUPANCY * agents / rate_virtual
    return (
        "[simulation]\n"
        f'duration = "{duration_wall_s * speed:.0f}s"\n'
        "seed = 1\n\n"
        "[[agents]]\n"
        f'group = "{GROUP}"\n'
        f"count = {agents}\n"
        f"skills = {{ {QUEUE} = 1.0 }}\n\n"
        "[[queues]]\n"
        f'name = "{QUEUE}"\n'
        f"arrivals = {{ rate_per_hour = {rate_virtual * 3600:.6f} }}\n"
        f'handle_time = {{ dist = "exponential", mean = "{handle_virtual:.6f}s" }}\n'
    )


@dataclass
class PbxProcess:
    proc: asyncio.subprocess.Process
    port: int
    stderr_path: Path
    summary: str = ""  # what simulate-pbx prints when it stops (its counters)
    stderr_tail: list[str] = field(default_factory=list)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the PBX process so far."""
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


@contextlib.asynccontextmanager
async def pbx_process(scenario: Path, speed: float, secret: str, workdir: Path) -> Any:
    """``ccd simulate-pbx`` on a free port; SIGTERM (then SIGKILL) on the way out, always."""
    stderr_path = workdir / "pbx.stderr"
    with stderr_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ccd",
            "simulate-pbx",
            "--listen",
            "127.0.0.1:0",
            "--scenario",
            str(scenario),
            "--speed",
            f"{speed:g}",
            "--seed",
            "1",
            "--user",
            "ccd",
            env={**os.environ, "CCD_AMI_SECRET": secret},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # a Ctrl-C reaches us only; we stop it
        )
    CHILDREN.add(proc.pid)
    pbx = PbxProcess(proc, 0, stderr_path)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30.0)
        m = re.search(rb"AMI on [^ ]+:(\d+) ", line)
        if m is None:
            raise RuntimeError(f"simulate-pbx did not start: {line!r} {stderr_path.read_text()[-2000:]}")
        pbx.port = int(m.group(1))
        yield pbx
    finally:
        await _terminate(proc)
        if proc.stdout is not None:
            with contextlib.suppress(Exception):
                pbx.summary = (await asyncio.wait_for(proc.stdout.read(), 2.0)).decode().strip()
        with contextlib.suppress(OSError):
            pbx.stderr_tail = stderr_path.read_text(errors="replace").strip().splitlines()[-3:]
        CHILDREN.discard(proc.pid)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, up to 10 s for a clean stop, then SIGKILL; cancelled (Ctrl-C): SIGKILL at once."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise


def _kill_children() -> None:
    for pid in list(CHILDREN):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        CHILDREN.discard(pid)


# --- the two sides: ccd, and the bare reference ----------------------------------------------


@dataclass
class Probe:
    """Counters both sides keep in the same way."""

    offered: int = 0
    fallback: int = 0  # callers the dialplan gave up on (CCDFallback): ccd was silent or too slow
    latency: list[float] = field(default_factory=list)  # hand-off -> connecting Redirect written
    rtt: list[float] = field(default_factory=list)  # CCDCallWaiting -> the caller's ConfbridgeJoin
    waiting_since: dict[str, float] = field(default_factory=dict)

    def seen(self, event: str, user_event: str, uid: str) -> None:
        if event == "UserEvent":
            if user_event == "CCDCallWaiting":
                self.offered += 1
                self.waiting_since[uid] = time.perf_counter()
            elif user_event == "CCDFallback":
                self.fallback += 1
                self.waiting_since.pop(uid, None)
        elif event == "ConfbridgeJoin":
            t = self.waiting_since.pop(uid, None)
            if t is not None:
                self.rtt.append(time.perf_counter() - t)


class CcdSide:
    """The real service, as ``ccd serve --demo`` would build it, minus HTTP."""

    name = "ccd"

    def __init__(self, scenario: Path, port: int, secret: str, speed: float) -> None:
        config = demo_config(load_scenario(scenario), ami_port=port, secret=secret, listen=("127.0.0.1", 0))
        self.service = AcdService(config, speed=speed)
        self.probe = Probe()
        self.probe.latency = self.service.latency_samples = []
        inner = self.service.ami.on_event
        seen = self.probe.seen

        def on_event(msg: Mapping[str, Any]) -> None:
            ev = msg.get("Event")
            if ev in ("UserEvent", "ConfbridgeJoin"):
                seen(ev, msg.get("UserEvent", ""), msg.get("Uniqueid", ""))
            inner(msg)  # type: ignore[arg-type]

        self.service.ami.on_event = on_event

    async def start(self) -> None:
        await self.service.start()

    def logged_in(self) -> int:
        states = self.service.router.agents_by_state()
        return sum(n for s, n in states.items() if s is not AgentState.LOGGED_OUT)

    def waiting(self) -> int:
        return self.service.router.waiting_count(QUEUE)

    def routed(self) -> int:
        return len(self.probe.latency)

    async def stop(self) -> None:
        await self.service.stop()


class _BareManager(Manager):  # type: ignore[misc]
    def connection_lost(self, exc: BaseException | None) -> None:
        self._connected = False  # no reconnect: the benchmark is over


class BareSide:
    """A raw panoramisk Manager: log in, Setvar + Redirect to a free agent, free it on Hangup."""

    name = "bare"

    def __init__(self, agents: int, port: int, secret: str, speed: float) -> None:
        self.agents = [f"{GROUP}-{k + 1}" for k in range(agents)]
        self.port, self.secret, self.speed = port, secret, speed
        self.probe = Probe()
        self.free: deque[str] = deque()
        self.joined: set[str] = set()
        self.queue: deque[tuple[str, str, float]] = deque()  # (uid, channel, received)
        self.talking: dict[str, str] = {}  # call uid -> agent
        self.gone: set[str] = set()
        self.manager: Any = None
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        m = self.manager = _BareManager(
            loop=asyncio.get_running_loop(),
            host="127.0.0.1",
            port=self.port,
            username="ccd",
            secret=self.secret,
            ping_delay=5,
            ping_interval=5,
        )
        m.register_event("UserEvent", self._on_user_event)
        m.register_event("ConfbridgeJoin", self._on_join)
        m.register_event("Hangup", self._on_hangup)
        await m.connect()
        while m.authenticated_future is None:
            await asyncio.sleep(0)
        login = await asyncio.wait_for(m.authenticated_future, 10.0)
        if not login.success:
            raise RuntimeError(f"bare client: login refused: {login.get('Message')}")
        await self._beat()
        self._heartbeat = asyncio.create_task(self._heartbeats())
        for agent in self.agents:
            m.send_action(
                {
                    "Action": "Originate",
                    "Channel": f"PJSIP/{agent}",
                    "Context": "ccd-agent-session",
                    "Exten": "s",
                    "Priority": "1",
                    "Timeout": "15000",
                    "CallerID": f'"ccd" <{agent}>',
                    "Async": "true",
                    "ChannelId": f"ccd-agent-{agent}-1",
                    "Variable": f"CCD_AGENT={agent}",
                },
                as_list=False,
            )

    async def _beat(self) -> None:
        pong = await asyncio.wait_for(self.manager.send_action({"Action": "Ping"}, as_list=False), 5.0)
        stamp = float(pong.get("Timestamp") or time.time())
        await asyncio.wait_for(
            self.manager.send_action(
                {"Action": "Setvar", "Variable": "CCD_HEARTBEAT", "Value": str(int(stamp))}, as_list=False
            ),
            5.0,
        )

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(10.0 / self.speed)  # as AcdService's heartbeat
            with contextlib.suppress(TimeoutError):
                await self._beat()

    def _connect(self, uid: str, channel: str, received: float) -> None:
        agent = self.free.popleft()
        self.talking[uid] = agent
        send = self.manager.send_action
        send({"Action": "Setvar", "Channel": channel, "Variable": "CCD_AGENT", "Value": agent}, as_list=False)
        self.probe.latency.append(time.perf_counter() - received)
        send(
            {
                "Action": "Redirect",
                "Channel": channel,
                "Context": "ccd-agent-join",
                "Exten": "s",
                "Priority": "1",
            },
            as_list=False,
        )

    def _on_user_event(self, _: Any, msg: Any) -> None:
        received = time.perf_counter()
        uid = msg.get("Uniqueid", "")
        self.probe.seen("UserEvent", msg.get("UserEvent", ""), uid)
        if msg.get("UserEvent") != "CCDCallWaiting":
            return
        if self.free:
            self._connect(uid, msg.get("Channel", ""), received)
        else:
            self.queue.append((uid, msg.get("Channel", ""), received))

    def _on_join(self, _: Any, msg: Any) -> None:
        uid = msg.get("Uniqueid", "")
        if uid.startswith("ccd-agent-"):
            agent = uid[len("ccd-agent-") :].rsplit("-", 1)[0]
            if agent not in self.joined:
                self.joined.add(agent)
                self._free(agent, time.perf_counter())
        else:
            self.probe.seen("ConfbridgeJoin", "", uid)

    def _on_hangup(self, _: Any, msg: Any) -> None:
        received = time.perf_counter()
        uid = msg.get("Uniqueid", "")
        agent = self.talking.pop(uid, None)
        if agent is not None:
            self._free(agent, received)
        elif not uid.startswith("ccd-agent-"):
            self.gone.add(uid)  # a caller that never reached an agent (fallback)

    def _free(self, agent: str, received: float) -> None:
        self.free.append(agent)
        while self.queue and self.free:
            uid, channel, _ = self.queue.popleft()
            if uid in self.gone:
                self.gone.discard(uid)
                continue
            self._connect(uid, channel, received)

    def logged_in(self) -> int:
        return len(self.joined)

    def waiting(self) -> int:
        return len(self.queue)

    def routed(self) -> int:
        return len(self.probe.latency)

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self.manager is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.manager.send_action(
                        {"Action": "Setvar", "Variable": "CCD_HEARTBEAT", "Value": "0"}, as_list=False
                    ),
                    2.0,
                )
            self.manager.close()


Side = CcdSide | BareSide


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Window:
    wall_s: float
    offered: int
    routed: int
    cpu_s: float  # this process
    pbx_cpu_s: float
    backlog: int  # callers waiting at the end
    fallback: int
    latency: list[float]
    rtt: list[float]

    @property
    def offered_per_s(self) -> float:
        return self.offered / self.wall_s

    @property
    def routed_per_s(self) -> float:
        return self.routed / self.wall_s

    @property
    def cpu_us_per_call(self) -> float:
        return 1e6 * self.cpu_s / self.routed if self.routed else math.inf


@dataclass
class Run:
    side: str
    agents: int
    rate: float
    windows: list[Window]
    login_s: float
    pbx_summary: str
    pbx_stderr: list[str]
    warnings: dict[str, int]  # what ccd (or panoramisk) logged at WARNING and above, by message start

    @property
    def best(self) -> Window:
        return min(self.windows, key=lambda w: w.cpu_us_per_call)


class LogCounter(logging.Handler):
    """Counts log records instead of printing them (an overloaded ccd logs one per failed action)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name}: {record.getMessage()[:60]}"
        key = re.sub(r"\d+", "N", key)
        self.counts[key] = self.counts.get(key, 0) + 1


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def measure(side: Side, pbx: PbxProcess, seconds: float) -> Window:
    p = side.probe
    n_lat, n_rtt, offered, routed, fallback = len(p.latency), len(p.rtt), p.offered, side.routed(), p.fallback
    cpu, pbx_cpu, t0 = time.process_time(), pbx.cpu_s(), time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    cpu, pbx_cpu = time.process_time() - cpu, pbx.cpu_s() - pbx_cpu
    return Window(
        wall_s=wall,
        offered=p.offered - offered,
        routed=side.routed() - routed,
        cpu_s=cpu,
        pbx_cpu_s=pbx_cpu,
        backlog=side.waiting(),
        fallback=p.fallback - fallback,
        latency=p.latency[n_lat:],
        rtt=p.rtt[n_rtt:],
    )


async def run_case(
    kind: str, agents: int, rate: float, args: argparse.Namespace, profile: cProfile.Profile | None = None
) -> Run:
    handle_wall = OCCUPANCY * agents / rate
    warmup = max(2.0, 3 * handle_wall)  # hang-ups reach the arrival rate after a few handle times
    budget = LOGIN_TIMEOUT_S + DRAIN_TIMEOUT_S + warmup + args.repeats * args.seconds + 30
    secret = secrets.token_urlsafe(18)
    counter = LogCounter()
    logging.getLogger().addHandler(counter)
    try:
        with tempfile.TemporaryDirectory(prefix="ccd-bench-ami-") as tmp:
            workdir = Path(tmp)
            scenario = workdir / "scenario.toml"
            scenario.write_text(scenario_toml(agents, rate, args.speed, budget), encoding="utf-8")
            async with pbx_process(scenario, args.speed, secret, workdir) as pbx:
                side: Side = (
                    CcdSide(scenario, pbx.port, secret, args.speed)
                    if kind == "ccd"
                    else BareSide(agents, pbx.port, secret, args.speed)
                )
                try:
                    t0 = time.perf_counter()
                    await asyncio.wait_for(side.start(), 30.0)
                    while side.logged_in() < agents:
                        if time.perf_counter() - t0 > LOGIN_TIMEOUT_S:
                            raise RuntimeError(
                                f"{kind}: only {side.logged_in()}/{agents} agents logged in after "
                                f"{LOGIN_TIMEOUT_S:.0f} s"
                            )
                        await asyncio.sleep(0.05)
                    login_s = time.perf_counter() - t0
                    # Callers who came while agents were logging in: let the queue empty (if it can).
                    t1 = time.perf_counter()
                    while side.waiting() > 0 and time.perf_counter() - t1 < DRAIN_TIMEOUT_S:
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(warmup)
                    windows = []
                    for _ in range(args.repeats):
                        if profile is not None:
                            profile.enable()
                        try:
                            windows.append(await measure(side, pbx, args.seconds))
                        finally:
                            if profile is not None:
                                profile.disable()
                finally:
                    await side.stop()
    finally:
        logging.getLogger().removeHandler(counter)
    return Run(kind, agents, rate, windows, login_s, pbx.summary, pbx.stderr_tail, counter.counts)


# --- reporting ---------------------------------------------------------------------------------


def ms(x: float) -> str:
    return f"{1e3 * x:.2f}"


def row(run: Run) -> str:
    w = run.best
    lat, rtt = w.latency, w.rtt
    return (
        f"{run.agents:>6} {run.rate:>6.0f} {run.side:<5}"
        f" {w.offered_per_s:>7.0f} {w.routed_per_s:>8.0f} {w.backlog:>6} {w.fallback:>6}"
        f" {w.cpu_us_per_call:>6.0f} {1e6 / w.cpu_us_per_call:>7.0f}"
        f" {100 * w.cpu_s / w.wall_s:>4.0f}% {100 * w.pbx_cpu_s / w.wall_s:>4.0f}%"
        f" {ms(quantile(lat, 0.5)):>7} {ms(quantile(lat, 0.99)):>7} {ms(max(lat, default=math.nan)):>7}"
        f" {ms(quantile(rtt, 0.5)):>7} {ms(quantile(rtt, 0.99)):>7}"
    )


HEADER = (
    f"{'agents':>6} {'rate':>6} {'side':<5} {'offer':>7} {'routed':>8} {'queue':>6} {'fall-':>6}"
    f" {'µs CPU':>6} {'calls/':>7} {'own':>5} {'PBX':>5}"
    f" {'hand-off -> Redirect ms':>23} {'round trip ms':>15}\n"
    f"{'':>6} {'/s':>6} {'':<5} {'/s':>7} {'/s':>8} {'at end':>6} {'back':>6}"
    f" {'/call':>6} {'CPU-s':>7} {'CPU':>5} {'CPU':>5}"
    f" {'p50':>7} {'p99':>7} {'max':>7} {'p50':>7} {'p99':>7}"
)


def ratio_line(ccd: Run, bare: Run) -> str:
    c, b = ccd.best, bare.best

    def r(x: float, y: float) -> str:
        return f"{x / y:.1f}x" if y > 0 and math.isfinite(x / y) else "-"

    return (
        f"{'':>13} ccd ÷ bare: CPU per call {r(c.cpu_us_per_call, b.cpu_us_per_call)},"
        f" hand-off p50 {r(quantile(c.latency, 0.5), quantile(b.latency, 0.5))}"
        f" p99 {r(quantile(c.latency, 0.99), quantile(b.latency, 0.99))},"
        f" round trip p50 {r(quantile(c.rtt, 0.5), quantile(b.rtt, 0.5))}"
        f" p99 {r(quantile(c.rtt, 0.99), quantile(b.rtt, 0.99))}"
    )


def details(run: Run) -> list[str]:
    """With --verbose: every window, the PBX's own counters, what was logged."""
    out = [
        f"{'':>13} {run.side}: logged in in {run.login_s:.1f} s; windows (routed/s, µs CPU/call, p99 ms): "
        + ", ".join(
            f"({w.routed_per_s:.0f}, {w.cpu_us_per_call:.0f}, {ms(quantile(w.latency, 0.99))})"
            for w in run.windows
        )
    ]
    if run.pbx_summary:
        out.append(f"{'':>13} {run.pbx_summary.splitlines()[-1]}")
    out += [f"{'':>13} PBX stderr: {line}" for line in run.pbx_stderr]
    for key, n in sorted(run.warnings.items(), key=lambda kv: -kv[1])[:4]:
        out.append(f"{'':>13} logged {n}x: {key}")
    return out


def aim_met(run: Run) -> bool:
    """The issue's aim: >= 1,000 routed calls/s on one core, p99 below 5 ms."""
    w = run.best
    return w.routed_per_s >= 1000 * 0.97 and w.cpu_s / w.wall_s <= 1.0 and quantile(w.latency, 0.99) < 0.005


FuncKey = tuple[str, int, str]  # pstats: (file, line, function)

# Where time is charged: the first pattern found in a function's file names its part.
PARTS = (
    ("/panoramisk/utils.py", ""),  # panoramisk's case-insensitive dict: charged to its caller
    ("/panoramisk/", "panoramisk (parsing, matching replies)"),
    ("/prometheus_client/", "prometheus_client (metrics)"),
    ("/telephony/ami.py", "telephony/ami.py (AmiClient)"),
    ("/telephony/calls.py", "telephony/calls.py (CallTracker)"),
    ("/acd/", "acd (Router)"),
    ("/ccd/service.py", "ccd/service.py (AcdService)"),
    ("/ccd/", "ccd (other)"),
    ("/asyncio/", "asyncio (event loop, tasks)"),
    ("/selectors.py", "asyncio (event loop, tasks)"),
    (f"{os.sep}bench{os.sep}ami.py", "bench/ami.py (probe)"),
    ("_collections_abc", ""),  # Mapping mixins of panoramisk's dict: charged to the caller
    ("~", ""),  # C functions (str.lower, dict.get, socket.send...): charged to the caller
)
IDLE = "idle (waiting in epoll)"


def _part(key: FuncKey) -> str:
    filename, _, func = key
    if filename == "~" and "poll" in func and "epoll" in func:
        return IDLE
    for needle, name in PARTS:
        if needle in filename:
            return name
    return "other Python"


def _shares(
    stats: dict[FuncKey, Any], key: FuncKey, memo: dict[FuncKey, dict[str, float]]
) -> dict[str, float]:
    """How a function's own time divides among the parts that called it (for helpers: C functions,
    dict mixins), following the call edges up to the first caller that belongs to a part."""
    if key in memo:
        return memo[key]
    part = _part(key)
    if part:
        memo[key] = {part: 1.0}
        return memo[key]
    memo[key] = {"other Python": 1.0}  # a recursion comes back here: leave it there
    callers = stats[key][4]
    weights = {c: (edge[2] or edge[1]) for c, edge in callers.items() if c in stats}
    total = sum(weights.values())
    if not total:
        return memo[key]
    out: dict[str, float] = {}
    for caller, w in weights.items():
        for name, f in _shares(stats, caller, memo).items():
            out[name] = out.get(name, 0.0) + f * w / total
    memo[key] = out
    return out


def print_profile(profile: cProfile.Profile, routed: int, top: int = 25) -> None:
    stats = pstats.Stats(profile)
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())
    raw: dict[FuncKey, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[FuncKey, dict[str, float]] = {}
    parts: dict[str, float] = {}
    for key, (_, _, tt, _, _) in raw.items():
        for name, f in _shares(raw, key, memo).items():
            parts[name] = parts.get(name, 0.0) + f * tt
    idle = parts.pop(IDLE, 0.0)
    busy = sum(parts.values())
    print(
        f"busy time per routed call under cProfile, by part ({routed} calls; {1e6 * busy / routed:.0f} µs "
        f"busy, {1e6 * idle / routed:.0f} µs idle; C functions and dict helpers charged to their callers):"
    )
    for name, tt in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<40} {1e6 * tt / routed:>7.1f} µs  {100 * tt / busy:>5.1f} %")


# --- main --------------------------------------------------------------------------------------


def _numbers(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


async def amain(args: argparse.Namespace) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    print(
        f"# bench/ami.py  {datetime.now(UTC):%Y-%m-%d}  {platform.machine()} CPython "
        f"{platform.python_version()}  {os.cpu_count()} cores  PBX speed {args.speed:g}x  "
        f"occupancy {OCCUPANCY}  best of {args.repeats} windows of {args.seconds:g} s",
        flush=True,
    )
    if args.profile:
        agents, rate = args.agents[0], args.rates[0]
        profile = cProfile.Profile()
        run = await run_case("ccd", agents, rate, args, profile)
        print(HEADER)
        print(row(run))
        print_profile(profile, sum(w.routed for w in run.windows))
        return
    print(HEADER, flush=True)
    aim_rate = min((r for r in args.rates if r >= 1000), default=None)
    verdicts = []
    for agents, rate in itertools.product(args.agents, args.rates):
        runs = {}
        for kind in ("ccd", "bare"):
            run = runs[kind] = await run_case(kind, agents, rate, args)
            print(row(run), flush=True)
            if args.verbose:
                print("\n".join(details(run)), flush=True)
        print(ratio_line(runs["ccd"], runs["bare"]), flush=True)
        if rate == aim_rate:
            verdicts.append(f"{agents} agents: {'met' if aim_met(runs['ccd']) else 'NOT met'}")
    if verdicts:
        print(
            f"aim at {aim_rate} calls/s offered (all routed within one core, hand-off p99 < 5 ms): "
            + "; ".join(verdicts)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=_numbers, default=[100, 1000, 5000], help="e.g. 100,1000")
    parser.add_argument(
        "--rate", dest="rates", type=_numbers, default=[1000, 2000], help="offered callers/s, e.g. 1000,2000"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measured window")
    parser.add_argument("--repeats", type=int, default=3, help="measured windows per case (best reported)")
    parser.add_argument("--speed", type=float, default=10.0, help="the PBX's virtual-time speed-up")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile ccd on the first --agents/--rate case (try --rate 500)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="every window, PBX counters, ccd's log")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, handlers=[logging.NullHandler()])  # counted, not printed
    try:
        asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench/ami.py: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        _kill_children()


if __name__ == "__main__":
    main()
