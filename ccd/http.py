"""The HTTP face of the service: metrics, health, a JSON view, agent and call controls.

Every write checks a bearer token and its role (``admin`` or ``supervisor`` here; the
campaign routes of issue 7 add ``manager``). Reads are open to clients on the loopback
interface, where the wallboard and Prometheus usually sit, and need a token (any role)
from anywhere else; behind a reverse proxy every request comes from loopback, so
``http.trust_loopback = false`` then asks a token of every read too. Errors are JSON
``{"error": "..."}`` with a 4xx/5xx code; bodies are capped at 64 KiB. Tokens are
compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ccd.service import AcdService, ServiceError

MAX_BODY = 64 * 1024
WRITE_ROLES = ("admin", "supervisor")
SERVICE_KEY = web.AppKey("service", AcdService)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _role(request: web.Request, tokens: Mapping[str, str]) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    given = header[len("Bearer ") :].strip().encode()
    role = None
    for token, r in tokens.items():
        if hmac.compare_digest(given, token.encode()):
            role = r
    return role


def _loopback(request: web.Request) -> bool:
    peer = request.remote or ""
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    public = request.path in ("/healthz", "/readyz")
    if not public:
        role = _role(request, service.config.tokens)
        if write:
            if role is None:
                return _error(401, "a bearer token is required for this request")
            if role not in WRITE_ROLES:
                return _error(403, f"role {role!r} may not do this")
        elif role is None and not (service.config.trust_loopback and _loopback(request)):
            return _error(401, "a bearer token is required from outside this host")
    try:
        return await handler(request)
    except ServiceError as exc:
        return _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(reason="the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return data


# --- read -----------------------------------------------------------------------------


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[SERVICE_KEY].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    if service.failed:
        return _json({"status": "failed", "error": service.failed}, 503)
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    if service.ready and service.ami.connected and service.accepting:
        return _json({"status": "ready"})
    return _json({"status": "not ready", "ami_connected": service.ami.connected}, 503)


async def queues(request: web.Request) -> web.Response:
    router = request.app[SERVICE_KEY].router
    out = []
    for name in router.queue_names:
        windows = {}
        for window in ("15m", "1h", "today"):
            w = router.queue_stats(name, window)
            windows[window] = {
                "offered": w.offered,
                "answered": w.answered,
                "abandoned": w.abandoned,
                "overflowed": w.overflowed,
                "service_level": _finite(w.service_level),
                "asa_s": _finite(w.asa_s),
                "abandon_rate": _finite(w.abandon_rate),
            }
        out.append(
            {
                "name": name,
                "waiting": router.waiting_count(name),
                "longest_wait_s": router.longest_waiting_s(name),
                "agents": {s.value: n for s, n in router.agents_by_state(name).items()},
                "stats": windows,
            }
        )
    return _json({"queues": out})


async def agents(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    out = []
    for snap in service.router.agents():
        settings = service.agents.get(snap.agent_id)
        out.append(
            {
                "id": snap.agent_id,
                "group": snap.group,
                "state": snap.state.value,
                "reason": snap.reason,
                "pending_pause": snap.pending_pause,
                "call_id": snap.call_id,
                "state_since": snap.state_since,
                "talk_s_today": snap.talk_s_today,
                "mode": None if settings is None else settings.mode,
                "login": service.login_status.get(snap.agent_id, (None,))[0],
            }
        )
    return _json({"agents": out})


async def calls(request: web.Request) -> web.Response:
    router = request.app[SERVICE_KEY].router
    out = [
        {
            "id": c.call_id,
            "queue": c.queue,
            "state": c.state.value,
            "priority": c.priority,
            "arrived_at": c.arrived_at,
            "agent_id": c.agent_id,
        }
        for c in router.calls()
    ]
    return _json({"calls": out})


# --- write ----------------------------------------------------------------------------


async def agent_action(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    agent_id = request.match_info["agent"]
    action = request.match_info["action"]
    body = await _body(request)
    if action == "login":
        state = service.login(agent_id)
    elif action == "logout":
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise web.HTTPBadRequest(reason="force must be true or false")
        state = service.logout(agent_id, force=force)
    elif action == "ready":
        state = service.make_ready(agent_id)
    elif action == "pause":
        reason = body.get("reason", "break")
        if not isinstance(reason, str) or not reason or len(reason) > 64:
            raise web.HTTPBadRequest(reason="reason must be a non-empty string of at most 64 characters")
        state = service.pause(agent_id, reason)
    else:
        raise web.HTTPNotFound(reason=f"no agent action {action!r}")
    return _json({"agent": agent_id, "state": state}, 202 if state == "pending" else 200)


async def call_action(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    call_id = request.match_info["call"]
    action = request.match_info["action"]
    body = await _body(request)
    if action == "hangup":
        service.hangup(call_id)
    elif action == "transfer":
        queue = body.get("queue")
        if not isinstance(queue, str) or not queue:
            raise web.HTTPBadRequest(reason="queue (a queue name) is required")
        service.transfer(call_id, queue)
    else:
        raise web.HTTPNotFound(reason=f"no call action {action!r}")
    return _json({"call": call_id, "status": "requested"}, 202)


def build_app(service: AcdService) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[SERVICE_KEY] = service
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/queues", queues)
    app.router.add_get("/api/agents", agents)
    app.router.add_get("/api/calls", calls)
    app.router.add_post("/api/agents/{agent}/{action}", agent_action)
    app.router.add_post("/api/calls/{call}/{action}", call_action)
    return app
