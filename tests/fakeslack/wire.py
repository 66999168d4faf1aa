"""HTTP plumbing: Slack's ``{"ok": false, "error"}`` replies, the request log, parameter
merging (JSON body, form body, query string) and the opt-in rate tiers."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakeslack.model import Json

SIGN_IN_PAGE = (b"<!DOCTYPE html><html><head><title>Slack</title></head><body>"
                b"<h1>Sign in to Test Workspace</h1><form action=\"/signin\"></form></body></html>")


class SlackError(Exception):
    """A Web API error: HTTP 200 with ``{"ok": false, "error": ...}`` unless ``status``."""

    def __init__(self, error: str, *, status: int = 200, extra: Json | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.error, self.status = error, status
        self.extra = extra or {}
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return json_reply({"ok": False, "error": self.error, **self.extra}, status=self.status,
                          headers=self.headers)


def json_reply(data: Any, status: int = 200, headers: Mapping[str, str] | None = None
               ) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={**(headers or {}), "Content-Type": "application/json"})


def sign_in_page() -> web.Response:
    """What files.slack.com answers a request without the right token: 200, HTML."""
    return web.Response(body=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")


def invalid_arguments(message: str, pointer: str) -> SlackError:
    """Slack's schema error, with the JSON pointer of the offending field."""
    detail = f"[ERROR] {message} [json-pointer:{pointer}]"
    return SlackError("invalid_arguments", extra={"response_metadata": {"messages": [detail]}})


@dataclass(eq=False)
class RecordedRequest:
    """One HTTP request the fake received; ``method`` is the Web API method (or the path)."""

    http_method: str
    method: str
    params: Json = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int | None = None
    ok: bool | None = None
    error: str | None = None


# The request being handled, so handlers can attach what they parsed to its log entry.
current_request: ContextVar[RecordedRequest] = ContextVar("fake_slack_request")


async def read_params(request: web.Request) -> Json:
    """Merge the query string, a form body and a JSON body, as Slack does."""
    params: Json = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        if isinstance(body, dict):
            params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


def json_arg(params: Json, name: str) -> Any:
    """A parameter that form and query callers send as a JSON string (blocks, view, files)."""
    value = params.get(name)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            raise invalid_arguments("invalid json", f"/{name}") from None
    return value


# ---- rate tiers (opt in: FakeSlack(rate_limits=True) or fake.rate_limits_enabled = True)


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` calls in any ``window_s`` seconds, per ``scope`` key."""

    limit: int
    window_s: float
    scope: str = "team"  # "team" (per workspace) or "channel" (per channel and workspace)


TIER_2 = Rate(20, 60.0)
TIER_3 = Rate(50, 60.0)
TIER_4 = Rate(100, 60.0)

DEFAULT_RATES: dict[str, Rate] = {
    "chat.postMessage": Rate(5, 5.0, "channel"),  # ~1 per second per channel, short bursts
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "chat.postEphemeral": TIER_4,
    "conversations.open": TIER_3,
    "conversations.history": TIER_3,
    "conversations.replies": TIER_3,
    "users.info": TIER_4,
    "usergroups.users.list": TIER_2,
    "views.open": TIER_4,
    "views.update": TIER_4,
    "views.push": TIER_4,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "files.info": TIER_4,
    "files.list": TIER_3,
}


class RateLimiter:
    """Sliding windows per (method, key); a call over the limit gets 429 + Retry-After."""

    def __init__(self, rates: Mapping[str, Rate] | None = None) -> None:
        self.rates = dict(DEFAULT_RATES if rates is None else rates)
        self.enabled = False
        self.refusals: list[tuple[str, str, int]] = []  # (method, key, Retry-After)
        self._calls: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)

    def check(self, method: str, team_id: str, params: Json) -> None:
        rate = self.rates.get(method)
        if not self.enabled or rate is None:
            return
        key = team_id if rate.scope == "team" else f"{team_id}/{params.get('channel', '')}"
        now = time.monotonic()
        calls = self._calls[(method, key)]
        while calls and calls[0] <= now - rate.window_s:
            calls.popleft()
        if len(calls) >= rate.limit:
            retry_after = max(1, math.ceil(calls[0] + rate.window_s - now))
            self.refusals.append((method, key, retry_after))
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})
        calls.append(now)
