"""``ccd campaign …``: the campaign REST API from a shell, against a running ccd.

Why a client and not direct store access: the running service owns the campaigns (its
hoppers, its pacing, its ACD queues); a second process writing the store behind its
back would be overwritten or, worse, half-seen. So the CLI is a thin HTTP client of
the same API the web tools use, with the same roles: the token comes from an
environment variable (``CCD_TOKEN`` unless ``--token-env`` names another), never from
the command line, where other users could read it in the process list.

Output is the API's JSON, pretty-printed (``--json`` keeps it on one line for
scripts). An API error prints its reason on stderr and exits 2 (bad input), 3 (not
allowed: 401/403), 4 (not found, conflict) or 5 (service unreachable or failing).
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from acd.errors import InputError

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "campaign",
        help="manage outbound campaigns, lead lists and DNC on a running ccd",
        description="Manage outbound campaigns on a running ccd through its REST API. "
        "The bearer token is read from the environment variable named by --token-env.",
    )
    p.add_argument(
        "--url", default=os.environ.get("CCD_URL", DEFAULT_URL), help=f"ccd's API (default {DEFAULT_URL})"
    )
    p.add_argument(
        "--token-env", default="CCD_TOKEN", help="environment variable holding the token (CCD_TOKEN)"
    )
    p.add_argument("--json", action="store_true", help="compact JSON output")
    verbs = p.add_subparsers(dest="verb", required=True)

    verbs.add_parser("list", help="campaigns and their progress")
    for verb, text in (
        ("show", "one campaign"),
        ("progress", "dials, humans, connects, abandons, abandon rate, dial level, hopper, leads"),
        ("start", "start dialling"),
        ("pause", "stop placing new calls (calls up go on)"),
        ("stop", "stop the campaign"),
        ("lists", "imported lead lists"),
        ("callbacks", "scheduled callbacks"),
        ("audit", "who changed the campaign, when"),
    ):
        v = verbs.add_parser(verb, help=text)
        v.add_argument("name")
    v = verbs.add_parser("create", help="create a campaign from a TOML or JSON file (stopped)")
    v.add_argument("file", help="the campaign table (name, caller_id, queue, dial_mode, hours, retry…)")
    v = verbs.add_parser("update", help="change settings (the campaign must not be running)")
    v.add_argument("name")
    v.add_argument("file", help="TOML or JSON with the keys to change")
    v = verbs.add_parser("upload", help="import a lead list (CSV)")
    v.add_argument("name")
    v.add_argument("csv")
    v.add_argument("--list", dest="list_id", help="the list's id (default list<N>)")
    v = verbs.add_parser("lead", help="a lead: state, attempts, audit trail, why it is not dialled")
    v.add_argument("name")
    v.add_argument("lead")
    v = verbs.add_parser("why", help="why a lead is not being dialled now")
    v.add_argument("name")
    v.add_argument("lead")
    v = verbs.add_parser("callback", help="schedule a callback")
    v.add_argument("name")
    v.add_argument("lead")
    v.add_argument("--at", required=True, help="ISO 8601 time with offset, e.g. 2026-12-07T15:30+01:00")
    v.add_argument("--agent", help="the agent to put the call through to")
    v = verbs.add_parser("dnc", help="DNC lists: add, remove, upload (global, or --campaign)")
    v.add_argument("action", choices=("add", "remove", "upload"))
    v.add_argument("value", help="a number (add, remove) or a CSV file (upload)")
    v.add_argument("--campaign", help="the campaign's own list instead of the global one")
    p.set_defaults(run=run)


def _read_table(path: str) -> dict[str, Any]:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(path, f"not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(path, "must hold one table of campaign settings")
    return data


def _when(text: str) -> float:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("--at", f"{text!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise InputError("--at", f"{text!r} has no UTC offset: say whose time it is (e.g. +01:00 or Z)")
    return at.timestamp()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would hand the bearer token to whatever
    the Location names."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    def __init__(self, url: str, token: str | None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError("--url", f"{url!r} is not an http(s) URL")
        if token and parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise InputError("--url", "a token goes to another host over https only (TLS in front of ccd)")
        self.url = url.rstrip("/")
        self.token = token
        self._opener = urllib.request.build_opener(_NoRedirects)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        upload: IO[bytes] | None = None,
        size: int = 0,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data: bytes | IO[bytes] | None = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif upload is not None:
            data = upload  # streamed from the file: a big list is never held in memory
            headers["Content-Type"] = "text/csv"
            headers["Content-Length"] = str(size)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=600) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except (json.JSONDecodeError, AttributeError):
                reason = exc.reason
            raise ApiError(exc.code, f"{exc.code}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"cannot reach ccd at {self.url}: {getattr(exc, 'reason', exc)}") from None


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _do(args: Any, client: Client) -> Any:
    verb = args.verb
    base = f"/api/campaigns/{_q(args.name)}" if hasattr(args, "name") else ""
    if verb == "list":
        return client.call("GET", "/api/campaigns")
    if verb == "show":
        return client.call("GET", base)
    if verb in ("progress", "lists", "callbacks", "audit"):
        return client.call("GET", f"{base}/{verb}")
    if verb in ("start", "pause", "stop"):
        return client.call("POST", f"{base}/{verb}")
    if verb == "create":
        return client.call("POST", "/api/campaigns", _read_table(args.file))
    if verb == "update":
        return client.call("PATCH", base, _read_table(args.file))
    if verb == "upload":
        return _upload(client, f"{base}/leads", args.csv, list_id=args.list_id)
    if verb == "lead":
        return client.call("GET", f"{base}/leads/{_q(args.lead)}")
    if verb == "why":
        return client.call("GET", f"{base}/leads/{_q(args.lead)}/why")
    if verb == "callback":
        body: dict[str, Any] = {"lead": args.lead, "at": _when(args.at)}
        if args.agent:
            body["agent"] = args.agent
        return client.call("POST", f"{base}/callbacks", body)
    assert verb == "dnc"
    scope = "/api/dnc" if args.campaign is None else f"/api/campaigns/{_q(args.campaign)}/dnc"
    if args.action == "add":
        return client.call("POST", f"{scope}/numbers", {"number": args.value})
    if args.action == "remove":
        return client.call("DELETE", f"{scope}/numbers/{_q(args.value)}")
    return _upload(client, scope, args.value)


def _upload(client: Client, path: str, csv_path: str, *, list_id: str | None = None) -> Any:
    query = {"source": Path(csv_path).name}
    if list_id:
        query["list"] = list_id
    with open(csv_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return client.call("POST", f"{path}?{urllib.parse.urlencode(query)}", upload=f, size=size)


def run(args: Any) -> int:
    token = os.environ.get(args.token_env) or None
    try:
        client = Client(args.url, token)
        out = _do(args, client)
    except ApiError as exc:
        print(f"ccd campaign {args.verb}: error: {exc}", file=sys.stderr)
        if exc.status in (401, 403):
            return 3
        if exc.status in (404, 409):
            return 4
        if exc.status == 0 or exc.status >= 500:
            return 5
        return 2
    print(json.dumps(out, separators=(",", ":")) if args.json else json.dumps(out, indent=2))
    return 0
