"""Which progress message to edit next, within Discord's request budget.

Discord allows about 5 edits per 5 s on one channel's messages and 50 requests a second per bot,
and bans the bot's address for an hour after 10,000 refused (401/403/429) requests in ten
minutes. Progress edits keep below both with headroom: 4 per channel per interval (5 s by
default) and half the bot's rate, so deliveries and command answers, which never wait for
edits, always find room. Each message is edited at most once per interval; the most urgent
edit goes first (a state change before a place in line, a near place before a far one).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

CHANNEL_EDITS = 4  # per channel per interval: Discord allows 5 per 5 s
GLOBAL_EDITS_PER_S = 25.0  # at a 5 s interval: half of Discord's 50/s per bot
DEFAULT_INTERVAL_S = 5.0  # shorter intervals (tests) compress every window alike
# Discord's window opens when a request arrives, ours when it leaves: our windows are longer
# by this factor, so requests delayed on the way cannot crowd into one of Discord's windows.
WINDOW_MARGIN = 1.3


class SlidingWindow:
    """At most `limit` events in any `window_s`: stricter than Discord's fixed windows."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def free_at(self, now: float) -> float:
        """When the next event may happen (`now` if at once)."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) < self.limit:
            return now
        return self._times[0] + self.window_s

    def take(self, now: float) -> None:
        self._times.append(now)

    def give_back(self) -> None:
        """An edit found nothing to change: it did not use its place."""
        if self._times:
            self._times.pop()


class EditQueue:
    """Messages waiting for an edit, by urgency, each channel within its own budget."""

    def __init__(self, interval_s: float) -> None:
        scale = interval_s / DEFAULT_INTERVAL_S
        self.interval_s = interval_s
        self._global = SlidingWindow(round(GLOBAL_EDITS_PER_S), scale * WINDOW_MARGIN)
        self._channels: dict[str, SlidingWindow] = {}
        self._ready: dict[str, list[tuple[int, int, str]]] = {}  # channel -> (urgency, seq, job)
        self._later: list[tuple[float, int, int, str]] = []  # (ready at, urgency, seq, job)
        self._wanted: dict[str, tuple[int, int, str]] = {}  # job -> (urgency, seq, channel)
        self._last: dict[str, float] = {}  # job -> when its message was last edited
        self._busy: set[str] = set()  # being edited now
        self._seq = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._wanted or self._busy)

    def want(self, job_id: str, channel: str, urgency: int, now: float) -> None:
        """Ask for an edit; a more urgent ask replaces a less urgent one."""
        held = self._wanted.get(job_id)
        if held is not None and held[0] <= urgency:
            return
        seq = next(self._seq)
        self._wanted[job_id] = (urgency, seq, channel)
        ready_at = self._last.get(job_id, -1e18) + self.interval_s
        if ready_at > now or job_id in self._busy:
            heapq.heappush(self._later, (max(ready_at, now), urgency, seq, job_id))
        else:
            heapq.heappush(self._ready.setdefault(channel, []), (urgency, seq, job_id))

    def posted(self, job_id: str, now: float) -> None:
        """A message was just posted (or edited elsewhere): its next edit waits an interval."""
        self._last[job_id] = now

    def take(self, now: float) -> str | None:
        """The most urgent edit the budget allows now, counted as spent; None if none."""
        self._release(now)
        if self._global.free_at(now) > now:
            return None
        best: tuple[int, int, str] | None = None
        for channel, heap in self._ready.items():
            top = self._top(heap)
            if top is not None and self._window(channel).free_at(now) <= now:
                best = min(best or top, top)
        if best is None:
            return None
        job_id = best[2]
        channel = self._wanted.pop(job_id)[2]
        heapq.heappop(self._ready[channel])
        self._global.take(now)
        self._window(channel).take(now)
        self._busy.add(job_id)
        return job_id

    def done(self, job_id: str, channel: str, now: float, *, sent: bool) -> None:
        """An edit finished; one that sent nothing gives its budget back."""
        self._busy.discard(job_id)
        if sent:
            self._last[job_id] = now
        else:
            self._global.give_back()
            self._window(channel).give_back()

    def forget(self, job_id: str) -> None:
        self._wanted.pop(job_id, None)
        self._last.pop(job_id, None)

    def wake_at(self, now: float) -> float | None:
        """When `take` may next find something (None: only a new `want` can change that)."""
        times = [self._later[0][0]] if self._later else []
        waiting = [c for c, heap in self._ready.items() if self._top(heap) is not None]
        if waiting:
            channel_free = min(self._window(c).free_at(now) for c in waiting)
            times.append(max(channel_free, self._global.free_at(now)))
        return min(times) if times else None

    def _release(self, now: float) -> None:
        """Move edits whose message's interval has passed to their channel's line."""
        while self._later and self._later[0][0] <= now:
            _, urgency, seq, job_id = heapq.heappop(self._later)
            held = self._wanted.get(job_id)
            if held is None or held[:2] != (urgency, seq):
                continue
            if job_id in self._busy:  # still being edited: look again an interval later
                heapq.heappush(self._later, (now + self.interval_s, urgency, seq, job_id))
                continue
            heapq.heappush(self._ready.setdefault(held[2], []), (urgency, seq, job_id))

    def _top(self, heap: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
        while heap:
            urgency, seq, job_id = heap[0]
            held = self._wanted.get(job_id)
            if held is not None and held[:2] == (urgency, seq):
                return heap[0]
            heapq.heappop(heap)
        return None

    def _window(self, channel: str) -> SlidingWindow:
        window = self._channels.get(channel)
        if window is None:
            window = self._channels[channel] = SlidingWindow(CHANNEL_EDITS,
                                                             self.interval_s * WINDOW_MARGIN)
        return window
