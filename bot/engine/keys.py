"""Pooled API keys: several DashScope accounts behind one queue.

Each key is its own account: its own per-model slots, its own 20 task queries a second, its
own tasks (another key cannot see them) and its own temporary uploads. A job goes to a key with
a free slot of its model, the least loaded first, and stays there: the key's id (never the
secret) is stored with the job, and its create, polls, cancel, reconciliation and download all
use that key. A job whose inputs were uploaded is bound to the key that uploaded them (the
provider reads an upload only for the account that made it), so uploads are spread over the
keys in proportion to their slots.

A key the provider refuses (InvalidApiKey, HTTP 401) while others remain is set aside with one
loud log line naming its id: jobs not yet sent go to the others; what only it can reach (its
tasks, the uploads made with it) the engine ends with a clear reason. With a single key nothing
is set aside: the refusal reaches the job as before.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bot.clock import Clock
from bot.config import ApiKey, Settings
from bot.engine.jobs import AT_PROVIDER, Job
from bot.engine.metrics import Metrics
from bot.engine.poll_policy import QueryLimiter
from bot.engine.store import Store
from bot.errors import ApiError
from bot.provider import catalog
from bot.provider.client import DashScope
from bot.provider.tasks import Task

log = logging.getLogger(__name__)
T = TypeVar("T")
UPLOADS_KEPT = 10_000  # upload URL -> key, kept until the job that uses it is queued

OnRefused = Callable[["Account"], None]


def refused(exc: ApiError) -> bool:
    """The provider does not accept the key itself (not: this request was wrong)."""
    return exc.code == "InvalidApiKey" or exc.status == 401


class Account:
    """One key: its client (every call goes through here, so a refusal is seen), its own
    query limiter and its slots."""

    def __init__(self, spec: ApiKey, client: DashScope, limiter: QueryLimiter,
                 metrics: Metrics) -> None:
        self.id = spec.id
        self.region = spec.region
        self.concurrency = spec.concurrency
        self.client = client
        self.limiter = limiter
        self.metrics = metrics
        self.aside = False  # refused by the provider: no new work
        self.on_refused: OnRefused = lambda account: None

    def __repr__(self) -> str:
        return f"Account({self.id}, {self.region})"

    async def create_task(self, model: catalog.Model, body: dict[str, Any], *, oss: bool
                          ) -> Task:
        return await self._call(self.client.create_task(model.endpoint, body, oss_resolve=oss))

    async def get_task(self, task_id: str) -> Task:
        await self.limiter.acquire()
        self.metrics.queried(self.id)
        return await self._call(self.client.get_task(task_id))

    async def list_tasks(self, model: str | None, start: datetime, end: datetime) -> list[Task]:
        await self.limiter.acquire()
        self.metrics.queried(self.id)
        return await self._call(self.client.list_tasks(model=model, start=start, end=end))

    async def cancel_task(self, task_id: str) -> None:
        await self._call(self.client.cancel_task(task_id))

    async def upload(self, model: str, filename: str, data: bytes | Path, content_type: str
                     ) -> str:
        return await self._call(self.client.upload(model, filename, data, content_type))

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> int:
        # Not through _call: a result link is pre-signed, on another host, and carries no key.
        return await self.client.download(url, dest, max_bytes=max_bytes)

    async def _call(self, call: Coroutine[Any, Any, T]) -> T:
        try:
            return await call
        except ApiError as exc:
            self.metrics.api_error(self.id, exc.code)
            if refused(exc):
                self.on_refused(self)
            raise


class KeyPool:
    """Every key the engine may use, and which one a job goes to."""

    def __init__(self, accounts: list[Account], settings: Settings, metrics: Metrics) -> None:
        if not accounts:
            raise ValueError("a key pool needs at least one key")
        self.accounts = accounts
        self.settings = settings
        self.metrics = metrics
        self._by_id = {a.id: a for a in accounts}
        self._uploads: OrderedDict[str, str] = OrderedDict()  # oss:// URL -> key id
        self._turns: dict[tuple[str, str], float] = {}  # (model, key id) -> upload credit
        self._missing: set[str | None] = set()  # ids of jobs' keys no longer configured
        for account in accounts:
            account.on_refused = self._refused
        self.on_set_aside: OnRefused = lambda account: None

    @classmethod
    def build(cls, settings: Settings, http: aiohttp.ClientSession,
              clock: Clock | None = None) -> KeyPool:
        """One client per key in the settings, over the process's HTTP session."""
        clock, metrics = clock or Clock(), Metrics()
        return cls([Account(spec, DashScope(http, spec.base_url, spec.secret,
                                            timeout_s=settings.http_timeout_s),
                            QueryLimiter(settings.max_qps, clock), metrics)
                    for spec in settings.keys], settings, metrics)

    @classmethod
    def single(cls, client: DashScope, settings: Settings, clock: Clock) -> KeyPool:
        """The pool of one key, around a client made elsewhere (tests, the terminal)."""
        metrics = Metrics()
        account = Account(settings.keys[0], client, QueryLimiter(settings.max_qps, clock),
                          metrics)
        return cls([account], settings, metrics)

    @property
    def first(self) -> Account:
        return self.accounts[0]

    def get(self, key_id: str | None) -> Account:
        """The key a job is with; jobs from before pooling (None) are with the first."""
        found = self._by_id.get(key_id or self.first.id)
        if found is None:
            if key_id not in self._missing:  # once per key: every poll would repeat it
                self._missing.add(key_id)
                log.warning("API key %s is no longer configured; its jobs use %s", key_id,
                            self.first.id)
            return self.first
        return found

    def of(self, job: Job) -> Account:
        return self.get(job.api_key_id)

    def usable(self) -> list[Account]:
        return [a for a in self.accounts if not a.aside]

    def slots(self, account: Account, model: str) -> int:
        """How many tasks of a model may run at once on this key's account."""
        default = self.settings.concurrency.get(model, catalog.get_model(model).default_concurrency)
        return account.concurrency.get(model, default)

    def total_slots(self, model: str) -> int:
        return sum(self.slots(a, model) for a in self.usable()) or self.slots(self.first, model)

    def free(self, model: str, used: Mapping[str | None, int], extra: int,
             paused: Callable[[str], bool]) -> dict[str, int]:
        """Key id -> tasks of `model` it may take now (its slots plus `extra` on deck, less
        what it has at the provider); keys set aside or paused take none."""
        counts = {a.id: used.get(a.id, 0) for a in self.accounts}
        counts[self.first.id] += used.get(None, 0)
        free = {a.id: self.slots(a, model) + extra - counts[a.id] for a in self.usable()
                if not paused(a.id)}
        return {k: n for k, n in free.items() if n > 0}

    def place(self, job: Job, free: Mapping[str, int]) -> str | None:
        """The key the job goes to now: its own when its inputs live there, else the one
        with the most free room; None while no key it may use has room."""
        if self.bound(job):
            return job.api_key_id if free.get(job.api_key_id or "", 0) > 0 else None
        best = max(free, key=lambda k: free[k], default=None)
        return best if best is not None and free[best] > 0 else None

    def bound(self, job: Job) -> bool:
        """The job's inputs were uploaded with its key: no other account can read them."""
        return job.oss and job.api_key_id is not None

    def stranded(self, job: Job) -> bool:
        """Bound to a key the provider refused: it can never be sent."""
        return self.bound(job) and self.get(job.api_key_id).aside

    async def refresh(self, queued: Mapping[str, int], store: Store) -> None:
        """Set the gauges (queue length, slots and their use per key) before a scrape."""
        m = self.metrics
        for model in catalog.MODELS:
            m.queue.labels(model).set(queued.get(model, 0))
            used = await store.count_by_key(AT_PROVIDER, model)
            used[self.first.id] = used.get(self.first.id, 0) + used.pop(None, 0)
            for a in self.accounts:
                m.slots.labels(model, a.id).set(0 if a.aside else self.slots(a, model))
                m.slots_used.labels(model, a.id).set(used.get(a.id, 0))
        m.keys_usable.set(len(self.usable()))

    # --- uploads -------------------------------------------------------------------------

    def for_upload(self, model: str) -> Account:
        """The key the next upload for `model` goes to: each in turn, in proportion to its
        slots (smooth weighted round robin), so bound jobs spread like free ones."""
        usable = self.usable() or [self.first]
        weights = {a.id: self.slots(a, model) for a in usable}
        total = sum(weights.values())
        for key_id, weight in weights.items():
            self._turns[(model, key_id)] = self._turns.get((model, key_id), 0.0) + weight
        chosen = max(usable, key=lambda a: self._turns[(model, a.id)])
        self._turns[(model, chosen.id)] -= total
        return chosen

    def uploaded(self, url: str, account: Account) -> None:
        self._uploads[url] = account.id
        while len(self._uploads) > UPLOADS_KEPT:
            self._uploads.popitem(last=False)

    def uploader_of(self, media: Mapping[str, Any]) -> str | None:
        """The key whose account holds a request's uploaded inputs, if this process made them."""
        for value in media.values():
            for url in value if isinstance(value, list) else [value]:
                if isinstance(url, str) and url in self._uploads:
                    return self._uploads[url]
        return None

    # --- refusals -----------------------------------------------------------------------

    def _refused(self, account: Account) -> None:
        if account.aside or len(self.usable()) < 2:
            return  # already aside, or the last key: its jobs hear the refusal themselves
        account.aside = True
        log.error("API KEY %s SET ASIDE: the provider refused it (InvalidApiKey). Its queued "
                  "jobs go to the other keys (%s); fix or remove it in DASHSCOPE_API_KEYS.",
                  account.id, ", ".join(a.id for a in self.usable()))
        self.on_set_aside(account)
