"""Discord's rate limits, enforced when a test asks for them (``FakeDiscord(rate_limits=...)``).

Like Discord: each route has a bucket per major parameter (channel, guild, webhook), here
``route_limit`` requests per ``route_window_s`` counted from the bucket's first request; the
bot token has a global ``global_limit`` per ``global_window_s`` (interaction callbacks and
webhooks with a token are exempt). Every answer carries the bucket's ``X-RateLimit-*`` headers,
and a request over a limit gets 429 with ``Retry-After``, ``retry_after`` and ``Via`` (which
discord.py needs to retry rather than take it for a ban). Shrink the windows to compress time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakediscord.model import API_PREFIX
from tests.fakediscord.wire import json_response

MAJOR = ("channel", "guild", "app", "token")  # route parts that split a bucket


@dataclass(frozen=True)
class RateLimits:
    route_limit: int = 5
    route_window_s: float = 5.0
    global_limit: int = 50
    global_window_s: float = 1.0


@dataclass
class Window:
    """A fixed window: opens at its first request, holds `limit` requests."""

    limit: int
    length_s: float
    opened: float = -math.inf
    used: int = 0

    def left(self, now: float) -> float:
        """Seconds until it resets (0 if it already has)."""
        return max(0.0, self.opened + self.length_s - now)

    def admit(self, now: float) -> bool:
        if self.left(now) == 0:
            self.opened, self.used = now, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


@dataclass
class Limiter:
    limits: RateLimits
    buckets: dict[str, Window] = field(default_factory=dict)
    global_window: Window | None = None
    limited: list[str] = field(default_factory=list)  # "METHOD path" of each 429 given

    def check(self, request: web.Request, bucket: str) -> web.Response | None:
        """A 429 if the request is over a limit; else None (and the request is counted)."""
        now = time.monotonic()
        if _global(request):
            if self.global_window is None:
                self.global_window = Window(self.limits.global_limit, self.limits.global_window_s)
            if not self.global_window.admit(now):
                return self._refuse(request, bucket, self.global_window.left(now), scope="global")
        window = self._bucket(request, bucket)
        if not window.admit(now):
            return self._refuse(request, bucket, window.left(now), scope="user")
        return None

    def headers(self, request: web.Request, bucket: str) -> dict[str, str]:
        """A bucket's state, as Discord reports it on every answer."""
        window = self._bucket(request, bucket)
        left = window.left(time.monotonic())
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(max(0, window.limit - window.used)),
            "X-RateLimit-Reset-After": f"{left:.3f}",
            "X-RateLimit-Reset": f"{time.time() + left:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _bucket(self, request: web.Request, bucket: str) -> Window:
        majors = [request.match_info.get(name, "") for name in MAJOR]
        key = ":".join([bucket, *majors])
        window = self.buckets.get(key)
        if window is None:
            window = self.buckets[key] = Window(self.limits.route_limit,
                                                self.limits.route_window_s)
        return window

    def _refuse(self, request: web.Request, bucket: str, retry_after: float,
                *, scope: str) -> web.Response:
        self.limited.append(f"{request.method} {request.path}")
        body = {"message": "You are being rate limited.", "retry_after": retry_after,
                "global": scope == "global", "code": 0}
        headers = {
            **self.headers(request, bucket),
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
        }
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        return json_response(body, status=429, headers=headers)


def _global(request: web.Request) -> bool:
    """Whether the bot token's global limit counts this request."""
    exempt = (API_PREFIX + "/webhooks/", API_PREFIX + "/interactions/")
    return request.path.startswith(API_PREFIX) and not request.path.startswith(exempt)
