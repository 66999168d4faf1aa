"""An extended clip's whole chain as one video, posted after the clip itself, exactly once.

When a job that extends another (`parent_id`) is delivered, its chain (root first, `Store.chain_of`)
is joined into one video on a worker pool (`bot.media.stitch`), made to fit where it goes, and
handed to the front end's `ChainPoster`. A clip whose file is no longer kept (the engine's
sweep deletes videos VIDEO_KEEP_HOURS after their job ended) leaves the chain unmade: the front
end posts a note saying why instead, under the new clip it already posted.

The job's `chain` record holds the steps: none or `pending` (nothing done outside the process: a
restart stitches again), then `posting` with the file or the note, written before the post, so
a restart first asks the front end whether the post happened; then `posted` (or `failed` when
the front end says it never can). The stitched file is deleted once posted: the clips remain.
Each front end runs one `Chains` for its own platform, started once its deliverer is registered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from bot.config import Settings
from bot.engine import ChainVideo, Engine, Job, JobState, JobUpdate, Post, Store
from bot.errors import StorageError, Undeliverable
from bot.media.encode import EncodePool
from bot.media.stitch import StitchError, stitch
from bot.units import format_mb

log = logging.getLogger(__name__)

FIRST_RETRY_S, LAST_RETRY_S = 5.0, 300.0
POST_TRIES = 8  # failed posts (over ~20 min) before the chain video is given up


def chain_marker(job: Job) -> str:
    """In every chain post: how a restart finds it."""
    return f"Chain of job `{job.id}`"


def chain_text(job: Job, chain: ChainVideo) -> str:
    """What a chain post says (any front end): the clips and length, or why there is no chain
    video."""
    if chain.path is None:
        return (f"The new clip is above; the whole chain is not, because {chain.note}. "
                f"{chain_marker(job)}")
    fitted = " (re-encoded to fit here)" if chain.fitted else ""
    return f"The whole chain: {chain.clips} clips, {chain.seconds:g} s{fitted}. {chain_marker(job)}"


class ChainPoster(Protocol):
    """What a front end adds to its deliverer to post chain videos."""

    def upload_limit(self, job: Job) -> int | None:
        """The largest file that may be posted where the job's video went (the deliverer's
        own); None: no limit."""
        ...

    async def post_chain(self, job: Job, chain: ChainVideo) -> Post:
        """Post the chain video (`chain.path`), or the note why there is none (`chain.note`)."""
        ...

    async def find_chain(self, job: Job) -> Post | None:
        """After a crash or failure mid-post: the chain post if it happened."""
        ...


class Chains:
    def __init__(self, engine: Engine, store: Store, settings: Settings, platform: str,
                 poster: ChainPoster, *, pool: EncodePool | None = None) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.platform = platform
        self.poster = poster
        # Joining and fitting are CPU work, never on the event loop: on the engine's encode
        # pool (ENCODE_WORKERS), in turn with the encodes that fit clips to their limits.
        self.pool = pool or engine.results.encoder
        self._busy: set[str] = set()  # jobs whose chain this process is working on
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Follow deliveries, and finish what a crash interrupted (call once the front end's
        deliverer is registered)."""
        self._unsubscribe = self.engine.subscribe(self._on_update)
        self._spawn(self._resume())

    async def close(self) -> None:
        """Stop now: what was in flight is in the store and resumes on the next start."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_update(self, update: JobUpdate) -> None:
        job = update.job
        if (job.platform == self.platform and job.parent_id is not None
                and job.state is JobState.DELIVERED and not (job.chain and job.chain.done)):
            self._spawn(self.run(job))

    async def _resume(self) -> None:
        for job in await self.store.chains_due():
            if job.platform == self.platform:
                self._spawn(self.run(job))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.engine.guard.start(coro)  # a StorageError there stops the engine
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, job: Job) -> None:
        """Make and post the job's chain video, from wherever it got to."""
        if job.id in self._busy:
            return
        self._busy.add(job.id)
        try:
            current = await self.store.get_job(job.id)
            if current is not None:
                await self._run(current)
        finally:
            self._busy.discard(job.id)

    async def _run(self, job: Job) -> None:
        chain = job.chain or ChainVideo()
        look_first = chain.state == "posting"
        if chain.state == "pending":
            chain = await self._make(job)
            job = await self._save(job, chain)
        if chain.state == "posting":
            await self._post(job, chain, look_first=look_first)

    async def _make(self, job: Job) -> ChainVideo:
        """The chain joined into one file that fits where it goes, or the note why not."""
        clips = await self.store.chain_of(job.id)
        gone = [c.id for c in clips if not await _exists(c.video_path)]
        if gone:
            return ChainVideo(state="posting", clips=len(clips), note=self._gone_note(gone))
        dst = self.settings.video_dir / f"{job.id}.chain.mp4"
        try:
            made = await self.pool.run(stitch, [Path(c.video_path or "") for c in clips], dst)
        except StitchError as exc:
            log.warning("job %s: chain video not made: %s", job.id, exc)
            return ChainVideo(state="posting", clips=len(clips),
                              note="the clips could not be joined (the log says why)")
        chain = ChainVideo(state="posting", path=str(made.path), seconds=round(made.seconds, 2),
                           clips=len(clips))
        return await self._fitted(job, chain)

    async def _fitted(self, job: Job, chain: ChainVideo) -> ChainVideo:
        """The chain as it may be posted where it goes: re-encoded to fit when too large, and
        when even that cannot fit, a note instead."""
        limit = self.poster.upload_limit(job)
        joined = Path(chain.path or "")
        size = await asyncio.to_thread(os.path.getsize, joined)
        if limit is None or size <= limit:
            return chain
        fit = joined.with_name(f"{job.id}.chain.fit.mp4")
        try:
            fitted = await self.pool.fit(joined, fit, limit)
        except Exception:  # a fault of ours in a file we made: say so rather than retry for ever
            log.exception("job %s: the chain video could not be fitted", job.id)
            fitted = None
        finally:
            await asyncio.to_thread(_unlink, str(joined))
        if fitted is None:
            return replace(chain, path=None, note=(
                f"the joined video is {format_mb(size)} MB and cannot be made to fit the "
                f"{format_mb(limit)} MB that may be posted here"))
        return replace(chain, path=str(fitted.path), fitted=True)

    def _gone_note(self, gone: list[str]) -> str:
        hours = self.settings.video_keep_s / 3600
        which = ", ".join(f"`{i}`" for i in gone)
        return (f"the video of {which} is no longer kept here (videos are kept {hours:g} "
                "hours after they are made)")

    async def _post(self, job: Job, chain: ChainVideo, *, look_first: bool) -> None:
        """Post once; after a failure (or a crash) look for the post before posting again."""
        wait = FIRST_RETRY_S
        for _ in range(POST_TRIES):
            try:
                where = await self.poster.find_chain(job) if look_first else None
                where = where or await self.poster.post_chain(job, chain)
            except Undeliverable as exc:
                log.warning("job %s: chain video cannot be posted: %s", job.id, exc)
                break
            except StorageError:
                raise
            except Exception:
                log.exception("job %s: posting the chain video failed", job.id)
                look_first = True
                await self.engine.clock.sleep(wait)
                wait = min(wait * 2, LAST_RETRY_S)
                continue
            # Posted: the file goes first (a restart finds the post, not the file).
            await asyncio.to_thread(_unlink, chain.path)
            await self._save(job, replace(chain, state="posted", path=None, post=where))
            return
        await asyncio.to_thread(_unlink, chain.path)
        await self._save(job, replace(chain, state="failed", path=None))

    async def _save(self, job: Job, chain: ChainVideo) -> Job:
        saved = await self.store.update_job(job.id, chain=chain,
                                            updated_at=self.engine.clock.now())
        if saved is None:
            return replace(job, chain=chain)
        await self.engine.changed(saved)
        return saved


async def _exists(path: str | None) -> bool:
    return bool(path) and await asyncio.to_thread(os.path.exists, path or "")


def _unlink(path: str | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)
