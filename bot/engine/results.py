"""Finished videos: fetched while their links live (24 h), then handed to the front end that
asked for them, exactly once.

A video larger than its destination takes (the deliverer's `upload_limit`) is re-encoded to
fit first, on the encode pool: `fitting` is written before the encode, and the fitted file (a
`Fit` record) with the move to `delivering`, so a restart encodes again from the original (a
canceled encode leaves no partial file) and a delivery retried posts the same file.

`delivering` is written before a front end posts; if the process dies mid-post, the next
attempt first asks the front end whether the post happened, so nothing is posted twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from bot.clock import Clock
from bot.config import Settings
from bot.engine.jobs import Job, JobState
from bot.engine.keys import KeyPool
from bot.engine.records import Delivery, Fit
from bot.engine.store import Store
from bot.errors import ApiError, StorageError, Undeliverable
from bot.media.encode import EncodePool
from bot.media.frames import poster_frame
from bot.units import MiB

log = logging.getLogger(__name__)

RESULT_TTL_S = 24 * 3600  # the provider keeps video links this long
MAX_VIDEO_BYTES = 1024 * MiB
FIRST_RETRY_S, LAST_RETRY_S = 5.0, 300.0
SWEEP_EVERY_S = 3600.0
DISK_TRIES = 6  # failed writes of a video to our disk before its job fails (over 2.5 min)

Transition = Callable[..., Awaitable[Job | None]]  # engine's guarded write + notify
Claim = Callable[[Job], Awaitable[bool]]  # may this process act for the job (its lease)?


class Deliverer(Protocol):
    def upload_limit(self, job: Job) -> int | None:
        """The largest file this job's destination takes, in bytes; None: any size."""
        ...

    async def deliver(self, job: Job, video: Path) -> Delivery:
        """Post the video; return where it went (kept in the job's `delivery`)."""
        ...

    async def find_delivery(self, job: Job) -> Delivery | None:
        """After a crash or failure mid-delivery: the post if it happened."""
        ...


class Results:
    def __init__(self, store: Store, keys: KeyPool, settings: Settings, clock: Clock,
                 transition: Transition, spawn: Callable[[Coroutine[Any, Any, Any]], None],
                 *, claim: Claim | None = None) -> None:
        self.store = store
        self.keys = keys
        self.settings = settings
        self.clock = clock
        self.transition = transition
        self.spawn = spawn
        self.claim = claim or _always
        self.deliverers: dict[str, Deliverer] = {}
        self.encoder = EncodePool(settings.encode_workers)
        # told (job id, share of frames done) as videos are re-encoded: for showing progress
        self.fit_listeners: list[Callable[[str, float], None]] = []
        self.owners: dict[str, Callable[[Job], bool]] = {}
        self._working: set[str] = set()  # jobs being fetched or delivered by this process
        self._fitting: dict[str, asyncio.Task[Fit]] = {}  # job id -> its encode, to stop it

    def register(self, platform: str, deliverer: Deliverer,
                 owns: Callable[[Job], bool] | None = None) -> None:
        """A front end's way to post (and which of the platform's jobs are its own, when
        processes share the queue: `owns`, else the deliverer's own `owns` if it has one);
        what waited for it goes out now."""
        self.deliverers[platform] = deliverer
        self.owners[platform] = owns or getattr(deliverer, "owns", None) or (lambda job: True)
        self.spawn(self._deliver_waiting(platform))

    def serves(self, job: Job) -> bool:
        """Whether this process runs the job's front end, and that front end owns the job."""
        owns = self.owners.get(job.platform)
        return owns is not None and owns(job)

    async def finish(self, job: Job) -> None:
        """Fetch the video, then deliver it (or, after a crash mid-post, look for the post
        first). Once at a time per job here, and only with its lease (see `claim`)."""
        if job.id in self._working:
            return
        self._working.add(job.id)
        try:
            if not await self.claim(job):
                return  # another process acts for this job
            job = await self.store.get_job(job.id) or job  # as it is now, not as it was
            fetched = await self._download(job) if not job.terminal else None
            deliverer = self.deliverers.get(job.platform) if self.serves(job) else None
            if fetched is not None and fetched.state in (JobState.SUCCEEDED, JobState.FITTING):
                await self._deliver(fetched)
            elif fetched is not None and fetched.state is JobState.DELIVERING and deliverer:
                await self._post(fetched, deliverer, check_first=True)
        finally:
            self._working.discard(job.id)

    resume = finish

    async def _download(self, job: Job) -> Job | None:
        if job.video_path and await asyncio.to_thread(os.path.exists, job.video_path):
            return job
        path = self.settings.video_dir / f"{job.id}.mp4"
        disk_failures = 0
        async for _ in self._retries(job.id, "download"):
            try:
                await self.keys.of(job).download(job.result_url or "", path,
                                                 max_bytes=MAX_VIDEO_BYTES)
                return await self.store.update_job(job.id, video_path=str(path))
            except ApiError as exc:
                if not exc.retryable or self._link_dead(job):
                    return await self.transition(
                        job, JobState.EXPIRED, expect=[JobState.SUCCEEDED],
                        error_code="Expired", error_message=exc.message)
                log.warning("job %s: download failed (%s)", job.id, exc.code)
            except OSError as exc:  # our disk: full, read-only, the folder gone
                disk_failures += 1
                log.error("job %s: cannot write its video to %s: %s", job.id, path.parent, exc)
                if disk_failures >= DISK_TRIES:
                    return await self.transition(
                        job, JobState.FAILED, expect=[JobState.SUCCEEDED],
                        error_code="StorageError", error_message=str(exc)[:200])
        return None

    def _link_dead(self, job: Job) -> bool:
        return self.clock.now() - (job.finished_at or 0) > RESULT_TTL_S

    async def _deliver(self, job: Job) -> None:
        """Fit the video to where it goes if it is too big, then post it (finish() makes
        sure only one call at a time works on a job here)."""
        deliverer = self.deliverers.get(job.platform) if self.serves(job) else None
        if deliverer is None:
            return  # delivered when its front end registers (or by the process that owns it)
        limit = deliverer.upload_limit(job)
        size = await asyncio.to_thread(_size, Path(job.video_path or ""))
        fit = None
        if limit is not None and size is not None and size > limit:
            fitting = await self.transition(job, JobState.FITTING,
                                            expect=[JobState.SUCCEEDED, JobState.FITTING])
            if fitting is None:
                return  # canceled meanwhile
            fit = await self._fit_unless_stopped(fitting, limit)
            if fit is None:
                return  # canceled while it was encoded: the encode stopped, its files are gone
        moved = await self.transition(job, JobState.DELIVERING,
                                      expect=[JobState.SUCCEEDED, JobState.FITTING], fit=fit)
        if moved is not None:
            await self._post(moved, deliverer, check_first=False)
        elif fit is not None:  # canceled while it was encoded: nobody needs what was made
            await asyncio.to_thread(_unlink_made, fit)

    def stop_fit(self, job_id: str) -> None:
        """The job was canceled: stop re-encoding its video (the encoder removes its part)."""
        if (task := self._fitting.get(job_id)) is not None:
            task.cancel()

    async def _fit_unless_stopped(self, job: Job, limit: int) -> Fit | None:
        """`_fit`, run so that `stop_fit` can end it (None then); a shutdown still raises."""
        task = asyncio.ensure_future(self._fit(job, limit))
        self._fitting[job.id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being stopped, not the job
            return None
        finally:
            self._fitting.pop(job.id, None)

    async def _fit(self, job: Job, limit: int) -> Fit:
        """The video re-encoded under `limit` on the encode pool (a Fit with no path: nothing
        fits, or the encode failed; the front end posts the link as before)."""
        src = Path(job.video_path or "")
        try:
            fitted = await self.encoder.fit(src, src.with_name(f"{job.id}-fit.mp4"), limit,
                                            progress=functools.partial(self._fit_progress, job.id))
        except asyncio.CancelledError:
            raise
        except Exception:  # a file PyAV cannot read, a full disk: the link still works
            log.exception("job %s: could not re-encode its video to fit %d bytes", job.id, limit)
            fitted = None
        if fitted is None or not fitted.reencoded:
            return Fit(limit_bytes=limit, poster=await self._poster(job))
        log.info("job %s: re-encoded to %d bytes at %dp to fit %d", job.id, fitted.size_bytes,
                 fitted.height, limit)
        return Fit(limit_bytes=limit, path=str(fitted.path), size_bytes=fitted.size_bytes,
                   height=fitted.height)

    async def _poster(self, job: Job) -> str | None:
        """A still of the video to show with its link; None if none can be made."""
        src = Path(job.video_path or "")
        try:
            made = await self.encoder.run(poster_frame, src, src.with_name(f"{job.id}.jpg"))
        except asyncio.CancelledError:
            raise
        except Exception:  # the link goes without a picture
            log.exception("job %s: could not take a poster frame", job.id)
            return None
        return str(made)

    def _fit_progress(self, job_id: str, done: float) -> None:
        for listener in list(self.fit_listeners):
            listener(job_id, done)

    async def _post(self, job: Job, deliverer: Deliverer, *, check_first: bool) -> None:
        """Post once; after a failure (or a crash) look for the post before posting again."""
        async for _ in self._retries(job.id, "delivery"):
            try:
                where = await deliverer.find_delivery(job) if check_first else None
                where = where or await deliverer.deliver(job, Path(job.post_path or ""))
            except Undeliverable as exc:
                log.warning("job %s: cannot be delivered: %s", job.id, exc)
                await self.transition(job, JobState.FAILED, expect=[JobState.DELIVERING],
                                      error_code="Undeliverable", error_message=str(exc))
                return
            except Exception:
                log.exception("job %s: delivery failed", job.id)
                check_first = True
                continue
            await self.transition(job, JobState.DELIVERED, expect=[JobState.DELIVERING],
                                  delivery=where, delivered_at=self.clock.now())
            return

    async def _deliver_waiting(self, platform: str) -> None:
        waiting = [JobState.SUCCEEDED, JobState.FITTING, JobState.DELIVERING]
        for job in await self.store.jobs_in(waiting):
            if job.platform == platform:
                self.spawn(self.finish(job))

    async def sweep_loop(self) -> None:
        """Now and then, delete videos nobody needs any more (disks are not infinite)."""
        while True:
            try:
                if removed := await self.sweep():
                    log.info("deleted %d old videos", removed)
            except StorageError:
                raise  # fatal: the engine's guard stops it
            except Exception:
                log.exception("video clean-up failed")
            await self.clock.sleep(SWEEP_EVERY_S)

    async def sweep(self) -> int:
        """Delete the videos of jobs that ended long enough ago; returns how many."""
        cutoff = self.clock.now() - self.settings.video_keep_s
        old = await self.store.old_videos(cutoff)
        for job in old:
            await asyncio.to_thread(_unlink, Path(job.video_path or ""))
            if job.fit is not None:
                await asyncio.to_thread(_unlink_made, job.fit)
            await self.store.update_job(job.id, video_path=None)
        return len(old)

    async def _retries(self, job_id: str, what: str) -> AsyncIterator[None]:
        """Yields once per attempt, waiting with back-off between attempts, for ever: a
        result that exists must not be dropped (the 24 h link ends it, see _link_dead)."""
        wait = FIRST_RETRY_S
        while True:
            yield
            log.info("job %s: %s again in %.0f s", job_id, what, wait)
            await self.clock.sleep(wait)
            wait = min(wait * 2, LAST_RETRY_S)


async def _always(job: Job) -> bool:
    return True


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _unlink_made(fit: Fit) -> None:
    """Remove the files made to fit a video (the re-encode, the poster frame)."""
    for made in (fit.path, fit.poster):
        if made:
            _unlink(Path(made))


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
