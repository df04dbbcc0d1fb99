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

import contextlib
import dataclasses
import functools
import hmac
import ipaddress
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import BodyPartReader, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from acd.errors import InputError
from ccd.kv import KvError
from ccd.openapi import openapi_document
from ccd.outbound import LiveCampaign, OutboundError
from ccd.service import AcdService, ServiceError
from dialer.runner import AgentPicture

MAX_BODY = 64 * 1024
# Who may write where: campaigns and lists are the managers', agents and calls the
# supervisors'; admins may do everything, viewers nothing.
WRITE_ROLES = {
    "/api/campaigns": ("admin", "manager"),
    "/api/dnc": ("admin", "manager"),
    "/api/agents": ("admin", "supervisor"),
    "/api/calls": ("admin", "supervisor"),
}
WHO_KEY = web.RequestKey("who", str)


def write_roles(path: str) -> tuple[str, ...]:
    for prefix, roles in WRITE_ROLES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return roles
    return ("admin",)


SERVICE_KEY = web.AppKey("service", AcdService)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _role(request: web.Request, tokens: Mapping[str, str]) -> tuple[str, str] | None:
    """(token, role) of the request's bearer token, or None."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    given = header[len("Bearer ") :].strip().encode()
    found = None
    for token, r in tokens.items():  # every token compared: no timing hint of which matched
        if hmac.compare_digest(given, token.encode()):
            found = (token, r)
    return found


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
        found = _role(request, service.config.tokens)
        role = None if found is None else found[1]
        if write:
            if found is None:
                return _error(401, "a bearer token is required for this request")
            if role not in write_roles(request.path):
                return _error(403, f"role {role!r} may not do this")
        elif found is None and not (service.config.trust_loopback and _loopback(request)):
            return _error(401, "a bearer token is required from outside this host")
        if found is not None:
            name = service.config.token_names.get(found[0], found[1])
            request[WHO_KEY] = f"{found[1]}:{name}"
    try:
        return await handler(request)
    except ServiceError as exc:
        return _error(exc.status, str(exc))
    except OutboundError as exc:
        return _error(exc.status, str(exc))
    except InputError as exc:
        return _error(400, str(exc))
    except KvError as exc:  # Redis away: the request did not happen, and may be retried
        return _error(503, f"the store is unavailable: {exc}")
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


async def agent_action(request: web.Request, action: str) -> web.Response:
    service = request.app[SERVICE_KEY]
    agent_id = request.match_info["agent"]
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


async def call_action(request: web.Request, action: str) -> web.Response:
    service = request.app[SERVICE_KEY]
    call_id = request.match_info["call"]
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
    for action in ("login", "logout", "pause", "ready"):
        app.router.add_post(f"/api/agents/{{agent}}/{action}", functools.partial(agent_action, action=action))
    for action in ("hangup", "transfer"):
        app.router.add_post(f"/api/calls/{{call}}/{action}", functools.partial(call_action, action=action))
    add_campaign_routes(app)
    return app


# --- campaigns, lists, DNC (issue 7) -----------------------------------------------------


def _who(request: web.Request) -> str:
    who = request.get(WHO_KEY)
    return who if isinstance(who, str) else "anonymous"


def _picture(service: AcdService, name: str) -> AgentPicture | None:
    return service.campaign_picture(name)


def _campaign_json(service: AcdService, live: LiveCampaign) -> dict[str, Any]:
    r = live.record
    return {
        "name": r.name,
        "status": r.status,
        "spec": dict(r.spec),
        "created_at": r.created_at,
        "created_by": r.created_by,
        "updated_at": r.updated_at,
        "updated_by": r.updated_by,
        "progress": service.outbound.progress(r.name, _picture(service, r.name)),
    }


async def campaigns_list(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json({"campaigns": [_campaign_json(service, c) for c in service.outbound.campaigns.values()]})


async def campaign_create(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    spec = await _body(request)
    base = spec.get("queue")
    if isinstance(base, str) and base not in service.router.queue_names:
        raise InputError(
            "campaign.queue", f"unknown ACD queue {base!r} (known: {', '.join(service.router.queue_names)})"
        )
    live = await service.outbound.create(spec, _who(request))
    service.install_campaign_queue(live)
    return _json(_campaign_json(service, live), 201)


async def campaign_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json(_campaign_json(service, service.outbound.get(request.match_info["name"])))


async def campaign_update(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["name"]
    changes = await _body(request)
    live = service.outbound.get(name)
    if "queue" in changes and changes["queue"] != live.campaign.queue:
        raise InputError("campaign.queue", "the ACD queue of a campaign cannot change: create a new campaign")
    live = await service.outbound.update(name, changes, _who(request))
    return _json(_campaign_json(service, live))


async def campaign_action(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    live = await service.outbound.set_status(
        request.match_info["name"], request.match_info["action"], _who(request)
    )
    return _json({"campaign": live.name, "status": live.status})


async def campaign_progress(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["name"]
    service.outbound.get(name)
    # Outcomes are journaled behind the dialling (ccd.outbound); write them first, so
    # that every figure reported here is on record. With the store down the figures
    # are still reported: they are what the dialler knows, and the failed write stays
    # journaled for the next flush.
    with contextlib.suppress(KvError):
        await service.outbound.flush()
    return _json(service.outbound.progress(name, _picture(service, name)))


async def _upload(request: web.Request) -> tuple[AsyncIterator[bytes], str]:
    """The CSV of a request: a multipart ``file`` part, or the body itself (text/csv)."""
    if request.content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    raise web.HTTPBadRequest(reason="the multipart body has no 'file' part")
                if isinstance(part, BodyPartReader) and part.name == "file":
                    break
        except web.HTTPException:
            raise
        except Exception as exc:  # aiohttp's parser raises a variety of errors on garbage
            raise web.HTTPBadRequest(
                reason=f"the multipart body is malformed ({type(exc).__name__})"
            ) from None
        source = part.filename or "upload.csv"

        async def chunks(p: BodyPartReader = part) -> AsyncIterator[bytes]:
            try:
                while chunk := await p.read_chunk(1 << 16):
                    yield chunk
            except Exception as exc:
                raise InputError(
                    "upload", f"the multipart body is malformed ({type(exc).__name__})"
                ) from None

        return chunks(), source
    if not request.can_read_body:
        raise web.HTTPBadRequest(reason="send the CSV as the body (text/csv) or as a multipart 'file' part")
    return request.content.iter_chunked(1 << 16), request.query.get("source", "upload.csv")


async def leads_upload(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["name"]
    service.outbound.get(name)
    chunks, source = await _upload(request)
    report = await service.outbound.import_leads(
        name, chunks, source=source, who=_who(request), list_id=request.query.get("list")
    )
    return _json(report, 201)


async def lists_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["name"]
    service.outbound.get(name)
    records = await service.outbound.store.lists(name)
    return _json({"lists": [dataclasses.asdict(r) for r in records]})


async def lead_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json(await service.outbound.lead_view(request.match_info["name"], request.match_info["lead"]))


async def lead_why(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json(service.outbound.why(request.match_info["name"], request.match_info["lead"]))


async def callbacks_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json({"callbacks": service.outbound.callbacks(request.match_info["name"])})


async def callback_create(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    body = await _body(request)
    lead, at, agent = body.get("lead"), body.get("at"), body.get("agent")
    if not isinstance(lead, str) or not lead:
        raise web.HTTPBadRequest(reason="lead (a lead id) is required")
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise web.HTTPBadRequest(reason="at (POSIX seconds) is required")
    if agent is not None and (not isinstance(agent, str) or agent not in service.agents):
        raise web.HTTPBadRequest(reason=f"agent {agent!r} is not a known agent")
    out = await service.outbound.schedule_callback(
        request.match_info["name"], lead, float(at), agent, _who(request)
    )
    return _json(out, 201)


async def campaign_audit(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["name"]
    service.outbound.get(name)
    entries = await service.outbound.store.audit(f"campaign:{name}")
    return _json({"audit": [dataclasses.asdict(e) for e in entries]})


def _dnc_scope(request: web.Request) -> str | None:
    name = request.match_info.get("name")
    if name is not None:
        request.app[SERVICE_KEY].outbound.get(name)
    return name


async def dnc_upload(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    campaign = _dnc_scope(request)
    chunks, source = await _upload(request)
    return _json(await service.outbound.import_dnc(campaign, chunks, source=source, who=_who(request)), 201)


async def dnc_add(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    campaign = _dnc_scope(request)
    number = (await _body(request)).get("number")
    if not isinstance(number, str) or not number:
        raise web.HTTPBadRequest(reason="number is required")
    return _json(await service.outbound.add_dnc(number, campaign, _who(request)), 201)


async def dnc_remove(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    campaign = _dnc_scope(request)
    return _json(await service.outbound.remove_dnc(request.match_info["number"], campaign, _who(request)))


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


def add_campaign_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/openapi.json", openapi)
    r.add_get("/api/campaigns", campaigns_list)
    r.add_post("/api/campaigns", campaign_create)
    r.add_get("/api/campaigns/{name}", campaign_get)
    r.add_patch("/api/campaigns/{name}", campaign_update)
    r.add_get("/api/campaigns/{name}/progress", campaign_progress)
    r.add_get("/api/campaigns/{name}/lists", lists_get)
    r.add_post("/api/campaigns/{name}/leads", leads_upload)
    r.add_get("/api/campaigns/{name}/leads/{lead}", lead_get)
    r.add_get("/api/campaigns/{name}/leads/{lead}/why", lead_why)
    r.add_get("/api/campaigns/{name}/callbacks", callbacks_get)
    r.add_post("/api/campaigns/{name}/callbacks", callback_create)
    r.add_get("/api/campaigns/{name}/audit", campaign_audit)
    r.add_post("/api/campaigns/{name}/dnc", dnc_upload)
    r.add_post("/api/campaigns/{name}/dnc/numbers", dnc_add)
    r.add_delete("/api/campaigns/{name}/dnc/numbers/{number}", dnc_remove)
    r.add_post("/api/campaigns/{name}/{action:start|pause|stop}", campaign_action)
    r.add_post("/api/dnc", dnc_upload)
    r.add_post("/api/dnc/numbers", dnc_add)
    r.add_delete("/api/dnc/numbers/{number}", dnc_remove)
