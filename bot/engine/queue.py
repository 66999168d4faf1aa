"""Each model's queue kept in memory in the fair order of `bot.engine.fairness`, updated event by
event (a job added, admitted or removed), so neither admission nor a place in line re-reads or
re-sorts the whole queue.

Why the order can be kept this way: in `fair_order` a team's first turn comes in the order of
(when it was last served, its oldest waiting job); once served it goes behind every team, so
the teams take turns in that fixed cycle. The users of a team cycle the same way. So the next
job is the head of the first user of the first team (two heaps), and a job's place is counted
from the sizes of the queues ahead of it in those cycles, without walking the queue.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from bot.engine.jobs import Job, JobState, QueuedJob
from bot.engine.store import Store

NEVER = float("-inf")  # the turn of a team or user never served: before everyone
LOAD_CHUNK = 5000  # jobs read into a queue between two turns of the event loop


class Entry(NamedTuple):
    """A queued job as a user's queue sorts it: oldest first, then in arrival order."""

    created_at: float
    seq: int
    id: str
    team_id: str
    user_id: str


Key = tuple[float, float, int]  # (turn, created_at, seq): who goes first


class ModelQueue:
    """One model's queued jobs in fair order. Heaps hold stale entries, skipped when seen."""

    def __init__(self, team_last: dict[str, float], user_last: dict[str, float]) -> None:
        self._team_turn = dict(team_last)
        self._user_turn = dict(user_last)
        self._tick = max([0.0, *team_last.values(), *user_last.values()])
        self._entries: dict[str, Entry] = {}
        self._user_jobs: dict[str, list[Entry]] = {}
        self._user_team: dict[str, str] = {}
        self._team_users: dict[str, set[str]] = {}
        self._team_size: dict[str, int] = {}
        self._teams: list[tuple[Key, str]] = []  # every team's key (and stale ones)
        self._users: dict[str, list[tuple[Key, str]]] = {}  # per team: its users' keys
        self._oldest: dict[str, list[tuple[float, int, str]]] = {}  # per team: users' heads
        self.version = 0  # changes so far (adds, admissions, removals): places may have moved

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._entries

    # --- events ------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        if entry.id in self._entries:
            return
        self._detach(entry.user_id)
        self._entries[entry.id] = entry
        insort(self._user_jobs.setdefault(entry.user_id, []), entry)
        self._attach(entry.user_id)
        self.version += 1

    def remove(self, job_id: str) -> Entry | None:
        """Take a job out (canceled, failed): the entry, under the team its user is counted in
        (that of the user's oldest job); None if it was not queued."""
        entry = self._entries.pop(job_id, None)
        if entry is None:
            return None
        user = entry.user_id
        team = self._user_team[user]
        self._detach(user)
        jobs = self._user_jobs[user]
        del jobs[bisect_left(jobs, entry)]
        if not jobs:
            del self._user_jobs[user]
        self._attach(user)
        self.version += 1
        return entry if team == entry.team_id else entry._replace(team_id=team)

    def admit(self, job_id: str) -> None:
        """A job left for the provider: its team and user go behind everyone."""
        entry = self.remove(job_id)
        if entry is None:
            return
        self._tick += 1
        self._team_turn[entry.team_id] = self._user_turn[entry.user_id] = self._tick
        if entry.team_id in self._team_users:
            self._push_team(entry.team_id)
        if entry.user_id in self._user_team:
            self._push_user(entry.user_id)

    # --- reading -----------------------------------------------------------------------------

    def peek(self) -> str | None:
        """The job admitted next."""
        team = self._first(self._teams, self._team_key, self._team_users.__contains__)
        if team is None:
            return None
        user = self._first(self._users[team], self._user_key,
                           lambda u: self._user_team.get(u) == team)
        assert user is not None, "a team in the queue has users"
        return self._user_jobs[user][0].id

    def position(self, job_id: str) -> int | None:
        """A queued job's 1-based place. Costs the number of teams plus users of its team."""
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        user = entry.user_id
        team = self._user_team[user]
        jobs = self._user_jobs[user]
        k = bisect_left(jobs, entry)  # the job's round among its team's users
        mine = self._user_key(user)
        rank = 0  # its place among its team's jobs
        for other in self._team_users[team]:
            n = len(self._user_jobs[other])
            rank += min(n, k) + (n > k and self._user_key(other) < mine)
        ours = self._team_key(team)
        ahead = 0
        for other, n in self._team_size.items():
            ahead += min(n, rank) + (n > rank and self._team_key(other) < ours)
        return ahead + 1

    def front(self, limit: int | None = None) -> list[str]:
        """The first `limit` job ids (all without a limit) in admission order."""
        teams = sorted(self._team_users, key=self._team_key)
        return list(itertools.islice(_round_robin([self._team_jobs(t) for t in teams]), limit))

    def _team_jobs(self, team: str) -> Iterator[str]:
        users = sorted(self._team_users[team], key=self._user_key)
        return _round_robin([(e.id for e in self._user_jobs[u]) for u in users])

    # --- keys and heaps ----------------------------------------------------------------------

    def _user_key(self, user: str) -> Key:
        head = self._user_jobs[user][0]
        return (self._user_turn.get(user, NEVER), head.created_at, head.seq)

    def _team_key(self, team: str) -> Key:
        oldest = self._oldest[team]
        while (head := oldest[0])[2] not in self._team_users[team] or (
                self._head(head[2]) != head[:2]):
            heapq.heappop(oldest)
        return (self._team_turn.get(team, NEVER), head[0], head[1])

    def _head(self, user: str) -> tuple[float, int] | None:
        jobs = self._user_jobs.get(user)
        return (jobs[0].created_at, jobs[0].seq) if jobs else None

    def _first(self, heap: list[tuple[Key, str]], key_of: Callable[[str], Key],
               live: Callable[[str], bool]) -> str | None:
        """The heap's smallest entry that is still current (stale ones are dropped)."""
        while heap:
            key, name = heap[0]
            if live(name) and key == key_of(name):
                return name
            heapq.heappop(heap)
        return None

    def _detach(self, user: str) -> None:
        """Take a user's jobs out of its team's counts before they change."""
        team = self._user_team.pop(user, None)
        if team is None:
            return
        self._team_size[team] -= len(self._user_jobs[user])
        self._team_users[team].discard(user)
        if self._team_users[team]:
            self._push_team(team)
            return
        for table in (self._team_users, self._team_size, self._users, self._oldest):
            del table[team]

    def _attach(self, user: str) -> None:
        """Put a user back under the team of its oldest job, with its new keys."""
        jobs = self._user_jobs.get(user)
        if not jobs:
            return
        team = jobs[0].team_id
        self._user_team[user] = team
        self._team_users.setdefault(team, set()).add(user)
        self._team_size[team] = self._team_size.get(team, 0) + len(jobs)
        self._push_user(user)
        self._push_team(team)

    def _push_user(self, user: str) -> None:
        team = self._user_team[user]
        users, oldest = self._users.setdefault(team, []), self._oldest.setdefault(team, [])
        head = self._user_jobs[user][0]
        heapq.heappush(users, (self._user_key(user), user))
        heapq.heappush(oldest, (head.created_at, head.seq, user))
        if len(users) + len(oldest) > 4 * len(self._team_users[team]) + 64:
            members = self._team_users[team]  # too many stale entries: rebuild both
            users[:] = sorted((self._user_key(u), u) for u in members)
            oldest[:] = sorted((*self._head(u), u) for u in members)  # type: ignore[misc]

    def _push_team(self, team: str) -> None:
        heapq.heappush(self._teams, (self._team_key(team), team))
        if len(self._teams) > 2 * len(self._team_users) + 64:
            self._teams[:] = sorted((self._team_key(t), t) for t in self._team_users)


def _round_robin(sources: list[Iterator[str]]) -> Iterator[str]:
    """One from each source in turn, dropping those that run out."""
    active = [iter(s) for s in sources]
    while active:
        still = []
        for source in active:
            item = next(source, None)
            if item is not None:
                yield item
                still.append(source)
        active = still


class Queues:
    """Every model's queue; rebuilt from the store at start, then kept by the engine's events."""

    def __init__(self) -> None:
        self._models: dict[str, ModelQueue] = {}
        self._seq = itertools.count()
        self._loading = asyncio.Lock()
        self.loaded = False
        self._suspect: set[str] = set()  # models whose count differed from the store's once

    async def load(self, store: Store, models: Iterable[str], *, again: bool = False) -> None:
        """Read each model's queue and when each team and user was last served, once: from
        then on the events keep it. Callers that come meanwhile wait for the first read.
        `again`: read it afresh (a new leader: the last one's admissions are in the store)."""
        async with self._loading:
            if self.loaded and not again:
                return
            for model in models:
                teams = await store.last_admitted(model, "team_id")
                users = await store.last_admitted(model, "user_id")
                queue = ModelQueue(teams, users)
                for n, job in enumerate(await store.queued(model), start=1):
                    queue.add(self._entry(job))
                    if n % LOAD_CHUNK == 0:
                        await asyncio.sleep(0)  # a long queue must not stall the event loop
                if (before := self._models.get(model)) is not None:
                    queue.version += before.version  # versions only grow: readers compare them
                self._models[model] = queue
            self.loaded = True

    async def recount(self, store: Store, models: Iterable[str]) -> bool:
        """Another process's wake-up may have been missed: read the queues afresh if a model's
        count differs from the store's twice running (once may be a wake-up on its way)."""
        differ = {m for m in models if await store.count_in([JobState.QUEUED], m)
                  != len(self.get(m))}
        stale, self._suspect = differ & self._suspect, differ
        if stale:
            await self.load(store, sorted(stale), again=True)
        return bool(stale)

    def get(self, model: str) -> ModelQueue:
        return self._models.setdefault(model, ModelQueue({}, {}))

    def waiting(self) -> list[str]:
        """Models with queued jobs."""
        return sorted(model for model, queue in self._models.items() if len(queue))

    def update(self, job: Job) -> None:
        """Follow a job's new state: in line, sent to the provider, or gone."""
        queue = self.get(job.model)
        if job.state is JobState.QUEUED:
            queue.add(self._entry(job))
        elif job.state is JobState.SUBMITTING:
            queue.admit(job.id)
        else:
            queue.remove(job.id)

    def position(self, job: Job) -> int | None:
        return self.get(job.model).position(job.id)

    def _entry(self, job: Job | QueuedJob) -> Entry:
        return Entry(job.created_at, next(self._seq), job.id, job.team_id, job.user_id)
