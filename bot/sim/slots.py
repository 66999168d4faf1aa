"""Each model's concurrency slots: which task holds one, and from when.

Nothing runs on a timer: whenever the simulator looks, queued tasks are given the slots that
came free in the meantime, each at the moment it came free, so states follow from timestamps.
"""

from __future__ import annotations

from collections import defaultdict, deque

from bot.provider.catalog import Model
from bot.sim.media import Refuse
from bot.sim.state import SimConfig, SimTask


class Slots:
    """The account's slots per model; over the limit a task waits in line or is refused."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._waiting: dict[str, deque[SimTask]] = defaultdict(deque)
        self._active: dict[str, list[SimTask]] = defaultdict(list)
        self._last_admit: dict[str, float] = {}

    def add(self, task: SimTask) -> None:
        """Take a new task: give it a slot, queue it, or raise the provider's 429."""
        now = task.created
        self.advance(now)
        if self.config.over_limit == "reject":
            if self._free_at(task.model, now) > now:
                limit = self.config.slots(task.model)
                raise Refuse(429, "Throttling", f"Too many concurrent tasks for model "
                             f"{task.api_name}: the account allows {limit} at a time.")
            self._admit(task, now)
            return
        self._waiting[task.model.name].append(task)
        self.advance(now)

    def withdraw(self, task: SimTask) -> None:
        """A canceled task leaves the line (it never held a slot)."""
        waiting = self._waiting[task.model.name]
        if task in waiting:
            waiting.remove(task)

    def advance(self, now: float) -> None:
        """Give slots to queued tasks in order, each at the moment a slot came free."""
        for name, waiting in self._waiting.items():
            while waiting:
                task = waiting[0]
                start = self._free_at(task.model, max(task.created, self._last_admit.get(name, 0)))
                if start > now:
                    break
                waiting.popleft()
                self._admit(task, start)

    def _free_at(self, model: Model, t0: float) -> float:
        """The first moment from `t0` when fewer than the model's slots are taken."""
        # Tasks that ended by t0 can never matter again: later calls ask about later times.
        active = [t for t in self._active[model.name] if t.end_at > t0]
        self._active[model.name] = active
        limit = self.config.slots(model)
        if len(active) < limit:
            return t0
        ends = sorted(t.end_at for t in active)
        return ends[len(ends) - limit]

    def _admit(self, task: SimTask, start: float) -> None:
        task.admitted = start
        self._active[task.model.name].append(task)
        self._last_admit[task.model.name] = start
