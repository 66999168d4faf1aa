"""Limits checked before any effort is spent on a request, for any front end.

A command's inputs are fetched, probed and uploaded before its job can be queued, and the
store's count of unfinished jobs only moves once it is queued: sixty commands at once would all
pass a check of the store alone. So a request that passes holds its place (a job and its
video-seconds) until it is queued or given up, and the next request's check counts what is
held. The check again at admission (under the engine's lock, `teams.check_admission`) stays the
one that counts; this one only stops the work early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bot.engine import Store
from bot.frontends.common import teams
from bot.frontends.common.teams import Claim, Held


class AdmissionGate:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()  # a check and its hold happen together
        self._holds: list[Claim] = []

    @contextlib.asynccontextmanager
    async def hold(self, claim: Claim, now: float) -> AsyncIterator[None]:
        """Check the team's limits counting what is held, then hold `claim` for the block;
        LimitError (and nothing held) when over a limit."""
        async with self._lock:
            await teams.check_limits(self.store, claim, now, self.held(claim))
            self._holds.append(claim)
        try:
            yield
        finally:
            self._holds.remove(claim)

    def held(self, claim: Claim) -> Held:
        """What requests of the claim's team and person, on their way, hold now."""
        team = [c for c in self._holds if c.team_id == claim.team_id]
        mine = [c for c in team if c.user_id == claim.user_id]
        return Held(len(mine), sum(c.seconds for c in mine), sum(c.seconds for c in team))
