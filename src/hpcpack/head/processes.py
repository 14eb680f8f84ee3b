"""Which processes are a task's, proven (cgroup, or the owner's uid below the task in the process
tree, started after it), and signalling them: never by pid, group or session alone."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from ..model.objects import Job, Task, now
from ..model.states import TASK_TERMINAL
from . import executor, slurm
from .core import (
    STEP_KILL_INTERVAL,
    SURVIVOR_REPORT_AFTER,
    SWEEP_INTERVAL,
    Core,
    log,
)


class Processes(Core):
    def processes(self) -> list[executor.ProcessInfo]:
        if self._processes is None:
            self._processes = executor.snapshot()
        return self._processes

    def _task_uid(self, job: Job) -> int:
        return job.owner_uid if os.geteuid() == 0 else os.geteuid()

    def _owned(self, job: Job, since: float | None) -> list[executor.ProcessInfo]:
        """Processes that may be the job's: its tasks' uid, started after the job (or unit) did.
        No other process is ever signalled, so a stranger with a reused pid is never touched."""
        uid, since = self._task_uid(job), (since or 0.0) - 1.0  # start times are exact to the boot second
        return [p for p in self.processes() if p.uid == uid and p.started >= since]

    def _orphans(self) -> list[executor.ProcessInfo]:
        """Processes re-parented to the head node (it is a child subreaper) that it did not start:
        what a task left when its wrapper was killed."""
        me, ours = os.getpid(), self.launchers.pids()
        return [p for p in self.processes() if p.ppid == me and p.pid not in self.popen and p.pid not in ours]

    def _unit_processes(self, job: Job, unit: Task) -> list[int]:
        wrapper = unit.pid if unit.pid in self.popen else self._locking_wrapper(job, unit)
        return self._token_processes(job, unit.token, unit.start_time, wrapper)

    def _locking_wrapper(self, job: Job, unit: Task) -> int:
        """After a restart, its wrapper (no longer our child): the launcher, run by the task's user, that
        holds the lock on its exit file until it has recorded the task's end (launch.py, _hold). Under a
        head node run by a user, that user's tasks could take the lock themselves: hence the two checks."""
        pid = executor.lock_holder(self._exit_path(unit))
        return pid if pid and executor.is_launcher(pid, self._task_uid(job)) else 0

    def _token_processes(self, job: Job, token: str, since: float | None, wrapper: int = 0) -> list[int]:
        """A run's live processes: its cgroup, else its `wrapper` (proven by the caller: our unreaped child,
        or the holder of its exit file's lock; the wrapper may have started long before the task), those
        carrying its marker, and everything below them in the process tree (the wrapper is a subreaper, so
        escapes stay below it)."""
        found: set[int] = set(self.cgroups.pids(token))
        if token:
            owned = self._owned(job, since)
            roots = {p.pid for p in owned if p.task == token} | ({wrapper} if wrapper else set())
            found |= roots | (executor.descendants(owned, roots) & {p.pid for p in owned})
        return sorted(found)

    def _job_processes(self, job: Job, exclude: frozenset[str] | set[str] = frozenset()) -> list[int]:
        """Live processes of the job, minus those of the units in `exclude` (see _unit_processes);
        orphans of the head node with the job's uid count too, so an escape is never missed."""
        if job.start_time is None and not any(u.pid for u in job.units()):
            return []  # it never ran: nothing to look for
        owned = self._owned(job, job.start_time)
        marker = executor.job_marker(self.head_id, job.id)
        excluded = {p.pid for p in owned if p.task in exclude}
        excluded |= executor.descendants(owned, excluded)
        orphans = {p.pid for p in self._orphans()}
        roots = {p.pid for p in owned if p.job == marker or p.pid in orphans} - excluded
        found = (roots | executor.descendants(owned, roots)) & {p.pid for p in owned}
        for unit in job.units():
            if unit.token and unit.token not in exclude:
                found.update(self.cgroups.pids(unit.token))
        return sorted(found - excluded)

    def _signal_units(self, job: Job, units: list[Task], sig: signal.Signals) -> None:
        """Signals the units' processes once the change that asks for it is committed (never before:
        a crash or a full disk between the two must not leave killed tasks with no cancel on record).
        On Slurm the signal goes to the steps through Slurm; a local srun is only ever killed (TERM
        to srun would end its step at once, with no grace period)."""
        steps = [self._step_name(job, u) for u in units] if self.slurm is not None and job.slurm_job_id else []
        local = not steps or sig == signal.SIGKILL
        pids = [pid for u in units for pid in self._unit_processes(job, u)] if local else []
        tokens = [u.token for u in units] if sig == signal.SIGKILL else []

        def send() -> None:
            if steps:
                self._slurm_call(job, lambda s, a: s.signal_steps(a, steps, sig))
            failed = executor.signal_all(pids, sig)
            for token in tokens:
                self.cgroups.kill(token)
            if failed and job.cancel is not None:
                job.cancel.survivors = failed
        self.store.after_commit(send)

    def _step_name(self, job: Job, unit: Task) -> str:
        return slurm.step_name(self.head_id, job.id, unit.key, unit.requeue_count)

    def _slurm_call(self, job: Job, action: Callable[[slurm.Slurm, int], object]) -> None:
        """Runs `action(slurm, allocation)` for a job that holds an allocation; a Slurm failure is
        logged, never the end of the head node (the job's next pass tries what is still needed)."""
        if self.slurm is None or not job.slurm_job_id:
            return
        try:
            action(self.slurm, job.slurm_job_id)
        except slurm.SlurmError as e:
            log.warning("job %d: %s", job.id, e)

    def _slurm_after_commit(self, job: Job, command: str, text: str = "") -> None:
        """`command` ("comment" or "end") on the job's allocation once the change is committed, joined
        with the same command for the other jobs of the transaction: a bulk cancel of 1,000 queued jobs
        is one scancel, not 1,000. The id is taken now: a requeue in the same transaction clears it."""
        if self.slurm is None or not job.slurm_job_id:
            return
        slurm_id = job.slurm_job_id
        self.store.after_commit(lambda: self._slurm_gathered.setdefault((command, text), []).append(slurm_id))
        self.store.after_commit(self._run_gathered_slurm, last=True)

    def _run_gathered_slurm(self) -> None:
        gathered, self._slurm_gathered = self._slurm_gathered, {}
        engine = self.slurm
        if engine is None:
            return
        # Comments first: Slurm keeps none on a job it has ended.
        for (command, text), ids in sorted(gathered.items(), key=lambda item: item[0][0] != "comment"):
            try:
                if command == "comment":
                    engine.comment(ids, text)
                else:
                    engine.end(*ids)
            except slurm.SlurmError as e:
                log.warning("Slurm jobs %s: %s", ",".join(map(str, ids)), e)

    def _slurm_steps_left(self, job: Job) -> list[str]:
        """The job's steps Slurm still lists. With proctrack/cgroup a step is listed until every
        process in its cgroup is gone, so an empty list is Slurm's proof that nothing of it is left."""
        if self.slurm is None or not job.slurm_job_id:
            return []
        try:
            return sorted(self.slurm.steps(job.slurm_job_id))
        except slurm.SlurmError as e:
            gone = "Invalid job id" in str(e)
            return [] if gone else [f"unknown ({e})"]

    def _kill(self, job: Job, pids: list[int], end_allocation: bool = False) -> None:
        """SIGKILL to the job's processes and its Slurm steps; with `end_allocation`, to the whole
        allocation instead (Slurm then kills whatever is left of the job on every node)."""
        if now() >= self._next_step_kill.get(job.id, 0.0):  # scancel at most every STEP_KILL_INTERVAL
            self._next_step_kill[job.id] = now() + STEP_KILL_INTERVAL
            self._slurm_call(job, lambda s, a: s.end(a) if end_allocation else s.kill_all_steps(a))
        failed = executor.signal_all(pids, signal.SIGKILL)
        for unit in job.units():
            self.cgroups.kill(unit.token)
        since = job.cancel.term_deadline if job.cancel and job.cancel.term_deadline else None
        if since is None:
            return
        if job.cancel is not None:
            job.cancel.survivors = sorted(set(pids) | set(failed))
        if now() - since > SURVIVOR_REPORT_AFTER and pids:
            message = (f"Cancel incomplete: {len(pids)} process(es) of job {job.id} survive SIGKILL "
                       f"(pids {', '.join(map(str, pids[:10]))}).")
            if job.error_message != message:
                job.error_message = message
                self.commit(job, entry=("scheduler", "trouble", message))

    def _kill_later(self, job: Job, unit: Task) -> None:
        """SIGKILL at the end of the grace period, once the stop that asks for it is committed (a
        rolled-back one must not kill the task later)."""
        deadline = now() + self.property("TaskCancelGracePeriod")
        self.store.after_commit(lambda: self._task_deadlines.__setitem__(unit.key, (deadline, job, unit)))

    def sweep_leftovers(self) -> None:
        """Kills what ended tasks left behind; one /proc scan serves every task that ended lately."""
        if not self._sweep or now() < self._next_sweep:
            return
        units, self._sweep = self._sweep, []
        self._next_sweep = now() + SWEEP_INTERVAL
        orphans = {p.pid for p in self._orphans()}
        pids: set[int] = set()
        for left in units:
            pids.update(self._token_processes(left.job, left.token, left.since))
            # An orphan is this run's only if it is its owner's and started after it: never another user's.
            pids.update(p.pid for p in self._owned(left.job, left.since) if p.pid in orphans)
        executor.signal_all(sorted(pids), signal.SIGKILL)
        for left in units:
            self.cgroups.kill(left.token)
            self.cgroups.remove(left.token)

    def enforce_task_deadlines(self) -> None:
        for key, (deadline, job, unit) in list(self._task_deadlines.items()):
            if unit.state in TASK_TERMINAL:
                del self._task_deadlines[key]
            elif now() >= deadline:
                del self._task_deadlines[key]
                self._signal_units(job, [unit], signal.SIGKILL)
