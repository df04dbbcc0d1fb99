"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

Written by hand next to the routes (``ccd.http``) and checked against them by a test
(every route documented, nothing documented that is not routed), so clients can be
generated from it and it cannot drift silently.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_OBJ = {"type": "object"}


def _ok(description: str, schema: dict[str, Any] | None = None, code: str = "200") -> dict[str, Any]:
    body = {"description": description, "content": {"application/json": {"schema": schema or _OBJ}}}
    errors = ("400", "401", "403", "404", "409", "413", "503")  # 413: body too big; 503: store down
    return {code: body, **dict.fromkeys(errors, _ERROR)}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_CSV_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
    },
}

_EMPTY_BODY = {"type": "object", "additionalProperties": False}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_LEAD = {"name": "lead", "in": "path", "required": True, "schema": {"type": "string"}}
_NUMBER = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
_AGENT = {"name": "agent", "in": "path", "required": True, "schema": {"type": "string"}}
_CALL = {"name": "call", "in": "path", "required": True, "schema": {"type": "string"}}

CAMPAIGN_SPEC = {
    "type": "object",
    "required": ["name", "caller_id", "queue"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "caller_id": {"type": "string"},
        "queue": {"type": "string", "description": "the ACD queue whose agents take the calls"},
        "dial_mode": {
            "type": "string",
            "description": "preview, progressive, ratio, predictive, vicidial_adaptive",
        },
        "pacing": {"type": "object"},
        "hours": {"type": "object"},
        "retry": {"type": "object"},
        "max_attempts": {"type": "integer", "minimum": 1},
        "abandon_target": {"type": "number", "minimum": 0, "maximum": 1},
        "abandon_window": {"type": ["string", "number"]},
        "uk_rules": {"type": "boolean"},
        "amd": {"type": "boolean"},
        "amd_action": {"type": "string", "enum": ["hangup", "message"]},
        "amd_message": {"type": "string"},
        "amd_false_positive_rate": {"type": "number"},
        "safe_harbour": {"type": "string"},
        "min_ring": {"type": ["string", "number"]},
        "max_dial_level": {"type": "number", "minimum": 1},
        "call_limits": {"type": "array", "items": _OBJ},
        "default_region": {"type": "string"},
    },
    "additionalProperties": False,
}


def openapi_document() -> dict[str, Any]:
    write: list[dict[str, list[str]]] = [{"bearer": []}]
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "liveness", "security": [], "responses": _ok("alive")}},
        "/readyz": {
            "get": {"summary": "connected to Asterisk and routing", "security": [], "responses": _ok("ready")}
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition", "content": {"text/plain": {}}}},
            }
        },
        "/openapi.json": {"get": {"summary": "this document", "responses": _ok("OpenAPI 3.1")}},
        "/api/queues": {"get": {"summary": "queues with live statistics", "responses": _ok("queues")}},
        "/api/agents": {"get": {"summary": "agents and their states", "responses": _ok("agents")}},
        "/api/calls": {"get": {"summary": "calls in the ACD", "responses": _ok("calls")}},
        **{
            f"/api/agents/{{agent}}/{action}": {
                "post": {
                    "summary": f"{text} (admin, supervisor)",
                    "parameters": [_AGENT],
                    "requestBody": {"required": False, "content": {"application/json": {"schema": body}}},
                    "security": write,
                    "responses": _ok("the agent's new state", code="200"),
                }
            }
            for action, text, body in (
                ("login", "log an agent in (rings their phone in session mode)", _EMPTY_BODY),
                (
                    "logout",
                    "log an agent out (force: even mid-call)",
                    {
                        "type": "object",
                        "properties": {"force": {"type": "boolean"}},
                        "additionalProperties": False,
                    },
                ),
                (
                    "pause",
                    "pause an agent with a reason",
                    {
                        "type": "object",
                        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 64}},
                        "additionalProperties": False,
                    },
                ),
                ("ready", "make an agent ready", _EMPTY_BODY),
            )
        },
        "/api/calls/{call}/hangup": {
            "post": {
                "summary": "hang up a call (admin, supervisor)",
                "parameters": [_CALL],
                "security": write,
                "responses": _ok("requested", code="202"),
            }
        },
        "/api/calls/{call}/transfer": {
            "post": {
                "summary": "transfer a call to another queue (admin, supervisor)",
                "parameters": [_CALL],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["queue"],
                        "properties": {"queue": {"type": "string", "minLength": 1}},
                    }
                ),
                "security": write,
                "responses": _ok("requested", code="202"),
            }
        },
        "/api/campaigns": {
            "get": {"summary": "campaigns with their progress", "responses": _ok("campaigns")},
            "post": {
                "summary": "create a campaign, stopped (admin, manager)",
                "requestBody": _json_body({"$ref": "#/components/schemas/CampaignSpec"}),
                "security": write,
                "responses": _ok("created", code="201"),
            },
        },
        "/api/campaigns/{name}": {
            "parameters": [_NAME],
            "get": {"summary": "one campaign", "responses": _ok("campaign")},
            "patch": {
                "summary": "change settings of a campaign that is not running (admin, manager)",
                "requestBody": _json_body({"type": "object"}),
                "security": write,
                "responses": _ok("updated"),
            },
        },
        "/api/campaigns/{name}/{action}": {
            "parameters": [
                _NAME,
                {
                    "name": "action",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["start", "pause", "stop"]},
                },
            ],
            "post": {
                "summary": "start, pause or stop dialling (admin, manager)",
                "security": write,
                "responses": _ok("status"),
            },
        },
        "/api/campaigns/{name}/progress": {
            "parameters": [_NAME],
            "get": {
                "summary": "dials by outcome, humans, connects, abandons, abandon rate vs target, "
                "dial level, hopper size, leads by state",
                "responses": _ok("progress"),
            },
        },
        "/api/campaigns/{name}/lists": {
            "parameters": [_NAME],
            "get": {"summary": "imported lists", "responses": _ok("lists")},
        },
        "/api/campaigns/{name}/leads": {
            "parameters": [
                _NAME,
                {"name": "list", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "source", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "post": {
                "summary": "import a lead list: CSV, all or nothing, bad rows reported (admin, manager)",
                "requestBody": _CSV_BODY,
                "security": write,
                "responses": _ok("import report", code="201"),
            },
        },
        "/api/campaigns/{name}/leads/{lead}": {
            "parameters": [_NAME, _LEAD],
            "get": {
                "summary": "a lead: state, attempts, audit trail, why not dialled",
                "responses": _ok("lead"),
            },
        },
        "/api/campaigns/{name}/leads/{lead}/why": {
            "parameters": [_NAME, _LEAD],
            "get": {"summary": "why this lead is not being dialled now", "responses": _ok("reason")},
        },
        "/api/campaigns/{name}/callbacks": {
            "parameters": [_NAME],
            "get": {"summary": "scheduled callbacks", "responses": _ok("callbacks")},
            "post": {
                "summary": "schedule a callback (admin, manager)",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["lead", "at"],
                        "properties": {
                            "lead": {"type": "string"},
                            "at": {"type": "number"},
                            "agent": {"type": "string"},
                        },
                    }
                ),
                "security": write,
                "responses": _ok("scheduled", code="201"),
            },
        },
        "/api/campaigns/{name}/audit": {
            "parameters": [_NAME],
            "get": {"summary": "who changed the campaign", "responses": _ok("audit")},
        },
        "/api/campaigns/{name}/dnc": {
            "parameters": [_NAME],
            "post": {
                "summary": "import a campaign DNC list (admin, manager)",
                "requestBody": _CSV_BODY,
                "security": write,
                "responses": _ok("report", code="201"),
            },
        },
        "/api/campaigns/{name}/dnc/numbers": {
            "parameters": [_NAME],
            "post": {
                "summary": "add one number to the campaign DNC",
                "requestBody": _json_body(
                    {"type": "object", "required": ["number"], "properties": {"number": {"type": "string"}}}
                ),
                "security": write,
                "responses": _ok("added", code="201"),
            },
        },
        "/api/campaigns/{name}/dnc/numbers/{number}": {
            "parameters": [_NAME, _NUMBER],
            "delete": {
                "summary": "remove a number from the campaign DNC",
                "security": write,
                "responses": _ok("removed"),
            },
        },
        "/api/dnc": {
            "post": {
                "summary": "import the global DNC list (admin, manager)",
                "requestBody": _CSV_BODY,
                "security": write,
                "responses": _ok("report", code="201"),
            },
        },
        "/api/dnc/numbers": {
            "post": {
                "summary": "add one number to the global DNC",
                "requestBody": _json_body(
                    {"type": "object", "required": ["number"], "properties": {"number": {"type": "string"}}}
                ),
                "security": write,
                "responses": _ok("added", code="201"),
            },
        },
        "/api/dnc/numbers/{number}": {
            "parameters": [_NUMBER],
            "delete": {
                "summary": "remove a number from the global DNC",
                "security": write,
                "responses": _ok("removed"),
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ccd",
            "version": "0.1.0",
            "description": "ACD and outbound dialer. Reads need a token from outside the host; "
            "writes need a bearer token whose role may do them (admin: all; manager: campaigns, lists, DNC; "
            "supervisor: agents and calls; viewer: read only).",
        },
        "servers": [{"url": "/"}],
        # Reads: a token from outside the host, none needed from loopback (trust_loopback).
        "security": [{}, {"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "CampaignSpec": CAMPAIGN_SPEC,
            },
        },
    }
