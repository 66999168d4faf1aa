"""Several processes on one PostgreSQL queue: who leads, who acts for each job, and how each
hears what the others did.

Leader: the process holding an advisory lock on a connection of its own. It alone admits,
submits, reconciles and polls, so per-model slots (counted in the store, under a per-model
lock) and the account's query cap hold however many processes run. The others try for the
lock every CAMPAIGN_S: when the leader dies its session ends, the lock frees, and one of them
leads within about a second (it then recovers what the old leader left, as after a restart).
A leader that loses its lock's connection stops with StorageError: it can no longer know
it leads (its supervisor restarts it as a follower).

Leases: the process that queues a job leases it, and renews its own liveness (one row, expiry
in the server's clock) each HEARTBEAT_S: a lease lives while its process does. Only the
holder sends the job's updates to its front end (progress edits) and fetches and delivers
its video, keeping the exactly-once rule (`delivering` before the post, `find_delivery` after
a crash). A process that dies stops renewing: after LEASE_S, any process running the job's
front end that owns it takes the lease over (RESCAN_S) and carries on. A process stopping
cleanly drops its leases at once.

Wake-ups: a trigger NOTIFYs every new job and change of state; every process follows them
(queues, slots, results to deliver). A periodic re-scan covers any wake-up that was missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from bot.engine.coordination import Coordination, Followed
from bot.engine.jobs import TERMINAL, Job, JobState
from bot.engine.store.postgres import PostgresStore, is_blip
from bot.engine.store.session import Session
from bot.errors import StorageError

log = logging.getLogger(__name__)

CAMPAIGN_S = 0.5  # how often a follower tries to become leader
HEARTBEAT_S = 2.0  # leases renewed, the leader's connection checked
LEASE_S = 10.0  # a lease not renewed for this long is free for another process
RESCAN_S = 4.0  # fallback for missed wake-ups: unleased jobs, the leader's queue count
STOP_WAIT_S = 5.0  # at most this long handing back leases when stopping
WROTE_KEEP = 10_000  # (job, state) pairs this process wrote, remembered to skip their echo
LIVE = [s for s in JobState if s not in TERMINAL]
DONE_AT_PROVIDER = [JobState.SUCCEEDED, JobState.DELIVERING]

Spawn = Callable[[Awaitable[Any]], "asyncio.Task[Any]"]


class SharedCoordination(Coordination):
    shared = True

    def __init__(self, store: PostgresStore, *, lease_s: float = LEASE_S,
                 heartbeat_s: float = HEARTBEAT_S, rescan_s: float = RESCAN_S) -> None:
        self.store = store
        self.lease_s, self.heartbeat_s, self.rescan_s = lease_s, heartbeat_s, rescan_s
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.mine: set[str] = set()  # jobs whose lease this process holds
        self._leader = False
        self._sessions: list[Session] = []
        self._listening: Session | None = None
        self._wrote: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._engine: Followed | None = None
        self.leading = asyncio.Event()  # set once this process leads
        self.led_at: float | None = None  # when it took the lock (unix seconds)

    @property
    def leader(self) -> bool:
        return self._leader

    async def start(self, engine: Followed, spawn: Spawn) -> None:
        self._engine = engine
        await self._listen()
        spawn(self._follow())
        spawn(self._heartbeat())
        spawn(self._campaign())
        log.info("sharing the queue as %s", self.id)

    async def stop(self) -> None:
        for session in self._sessions:
            await session.close()  # the leader's lock goes with its session
        self._sessions.clear()
        try:  # handed back: others take these jobs at their next re-scan, not in LEASE_S
            await asyncio.wait_for(self.store.drop_leases(self.id), STOP_WAIT_S)
        except (StorageError, TimeoutError) as exc:
            log.warning("could not hand back leases (%s); they expire in %.0f s", exc,
                        self.lease_s)

    async def _listen(self) -> None:
        self._listening = await self.store.session()
        self._sessions.append(self._listening)
        await self._listening.listen(self._inbox.put_nowait)

    def speaks_for(self, job_id: str) -> bool:
        return job_id in self.mine

    async def claim(self, job: Job) -> bool:
        if self._engine is None or not self._engine.can_act(job):
            return False
        if await self.store.claim_lease(job.id, self.id, self.lease_s):
            self.mine.add(job.id)
            return True
        self.mine.discard(job.id)
        return False

    async def created(self, job: Job) -> None:
        self.wrote(job.id, job.state)
        await self.store.claim_lease(job.id, self.id, self.lease_s)
        self.mine.add(job.id)

    def wrote(self, job_id: str, state: str) -> None:
        self._wrote[(job_id, str(state))] = None
        while len(self._wrote) > WROTE_KEEP:
            self._wrote.popitem(last=False)

    def unwrote(self, job_id: str, state: str) -> None:
        self._wrote.pop((job_id, str(state)), None)

    @asynccontextmanager
    async def admission(self, model: str) -> AsyncIterator[None]:
        async with self.store.lock("admit:" + model):
            yield

    @asynccontextmanager
    async def intake(self, team_id: str) -> AsyncIterator[None]:
        async with self.store.lock("intake:" + team_id):
            yield

    # --- loops -------------------------------------------------------------------------------

    async def _campaign(self) -> None:
        """Try for leadership until it is ours; then hold it while the connection lives."""
        session = await self._candidate()
        self._leader = True
        self.led_at = time.time()
        self.leading.set()
        log.info("this process leads: it admits, submits and polls for every process")
        assert self._engine is not None
        await self._engine.lead()
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await session.ping()
            except Exception as exc:
                if not self._sessions:
                    return  # stopping
                raise StorageError(self.store.where, "lost the connection that holds the "
                                   "leadership; stopping so that another process leads") from exc

    async def _candidate(self) -> Session:
        """Ask for the lock every CAMPAIGN_S until granted; a dropped connection is made
        again (StorageError if the database stays away past the store's bound)."""
        session: Session | None = None
        while True:
            if session is None or session.closed:
                session = await self.store.session()
                self._sessions.append(session)
            try:
                if await session.try_lock("leader"):
                    return session
            except Exception as exc:
                if not is_blip(exc):
                    raise
                log.warning("asking for leadership failed (%s); asking again", exc)
                await session.close()
            await asyncio.sleep(CAMPAIGN_S)

    async def _follow(self) -> None:
        """Act on every wake-up: a job created or moved by another process."""
        assert self._engine is not None
        while True:
            job_id, state, _ = (await self._inbox.get()).split(" ", 2)
            if (job_id, state) in self._wrote:
                del self._wrote[(job_id, state)]
                continue  # our own write: already followed here
            try:
                job = await self.store.get_job(job_id)
                if job is not None:
                    await self._engine.heard(job)
            except StorageError:
                raise  # fatal: the engine's guard stops it
            except Exception:
                log.exception("following job %s failed", job_id)

    async def _heartbeat(self) -> None:
        """Renew our leases; now and then take over unleased jobs and recount the queue."""
        assert self._engine is not None
        loop = asyncio.get_running_loop()
        scanned = float("-inf")  # at once: jobs left by a process that stopped are ours now
        while True:
            before = set(self.mine)
            held = await self.store.renew_leases(self.id, self.lease_s)
            if held is not None:  # it had lapsed: some of its jobs may be another's now
                self.mine = held | (self.mine - before)  # and what was claimed meanwhile
            if loop.time() - scanned >= self.rescan_s:
                scanned = loop.time()
                try:
                    await self._rescan()
                except StorageError:
                    raise  # fatal: the engine's guard stops it
                except Exception:
                    log.exception("re-scan failed; trying again")
            await asyncio.sleep(self.heartbeat_s)

    async def _rescan(self) -> None:
        assert self._engine is not None
        if self._listening is not None and self._listening.closed:
            log.warning("the wake-up connection was lost; listening again")  # this scan
            self._sessions.remove(self._listening)  # makes up for what it missed meanwhile
            await self._listen()
        self.mine -= await self.store.drop_ended_leases(self.id)
        for job in await self.store.leased(self.id, DONE_AT_PROVIDER):
            await self._engine.heard(job)  # ours to deliver, in case its wake-up was lost
        for job in await self.store.unleased(LIVE):
            if await self.claim(job):
                log.info("job %s: taken over (its process stopped renewing its lease)", job.id)
                await self._engine.heard(job)
        if self._leader:
            await self._engine.recount()

