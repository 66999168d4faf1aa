"""Keeps each Slack job's progress message in step with the job, within the workspace's
`chat.update` budget (Tier 3: about 50 a minute for the whole workspace).

Updates are coalesced: a message shows the newest state of its job, never more than one edit
per `interval_s`, and all edits share one pace (`per_minute`) with headroom under the tier, so
normal load never draws a 429; one that comes anyway is waited out as `Retry-After` says.
Finished jobs go first, because their buttons and summary matter most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from bot.engine import Engine, JobUpdate, Store
from bot.frontends.common.refresh import RECENT_S, to_refresh
from bot.frontends.slack.blocks import Block, job_blocks, job_text
from bot.frontends.slack.buttons import actions_for

log = logging.getLogger(__name__)

REFRESH_S = 15.0  # running jobs are re-rendered this often: their bar moves by itself
GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message",
                  "is_archived", "not_in_channel"})


class SlackProgress:
    def __init__(self, client: AsyncWebClient, engine: Engine, store: Store, *,
                 clock: Clock | None = None, interval_s: float = 3.0,
                 per_minute: float = 40.0) -> None:
        self.client = client
        self.engine = engine
        self.store = store
        self.clock = clock or Clock()
        self.interval_s = interval_s
        self.pace_s = 60.0 / per_minute
        self._due: dict[str, JobUpdate] = {}  # newest update not shown yet, per job
        self._shown: dict[str, str] = {}  # what each message shows now
        self._last_edit: dict[str, float] = {}
        self._gone: set[str] = set()
        # jobs whose input image Slack could not fetch (invalid_blocks): shown without it; the
        # first post never has it, so a dead link cannot stop a job from being posted
        self._no_picture: set[str] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is due
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.edits = 0  # chat.update calls made, for benchmarks

    def start(self) -> None:
        self.engine.subscribe(self.on_update)
        self._tasks = [asyncio.create_task(self._run(), name="slack-progress"),
                       asyncio.create_task(self._tick(), name="slack-progress-ticker")]

    async def close(self, *, settle_s: float = 0.0) -> None:
        if settle_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settle(), settle_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Wait until every edit that is due was made (or found not needed)."""
        await self._idle.wait()

    def shown(self, job_id: str, update: JobUpdate) -> None:
        """A message was just posted showing `update` (without its picture: see submit)."""
        self._shown[job_id] = _key(job_blocks(update, actions_for(update.job), picture=False))
        self._last_edit[job_id] = self.clock.now()

    async def on_update(self, update: JobUpdate) -> None:
        job = update.job
        ref = job.progress_ref
        if job.platform != "slack" or ref is None or job.id in self._gone:
            return
        self._due[job.id] = update
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._due:
                self._idle.set()
            job_id = self._next()
            if job_id is None:
                self._wake.clear()
                await self.clock.wait(self._wake, self._soonest())
                continue
            await self._show(self._due.pop(job_id))
            await self.clock.sleep(self.pace_s)

    def _next(self) -> str | None:
        """The due job whose message may be edited now, finished ones first."""
        now = self.clock.now()
        ready = [u for j, u in self._due.items()
                 if now - self._last_edit.get(j, -1e18) >= self.interval_s]
        if not ready:
            return None
        return min(ready, key=lambda u: (not u.job.terminal, u.job.updated_at)).job.id

    def _soonest(self) -> float | None:
        if not self._due:
            return None
        now = self.clock.now()
        return max(0.0, min(self._last_edit.get(j, -1e18) + self.interval_s - now
                            for j in self._due))

    async def _show(self, update: JobUpdate) -> None:
        job, ref = update.job, update.job.progress_ref
        blocks = job_blocks(update, actions_for(job), picture=job.id not in self._no_picture)
        key = _key(blocks)
        if ref is None or self._shown.get(job.id) == key:
            return
        try:
            self.edits += 1
            await self.client.chat_update(channel=ref.channel_id, ts=ref.message_id,
                                          text=job_text(update), blocks=blocks)
        except SlackApiError as exc:
            await self._failed(update, exc)
            return
        self._shown[job.id] = key
        self._last_edit[job.id] = self.clock.now()
        if job.terminal:
            self._forget(job.id)

    async def _failed(self, update: JobUpdate, exc: SlackApiError) -> None:
        job_id = update.job.id
        error = exc.response.get("error")
        if error in GONE:
            log.info("job %s: progress message cannot be edited (%s)", job_id, error)
            self._gone.add(job_id)
            self._forget(job_id)
            return
        if error == "invalid_blocks" and job_id not in self._no_picture:
            log.info("job %s: Slack cannot show its input image; shown without it", job_id)
            self._no_picture.add(job_id)
        wait = float(exc.response.headers.get("Retry-After", 0) or 0) \
            if exc.response.status_code == 429 else 0.0
        log.warning("job %s: progress edit failed (%s); again in %.0f s", job_id, error, wait)
        self._due.setdefault(job_id, update)  # unless something newer came meanwhile
        self._last_edit[job_id] = self.clock.now()
        await self.clock.sleep(wait)

    def _forget(self, job_id: str) -> None:
        self._shown.pop(job_id, None)
        self._last_edit.pop(job_id, None)

    async def _tick(self) -> None:
        """At start, every job whose message may be stale; then the running ones."""
        since_s = RECENT_S
        while True:
            try:
                since = self.clock.now() - since_s if since_s else None
                jobs = await to_refresh(self.store, "slack", since, self.engine.coord.speaks_for)
                for update in await self.engine.updates_for(jobs):
                    await self.on_update(update)
            except Exception:
                log.exception("Slack progress refresh failed")
            since_s = 0.0
            await self.clock.sleep(REFRESH_S)


def _key(blocks: list[Block]) -> str:
    return json.dumps(blocks, sort_keys=True, default=str)
