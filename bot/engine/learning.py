"""The poll policy kept up to date with the durations of finished tasks, out of the way of the
next create.

Refitting a history is a few milliseconds of CPU on the event loop. When a task ends while jobs
wait for its model, the create that takes the freed slot goes first: the refit waits until that
create has been answered (or until a task ends with nobody waiting). A fit one task behind the
newest is as good for polling; a slot left idle while we refit is not.
"""

from __future__ import annotations

from bot.engine.poll_policy import PollPolicy
from bot.engine.store import Store


class Learning:
    def __init__(self, store: Store, policy: PollPolicy) -> None:
        self.store = store
        self.policy = policy
        self._stale: set[str] = set()  # models with durations not yet taken in

    async def learn(self, model: str) -> None:
        """Fit the model's history now, and each of its keys' (resolution, length, mode)."""
        self._stale.discard(model)
        self.policy.learn(model, await self.store.durations(model))
        for key, durations in (await self.store.durations_by_key(model)).items():
            self.policy.learn(key, durations)

    async def finished(self, model: str, *, create_follows: bool) -> None:
        """A task of `model` ended with its duration recorded; `create_follows`: a queued job
        is about to take its slot, so the refit waits for `created`."""
        if create_follows:
            self._stale.add(model)
        else:
            await self.learn(model)

    async def created(self, model: str) -> None:
        """A create of `model` was answered: take in what finished meanwhile."""
        if model in self._stale:
            await self.learn(model)
