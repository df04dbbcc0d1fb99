"""``ccd serve``: the live ACD, against a real Asterisk or the built-in simulated one.

``ccd serve --config config/ccd.toml`` connects to the Asterisk of the config.
``ccd serve --demo`` starts the simulated Asterisk in the same process with the
embedded demo scenario (callers arrive, wait, give up; agents answer and talk) and
routes its calls exactly as it would a real PBX's: over TCP, through AMI. The demo's
outbound campaigns (its ``[[campaigns]]``) are created with a generated list and
started, unless the store already has them (``--store redis://…`` keeps them across
runs), so the same agents take inbound calls and the dialer's. A status line every
few seconds shows the calls moving; ``/metrics`` shows the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from acd.agents import AgentProfile, AgentState
from acd.durations import parse_duration
from acd.errors import InputError
from ccd.config import AgentSettings, AmiSettings, ServiceConfig, load_config, parse_listen
from ccd.http import build_app
from ccd.kv import KvError
from ccd.service import AcdService
from sim.ami_server import SimulatedAsterisk
from sim.scenario import Scenario, load_scenario
from telephony.ami import AmiAuthError, AmiError

STATUS_EVERY_S = 5.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the live ACD (HTTP API, metrics) against Asterisk or the simulated one",
        description="Run the live ACD. With --demo, a simulated Asterisk runs in the same process and "
        "feeds it calls over real AMI.",
    )
    p.add_argument("--config", metavar="FILE", help="service config (TOML), e.g. config/ccd.toml")
    p.add_argument("--listen", metavar="HOST:PORT", help="HTTP address (default 127.0.0.1:8080)")
    p.add_argument("--demo", action="store_true", help="run against the built-in simulated Asterisk")
    p.add_argument("--scenario", metavar="FILE", help="with --demo: the scenario to simulate")
    p.add_argument("--speed", type=float, default=1.0, help="with --demo: run N times faster than real time")
    p.add_argument("--for", dest="duration", metavar="DURATION", help="stop after this long (wall time)")
    p.add_argument("--quiet", action="store_true", help="no status lines")
    p.add_argument(
        "--store",
        metavar="URL",
        help="with --demo: where campaigns live (memory: by default, or redis://host:port/db)",
    )
    p.set_defaults(run=run)


def demo_config(scenario: Scenario, *, ami_port: int, secret: str, listen: tuple[str, int]) -> ServiceConfig:
    """A service config matching a scenario: its queues, and its agents on persistent sessions."""
    agents = []
    for g in scenario.agents:
        for k in range(g.count):
            agent_id = f"{g.group}-{k + 1}"
            agents.append(
                AgentSettings(
                    profile=AgentProfile(agent_id, group=g.group, skills=g.skills, queues=g.queues),
                    device=f"PJSIP/{agent_id}",
                    mode="session",
                    auto_login=True,
                )
            )
    token = os.environ.get("CCD_ADMIN_TOKEN", "")
    return ServiceConfig(
        source="demo",
        listen_host=listen[0],
        listen_port=listen[1],
        ami=AmiSettings(host="127.0.0.1", port=ami_port, username="ccd", secret=secret, ping_interval_s=5.0),
        tokens={token: "admin"} if len(token) >= 16 else {},
        call_selection=scenario.call_selection,
        queues=tuple(q.config for q in scenario.queues),
        agents=tuple(agents),
    )


def _load_demo_scenario(path: str | None) -> Scenario:
    if path is not None:
        return load_scenario(path)
    with resources.as_file(resources.files("ccd") / "demo.toml") as p:
        return load_scenario(Path(p))


def run(args: argparse.Namespace) -> int:
    if args.demo == (args.config is not None):
        raise InputError("ccd serve", "give either --config FILE or --demo")
    if not args.demo and (args.scenario or args.speed != 1.0 or args.store):
        raise InputError("--scenario/--speed/--store", "only apply with --demo (the config has [store])")
    if args.store and not args.store.startswith(("memory:", "redis://", "rediss://", "unix://")):
        raise InputError("--store", f"{args.store!r}: use memory: or redis://host:port/db")
    if not 0 < args.speed <= 1000:
        raise InputError("--speed", f"{args.speed} must be in (0, 1000]")
    duration = None if args.duration is None else parse_duration(args.duration, where="--for")
    listen = parse_listen(args.listen, "--listen") if args.listen else None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_serve(args, listen, duration))


async def _serve(args: argparse.Namespace, listen: tuple[str, int] | None, duration: float | None) -> int:
    pbx = None
    if args.demo:
        scenario = _load_demo_scenario(args.scenario)
        secret = secrets.token_urlsafe(18)
        pbx = SimulatedAsterisk(scenario, speed=args.speed, username="ccd", secret=secret, seed=scenario.seed)
        await pbx.start()
        config = demo_config(scenario, ami_port=pbx.port, secret=secret, listen=listen or ("127.0.0.1", 8080))
        if args.store:
            config = replace(config, store_url=None if args.store == "memory:" else args.store)
    else:
        config = load_config(args.config)
        if listen is not None:
            config = _with_listen(config, listen)
    service = AcdService(config, speed=args.speed)
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, config.listen_host, config.listen_port)
        try:
            await site.start()
        except OSError as exc:
            raise InputError(
                "--listen", f"cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror}"
            ) from None
        where = "the simulated Asterisk" if pbx else f"Asterisk at {config.ami.host}:{config.ami.port}"
        print(
            f"ccd serve: http://{config.listen_host}:{config.listen_port} "
            f"(/metrics, /api/queues, /api/agents); connecting to {where}",
            flush=True,
        )
        status = None if args.quiet else asyncio.create_task(_status(service))
        started = time.monotonic()
        # Connecting may take long (Asterisk down: retries with backoff); a SIGTERM or
        # the --for limit must still end the process, and refused credentials end it now.
        starting = asyncio.create_task(service.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            if (failure := starting.exception()) is not None:
                stopping.cancel()
                if isinstance(failure, KvError):
                    raise InputError("store", f"{failure} (is Redis running at the [store] URL?)") from None
                if isinstance(failure, AmiAuthError):
                    raise InputError(
                        f"ami {config.ami.host}:{config.ami.port}",
                        f"Asterisk refused the credentials of user {config.ami.username!r}",
                    ) from None
                raise failure
            if pbx is not None:
                await seed_demo_campaigns(service, scenario)
            # Everything built so far lives as long as the service: out of the collector's
            # sight, full collections stop scanning it (pauses of tens of ms at 5,000 agents).
            gc.collect()
            gc.freeze()
            left = None if duration is None else max(0.0, duration - (time.monotonic() - started))
            await asyncio.wait({stopping}, timeout=left)
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, AmiError):
                await starting
        stopping.cancel()
        if status is not None:
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
        print(f"ccd serve: stopping after {time.monotonic() - started:.0f} s", flush=True)
        if not args.quiet:
            print(_status_line(service), flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await service.stop()
        await runner.cleanup()
        if pbx is not None:
            await pbx.stop()
    return 0


DEMO_AREAS = (212, 312, 303, 415, 617, 713, 404, 206, 305, 602)
"""Area codes of the demo's leads: New York to Seattle, four US time zones."""


def demo_leads_csv(count: int, *, seed: int) -> bytes:
    """A lead list of ``count`` distinct, valid US numbers (with a name and an account)."""
    rng = random.Random(seed)
    lines = ["phone,first_name,account"]
    for i in range(count):
        area = DEMO_AREAS[i % len(DEMO_AREAS)]
        k = i // len(DEMO_AREAS)
        lines.append(f"+1{area}{200 + k // 10000 % 800}{k % 10000:04d},p{i},A{rng.randrange(10**6):06d}")
    return ("\n".join(lines) + "\n").encode()


async def seed_demo_campaigns(service: AcdService, scenario: Scenario) -> None:
    """Create, fill and start the scenario's campaigns the store does not have yet."""
    for model in scenario.campaigns:
        if model.name in service.outbound.campaigns:
            continue
        spec = {
            **model.settings,
            "name": model.name,
            "queue": model.queue,
            "dial_mode": model.pacing,
            "pacing": dict(model.pacing_settings),
        }
        live = await service.outbound.create(spec, "demo")
        service.install_campaign_queue(live)
        data = demo_leads_csv(model.leads, seed=scenario.seed)

        async def chunks(body: bytes = data) -> AsyncIterator[bytes]:
            yield body

        await service.outbound.import_leads(model.name, chunks(), source="demo.csv", who="demo")
        await service.outbound.set_status(model.name, "start", "demo")


def _with_listen(config: ServiceConfig, listen: tuple[str, int]) -> ServiceConfig:
    return replace(config, listen_host=listen[0], listen_port=listen[1])


def _status_line(service: AcdService) -> str:
    router = service.router
    parts = []
    for q in router.queue_names:
        w = router.queue_stats(q, "today")
        sl = "-" if w.offered == 0 else f"{w.service_level:.0%}"
        parts.append(
            f"{q}: {w.offered} in, {w.answered} answered, {w.abandoned} abandoned, "
            f"{router.waiting_count(q)} waiting, SL {sl}"
        )
    for p in service.campaign_progress():
        rate = p["abandon_rate"]
        parts.append(
            f"{p['campaign']} ({p['status']}): {p['dials']} dials, {p['connects']} connects, "
            f"{p['abandons']} abandons ({rate['rate']:.1%} of {rate['humans']:g} humans), "
            f"level {p['dial_level']:.1f}"
        )
    states = router.agents_by_state()
    agents = ", ".join(f"{n} {s.value}" for s, n in states.items() if n and s is not AgentState.LOGGED_OUT)
    link = "AMI up" if service.ami.connected else "AMI down"
    clock = time.strftime("%H:%M:%S", time.localtime(service.clock.now()))
    return f"[{clock}] {link} | " + " | ".join(parts) + f" | agents: {agents or 'none logged in'}"


async def _status(service: AcdService) -> None:
    while True:
        await asyncio.sleep(STATUS_EVERY_S)
        print(_status_line(service), file=sys.stdout, flush=True)
