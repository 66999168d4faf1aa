"""HTTP plumbing: JSON replies and errors, the request log, injected faults, body parsing."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakediscord.model import API_PREFIX, FakeUpload

_ERRORS: dict[int, tuple[int, str]] = {
    400: (50035, "Invalid Form Body"),
    401: (0, "401: Unauthorized"),
    403: (50013, "Missing Permissions"),
    404: (0, "404: Not Found"),
    413: (40005, "Request entity too large"),
    500: (0, "500: Internal Server Error"),
    502: (0, "502: Bad Gateway"),
}


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON reply with ``Content-Type: application/json`` exactly, as discord.py requires."""
    all_headers = {**(headers or {}), "Content-Type": "application/json"}
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


class ApiError(Exception):
    """A Discord JSON error (``{"message", "code"}``); the middleware turns it into a reply."""

    def __init__(self, status: int, code: int | None = None, message: str | None = None) -> None:
        default_code, default_message = _ERRORS.get(status, (0, f"{status}: Error"))
        self.status = status
        self.code = default_code if code is None else code
        self.message = message or default_message
        super().__init__(f"{status} ({self.code}) {self.message}")

    def response(self) -> web.Response:
        return json_response({"message": self.message, "code": self.code}, status=self.status)


@dataclass(eq=False)
class RecordedRequest:
    """One HTTP request the fake received (``path`` without the ``/api/v10`` prefix)."""

    method: str
    path: str
    query: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    json: Any = None
    files: list[tuple[str, int]] = field(default_factory=list)
    status: int | None = None


# The request being handled, so handlers can attach what they parsed to its log entry.
current_request: ContextVar[RecordedRequest] = ContextVar("fake_discord_request")


@dataclass(eq=False)
class Fault:
    """An injected failure for the next ``remaining`` requests matching method and path."""

    method: str
    pattern: re.Pattern[str]
    status: int
    retry_after: float
    remaining: int
    code: int | None = None
    message: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method == method and bool(self.pattern.search(path))

    def response(self, bucket: str) -> web.Response:
        if self.status != 429:
            return ApiError(self.status, self.code, self.message).response()
        body = {"message": "You are being rate limited.", "retry_after": self.retry_after,
                "global": False, "code": 0}
        headers = {
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
            "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",
        }
        return json_response(body, status=429, headers=headers)


@dataclass
class Part:
    index: int
    filename: str
    data: bytes

    def upload(self) -> FakeUpload:
        return FakeUpload(self.filename, self.data)


@dataclass
class Body:
    json: Any  # a JSON object, or a list for bulk command overwrites
    files: list[Part] = field(default_factory=list)


async def read_body(request: web.Request) -> Body:
    """Parse a JSON or multipart (``payload_json`` + ``files[n]``) body, recording it."""
    if request.content_type.startswith("multipart/"):
        body = await _read_multipart(request)
    else:
        raw = await request.read() if request.can_read_body else b""
        body = Body(json.loads(raw) if raw else {})
    record = current_request.get()
    record.json = body.json
    record.files = [(part.filename, len(part.data)) for part in body.files]
    return body


async def _read_multipart(request: web.Request) -> Body:
    body = Body({})
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "payload_json":
            body.json = json.loads(await part.text())
            continue
        index = int(re.sub(r"\D", "", part.name or "") or len(body.files))
        body.files.append(Part(index, part.filename or "file", await part.read()))
    return body


def check_upload(body: Body, limit: int) -> None:
    if sum(len(part.data) for part in body.files) > limit:
        raise ApiError(413)


def check_message(body: Body, *, creating: bool) -> None:
    """Discord's message rules: not empty (50006), content <= 2000, embeds <= 10 (50035)."""
    data = body.json
    content = data.get("content") or ""
    parts = (content, data.get("embeds"), data.get("components"), body.files,
             data.get("sticker_ids"), data.get("poll"))
    if creating and not any(parts):
        raise ApiError(400, 50006, "Cannot send an empty message")
    if len(content) > 2000 or len(data.get("embeds") or []) > 10:
        raise ApiError(400, 50035, "Invalid Form Body (content or embeds too long)")


def api_path(path: str) -> str:
    return path.removeprefix(API_PREFIX) if path.startswith(API_PREFIX + "/") else path


def bucket_key(request: web.Request) -> str:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    key = f"{request.method} {canonical}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def ok_ratelimit_headers(bucket: str) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "49",
        "X-RateLimit-Reset-After": "1.000",
        "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
        "X-RateLimit-Bucket": bucket,
    }
