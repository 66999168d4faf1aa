"""Which queued jobs' messages show a place in line that is out of date, found without looking
at every queued job after every change of the queue.

A job's message shows its exact place near the front and a coarse "N+ ahead" further back
(`job_facts.place_text`). One change of the queue (a job added, admitted or removed) moves a
place by about one, so a job at place p is looked at again only after about p/10 changes: the
front on every change, the thousandth job every hundred. Each look costs one `position`.
"""

from __future__ import annotations

import heapq
import time

from bot.engine.queue import Queues
from bot.frontends.common.job_facts import EXACT_PLACES, place_text

RECHECK_SHARE = 0.1  # look again after the queue changed this share of the place
NEAR = 1  # urgency of a place near the front (a state change is 0)
FAR = 2  # urgency of a coarse place further back


class QueuePlaces:
    def __init__(self, queues: Queues) -> None:
        self.queues = queues
        self._model: dict[str, str] = {}  # followed job -> its model
        self._shown: dict[str, str] = {}  # job -> the place text its message shows
        self._due: dict[str, list[tuple[int, str]]] = {}  # model -> (queue version, job)
        self._next: dict[str, int] = {}  # job -> the version at which it is looked at again
        self._seen: dict[str, int] = {}  # model -> the queue version last looked at

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._model

    def __len__(self) -> int:
        return len(self._model)

    def follow(self, job_id: str, model: str) -> None:
        """A queued job with a message: look at its place at the next check."""
        self._model[job_id] = model
        self._schedule(job_id, model, 0)
        self._seen.pop(model, None)

    def drop(self, job_id: str) -> None:
        self._model.pop(job_id, None)
        self._shown.pop(job_id, None)
        self._next.pop(job_id, None)

    def shown(self, job_id: str, place: int | None) -> None:
        """What the message now shows."""
        if job_id in self._model and place is not None:
            self._shown[job_id] = place_text(place)

    def changed(self, budget_s: float) -> tuple[bool, list[tuple[str, int]]]:
        """Look at places that may have moved, for about `budget_s` of CPU (the event loop
        waits meanwhile): whether some are left to look at, and the followed jobs whose shown
        place is out of date, with their urgency."""
        stop_at = time.perf_counter() + budget_s
        found: list[tuple[str, int]] = []
        for model, due in self._due.items():
            queue = self.queues.get(model)
            if self._seen.get(model) == queue.version:
                continue
            while due and due[0][0] <= queue.version and time.perf_counter() < stop_at:
                version, job_id = heapq.heappop(due)
                if self._next.get(job_id) != version:
                    continue  # stale, or no longer followed
                place = queue.position(job_id)
                if place is None:  # it left the queue (its state change will say so and drop
                    self._schedule(job_id, model, queue.version + 1)  # it), or none is read yet
                    continue
                self._schedule(job_id, model, queue.version + _patience(place))
                if place_text(place) != self._shown.get(job_id):
                    found.append((job_id, NEAR if place <= 2 * EXACT_PLACES else FAR))
            if not due or due[0][0] > queue.version:
                self._seen[model] = queue.version  # all looked at for this version
        return time.perf_counter() >= stop_at, found

    def _schedule(self, job_id: str, model: str, version: int) -> None:
        self._next[job_id] = version
        heapq.heappush(self._due.setdefault(model, []), (version, job_id))
        due = self._due[model]
        if len(due) > 2 * len(self._next) + 64:  # mostly stale entries: rebuild
            due[:] = [(v, j) for j, v in self._next.items() if self._model.get(j) == model]
            heapq.heapify(due)


def _patience(place: int) -> int:
    """Changes of the queue before a place can look different: 1 near the front."""
    return 1 if place <= 2 * EXACT_PLACES else int(place * RECHECK_SHARE)
