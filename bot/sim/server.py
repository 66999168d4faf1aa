"""A DashScope lookalike on 127.0.0.1 for tests, benchmarks and newcomers (`python -m bot sim`).

It follows the provider's documents (../shared/seeds/): the two create endpoints, task queries,
the task list, cancel, temporary uploads, errors as `{"code", "message", "request_id"}`. Task
states are computed from timestamps on each request, so no timers run: a task is PENDING until
a slot is free and its queue time has passed, then RUNNING, then SUCCEEDED or FAILED. Time comes
from `SimConfig.clock` (seconds) sped up by `time_scale`; `Simulator.advance` jumps ahead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hmac
import json
import math
import signal
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from uuid import uuid4

import aiohttp
from aiohttp import web

from bot.config import REGIONS
from bot.provider.catalog import (
    InputField,
    Model,
    expected_seconds,
    model_for_api_name,
)
from bot.sim import media as sim_media
from bot.sim.media import (
    INVALID,
    MIB,
    MediaError,
    Refuse,
    fmt_time,
    int_param,
    json_body,
    rid,
    time_param,
    uses_oss,
    validate,
)
from bot.sim.state import (
    DEFAULT_KEY,
    MODERATION,
    Fault,
    Seconds,
    SimConfig,
    SimRequest,
    SimTask,
)

API = "/api/v1"
OSS_HEADER = "X-DashScope-OssResourceResolve"
SECRET_HEADERS = frozenset({"authorization", "cookie"})
CANNOT_CANCEL = "Failed to cancel the task, please confirm if the task is in PENDING status."
EXTENDED = " Cinematic lighting, smooth camera motion, rich detail."
ROUTES = ("create", "task", "list", "cancel", "policy", "upload", "result", "file")

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
        self._waiting: dict[str, deque[SimTask]] = defaultdict(deque)
        self._active: dict[str, list[SimTask]] = defaultdict(list)
        self._last_admit: dict[str, float] = {}
        self._queries: deque[float] = deque()
        self._checks: set[asyncio.Task[None]] = set()
        self._skipped = 0.0
        self._clock0 = self._sim0 = self.config.clock()
        self._scale = self.config.time_scale
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

    def _base(self) -> float:
        return self.config.clock() + self._skipped

    def now(self) -> float:
        """Simulated epoch seconds."""
        base = self._base()
        if self.config.time_scale != self._scale:  # re-anchor: a new scale applies from here
            self._sim0 += (base - self._clock0) * self._scale
            self._clock0, self._scale = base, self.config.time_scale
        return self._sim0 + (base - self._clock0) * self._scale

    def set_time_scale(self, scale: float) -> None:
        """Change the speed from this moment on (setting `config.time_scale` applies it from
        the last request)."""
        self.now()
        self.config.time_scale = scale
        self.now()

    def advance(self, sim_s: float) -> None:
        """Jump `sim_s` simulated seconds ahead (the query-rate window moves too)."""
        self.now()
        self._skipped += sim_s / self._scale

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
        add("GET", API + "/tasks/{task_id}", self._get_task, name="task")
        add("GET", API + "/tasks", self._list, name="list")
        add("POST", API + "/tasks/{task_id}/cancel", self._cancel, name="cancel")
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
        entry = SimRequest(request.method, request.path, route, dict(request.query), headers, body)
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

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header.strip():
            raise Refuse(401, "InvalidApiKey", "No API-key provided.")
        scheme, _, key = header.partition(" ")
        good = hmac.compare_digest(key.strip().encode(), self.config.api_key.encode())
        if scheme.lower() != "bearer" or not good:
            raise Refuse(401, "InvalidApiKey", "Invalid API-key provided.")

    def _rate_limit(self) -> None:
        """The account's task-query limit, over a sliding window of one clock second."""
        base, window = self._base(), self._queries
        while window and window[0] <= base - 1.0:
            window.popleft()
        if len(window) >= self.config.query_qps:
            raise Refuse(429, "Throttling.RateQuota",
                         "Requests rate limit exceeded, please try again later.",
                         self.config.rate_retry_after_s)
        window.append(base)

    # --- tasks ---------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        self._authorize(request)
        if request.headers.get("X-DashScope-Async", "").lower() != "enable":
            raise Refuse(403, "AccessDenied", "current user api does not support synchronous calls")
        body = await json_body(request)
        endpoint = f"services/aigc/{request.match_info['group']}/video-synthesis"
        model = self._model(body.get("model"), endpoint)
        prompt, params, media = validate(model, body)
        if uses_oss(media) and request.headers.get(OSS_HEADER, "").lower() != "enable":
            raise Refuse(400, INVALID, f"oss:// URLs need the header {OSS_HEADER}: enable.")
        cfg = self.config
        task = SimTask(str(uuid4()), model, body["model"], rid(), self.now(), params, prompt,
                       _draw(cfg.pending_s, model.name), _draw(cfg.running_s, model.name))
        self._enqueue(task)
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

    def _enqueue(self, task: SimTask) -> None:
        now, name = task.created, task.model.name
        self._advance(now)
        if self.config.over_limit == "reject":
            if self._free_at(task.model, now) > now:
                limit = self.config.slots(task.model)
                raise Refuse(429, "Throttling", f"Too many concurrent tasks for model "
                             f"{task.api_name}: the account allows {limit} at a time.")
            self._admit(task, now)
        else:
            self._waiting[name].append(task)
            self._advance(now)
        self.tasks[task.task_id] = task

    def _advance(self, now: float) -> None:
        """Give slots to queued tasks in order, each at the moment a slot came free."""
        for name, waiting in self._waiting.items():
            while waiting:
                task = waiting[0]
                start = self._free_at(task.model, max(task.created, self._last_admit.get(name, 0)))
                if start > now:
                    break
                waiting.popleft()
                self._admit(task, start)

    def _free_at(self, model: Model, t0: float) -> float:
        """The first moment from `t0` when fewer than the model's slots are taken."""
        # Tasks that ended by t0 can never matter again: later calls ask about later times.
        active = [t for t in self._active[model.name] if t.end_at > t0]
        self._active[model.name] = active
        limit = self.config.slots(model)
        if len(active) < limit:
            return t0
        ends = sorted(t.end_at for t in active)
        return ends[len(ends) - limit]

    def _admit(self, task: SimTask, start: float) -> None:
        task.admitted = start
        self._active[task.model.name].append(task)
        self._last_admit[task.model.name] = start

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
            return self.uploads.load(url, task.api_name, self.now())
        if url.startswith(("http://", "https://")) and self._http is not None:
            timeout_s = self.config.fetch_timeout_s
            return await sim_media.fetch(self._http, url, f.limits.max_bytes, timeout_s)
        raise MediaError(f"{url[:60]} is not an http(s), data: or oss:// URL")

    async def _get_task(self, request: web.Request) -> web.Response:
        self._authorize(request)
        self._rate_limit()
        now = self.now()
        self._advance(now)
        task_id = request.match_info["task_id"]
        task = self.tasks.get(task_id)
        if task is None:
            unknown = {"task_id": task_id, "task_status": "UNKNOWN"}
            return web.json_response({"request_id": rid(), "output": unknown})
        return web.json_response(self._render(task, now))

    def _render(self, task: SimTask, now: float) -> dict[str, Any]:
        status = task.status(now, self.config.ttl_s)
        out: dict[str, Any] = {"task_id": task.task_id, "task_status": status}
        payload: dict[str, Any] = {"request_id": rid(), "output": out}
        if status == "UNKNOWN":
            return payload
        out["submit_time"] = fmt_time(task.created)
        if status in ("RUNNING", "SUCCEEDED", "FAILED"):
            out["scheduled_time"] = fmt_time(task.scheduled)
        if status in ("SUCCEEDED", "FAILED", "CANCELED"):
            out["end_time"] = fmt_time(task.end_at)
        if status == "FAILED" and task.failure:
            out["code"], out["message"] = task.failure
        if status == "SUCCEEDED":
            out.update(self._results(task))
            payload["usage"] = _usage(task)
        return payload

    def _results(self, task: SimTask) -> dict[str, Any]:
        expires = int(task.end_at + self.config.ttl_s)
        url = f"{self.root_url}/results/{task.task_id}.mp4?Expires={expires}"
        fields: dict[str, Any] = {}
        node, (*parents, leaf) = fields, task.model.result_path
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = url
        if task.prompt:
            fields["orig_prompt"] = task.prompt
            if task.params.get("prompt_extend"):
                fields["actual_prompt"] = task.prompt + EXTENDED
        return fields

    async def _list(self, request: web.Request) -> web.Response:
        self._authorize(request)
        self._rate_limit()
        query = request.query
        page_no = int_param(query, "page_no", 1, 1_000_000)
        size = int_param(query, "page_size", 10, 100)
        start, end = time_param(query, "start_time"), time_param(query, "end_time")
        now = self.now()
        self._advance(now)
        found = [t for t in self.tasks.values() if self._listed(t, query, start, end, now)]
        found.sort(key=lambda t: t.created, reverse=True)
        data = [self._summary(t, now) for t in found[(page_no - 1) * size : page_no * size]]
        return web.json_response({
            "request_id": rid(), "data": data, "total": len(found),
            "total_page": math.ceil(len(found) / size), "page_no": page_no, "page_size": size,
        })

    def _listed(self, task: SimTask, query: Any, start: float | None, end: float | None,
                now: float) -> bool:
        status = task.status(now, self.config.ttl_s)
        return (status != "UNKNOWN"
                and query.get("model_name", task.api_name) == task.api_name
                and query.get("status", status) == status
                and (start is None or task.created >= start)
                and (end is None or task.created <= end))

    def _summary(self, task: SimTask, now: float) -> dict[str, Any]:
        status = task.status(now, self.config.ttl_s)
        started = status in ("RUNNING", "SUCCEEDED", "FAILED")
        ended = status in ("SUCCEEDED", "FAILED", "CANCELED")
        return {
            "task_id": task.task_id, "status": status, "model_name": task.api_name,
            "gmt_create": fmt_time(task.created),
            "start_time": fmt_time(task.scheduled) if started else None,
            "end_time": fmt_time(task.end_at) if ended else None,
            "request_id": task.request_id,
        }

    async def _cancel(self, request: web.Request) -> web.Response:
        self._authorize(request)
        now = self.now()
        self._advance(now)
        task = self.tasks.get(request.match_info["task_id"])
        if task is None or task.status(now, self.config.ttl_s) != "PENDING":
            raise Refuse(400, "UnsupportedOperation", CANNOT_CANCEL)
        task.canceled_at = now
        waiting = self._waiting[task.model.name]
        if task in waiting:
            waiting.remove(task)
        return web.json_response({"request_id": rid()})

    # --- uploads and results -------------------------------------------------------------------

    async def _policy(self, request: web.Request) -> web.Response:
        self._authorize(request)
        if request.query.get("action") != "getPolicy":
            raise Refuse(400, INVALID, "action must be getPolicy.")
        model = request.query.get("model", "")
        found = model_for_api_name(model)
        if found is None or found.api_name(self.config.region) != model:
            raise Refuse(400, INVALID, "Model not exist.")
        data = self.uploads.new_policy(model, self.now(), f"{self.root_url}/oss-upload")
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
        return await sim_media.send_video(request, self._mp4, self.config.result_bytes)

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])


# --- helpers -----------------------------------------------------------------------------------


def _draw(spec: Seconds, model: str) -> float:
    return max(0.0, float(spec(model) if callable(spec) else spec))


def _usage(task: SimTask) -> dict[str, Any]:
    seconds = round(expected_seconds(task.model, task.params, task.media_s))
    usage: dict[str, Any] = {"video_duration": seconds, "video_count": 1}
    if "2.1" in task.model.name:  # the 2.1 generation reports a ratio, later ones a tier
        usage["video_ratio"] = "standard"
    elif "resolution" in task.params:
        usage["SR"] = int(str(task.params["resolution"]).rstrip("P"))
    return usage


# --- running it --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def run_simulator(config: SimConfig | None = None) -> AsyncIterator[Simulator]:
    """`async with run_simulator(SimConfig(...)) as sim:` serves until the block ends."""
    sim = Simulator(config)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def banner(sim: Simulator) -> str:
    """What a newcomer needs to point the bot at a running simulator."""
    lines = [
        f"DashScope simulator at {sim.base_url} (region {sim.config.region}, "
        f"{sim.config.time_scale:g} simulated seconds per second). Ctrl-C stops it.",
        "Set these for the bot (in .env or the environment):",
        f"  DASHSCOPE_BASE_URL={sim.base_url}",
        f"  DASHSCOPE_API_KEY={sim.api_key}",
    ]
    if sim.config.region != "singapore":
        lines.append(f"  DASHSCOPE_REGION={sim.config.region}")
    return "\n".join(lines)


async def _serve(config: SimConfig) -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a supervisor: stop cleanly
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with run_simulator(config) as sim:
        print(banner(sim), flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot sim [--port P] [--time-scale X] [--api-key K]`."""
    parser = argparse.ArgumentParser(prog="python -m bot sim", description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--time-scale", type=float, default=10.0,
                        help="simulated seconds per real second (default 10)")
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--region", choices=REGIONS, default="singapore")
    parser.add_argument("--over-limit", choices=("queue", "reject"), default="queue",
                        help="what a create does when the model's slots are busy")
    args = parser.parse_args(argv)
    config = SimConfig(api_key=args.api_key, port=args.port, region=args.region,
                       time_scale=args.time_scale, over_limit=args.over_limit)
    asyncio.run(_serve(config))
    return 0
