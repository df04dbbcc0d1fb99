"""The service configuration (``config/ccd.toml``): AMI, HTTP, tokens, queues, agents.

Read strictly, like scenario files: an unknown key or a bad value is an
:class:`InputError` naming the file and the key path, because a misspelt setting
silently ignored would route live calls differently from what was written.

Secrets never live in the file: the AMI secret and the API tokens are read from the
environment variables the file names (``secret_env``, ``token_env``), so the file can
be committed and shown; the values appear in no log and no repr.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.agents import AgentProfile
from acd.errors import InputError
from acd.policies import CALL_SELECTIONS
from acd.queues import QueueConfig
from acd.settings import TableReader, queue_config

ROLES = ("admin", "manager", "supervisor", "viewer")
AGENT_MODES = ("session", "ring")
_AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ccd"
    secret: str = field(default="", repr=False)
    ping_interval_s: float = 5.0
    action_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """An agent ccd may route to: who they are, and how their phone is reached."""

    profile: AgentProfile
    device: str  # e.g. PJSIP/1001
    mode: str = "session"  # persistent ConfBridge session, or ring-per-call
    auto_login: bool = False  # ccd logs them in at start (demos, fixed seats)


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """How outbound calls reach the network: the trunk, and the limits it imposes."""

    trunk: str = "trunk"  # Originate to PJSIP/<number>@<trunk>
    max_channels: int = 100  # outbound calls up at once, all campaigns (the trunk's size)
    max_cps: float = 10.0  # new calls per second per campaign (carrier terms)
    pace_every_s: float = 1.0


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    source: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    trust_loopback: bool = True  # reads from 127.0.0.1 need no token (false behind a proxy)
    ami: AmiSettings = AmiSettings()
    # token -> role; built from the environment, never from the file itself.
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    call_selection: str = "oldest"
    ring_timeout_s: float = 15.0  # how long ring-per-call rings an agent
    max_hold_s: float = 300.0
    queues: tuple[QueueConfig, ...] = ()
    agents: tuple[AgentSettings, ...] = ()
    # token -> who, for the audit trail: the token's name, never the token itself.
    token_names: Mapping[str, str] = field(default_factory=dict, repr=False)
    store_url: str | None = field(default=None, repr=False)  # None: in memory; redis://…
    outbound: OutboundSettings = OutboundSettings()


def parse_listen(value: str, where: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets); the host must be an address, not a name."""
    m = re.fullmatch(r"\[?([^\]]+?)\]?:(\d{1,5})", value.strip())
    if m is None:
        raise InputError(where, f"{value!r} is not host:port")
    host, port = m.group(1), int(m.group(2))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise InputError(where, f"{host!r} is not an IP address") from None
    if not 0 <= port < 65536:  # 0: any free port
        raise InputError(where, f"port {port} is out of range")
    return host, port


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> ServiceConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(str(p), "is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(p), f"not valid TOML: {exc}") from None
    return parse_config(data, source=str(p), env=os.environ if env is None else env)


def parse_config(data: Mapping[str, Any], *, source: str, env: Mapping[str, str]) -> ServiceConfig:
    try:
        return _parse(data, source, env)
    except InputError as exc:
        if exc.where.startswith(source):
            raise
        raise InputError(f"{source}: {exc.where}" if exc.where else source, exc.problem) from None


def _secret(r: TableReader, key: str, env: Mapping[str, str], *, required: bool) -> str:
    name = r.text(key, None) if r.has(key) else None
    if name is None:
        if required:
            raise InputError(r.at(key), "is required (the name of an environment variable)")
        return ""
    value = env.get(name, "")
    if required and not value:
        raise InputError(r.at(key), f"environment variable {name} is not set")
    return value


def _parse(data: Mapping[str, Any], source: str, env: Mapping[str, str]) -> ServiceConfig:
    top = TableReader(data, "")
    for key in ("secret", "token"):
        if key in data:
            raise InputError(key, "secrets do not go in the file: name an environment variable")
    http = top.table("http", {})
    assert http is not None
    host, port = parse_listen(http.text("listen", "127.0.0.1:8080"), http.at("listen"))
    trust_loopback = http.raw("trust_loopback", True)
    if not isinstance(trust_loopback, bool):
        raise InputError(http.at("trust_loopback"), f"{trust_loopback!r} is not true or false")
    http.done()

    ami_r = top.table("ami", {})
    assert ami_r is not None
    if ami_r.has("secret"):
        raise InputError(ami_r.at("secret"), "secrets do not go in the file: use secret_env")
    ami = AmiSettings(
        host=ami_r.text("host", "127.0.0.1"),
        port=ami_r.integer("port", 5038, minimum=1),
        username=ami_r.text("username", "ccd"),
        secret=_secret(ami_r, "secret_env", env, required=False),
        ping_interval_s=ami_r.duration("ping_interval", "5s"),
        action_timeout_s=ami_r.duration("action_timeout", "5s"),
    )
    ami_r.done()

    tokens: dict[str, str] = {}
    token_names: dict[str, str] = {}
    for t in top.tables("tokens"):
        role = t.text("role")
        if role not in ROLES:
            raise InputError(t.at("role"), f"unknown role {role!r} (known: {', '.join(ROLES)})")
        value = _secret(t, "token_env", env, required=False)
        name = t.text("name", t.text("token_env", "") or role)
        t.done()
        if value:
            if len(value) < 16:
                raise InputError(t.at("token_env"), "the token is shorter than 16 characters")
            tokens[value] = role
            token_names[value] = name

    store = top.table("store", {})
    assert store is not None
    if store.has("url") and store.has("url_env"):
        raise InputError(store.at("url"), "give url or url_env, not both")
    store_url = (
        store.text("url", "memory:")
        if not store.has("url_env")
        else _secret(store, "url_env", env, required=True)
    )
    if "@" in store_url and store.has("url"):
        raise InputError(
            store.at("url"), "a URL with a password is a secret: name an environment variable in url_env"
        )
    if not store_url.startswith(("memory:", "redis://", "rediss://", "unix://")):
        raise InputError(
            store.at("url"), f"{store_url.split('@')[-1]!r}: use memory: or redis://host:port/db"
        )
    store.done()

    out_r = top.table("outbound", {})
    assert out_r is not None
    outbound = OutboundSettings(
        trunk=out_r.text("trunk", "trunk"),
        max_channels=out_r.integer("max_channels", 100, minimum=1),
        max_cps=out_r.number("max_cps", 10.0, minimum=0.1),
        pace_every_s=out_r.duration("pace_every", "1s"),
    )
    if not _AGENT_ID.match(outbound.trunk):
        raise InputError(out_r.at("trunk"), f"{outbound.trunk!r}: letters, digits, '.', '_' or '-'")
    out_r.done()

    acd = top.table("acd", {})
    assert acd is not None
    selection = acd.text("call_selection", "oldest")
    if selection not in CALL_SELECTIONS:
        known = ", ".join(CALL_SELECTIONS)
        raise InputError(acd.at("call_selection"), f"{selection!r} is not one of {known}")
    ring_timeout = acd.duration("ring_timeout", "15s")
    max_hold = acd.duration("max_hold", "300s")
    acd.done()

    queues = []
    for q in top.tables("queues"):
        name = q.text("name")
        # Live calls need the router's back-stop: a lost Redirect must not hold an agent.
        queues.append(queue_config(q, name, ring_timeout_default=ring_timeout + 5.0))
        q.done()
    if not queues:
        raise InputError("queues", "the service needs at least one [[queues]]")
    names = [q.name for q in queues]
    if len(set(names)) != len(names):
        raise InputError("queues", "two queues have the same name")

    agents = []
    for a in top.tables("agents"):
        agent_id = a.text("id")
        if not _AGENT_ID.match(agent_id):
            raise InputError(a.at("id"), f"{agent_id!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        allowed = a.strings("queues")
        for name in allowed:
            if name not in names:
                raise InputError(a.at("queues"), f"unknown queue {name!r}")
        mode = a.text("mode", "session")
        if mode not in AGENT_MODES:
            raise InputError(a.at("mode"), f"{mode!r} is not one of {', '.join(AGENT_MODES)}")
        login = a.raw("auto_login", False)
        if not isinstance(login, bool):
            raise InputError(a.at("auto_login"), f"{login!r} is not true or false")
        agents.append(
            AgentSettings(
                profile=AgentProfile(
                    agent_id, group=a.text("group", "default"), skills=a.levels("skills", {}), queues=allowed
                ),
                device=a.text("device", f"PJSIP/{agent_id}"),
                mode=mode,
                auto_login=login,
            )
        )
        a.done()
    ids = [a.profile.agent_id for a in agents]
    if len(set(ids)) != len(ids):
        raise InputError("agents", "two agents have the same id")
    top.done()
    return ServiceConfig(
        source=source,
        listen_host=host,
        listen_port=port,
        trust_loopback=trust_loopback,
        ami=ami,
        tokens=tokens,
        token_names=token_names,
        store_url=None if store_url == "memory:" else store_url,
        outbound=outbound,
        call_selection=selection,
        ring_timeout_s=ring_timeout,
        max_hold_s=max_hold,
        queues=tuple(queues),
        agents=tuple(agents),
    )
