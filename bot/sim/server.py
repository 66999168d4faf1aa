"""A DashScope lookalike on 127.0.0.1 for tests, benchmarks and newcomers (`python -m bot sim`).

It follows the provider's documents (../shared/seeds/): the two create endpoints, task queries,
the task list, cancel, temporary uploads, errors as `{"code", "message", "request_id"}`, and it
serves the official `dashscope` SDK unmodified (its extra input fields, its trailing-slash task
paths). Task states are computed from timestamps on each request, so no timers run: a task is
PENDING until a slot is free and its queue time has passed, then RUNNING, then SUCCEEDED or
FAILED. The calendar is `SimConfig.clock` (the wall clock); `time_scale` makes tasks faster, not
the calendar, so a bot on real time agrees with it. `Simulator.advance` jumps the calendar.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import aiohttp
from aiohttp import web

from bot.provider.catalog import OSS_HEADER, InputField, Model, model_for_api_name
from bot.sim import media as sim_media
from bot.sim.answers import ListQuery, list_answer, task_answer, unknown_answer
from bot.sim.media import INVALID, MIB, MediaError, Refuse, json_body, rid, uses_oss, validate
from bot.sim.slots import Slots
from bot.sim.state import (
    DEFAULT_KEY,
    MODERATION,
    Fault,
    Seconds,
    SimConfig,
    SimRequest,
    SimTask,
)

__all__ = ["DEFAULT_KEY", "SimConfig", "SimRequest", "Simulator", "run_simulator"]

API = "/api/v1"
SECRET_HEADERS = frozenset({"authorization", "cookie"})
CANNOT_CANCEL = "Failed to cancel the task, please confirm if the task is in PENDING status."
ROUTES = ("create", "task", "list", "cancel", "policy", "upload", "result", "file")
SLASH = "{slash:/?}"  # the SDK's async classes end task paths with a `/`

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Dropped(web.HTTPInternalServerError):
    """Raised after closing the socket, so no answer is sent."""


class Simulator:
    """The server and its state; `tasks`, `requests` and `uploads` are there to inspect."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.tasks: dict[str, SimTask] = {}
        self.requests: deque[SimRequest] = deque(maxlen=self.config.log_limit)
        self.uploads = sim_media.UploadStore()
        self.files: dict[str, tuple[bytes, str]] = {}  # served at /files/{name} (sim only)
        self.port = 0
        self.slots = Slots(self.config)  # the first account's (`api_key`)
        self._accounts: dict[str, tuple[Slots, deque[float]]] = {
            self.config.api_key_id: (self.slots, deque())}  # key id -> its slots, its queries
        self._checks: set[asyncio.Task[None]] = set()
        self._skipped = 0.0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._mp4 = b""

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def root_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + API

    def __repr__(self) -> str:
        return f"Simulator({self.base_url}, tasks={len(self.tasks)})"

    # --- time --------------------------------------------------------------------------------

    def now(self) -> float:
        """Epoch seconds: the clock's, plus whatever `advance` skipped."""
        return self.config.clock() + self._skipped

    def advance(self, seconds: float) -> None:
        """Jump the calendar `seconds` ahead: tasks progress and expire, the query-rate window
        moves, as if that much time had passed."""
        self._skipped += seconds

    async def settle(self) -> None:
        """Wait until every input check started so far has finished."""
        while pending := [t for t in self._checks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    def add_file(self, name: str, data: bytes, content_type: str = "application/octet-stream"
                 ) -> str:
        """Serve `data` at a plain http link (a stand-in for any public input URL)."""
        self.files[name] = (data, content_type)
        return f"{self.root_url}/files/{name}"

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._mp4 = await asyncio.to_thread(sim_media.result_mp4)
        self._http = aiohttp.ClientSession()
        # handler_cancellation: a client that gives up must not leave a slow handler behind.
        self._runner = web.AppRunner(self._app(), handler_cancellation=True, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing.set()
        for check in self._checks:
            check.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def _app(self) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._middleware(request, handler)

        app = web.Application(middlewares=[middleware], client_max_size=64 * MIB)
        add = app.router.add_route
        add("POST", API + "/services/aigc/{group}/video-synthesis", self._create, name="create")
        add("GET", API + "/tasks/{task_id}" + SLASH, self._get_task, name="task")
        add("GET", API + "/tasks", self._list, name="list")
        add("POST", API + "/tasks/{task_id}/cancel" + SLASH, self._cancel, name="cancel")
        add("GET", API + "/uploads", self._policy, name="policy")
        add("POST", "/oss-upload", self._upload, name="upload")
        add("GET", "/results/{task_id}.mp4", self._result, name="result")
        add("GET", "/files/{name}", self._file, name="file")
        return app

    # --- plumbing: log, faults, errors ----------------------------------------------------------

    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        entry = await self._record(request)
        try:
            response = await self._run(request, handler, entry.route)
        except Refuse as refusal:
            response = refusal.response()
        except web.HTTPException as exc:
            entry.status = None if isinstance(exc, _Dropped) else exc.status
            raise
        entry.status = response.status
        return response

    async def _record(self, request: web.Request) -> SimRequest:
        body: Any = None
        if request.content_type == "application/json" and request.body_exists:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS}
        route = request.match_info.route.name or "unknown"
        entry = SimRequest(request.method, request.path, route, dict(request.query), headers, body,
                           at=time.time())
        self.requests.append(entry)
        return entry

    async def _run(self, request: web.Request, handler: Handler, route: str
                   ) -> web.StreamResponse:
        early = await self._fault(request, route, after=False)
        if early is not None:
            return early
        response = await handler(request)
        return await self._fault(request, route, after=True) or response

    async def _fault(self, request: web.Request, route: str, *, after: bool
                     ) -> web.Response | None:
        fault = self._take_fault(route, after)
        if fault is None:
            return None
        if fault.delay_s:
            with contextlib.suppress(TimeoutError):  # shutting down ends every delay
                await asyncio.wait_for(self._closing.wait(), fault.delay_s)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            raise _Dropped()
        if fault.status is None:
            return None
        return Refuse(fault.status, fault.code, fault.message, fault.retry_after_s).response()

    def _take_fault(self, route: str, after: bool) -> Fault | None:
        for fault in self.config.faults:
            if fault.after == after and fault.route in (route, "*") and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.config.faults.remove(fault)
                return fault
        return None

    def _authorize(self, request: web.Request) -> str:
        """The account (its key's id) the request's key opens; a 401 for any other."""
        header = request.headers.get("Authorization", "")
        if not header.strip():
            raise Refuse(401, "InvalidApiKey", "No API-key provided.")
        scheme, _, key = header.partition(" ")
        account = self.config.account_of(key.strip())
        if scheme.lower() != "bearer" or account is None:
            raise Refuse(401, "InvalidApiKey", "Invalid API-key provided.")
        return account

    def account_slots(self, account: str) -> Slots:
        """An account's slots (each key is its own account)."""
        return self._account(account)[0]

    def _account(self, account: str) -> tuple[Slots, deque[float]]:
        return self._accounts.setdefault(account, (Slots(self.config), deque()))

    def _advance(self, now: float) -> None:
        for slots, _ in self._accounts.values():
            slots.advance(now)

    def _rate_limit(self, account: str) -> None:
        """The account's task-query limit, over a sliding window of one clock second."""
        base, window = self.now(), self._account(account)[1]
        while window and window[0] <= base - 1.0:
            window.popleft()
        if len(window) >= self.config.query_qps:
            raise Refuse(429, "Throttling.RateQuota",
                         "Requests rate limit exceeded, please try again later.",
                         self.config.rate_retry_after_s)
        window.append(base)

    # --- tasks ---------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        account = self._authorize(request)
        if request.headers.get("X-DashScope-Async", "").lower() != "enable":
            raise Refuse(403, "AccessDenied", "current user api does not support synchronous calls")
        body = await json_body(request)
        endpoint = f"services/aigc/{request.match_info['group']}/video-synthesis"
        model = self._model(body.get("model"), endpoint)
        prompt, params, media = validate(model, body)
        if uses_oss(media) and request.headers.get(OSS_HEADER, "").lower() != "enable":
            raise Refuse(400, INVALID, f"oss:// URLs need the header {OSS_HEADER}: enable.")
        cfg = self.config
        scale = cfg.time_scale
        task = SimTask(str(uuid4()), model, body["model"], rid(), self.now(), params, prompt,
                       _draw(cfg.pending_s, model.name, scale),
                       _draw(cfg.running_s, model.name, scale), account=account)
        self.account_slots(account).add(task)
        self.tasks[task.task_id] = task
        task.failure = self._planned_failure(prompt)
        check = asyncio.create_task(self._check_inputs(task, media))
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)
        output = {"task_status": "PENDING", "task_id": task.task_id}
        return web.json_response({"output": output, "request_id": task.request_id})

    def _model(self, name: Any, endpoint: str) -> Model:
        model = model_for_api_name(name) if isinstance(name, str) else None
        if model is None or model.api_name(self.config.region) != name:
            raise Refuse(400, INVALID, "Model not exist.")
        if model.endpoint != endpoint:
            raise Refuse(400, INVALID, "url error, please check url!")
        return model

    def _planned_failure(self, prompt: str | None) -> tuple[str, str] | None:
        if self.config.task_failures:
            return self.config.task_failures.pop(0)
        text = (prompt or "").lower()
        if any(word.lower() in text for word in self.config.moderation_words):
            return MODERATION
        return None

    async def _check_inputs(self, task: SimTask, media: dict[str, list[str]]) -> None:
        """What the provider does after accepting a task: fetch and inspect every input."""
        try:
            task.media_s = await sim_media.inspect(task.model.inputs, media,
                                                   functools.partial(self._load, task))
        except MediaError as exc:
            task.failure = (INVALID, str(exc))
        finally:
            task.check_done_at = self.now()

    async def _load(self, task: SimTask, f: InputField, url: str) -> bytes:
        if url.startswith("data:"):
            if not f.accepts_data_url:
                raise MediaError("this input takes a link, not base64 data")
            return sim_media.decode_data_url(url)
        if url.startswith("oss://"):
            return self.uploads.load(url, task.api_name, self.now(), task.account)
        if url.startswith(("http://", "https://")) and self._http is not None:
            timeout_s = self.config.fetch_timeout_s
            return await sim_media.fetch(self._http, url, f.limits.max_bytes, timeout_s)
        raise MediaError(f"{url[:60]} is not an http(s), data: or oss:// URL")

    async def _get_task(self, request: web.Request) -> web.Response:
        account = self._authorize(request)
        self._rate_limit(account)
        now = self.now()
        self._advance(now)
        task = self.tasks.get(request.match_info["task_id"])
        if task is None or task.account != account:  # another account's task: not ours
            return web.json_response(unknown_answer(request.match_info["task_id"]))
        return web.json_response(task_answer(task, now, self.config, self.root_url))

    async def _list(self, request: web.Request) -> web.Response:
        account = self._authorize(request)
        self._rate_limit(account)
        now = self.now()
        query = ListQuery.parse(request.query, now)
        self._advance(now)
        mine = (t for t in self.tasks.values() if t.account == account)
        return web.json_response(list_answer(mine, query, now, self.config))

    async def _cancel(self, request: web.Request) -> web.Response:
        account = self._authorize(request)
        now = self.now()
        self._advance(now)
        task = self.tasks.get(request.match_info["task_id"])
        if (task is None or task.account != account
                or task.status(now, self.config.ttl_s) != "PENDING"):
            raise Refuse(400, "UnsupportedOperation", CANNOT_CANCEL)
        task.canceled_at = now
        self.account_slots(account).withdraw(task)
        return web.json_response({"request_id": rid()})

    # --- uploads and results -------------------------------------------------------------------

    async def _policy(self, request: web.Request) -> web.Response:
        account = self._authorize(request)
        if request.query.get("action") != "getPolicy":
            raise Refuse(400, INVALID, "action must be getPolicy.")
        model = request.query.get("model", "")
        found = model_for_api_name(model)
        if found is None or found.api_name(self.config.region) != model:
            raise Refuse(400, INVALID, "Model not exist.")
        data = self.uploads.new_policy(model, self.now(), f"{self.root_url}/oss-upload",
                                       account)
        return web.json_response({"request_id": rid(), "data": data})

    async def _upload(self, request: web.Request) -> web.Response:
        return await self.uploads.accept(request, self.now())

    async def _result(self, request: web.Request) -> web.StreamResponse:
        task = self.tasks.get(request.match_info["task_id"])
        now = self.now()
        if task is None or not task.succeeded_by(now):
            raise Refuse(404, "NoSuchKey", "The specified key does not exist.", oss=True)
        if now >= task.end_at + self.config.ttl_s:
            raise Refuse(403, "AccessDenied", "Request has expired.", oss=True)
        video = self.config.result_video or self._mp4
        return await sim_media.send_video(request, video, self.config.result_bytes)

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])


def _draw(spec: Seconds, model: str, scale: float) -> float:
    """A duration in clock seconds: drawn or fixed, then shortened by the time scale."""
    return max(0.0, float(spec(model) if callable(spec) else spec)) / scale


@contextlib.asynccontextmanager
async def run_simulator(config: SimConfig | None = None) -> AsyncIterator[Simulator]:
    """`async with run_simulator(SimConfig(...)) as sim:` serves until the block ends."""
    sim = Simulator(config)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
