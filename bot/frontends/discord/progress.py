"""Keeps each job's progress message in step with the job, within Discord's request budget.

A public job's message is edited with the bot's own token (never the interaction token, which
dies after 15 minutes). A private job's progress is its command's ephemeral answer, which only
the interaction token reaches: it is edited while the token lives, then left as it is. Edits
come at most once per interval per message, only when what the message shows (its embed and
buttons) has changed, and within a per-channel and a global budget (`edit_budget`): state
changes first, then places near the front of a queue, then coarse places further back. Places
in line are looked at only when they may have changed (`queue_places`), and "Expected" stays
put until the estimate moves by a fair share of the wait, so a long queue costs few edits.
Discord's 429s are waited out by discord.py itself; an edit that still fails is tried again an
interval later, with whatever is newest by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import discord

from bot.clock import Clock
from bot.engine import Engine, Job, JobState, JobUpdate, ProgressRef, Store
from bot.frontends.common.refresh import RECENT_S, to_refresh
from bot.frontends.discord.components import progress_view
from bot.frontends.discord.edit_budget import EditQueue
from bot.frontends.discord.job_messages import progress_embed
from bot.frontends.discord.queue_places import QueuePlaces
from bot.frontends.discord.video_posts import interaction_webhook, token_alive

log = logging.getLogger(__name__)

REFRESH_S = 15.0  # running jobs are re-rendered this often: their bar and ETA move by themselves
TOKEN_DEAD = 401  # an interaction's token past its 15 minutes (code 50027)
STATE_CHANGE, REFRESH = 0, 1  # urgencies (places in line: queue_places.NEAR and FAR)
CONCURRENT_EDITS = 8
PLACES_BUDGET_S = 0.005  # CPU per pass of the edit loop for looking at places in line
EXPECTED_SLACK = 0.2  # "Expected" moves when the estimate is off by this share of the wait...
EXPECTED_MIN_S = 60.0  # ...and by at least this much


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
                 interval_s: float = 5.0, clock: Clock | None = None,
                 owns: Callable[[Job], bool] = lambda job: True) -> None:
        self.client = client
        self.owns = owns  # another process edits the jobs of guilds on its shards
        self.engine = engine
        self.store = store
        self.interval_s = interval_s
        self.clock = clock or Clock()  # real time: Discord's limits do not follow the engine's
        self.edits = EditQueue(interval_s)
        self.places = QueuePlaces(engine.queues)
        self._latest: dict[str, JobUpdate] = {}  # newest update not yet shown, per job
        self._refs: dict[str, ProgressRef] = {}
        self._shown: dict[str, dict[str, Any]] = {}  # what each message shows now
        self._expected: dict[str, float] = {}  # the "Expected" time each message shows
        self._gone: set[str] = set()  # jobs whose message was deleted or cannot be edited
        self._editing: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()

    def start(self) -> None:
        self.engine.subscribe(self.on_update)
        self._loops = [asyncio.create_task(self._tick(), name="progress-ticker"),
                       asyncio.create_task(self._run(), name="progress-edits")]

    async def settle(self) -> None:
        """Wait until every edit that is due was made (or skipped: nothing shown changed),
        places that may have moved included."""
        self._idle.clear()
        self._wake.set()
        await self._idle.wait()  # set after a pass that left no edit waiting

    async def close(self, *, settle_s: float = 0.0) -> None:
        """Stop; first give pending edits up to `settle_s` to go out."""
        if settle_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settle(), settle_s)
        tasks = [*self._loops, *self._editing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def track(self, update: JobUpdate, posted: Face) -> None:
        """Start following a job whose message was just posted showing `posted`."""
        self._shown[update.job.id] = posted.key()
        self.edits.posted(update.job.id, self.clock.now())
        self.places.shown(update.job.id, update.position)
        await self.on_update(update)

    async def on_update(self, update: JobUpdate) -> None:
        self._want(update, STATE_CHANGE)

    def _want(self, update: JobUpdate, urgency: int) -> None:
        job = update.job
        if job.platform != "discord" or not job.progress_ref or job.id in self._gone \
                or not self.owns(job):
            return
        self._refs[job.id] = job.progress_ref
        self._latest[job.id] = update
        if job.state is JobState.QUEUED:
            self.places.follow(job.id, job.model)
        else:
            self.places.drop(job.id)
        self._ask(job.id, urgency)

    def _ask(self, job_id: str, urgency: int) -> None:
        self.edits.want(job_id, self._line(job_id), urgency, self.clock.now())
        self._wake.set()

    def _line(self, job_id: str) -> str:
        """Whose budget an edit spends: its channel's, or its interaction's webhook's."""
        ref = self._refs.get(job_id)
        if ref is None:
            return ""
        return str(ref.token if ref.is_interaction and ref.token else ref.channel_id)

    async def _run(self) -> None:
        """Look at places that may have moved, start the edits the budget allows, sleep."""
        while True:
            more = False
            try:
                more = self._check_places()
                self._start_edits()
            except Exception:
                log.exception("progress edits failed")
            if not self.edits:
                self._idle.set()
            wake_at = self.edits.wake_at(self.clock.now())
            pause = self.interval_s / 5 if self.places else None  # places: a few looks a turn
            if wake_at is not None:
                pause = min(pause or 1e9, max(0.0, wake_at - self.clock.now()))
            if more:
                pause = 0.0  # more places to look at: after whatever else is waiting
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    def _check_places(self) -> bool:
        """Ask for the edits of places that changed; whether more may be left to look at."""
        more, changed = self.places.changed(PLACES_BUDGET_S)
        for job_id, urgency in changed:
            if job_id in self._refs and job_id not in self._gone:
                self._ask(job_id, urgency)
        return more

    def _start_edits(self) -> None:
        while len(self._editing) < CONCURRENT_EDITS:
            job_id = self.edits.take(self.clock.now())
            if job_id is None:
                return
            task = asyncio.create_task(self._edit_job(job_id))
            self._editing.add(task)
            task.add_done_callback(self._edited)

    def _edited(self, task: asyncio.Task[None]) -> None:
        self._editing.discard(task)
        self._wake.set()

    async def _edit_job(self, job_id: str) -> None:
        sent, line = False, self._line(job_id)
        try:
            update = await self._current(job_id)
            if update is not None:
                sent = await self._show(update)
        except Exception:
            log.exception("job %s: progress edit failed", job_id)
        finally:
            self.edits.done(job_id, line, self.clock.now(), sent=sent)

    async def _current(self, job_id: str) -> JobUpdate | None:
        """What to show: the newest update; a queued job's place as it is now."""
        update = self._latest.pop(job_id, None)
        if update is None or update.job.state is JobState.QUEUED:
            job = await self.store.get_job(job_id)
            if job is None or not job.progress_ref:
                return None
            if update is None or job.state is JobState.QUEUED:
                update = await self.engine.update_for(job)
        return self._steady(update)

    def _steady(self, update: JobUpdate) -> JobUpdate:
        """The update with "Expected" as shown before, unless the estimate moved materially."""
        job = update.job
        if update.eta_s is None or job.terminal:
            self._expected.pop(job.id, None)
            return update
        now = job.created_at + update.elapsed_s
        expected = now + update.eta_s
        shown = self._expected.get(job.id)
        if shown is not None and abs(expected - shown) <= max(
                EXPECTED_MIN_S, EXPECTED_SLACK * max(0.0, shown - now)):
            return replace(update, eta_s=max(0.0, shown - now))
        self._expected[job.id] = expected
        return update

    async def _show(self, update: JobUpdate) -> bool:
        """Edit the message if what it shows changed; whether a request was sent."""
        face = Face.of(update)
        job_id = update.job.id
        if self._shown.get(job_id) == face.key():
            return False
        try:
            await self._edit(update, face)
        except Gone as exc:
            log.info("job %s: progress message cannot be edited (%s); no more edits",
                     job_id, exc)
            self._gone.add(job_id)
            self._forget(job_id)
            return True
        except discord.HTTPException as exc:
            log.warning("job %s: progress edit failed (%s); trying again", job_id, exc.status)
            self._latest.setdefault(job_id, update)  # unless something newer came meanwhile
            self._ask(job_id, STATE_CHANGE)  # an interval after this attempt
            return True
        self._shown[job_id] = face.key()
        self.places.shown(job_id, update.position)
        if update.job.terminal:
            self._forget(job_id)
        return True

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
        self.edits.forget(job_id)
        self.places.drop(job_id)
        self._shown.pop(job_id, None)
        self._expected.pop(job_id, None)
        self._refs.pop(job_id, None)

    async def _tick(self) -> None:
        """Re-render now and then: at start every job whose message may be stale (the last
        process may have stopped before its final edit), then the running ones, whose bar and
        ETA move without a state change. Queued jobs are left to `places`."""
        since_s = RECENT_S
        while True:
            try:
                if since_s:
                    await self._follow_queued()
                since = self.clock.now() - since_s if since_s else None
                jobs = [j for j in await to_refresh(self.store, "discord", since,
                                                    self.engine.coord.speaks_for)
                        if j.state is not JobState.QUEUED]  # places: see `places`
                for update in await self.engine.updates_for(jobs):
                    self._want(update, REFRESH)
            except Exception:
                log.exception("progress refresh failed")
            since_s = 0.0
            await self.clock.sleep(max(self.interval_s, REFRESH_S))

    async def _follow_queued(self) -> None:
        for job_id, model, stored in await self.store.progress_refs(JobState.QUEUED):
            ref = ProgressRef.from_dict(stored)
            if (job_id not in self._refs and ref.platform == "discord"
                    and self.engine.coord.speaks_for(job_id)):
                self._refs[job_id] = ref
                self.places.follow(job_id, model)
        self._wake.set()

