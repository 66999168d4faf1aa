"""The pauses and the deck behind each model's slots: how long an account's model waits after
a refusal, and the task kept on deck beyond the slots.

A provider that holds tasks PENDING beyond an account's concurrency lets us keep one on deck
per model (`ON_DECK`), so a freed slot starts the next task at once. One that refuses them (429)
turns the deck off for that model; it then starts a task only when we have seen a slot free, so
the moment a task ends matters: `wanted` tells the poller so.

Pauses are kept per "model@key" (each API key is its own account), the deck per model.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.config import Settings
from bot.errors import ApiError

log = logging.getLogger(__name__)

FIRST_BACKOFF_S, LONGEST_BACKOFF_S = 10.0, 300.0
LONGEST_RETRY_AFTER_S = 3600.0  # an absurd Retry-After: not for ever


class SlotGate:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._blocked: dict[str, float] = {}  # "model@key" -> no submissions before this time
        self._backoff: dict[str, float] = {}  # "model@key" -> current pause after refusals
        self._deck: dict[str, int] = {}  # model -> tasks on deck beyond its slots (0: refused)

    def deck(self, model: str) -> int:
        return self._deck.get(model, self.settings.on_deck)

    def blocked(self, pause: str) -> bool:
        """Whether this model@key is paused after a refusal."""
        return self._blocked.get(pause, 0) > self.clock.now()

    def next_unblock(self) -> float | None:
        """Seconds until the first paused model@key may send again (None: none is paused)."""
        now = self.clock.now()
        waits = [t - now for t in self._blocked.values() if t > now]
        return min(waits) if waits else None

    def refused(self, pause: str, model: str, exc: ApiError) -> float:
        """The account refused a create (its slots are full, or it is busy): pause the
        model@key, longer after each refusal in a row; the pause in seconds."""
        backoff = min(max(self._backoff.get(pause, FIRST_BACKOFF_S / 2) * 2, FIRST_BACKOFF_S),
                      LONGEST_BACKOFF_S)
        if exc.retry_after_s:
            backoff = min(max(exc.retry_after_s, 1.0), LONGEST_RETRY_AFTER_S)
        self._backoff[pause] = backoff
        if exc.status == 429 and self.deck(model):
            log.info("model %s: the provider refuses tasks beyond its slots; none on deck", model)
            self._deck[model] = 0
        self._blocked[pause] = self.clock.now() + backoff
        return backoff

    def created(self, pause: str) -> None:
        """A create was accepted: the next refusal starts the pauses afresh."""
        self._backoff.pop(pause, None)

    def freed(self, pause: str) -> None:
        """A task ended: its slot is free now, whatever pause was running."""
        self._blocked.pop(pause, None)

    def wanted(self, model: str, queued: bool) -> bool:
        """A job is `queued` for this model and the provider holds none of ours on deck: until
        we see a task end, its slot stands idle."""
        return queued and self.deck(model) == 0
