"""``ccd simulate-pbx``: the simulated Asterisk as a standalone AMI server.

For trying ccd (or any AMI client) without a PBX: ``ccd simulate-pbx --scenario
config/scenarios/x.toml --speed 10`` listens on 127.0.0.1:5038, peoples the PBX with the
scenario's agents (``PJSIP/<group>-<k>``) and sends it the scenario's Poisson callers
until SIGINT/SIGTERM. The AMI secret comes from ``--secret`` or ``CCD_AMI_SECRET`` and
is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from acd.errors import InputError
from ccd.config import parse_listen
from sim.ami_server import SimulatedAsterisk
from sim.scenario import load_scenario

SECRET_ENV = "CCD_AMI_SECRET"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate-pbx",
        help="run the simulated Asterisk (AMI over TCP) with a scenario's callers and agents",
        description="Run a simulated Asterisk 22 with the ccd dialplan, speaking AMI on --listen. "
        f"The AMI secret is --secret or the environment variable {SECRET_ENV}.",
    )
    p.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:5038", help="AMI address")
    p.add_argument("--scenario", metavar="FILE", help="scenario (TOML): agents and Poisson callers")
    p.add_argument("--speed", type=float, default=1.0, help="run N times faster than real time")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--user", default="ccd", help="AMI username (default ccd)")
    p.add_argument("--secret", help=f"AMI secret (default: ${SECRET_ENV})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen, "--listen")
    if not 0 < args.speed <= 1000:
        raise InputError("--speed", f"{args.speed} must be in (0, 1000]")
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV, "")
    if not secret:
        raise InputError("--secret", f"give --secret or set {SECRET_ENV}")
    scenario = load_scenario(args.scenario) if args.scenario else None
    seed = args.seed if args.seed is not None else (scenario.seed if scenario else 1)
    pbx = SimulatedAsterisk(
        scenario, speed=args.speed, seed=seed, username=args.user, secret=secret, host=host, port=port
    )
    return asyncio.run(_serve(pbx, args))


async def _serve(pbx: SimulatedAsterisk, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await pbx.start()
        except OSError as exc:
            raise InputError("--listen", f"cannot listen on {args.listen}: {exc.strerror}") from None
        callers = f"callers from {args.scenario}" if args.scenario else "no callers (no --scenario)"
        print(
            f"ccd simulate-pbx: AMI on {pbx.host}:{pbx.port} (user {args.user}), {callers}, "
            f"speed {args.speed:g}x; Ctrl-C to stop",
            flush=True,
        )
        await stop.wait()
        c = pbx.pbx.counters
        print(
            f"ccd simulate-pbx: stopping; {c.arrived} callers arrived, {c.connected} reached an agent, "
            f"{c.abandoned} gave up, {c.fallback} went to the fallback",
            flush=True,
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await pbx.stop()
    return 0
