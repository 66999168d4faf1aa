"""Who does what when processes share a queue: the small interface the engine asks, and its
single-process answer (SQLite: this process leads, admits, polls and acts for every job).

The shared answer (PostgreSQL, several processes) is `bot.engine.shared.SharedCoordination`:
one leader (an advisory lock) admits, submits, reconciles and polls for everyone, so per-model
slots and the account's query cap hold across processes; each job is acted for (progress
updates, fetching and delivering its video) by the one process holding its lease, which must
run the job's front end and own it (`owns`, e.g. the Discord shard of its guild).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Protocol

from bot.engine.jobs import Job

Owns = Callable[[Job], bool]  # a front end's say: is this job mine to deliver and update?


class Followed(Protocol):
    """What coordination asks of the engine."""

    async def lead(self) -> None:
        """Start admitting, submitting and polling (this process now leads)."""
        ...

    async def heard(self, job: Job) -> None:
        """Another process changed this job: follow it here."""
        ...

    def can_act(self, job: Job) -> bool:
        """Whether this process runs the job's front end and that front end owns the job."""
        ...

    async def recount(self) -> None:
        """The leader's fallback: find queued jobs whose wake-up was missed."""
        ...


class Coordination:
    """One process alone (SQLite): it leads and acts for every job."""

    shared = False

    @property
    def leader(self) -> bool:
        return True

    async def start(self, engine: Followed,
                    spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]]) -> None:
        await engine.lead()

    async def stop(self) -> None:
        return None

    def speaks_for(self, job_id: str) -> bool:
        """Whether this process sends the job's updates to its front end (and edits its
        progress message)."""
        return True

    async def claim(self, job: Job) -> bool:
        """Take the job's lease before fetching or delivering its video; False: another
        process holds it (or this one cannot act for the job)."""
        return True

    async def created(self, job: Job) -> None:
        """A job this process is about to queue: it acts for it from now on."""
        return None

    def wrote(self, job_id: str, state: str) -> None:
        """This process is writing the job's new state (its wake-up will be no news here)."""
        return None

    def unwrote(self, job_id: str, state: str) -> None:
        """That write did not happen (the job had moved on)."""
        return None

    def admission(self, model: str) -> AbstractAsyncContextManager[Any]:
        """Held while admitting jobs of `model` (slots counted and claimed as one step)."""
        return nullcontext()

    def intake(self, team_id: str) -> AbstractAsyncContextManager[Any]:
        """Held while a team's request is checked against its limits and queued."""
        return nullcontext()
