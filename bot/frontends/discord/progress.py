"""Keeps each job's progress message in step with the job, without hammering Discord.

A public job's message is edited with the bot's own token (never the interaction token, which
dies after 15 minutes). A private job's progress is its command's ephemeral answer, which only
the interaction token reaches: it is edited while the token lives, then left as it is. Edits
come at most once per interval per message, and only when what the message shows (its embed
and buttons) has changed. Discord's 429s are waited out by discord.py itself; an edit that
still fails is tried again an interval later, with whatever is newest by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import discord

from bot.clock import Clock
from bot.engine import Engine, JobUpdate, ProgressRef, Store
from bot.frontends.common.refresh import RECENT_S, to_refresh
from bot.frontends.discord.components import progress_view
from bot.frontends.discord.job_messages import progress_embed
from bot.frontends.discord.video_posts import interaction_webhook, token_alive

log = logging.getLogger(__name__)

REFRESH_S = 15.0  # running jobs are re-rendered this often: their bar and ETA move by themselves
TOKEN_DEAD = 401  # an interaction's token past its 15 minutes (code 50027)


@dataclass(frozen=True)
class Face:
    """What a progress message shows: the embed and the buttons."""

    embed: discord.Embed
    view: discord.ui.View | None

    @classmethod
    def of(cls, update: JobUpdate) -> Face:
        return cls(progress_embed(update), progress_view(update.job))

    def key(self) -> dict[str, Any]:
        """Equal keys look the same: no edit needed."""
        return {"embed": self.embed.to_dict(),
                "components": self.view.to_components() if self.view else []}

    def send_kwargs(self) -> dict[str, Any]:
        """For a new message (no view: no buttons)."""
        return {"embed": self.embed, **({"view": self.view} if self.view else {})}


class Gone(Exception):
    """The message can no longer be edited: deleted, forbidden, or its token has died."""


class ProgressBoard:
    def __init__(self, client: discord.Client, engine: Engine, store: Store, *,
                 interval_s: float = 5.0, clock: Clock | None = None) -> None:
        self.client = client
        self.engine = engine
        self.store = store
        self.interval_s = interval_s
        self.clock = clock or Clock()  # real time: Discord's limits do not follow the engine's
        self._latest: dict[str, JobUpdate] = {}  # newest update not yet shown, per job
        self._shown: dict[str, dict[str, Any]] = {}  # what each message shows now
        self._last_edit: dict[str, float] = {}
        self._flushing: dict[str, asyncio.Task[None]] = {}
        self._gone: set[str] = set()  # jobs whose message was deleted or cannot be edited
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.engine.subscribe(self.on_update)
        self._ticker = asyncio.create_task(self._tick(), name="progress-ticker")

    async def settle(self) -> None:
        """Wait until every edit that is due was made (or skipped: nothing shown changed)."""
        while self._flushing:
            await asyncio.gather(*self._flushing.values(), return_exceptions=True)

    async def close(self, *, settle_s: float = 0.0) -> None:
        """Stop; first give pending edits up to `settle_s` to go out."""
        if settle_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settle(), settle_s)
        tasks = [t for t in (self._ticker, *self._flushing.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def track(self, update: JobUpdate, posted: Face) -> None:
        """Start following a job whose message was just posted showing `posted`."""
        self._shown[update.job.id] = posted.key()
        self._last_edit[update.job.id] = self.clock.now()
        await self.on_update(update)

    async def on_update(self, update: JobUpdate) -> None:
        job = update.job
        if job.platform != "discord" or not job.progress_ref or job.id in self._gone:
            return
        self._latest[job.id] = update
        if job.id not in self._flushing:
            self._flushing[job.id] = asyncio.create_task(self._flush(job.id))

    async def _flush(self, job_id: str) -> None:
        try:
            while job_id in self._latest:
                wait = self._last_edit.get(job_id, -1e18) + self.interval_s - self.clock.now()
                if wait > 0:
                    await self.clock.sleep(wait)
                update = self._latest.pop(job_id)
                try:
                    await self._show(update)
                except asyncio.CancelledError:
                    self._latest.setdefault(job_id, update)  # not shown: still pending
                    raise
        finally:
            self._flushing.pop(job_id, None)

    async def _show(self, update: JobUpdate) -> None:
        face = Face.of(update)
        job_id = update.job.id
        if self._shown.get(job_id) == face.key():
            return
        try:
            await self._edit(update, face)
        except Gone as exc:
            log.info("job %s: progress message cannot be edited (%s); no more edits",
                     job_id, exc)
            self._gone.add(job_id)
            self._forget(job_id)
            return
        except discord.HTTPException as exc:
            log.warning("job %s: progress edit failed (%s); trying again", job_id, exc.status)
            self._latest.setdefault(job_id, update)  # unless something newer came meanwhile
            self._last_edit[job_id] = self.clock.now()
            return
        self._shown[job_id] = face.key()
        self._last_edit[job_id] = self.clock.now()
        if update.job.terminal:
            self._forget(job_id)

    async def _edit(self, update: JobUpdate, face: Face) -> None:
        ref = update.job.progress_ref
        assert ref is not None, "only jobs with a progress message are shown"
        try:
            if ref.is_interaction:
                await self._edit_answer(ref, face)
            else:
                channel = self.client.get_partial_messageable(int(ref.channel_id))
                message = channel.get_partial_message(int(ref.message_id))
                await message.edit(embed=face.embed, view=face.view)
        except (discord.NotFound, discord.Forbidden) as exc:
            raise Gone(str(exc.status)) from exc
        except discord.HTTPException as exc:
            if exc.status == TOKEN_DEAD:
                raise Gone("token expired") from exc
            raise

    async def _edit_answer(self, ref: ProgressRef, face: Face) -> None:
        """A private job's ephemeral answer, while the interaction's token lives."""
        if not token_alive(ref):
            raise Gone("token expired")
        webhook = interaction_webhook(self.client, ref)
        await webhook.edit_message(int(ref.message_id), embed=face.embed, view=face.view)

    def _forget(self, job_id: str) -> None:
        self._last_edit.pop(job_id, None)
        self._shown.pop(job_id, None)

    async def _tick(self) -> None:
        """Re-render now and then: at start every job whose message may be stale (the last
        process may have stopped before its final edit), then the running ones, whose bar and
        ETA move without a state change."""
        since_s = RECENT_S
        while True:
            try:
                since = self.clock.now() - since_s if since_s else None
                jobs = await to_refresh(self.store, "discord", since)
                for update in await self.engine.updates_for(jobs):
                    await self.on_update(update)
            except Exception:
                log.exception("progress refresh failed")
            since_s = 0.0
            await self.clock.sleep(max(self.interval_s, REFRESH_S))

