"""Clients waiting for jobs to end (wait_jobs), kept so that waiting costs the head node nothing per pass.

A wait is resolved against what it asks for once, when it starts: ids of no job, and jobs that have
already ended, are answered at once (ended jobs not in memory are read with one query, without their
tasks). What remains are active jobs, indexed by id: a job's end touches only the waits for it, so a
loop pass costs the jobs that ended, never the ids waited for. One user's waits hold at most
MAX_WAITED_IDS ids, and a wait whose client hung up is dropped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import HpcError
from ..model.objects import Job, now

MAX_WAITED_IDS = 50_000  # active jobs one user's waits may hold at once (administrators: no limit)


@dataclass(eq=False)
class Waiter:
    """A client waiting for `pending` jobs to end; `states` has the answer so far."""

    uid: int
    pending: set[int]
    states: dict[str, str]
    deadline: float
    done: asyncio.Future[dict[str, Any]] = field(repr=False)


class Waits:
    def __init__(self) -> None:
        self.waiters: list[Waiter] = []
        self._by_job: dict[int, list[Waiter]] = {}
        self._held: Counter[int] = Counter()  # pending ids, by uid
        self.ended: set[int] = set()  # waited-for jobs that moved to a final state since the last resolve

    def add(self, waiter: Waiter, admin: bool) -> None:
        if not admin and self._held[waiter.uid] + len(waiter.pending) > MAX_WAITED_IDS:
            raise HpcError("TooManyWaits", f"One user's waits may hold {MAX_WAITED_IDS:,} jobs at once; these would "
                           f"hold {self._held[waiter.uid] + len(waiter.pending):,}. Wait for fewer jobs.")
        self.waiters.append(waiter)
        self._held[waiter.uid] += len(waiter.pending)
        for job_id in waiter.pending:
            self._by_job.setdefault(job_id, []).append(waiter)

    def job_ended(self, job_id: int) -> None:
        """Called on every move to a final state (it may still be undone: resolve checks again)."""
        if job_id in self._by_job:
            self.ended.add(job_id)

    def resolve(self, jobs: dict[int, Job]) -> None:
        """Answers the waits whose jobs have all ended, or whose deadline passed."""
        ended, self.ended = self.ended, set()
        for job_id in ended:
            job = jobs.get(job_id)
            if job is not None and not job.terminal:
                continue  # the change that ended it was rolled back
            for waiter in self._by_job.pop(job_id, []):
                waiter.pending.discard(job_id)
                self._held[waiter.uid] -= 1
                if job is not None:
                    waiter.states[str(job_id)] = str(job.state.name)
                if not waiter.pending:
                    self.finish(waiter, jobs)
        current = now()
        for waiter in [w for w in self.waiters if w.deadline <= current]:
            self.finish(waiter, jobs)

    def finish(self, waiter: Waiter, jobs: dict[int, Job]) -> None:
        """Answers the wait with the states it has (the active jobs' current ones), and forgets it."""
        if waiter not in self.waiters:
            return
        self.waiters.remove(waiter)
        for job_id in waiter.pending:
            waiting = self._by_job.get(job_id, [])
            if waiter in waiting:
                waiting.remove(waiter)
            if not waiting:
                self._by_job.pop(job_id, None)
            job = jobs.get(job_id)
            if job is not None:
                waiter.states[str(job_id)] = str(job.state.name)
        self._held[waiter.uid] -= len(waiter.pending)
        if not self._held[waiter.uid]:
            del self._held[waiter.uid]
        waiter.pending = set()
        if not waiter.done.done():
            waiter.done.set_result(waiter.states)

    def held(self, uid: int) -> int:
        return self._held[uid]
