"""HTTP to DashScope: create, query, cancel and list video tasks; temporary uploads; downloads.

One `aiohttp.ClientSession` is handed in. Every failure becomes `bot.errors.ApiError` in one
place (`error_from_response`, `_transport_errors`). Retries: only what is safe. A GET is retried
on any retryable error. A create is sent exactly once: the caller, which records each attempt
before it goes out, decides about another. A failed create that may have reached the provider
carries `maybe_created=True`, so the caller reconciles with `list_tasks` instead of paying twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from bot.errors import ApiError, is_final
from bot.provider.catalog import BEIJING, OSS_HEADER
from bot.provider.tasks import Task, TaskStatus
from bot.units import MiB

log = logging.getLogger(__name__)
T = TypeVar("T")
WRITE_BATCH = MiB
CHUNK = 64 * 1024
MAX_PAGES = 1000  # a list of 100,000 tasks is a bug, not a workload


def _list_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("list_tasks needs timezone-aware datetimes")
    return when.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


# --- errors: the one place responses and transport failures become ApiError -------------------


QUOTA_GONE = re.compile(r"free|exhaust|arrear|insufficient|balance|purchase", re.I)
QUOTA_WAIT_S = 60.0  # a per-minute quota is back within a minute


def is_retryable(status: int, code: str) -> bool:
    """Worth trying the same request again: throttling, server trouble, a lost connection."""
    if is_final(code):
        return False
    return status == 429 or status >= 500 or code in ("Timeout", "ConnectionError")


def error_from_response(
    status: int, payload: Any, text: str, headers: Mapping[str, str]
) -> ApiError:
    """An ApiError for an HTTP error answer (DashScope's JSON, OSS's XML, or anything else)."""
    body = payload if isinstance(payload, Mapping) else {}
    xml_code = re.search(r"<Code>([^<]+)</Code>", text)
    fallback = "Throttling" if status == 429 else "InternalError" if status >= 500 else "HTTPError"
    code = str(body.get("code") or (xml_code and xml_code[1]) or fallback)
    xml_message = re.search(r"<Message>([^<]+)</Message>", text)
    message = str(body.get("message") or (xml_message and xml_message[1]) or text[:200])
    retry_after_s = _retry_after(headers.get("Retry-After"))
    retryable = is_retryable(status, code)
    if code == "Throttling.AllocationQuota" and not QUOTA_GONE.search(message):
        # The same code says "quota used up for this minute" (wait and retry) and "free
        # quota exhausted" (final): the message tells them apart.
        retryable, retry_after_s = True, max(retry_after_s or 0.0, QUOTA_WAIT_S)
    err = ApiError(
        code,
        message or f"HTTP {status}",
        status=status,
        request_id=body.get("request_id"),
        retryable=retryable,
        retry_after_s=retry_after_s,
    )
    return _marked(err, maybe_created=status >= 500)  # a 4xx was refused outright


def _marked(err: ApiError, *, maybe_created: bool) -> ApiError:
    """Note on the error whether the request may have taken effect (a create: a task exists)."""
    err.maybe_created = maybe_created
    return err


def _transport_error(code: str, message: str, *, sent: bool) -> ApiError:
    return _marked(ApiError(code, message, status=0, retryable=True), maybe_created=sent)


@contextlib.contextmanager
def _transport_errors(method: str, url: str, timeout_s: float) -> Iterator[None]:
    """Turn aiohttp's failures into ApiError, noting whether the request may have arrived."""
    try:
        yield
    except (TimeoutError, aiohttp.ClientError) as exc:
        err = _classify(exc, urlsplit(url).netloc, timeout_s)
        log.debug("%s %s -> %s", method, urlsplit(url).path, err.code)
        raise err from exc


def _classify(exc: Exception, host: str, timeout_s: float) -> ApiError:
    # Only the host in messages: the query of a result link carries its signature.
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # before TimeoutError: a subclass
        return _transport_error("Timeout", f"connecting to {host} timed out", sent=False)
    if isinstance(exc, TimeoutError):
        return _transport_error("Timeout", f"{host} gave no answer in {timeout_s:g} s", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _transport_error("ConnectionError", f"could not connect to {host} ({name})",
                                sent=False)
    return _transport_error("ConnectionError", f"the connection to {host} failed ({name})",
                            sent=True)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


async def _read(resp: aiohttp.ClientResponse) -> tuple[Any, str]:
    text = await resp.text(errors="replace")
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


# --- the client ---------------------------------------------------------------------------------


class DashScope:
    """The DashScope task API over a session the caller owns."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        self.__key = api_key  # name-mangled and kept out of repr and logs
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # Up- and downloads may take longer than one call: time each step, not the whole.
        self._stream_timeout = aiohttp.ClientTimeout(sock_connect=timeout_s, sock_read=timeout_s)

    def __repr__(self) -> str:
        return f"DashScope(base_url={self.base_url!r}, api_key=***)"

    # --- tasks ---

    async def create_task(
        self, endpoint: str, body: Mapping[str, Any], *, oss_resolve: bool = False
    ) -> Task:
        """POST a task, once (never retried here: the caller records each attempt first)."""
        headers = {"X-DashScope-Async": "enable"}
        if oss_resolve or "oss://" in str(body.get("input", "")):
            headers[OSS_HEADER] = "enable"
        payload = await self._api("POST", endpoint, json=dict(body), headers=headers,
                                  idempotent=False)
        task = Task.from_api(payload)
        if not task.task_id:
            raise _bad_answer("the create answer had no task_id", maybe_created=True)
        return task

    async def get_task(self, task_id: str) -> Task:
        return Task.from_api(await self._api("GET", f"tasks/{task_id}"))

    async def cancel_task(self, task_id: str) -> None:
        """Cancel a PENDING task. Anything else raises ApiError (`UnsupportedOperation`)."""
        # Canceling twice has the same effect as once, so it is retried like a GET.
        await self._api("POST", f"tasks/{task_id}/cancel")

    async def list_tasks(
        self,
        *,
        model: str | None = None,
        status: TaskStatus | str | None = None,
        start: datetime,
        end: datetime,
        page_size: int = 100,
    ) -> list[Task]:
        """Every task created between `start` and `end` (all pages), newest first."""
        params = {"start_time": _list_time(start), "end_time": _list_time(end),
                  "page_size": str(min(max(page_size, 1), 100))}
        if model:
            params["model_name"] = model
        if status:
            params["status"] = str(status)
        found: dict[str, Task] = {}  # by id: a task created meanwhile shifts pages by one
        for page_no in range(1, MAX_PAGES + 1):
            payload = await self._api("GET", "tasks", params={**params, "page_no": str(page_no)})
            items = payload.get("data") or []
            for item in items:
                found.setdefault(str(item.get("task_id")), Task.from_summary(item))
            if not items or page_no >= int(payload.get("total_page") or 0):
                break
        return list(found.values())

    # --- files ---

    async def upload(
        self, model: str, filename: str, data: bytes | Path, content_type: str
    ) -> str:
        """Store a file with the provider for 48 h; the `oss://` URL a task body can use."""
        answer = await self._api("GET", "uploads", params={"action": "getPolicy", "model": model})
        policy = answer.get("data") or {}
        missing = {"policy", "signature", "upload_dir", "upload_host"} - set(policy)
        if missing:
            raise _bad_answer(f"the upload policy lacks {sorted(missing)}", maybe_created=False)
        key = f"{policy['upload_dir']}/{Path(filename).name}"
        tries = 0

        async def post() -> None:
            nonlocal tries
            tries += 1
            await self._post_file(policy, key, data, content_type, retried=tries > 1)

        await self._retrying(post, idempotent=True, what="upload")
        return f"oss://{key}"

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> int:
        """Stream `url` to `dest` (via a temporary file beside it); the number of bytes."""
        return await self._retrying(
            lambda: self._download_once(url, dest, max_bytes), idempotent=True, what="download"
        )

    # --- plumbing ---

    async def _api(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        url = f"{self.base_url}/{path.lstrip('/')}"
        all_headers = {"Authorization": f"Bearer {self.__key}", **(headers or {})}

        async def once() -> dict[str, Any]:
            with _transport_errors(method, url, self.timeout_s):
                return await self._send(method, url, json=json, params=params,
                                        headers=all_headers)

        return await self._retrying(once, idempotent=idempotent, what=f"{method} {path}")

    async def _send(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        started = time.monotonic()
        async with self._session.request(method, url, timeout=self._timeout, **kwargs) as resp:
            payload, text = await _read(resp)
            _log_call(method, url, resp.status, started)
            if resp.status >= 400:
                raise error_from_response(resp.status, payload, text, resp.headers)
            return payload if isinstance(payload, dict) else {}

    async def _retrying(
        self, attempt: Callable[[], Awaitable[T]], *, idempotent: bool, what: str
    ) -> T:
        """Run `attempt` until it succeeds, fails for good, or attempts run out."""
        for number in range(1, self.max_attempts + 1):
            try:
                return await attempt()
            except ApiError as err:
                # A create is never repeated here: a repeat the caller did not record could
                # make a task nobody looks for (a second charge).
                if not err.retryable or not idempotent or number == self.max_attempts:
                    raise
                delay = self._backoff(number, err.retry_after_s)
                log.info("%s failed (%s); attempt %d in %.2f s", what, err.code, number + 1, delay)
                await self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        """Full jitter, unless the provider said how long to wait (capped either way)."""
        if retry_after_s is not None:
            return min(retry_after_s, self.backoff_cap_s)
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    async def _post_file(
        self, policy: Mapping[str, Any], key: str, data: bytes | Path, content_type: str,
        *, retried: bool,
    ) -> None:
        # No Authorization header: the policy signature is the credential, and the upload host
        # is not DashScope.
        url = str(policy["upload_host"])
        with _transport_errors("POST", url, self.timeout_s), _file_part(data) as part:
            form = aiohttp.FormData()
            for name, value in _form_fields(policy, key):
                form.add_field(name, value)
            form.add_field("file", part, filename=key.rsplit("/", 1)[-1],
                           content_type=content_type)
            started = time.monotonic()
            async with self._session.post(url, data=form, timeout=self._stream_timeout) as resp:
                payload, text = await _read(resp)
                _log_call("POST", url, resp.status, started)
                if resp.status < 400 or (retried and resp.status == 409):
                    return  # 409 after a retry: our earlier attempt stored it
                raise error_from_response(resp.status, payload, text, resp.headers)

    async def _download_once(self, url: str, dest: Path, max_bytes: int) -> int:
        with _transport_errors("GET", url, self.timeout_s), _temp_beside(dest) as out:
            return await self._stream_to(url, out, max_bytes)

    async def _stream_to(self, url: str, out: IO[bytes], max_bytes: int) -> int:
        # No Authorization header: result links are pre-signed and live on another host.
        started = time.monotonic()
        async with self._session.get(url, timeout=self._stream_timeout) as resp:
            _log_call("GET", url, resp.status, started)
            if resp.status >= 400:
                raise _download_error(resp.status, await resp.text(errors="replace"), resp)
            if (resp.content_length or 0) > max_bytes:
                raise _too_large(max_bytes)
            size, pending = 0, bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                pending += chunk
                if len(pending) >= WRITE_BATCH:  # disk writes off the loop, a megabyte at a time
                    await asyncio.to_thread(out.write, bytes(pending))
                    pending.clear()
            await asyncio.to_thread(out.write, bytes(pending))
            return size


def _form_fields(policy: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """The OSS form fields, in the order the provider's guide gives; the file goes last."""
    return [
        ("OSSAccessKeyId", str(policy.get("oss_access_key_id", ""))),
        ("Signature", str(policy["signature"])),
        ("policy", str(policy["policy"])),
        ("x-oss-object-acl", str(policy.get("x_oss_object_acl", "private"))),
        ("x-oss-forbid-overwrite", str(policy.get("x_oss_forbid_overwrite", "true"))),
        ("key", key),
        ("success_action_status", "200"),
    ]


@contextlib.contextmanager
def _file_part(data: bytes | Path) -> Iterator[bytes | IO[bytes]]:
    """Bytes as they are; a path opened for streaming, closed after the attempt."""
    if isinstance(data, bytes):
        yield data
        return
    with data.open("rb") as handle:
        yield handle


@contextlib.contextmanager
def _temp_beside(dest: Path) -> Iterator[IO[bytes]]:
    """A new file beside `dest` that becomes `dest` only if the block completes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        with tmp.open("xb") as out:
            yield out
        tmp.replace(dest)  # atomic: dest is either absent or complete
    finally:
        tmp.unlink(missing_ok=True)


def _download_error(status: int, text: str, resp: aiohttp.ClientResponse) -> ApiError:
    """A dead result link (403 signature expired, 404 purged) is final: it will not come back."""
    if status in (403, 404):
        err = ApiError("Expired", f"the result link answered HTTP {status}", status=status)
        return _marked(err, maybe_created=False)
    return error_from_response(status, None, text, resp.headers)


def _bad_answer(message: str, *, maybe_created: bool) -> ApiError:
    return _marked(ApiError("InvalidResponse", message, status=200), maybe_created=maybe_created)


def _too_large(max_bytes: int) -> ApiError:
    err = ApiError("TooLarge", f"the video is larger than {max_bytes} bytes", status=200)
    return _marked(err, maybe_created=False)


def _log_call(method: str, url: str, status: int, started: float) -> None:
    # The path only: queries of result links carry signatures.
    elapsed_ms = (time.monotonic() - started) * 1000
    log.debug("%s %s -> %d in %.0f ms", method, urlsplit(url).path, status, elapsed_ms)
