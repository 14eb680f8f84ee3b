"""The head node's logic: jobs and tasks through their lives, cores, processes, cancels, recovery.

It is synchronous and single-threaded: the daemon calls `step()` whenever something happened
(a request, a child exited, a deadline passed) and each step is one of a short list of named
phases. Every state change goes through the transition table and is written to the store
before anyone can observe it.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from . import executor, jobspec, scheduler
from .config import PROPERTY_DEFAULTS, HeadNodeConfig
from .errors import HpcError
from .identity import Caller
from .model import CANCELED_BY_USER, FINISHED_BY_USER, TASKS_JOB_CANCELED, CancelRequest, Job, Task, now
from .params import MAX_MESSAGE
from .states import JOB_CANCELABLE, TASK_TERMINAL, TASK_WAITING, JobState, TaskState
from .store import Store, Transaction

log = logging.getLogger("hpcpack.headnode")


class StartFailure(Exception):
    """A task cannot be started; the message says why, for the task's error message."""

# HPC Pack's error codes stored on failed jobs and tasks (those of cancels are in model).
TASK_FAILURE = 0x800409DC
JOB_RUNTIME_EXPIRED = 0x800409D5

_CANCEL_KINDS = {  # (force, graceful, finish) -> (history word, RequestCancel value)
    (False, False, False): ("cancel", "CancelByUser"),
    (True, False, False): ("force", "CancelForceByUser"),
    (False, True, False): ("graceful", "CancelGraceful"),
    (False, False, True): ("finish", "Finish"),
    (True, False, True): ("finish", "FinishForce"),
    (False, True, True): ("finish", "FinishGraceful"),
}
SURVIVOR_REPORT_AFTER = 2.0  # seconds after SIGKILL before survivors are reported as trouble
SWEEP_INTERVAL = 0.1  # seconds between scans for what ended tasks left behind
CLEANUP_INTERVAL = 3600.0  # seconds between looks for ended jobs past their time to live


@dataclass(frozen=True)
class Leftover:
    """A run of a task that ended: whatever of it is still alive is killed at the next sweep."""

    job: Job
    token: str
    since: float | None


@dataclass
class Waiter:
    """A client waiting for jobs to end; `done` is the daemon's future for the answer."""

    ids: list[int]
    deadline: float
    done: Any


class HeadNode:
    def __init__(self, state_dir: Path, config: HeadNodeConfig) -> None:
        self.state_dir = state_dir
        self.config = config
        self.store = Store(state_dir / "headnode.db")
        self._properties: dict[str, str] | None = None
        self.head_id = self._head_id()
        self.output_dir = state_dir / "output"
        self.cgroups = executor.Cgroups(self.head_id)
        self.launchers = executor.Launchers()
        self.name = socket.gethostname().upper()
        self.jobs: dict[int, Job] = {}
        self._by_state: dict[JobState, dict[int, Job]] = {s: {} for s in JobState.__members__.values()}
        for job in self.store.load_jobs():
            self._add(job)
        self.running: dict[int, tuple[Job, Task]] = {}  # pid -> unit whose process we started
        self.popen: dict[int, Popen[bytes]] = {}
        self.adopted: dict[str, tuple[Job, Task]] = {}  # units found running after a restart
        self.waiters: list[Waiter] = []
        self._task_deadlines: dict[str, tuple[float, Job, Task]] = {}  # single-task cancels in their grace
        self._sweep: list[Leftover] = []  # ended tasks whose leftover processes are still to be killed
        self._next_sweep = 0.0
        self._next_cleanup = 0.0
        self._processes: list[executor.ProcessInfo] | None = None  # one /proc scan per step, taken lazily
        self._current: Job | None = None  # the job a loop phase is working on
        self.touched: set[int] = set()  # jobs the current request looked up
        self._quarantine: set[int] = set()  # jobs that faulted and could not even be failed
        self._exits: list[tuple[int, int]] = []  # (pid, status) reaped, not yet recorded
        orders = [j.queue_order for j in self.jobs.values()]
        self._next_order = max([0.0, *orders]) + 1

    def close(self) -> None:
        self.launchers.close()
        self.cgroups.close()
        self.store.close()

    # ------------------------------------------------------------------ helpers

    def _add(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._by_state[job.state][job.id] = job

    def _move(self, job: Job, event: str) -> None:
        """Every job transition goes through here, so the per-state index stays true."""
        before = job.state
        job.move(event)
        del self._by_state[before][job.id]
        self._by_state[job.state][job.id] = job

    def in_state(self, *states: JobState) -> list[Job]:
        """The jobs in these states (each loop step looks only at the jobs it can act on)."""
        return [job for state in states for job in list(self._by_state[state].values())]

    def _head_id(self) -> str:
        props = self.store.properties()
        if "HeadNodeId" not in props:
            self.store.set_property("HeadNodeId", uuid.uuid4().hex[:12])
            props = self.store.properties()
        return props["HeadNodeId"]

    def property(self, name: str) -> int:
        if self._properties is None:
            self._properties = self.store.properties()  # the head node is the only writer
        value = self._properties.get(name)
        return int(value) if value is not None else PROPERTY_DEFAULTS[name]

    def job(self, job_id: int) -> Job:
        """The job, remembered as touched by the current request (see reload)."""
        self.touched.add(job_id)
        job = self.jobs.get(int(job_id))
        if job is None:
            raise HpcError("InvalidJobId", f"Job {job_id} does not exist on the head node {self.name}.", job_id)
        return job

    def may_read(self, caller: Caller, job: Job) -> bool:
        """Whether the caller may see what can carry secrets (model.PRIVATE_*_FIELDS; about_HPC)."""
        return caller.admin or caller.name == job.owner

    def authorize_read(self, caller: Caller, job: Job) -> None:
        if not self.may_read(caller, job):
            raise HpcError("PermissionDenied", f"The user {caller.name} may not read the details of job {job.id}, "
                           f"which belongs to {job.owner}; only its owner and administrators can.", job.id)

    def authorize(self, caller: Caller, job: Job) -> None:
        if not (caller.admin or caller.name == job.owner):
            raise HpcError("PermissionDenied", f"The user {caller.name} does not have permission to change job "
                           f"{job.id}, which belongs to {job.owner}.", job.id)

    def history(self, job: Job, actor: str, event: str, message: str = "", details: str = "") -> None:
        self.store.add_history(job.id, now(), actor, event, message, details)

    def commit(self, job: Job, units: Iterable[Task] = (), entry: tuple[str, ...] = (), job_changed: bool = True,
               expected: int | None = None) -> None:
        """Writes one change in one transaction: the job (compare-and-set on its state), the units it
        changed, and its history row (actor, event[, message[, details]])."""
        with self.store.transaction():
            if job_changed:
                self.store.save_job(job, expected)
            for unit in units:
                self.store.save_task(unit)
            if entry:
                self.history(job, *entry)

    def batch(self) -> Transaction:
        """One transaction for several changes (nested ones join it)."""
        return self.store.transaction()

    # ------------------------------------------------------------------ requests

    def new_job(self, caller: Caller, spec: dict[str, Any], tasks: Sequence[dict[str, Any]] = ()) -> Job:
        """A Configuring job (with `tasks`, those too): everything is checked before anything is stored."""
        job = Job(id=0, owner=caller.name, owner_uid=caller.uid)
        jobspec.apply_job_properties(job, spec)
        for task_spec in tasks:
            job.tasks += jobspec.build_tasks(job, task_spec, max([0, *(t.task_id for t in job.tasks)]) + 1)
        return self._create(caller, job)

    def _create(self, caller: Caller, job: Job, details: str = "") -> Job:
        """Gives the job its id and stores it with its tasks, in one transaction."""
        with self.batch():
            job.id = self.store.allocate_job_id()
            for unit in [u for t in job.tasks for u in (t, *t.instances)]:
                unit.job_id = job.id
            self.store.insert_job(job)
            self.history(job, caller.name, "create", details=details)
        self._add(job)
        return job

    def copy_job(self, caller: Caller, source_id: int, spec: dict[str, Any]) -> Job:
        """New-HpcJob -Job: a new Configuring job with the source's properties and tasks."""
        source = self.job(source_id)
        self.authorize_read(caller, source)  # a copy carries the source's command lines and environment
        job = Job(id=0, owner=caller.name, owner_uid=caller.uid)
        for name in ("name", "priority", "project", "template", "run_until_canceled", "exclusive",
                     "fail_on_task_failure", "unit_type", "min_units", "max_units", "runtime", "node_groups",
                     "requested_nodes", "excluded_nodes", "parent_job_ids", "env", "valid_exit_codes",
                     "task_retry_limit", "extra"):
            value = getattr(source, name)
            setattr(job, name, type(value)(value) if isinstance(value, list | dict) else value)
        jobspec.apply_job_properties(job, spec)
        for task in source.tasks:
            copy = Task.from_row({**task.to_row(), "state": 1, "previous_state": 1})
            copy.instances = [Task.from_row({**i.to_row(), "state": 1, "previous_state": 1})
                              for i in task.instances if task.parametric]
            for unit in [copy, *copy.instances]:
                unit.exit_code, unit.error_message, unit.error_code, unit.output = None, "", 0, ""
                unit.start_time = unit.end_time = unit.submit_time = None
                unit.pid, unit.node, unit.token, unit.requeue_count = 0, "", "", 0
            job.tasks.append(copy)
        return self._create(caller, job, f"copied from job {source.id}")

    def add_task(self, caller: Caller, job_id: int, spec: dict[str, Any]) -> list[Task]:
        job = self.job(job_id)
        self.authorize(caller, job)
        jobspec.allowed_to_add(job)
        first = max([0, *(t.task_id for t in job.tasks)]) + 1
        tasks = jobspec.build_tasks(job, spec, first)
        submitted = job.state not in (JobState.Configuring,)
        problem = submitted and jobspec.dependency_problem(job.tasks + tasks)
        if problem:  # a submitted job's tasks must be able to run; a Configuring job is checked at submit
            raise HpcError("InvalidOperation", f"The task cannot be added to job {job.id}: {problem}", job.id)
        with self.batch():
            for task in tasks:
                if submitted:
                    self._queue_task(task)
                job.tasks.append(task)
                self.store.insert_task(task)
            job.change_time = now()
            self.store.save_job(job)
        return tasks

    def _queue_task(self, task: Task) -> None:
        for unit in [task, *task.instances]:
            if unit.state == TaskState.Configuring:
                unit.move("submit")
                unit.submit_time = now()

    def submit_job(self, caller: Caller, job_id: int) -> Job:
        """Submits a Configuring job, or requeues a Canceled or Failed one."""
        job = self.job(job_id)
        self.authorize(caller, job)
        if job.state in (JobState.Canceled, JobState.Failed):
            return self._requeue(caller.name, job)
        if job.state != JobState.Configuring:
            raise HpcError("OnlyConfigJobsCanBeSubmitted", f"Job {job.id} is {job.state.name}; only a Configuring "
                           "job can be submitted, and only a Canceled or Failed one requeued.", job.id)
        self._move(job, "submit")
        job.submit_time = now()
        job.queue_order = self._take_order()
        self.commit(job, entry=(caller.name, "submit"))
        return job

    def _take_order(self, front: bool = False) -> float:
        self._next_order += 1
        return -self._next_order if front else self._next_order

    def requeue_job(self, caller: Caller, job_id: int) -> Job:
        """HPC Pack's job requeue: a Canceled or Failed job is queued again at once; a Running one is
        cancelled first (grace period, node release) and queued again once it has ended."""
        with self.batch():
            job = self.job(job_id)
            self.authorize(caller, job)
            if job.state in (JobState.Canceled, JobState.Failed):
                return self._requeue(caller.name, job)
            if job.state != JobState.Running:
                raise HpcError("InvalidOperation", f"Job {job.id} is {job.state.name}; only Running, Canceled or "
                               "Failed jobs can be requeued.", job.id)
            self._cancel_job(caller, job_id, "Requeued by user.", False, False, False)
            assert job.cancel is not None
            job.cancel.final_state = "Requeue"
            self.commit(job)
            return job

    def _requeue(self, actor: str, job: Job) -> Job:
        """Finished tasks stay Finished, tasks cancelled on their own stay Canceled, the rest queue again."""
        self._move(job, "requeue")
        job.requeue_count += 1
        job.submit_time = now()
        job.queue_order = self._take_order(front=True)
        job.end_time = job.start_time = None
        job.cancel = None
        job.error_message, job.error_code, job.request_cancel = "", 0, "None"
        changed: list[Task] = []
        for task in job.tasks:
            if task.is_node_task:
                task.instances = []
                continue
            for unit in task.instances if task.parametric else [task]:
                keep = unit.state == TaskState.Finished or (
                    unit.state == TaskState.Canceled and unit.error_code == CANCELED_BY_USER)
                if keep:
                    continue
                unit.requeue()
                changed.append(unit)
        with self.batch():
            for task in job.tasks:
                if task.is_node_task:
                    self.store.delete_instances(job.id, task.task_id)
            self.store.save_job(job)
            for unit in changed:
                self.store.save_task(unit)
            self.history(job, actor, "requeue", details=f"{len(changed)} tasks queued again")
        return job

    def set_job(self, caller: Caller, job_id: int, spec: dict[str, Any]) -> Job:
        job = self.job(job_id)
        self.authorize(caller, job)
        jobspec.check_changeable(job, spec)
        jobspec.apply_job_properties(job, spec)
        job.change_time = now()
        changed = ", ".join(sorted(k for k, v in spec.items() if v is not None))
        self.commit(job, entry=(caller.name, "modify", "", changed))
        return job

    def check_cancel_request(self, message: str | None, force: bool, graceful: bool) -> None:
        if force and graceful:
            raise HpcError("ForcedGracefulConflict", "Force and Graceful cannot be used together: Force stops "
                           "running tasks at once, Graceful lets them finish.")
        if message is not None and len(message) > MAX_MESSAGE:
            raise HpcError("CancelMessageIsTooLong", f"The cancel message is {len(message)} characters long; "
                           f"the limit is {MAX_MESSAGE}.", "Message")

    def cancel_job(self, caller: Caller, job_id: int, message: str | None, force: bool, graceful: bool,
                   finish: bool) -> Job:
        """Cancels (or finishes) the job; its processes are signalled only once that is committed."""
        with self.batch():
            return self._cancel_job(caller, job_id, message, force, graceful, finish)

    def _cancel_job(self, caller: Caller, job_id: int, message: str | None, force: bool, graceful: bool,
                    finish: bool) -> Job:
        self.check_cancel_request(message, force, graceful)
        job = self.job(job_id)
        self.authorize(caller, job)
        kind, request = _CANCEL_KINDS[(force, graceful, finish)]
        if job.state == JobState.Canceling and job.cancel is not None:
            return self._escalate(caller, job, kind, force, graceful, message)
        if job.state not in JOB_CANCELABLE:
            raise HpcError("InvalidCancelJobState", f"You cannot cancel job {job.id} in its current state "
                           f"({job.state.name}).", job.id)
        was_running, before = job.state == JobState.Running, int(job.state)
        self._move(job, "cancel")
        job.request_cancel = request
        job.error_code = FINISHED_BY_USER if finish else CANCELED_BY_USER
        job.error_message = message or ("Finished by user." if finish else "Canceled by user.")
        job.cancel = CancelRequest(kind=kind, final_state="Finished" if finish else "Canceled", force=force,
                                   graceful=graceful, message=message or "", actor=caller.name, at=now())
        changed = self._cancel_waiting_units(job)
        if was_running and not graceful:
            changed += self._stop_running_units(job, force)
        if was_running:
            self.commit(job, changed, (caller.name, kind, message or ""))
            return job
        with self.batch():  # it never started: it leaves the queue at once, in one write
            changed += self._end(job)
            self.commit(job, changed, (caller.name, kind, message or ""), expected=before)
            self.history(job, "scheduler", "end", job.state.name or "")
        return job

    def describe_cancel(self, caller: Caller, job: Job, force: bool, graceful: bool, finish: bool) -> str:
        """The cancel's effect on this job, in words; raises what cancel_job would raise."""
        self.authorize(caller, job)
        if job.state not in JOB_CANCELABLE and job.state != JobState.Canceling:
            raise HpcError("InvalidCancelJobState", f"You cannot cancel job {job.id} in its current state "
                           f"({job.state.name}).", job.id)
        running = sum(1 for u in job.units() if u.state in (TaskState.Running, TaskState.Canceling))
        waiting = sum(1 for u in job.units() if u.state in TASK_WAITING)
        parts = []
        if waiting:
            parts.append(f"cancel {waiting} waiting task(s)")
        if running and graceful:
            parts.append(f"let {running} running task(s) finish")
        elif running and force:
            parts.append(f"kill {running} running task(s) now")
        elif running:
            grace = self.property("TaskCancelGracePeriod")
            parts.append(f"stop {running} running task(s) (SIGTERM, {grace} s grace, then SIGKILL)")
        release = any(t.type == "NodeRelease" for t in job.tasks)
        if release and job.allocation:
            parts.append("skip the node-release task" if force else "run the node-release task")
        if job.allocation:
            parts.append(f"free {sum(job.allocation.values())} core(s)")
        parts.append("end Finished" if finish else "end Canceled")
        return "Stop-HpcJob: " + ", ".join(parts)

    def _escalate(self, caller: Caller, job: Job, kind: str, force: bool, graceful: bool,
                  message: str | None) -> Job:
        """A repeat request while Canceling: a graceful cancel can become a plain or forced one. A repeat
        that changes nothing (the same kind, no new message) is accepted but neither applied nor logged."""
        assert job.cancel is not None
        changed: list[Task] = []
        escalated = (job.cancel.graceful and not graceful) or (force and not job.cancel.force)
        if job.cancel.graceful and not graceful:
            job.cancel.graceful = False
            changed = self._stop_running_units(job, force)
        if force and not job.cancel.force:
            job.cancel.force = True
            changed += self._stop_running_units(job, True)
        new_message = bool(message) and message != job.cancel.message
        if not escalated and not new_message:
            return job
        if message:
            job.cancel.message = job.error_message = message
        self.commit(job, changed, (caller.name, kind, message or "", "repeated while Canceling"))
        return job

    def _cancel_waiting_units(self, job: Job) -> list[Task]:
        changed = []
        for unit in job.units():
            if unit.state in TASK_WAITING:
                unit.move("cancel")
                unit.error_code = TASKS_JOB_CANCELED
                unit.error_message = "The job to which the task belongs was canceled."
                unit.end_time = now()
                changed.append(unit)
        return changed

    def _stop_running_units(self, job: Job, force: bool) -> list[Task]:
        """SIGTERM (or SIGKILL with force) to every running unit; the grace clock starts now."""
        assert job.cancel is not None
        changed = []
        units = [u for u in job.units() if u.state in (TaskState.Running, TaskState.Canceling)]
        for unit in units:
            if unit.state == TaskState.Running:
                unit.move("stop")
                changed.append(unit)
        grace = 0 if force else self.property("TaskCancelGracePeriod")
        sig = signal.SIGKILL if force or grace == 0 else signal.SIGTERM
        self._signal_units(job, units, sig)
        deadline = now() + grace
        if job.cancel.term_deadline is None or deadline < job.cancel.term_deadline:
            job.cancel.term_deadline = deadline
        return changed

    def _signal_units(self, job: Job, units: list[Task], sig: signal.Signals) -> None:
        """Signals the units' processes once the change that asks for it is committed (never before:
        a crash or a full disk between the two must not leave killed tasks with no cancel on record)."""
        pids = [pid for u in units for pid in self._unit_processes(job, u)]
        tokens = [u.token for u in units] if sig == signal.SIGKILL else []

        def send() -> None:
            failed = executor.signal_all(pids, sig)
            for token in tokens:
                self.cgroups.kill(token)
            if failed and job.cancel is not None:
                job.cancel.survivors = failed
        self.store.after_commit(send)

    def cancel_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int, message: str | None,
                    force: bool, finish: bool) -> Task:
        with self.batch():  # signals wait for the commit
            return self._cancel_task(caller, job_id, task_id, sub_id, message, force, finish)

    def _cancel_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int, message: str | None,
                     force: bool, finish: bool) -> Task:
        job = self.job(job_id)
        self.authorize(caller, job)
        self.check_cancel_request(message, force, False)
        task = self.find_task(job, task_id, sub_id)
        units = task.instances if (task.parametric and not sub_id) else [task]
        if all(u.state in TASK_TERMINAL for u in units):
            raise HpcError("InvalidCancelTaskState", f"You cannot cancel task {task.key} in its current state "
                           f"({task.shown_state.name}).", task.key)
        changed = []
        for unit in units:
            if unit.state in TASK_WAITING:
                unit.move("cancel")
                unit.error_code, unit.end_time = CANCELED_BY_USER, now()
                unit.error_message = message or "The task was canceled by the user."
                changed.append(unit)
            elif unit.state == TaskState.Running:
                unit.move("stop")
                unit.error_message = message or "The task was canceled by the user."
                unit.error_code = FINISHED_BY_USER if finish else CANCELED_BY_USER
                changed.append(unit)
                self._signal_units(job, [unit], signal.SIGKILL if force else signal.SIGTERM)
                if not force:
                    self._kill_later(job, unit)
        event = "task finish" if finish else "task cancel"
        self.commit(job, changed, (caller.name, event, message or "", task.key), job_changed=False)
        return task

    def _kill_later(self, job: Job, unit: Task) -> None:
        self._task_deadlines[unit.key] = (now() + self.property("TaskCancelGracePeriod"), job, unit)

    def find_task(self, job: Job, task_id: int, sub_id: int) -> Task:
        task = job.task(int(task_id))
        if task is not None and sub_id:
            task = next((i for i in task.instances if i.sub_id == int(sub_id)), None)
        if task is None:
            suffix = f".{sub_id}" if sub_id else ""
            raise HpcError("InvalidTaskId", f"Task {job.id}.{task_id}{suffix} does not exist.", f"{job.id}.{task_id}")
        return task

    def requeue_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int) -> Task:
        """HPC Pack's task requeue: a Failed or Canceled task is queued again at once; a Running one is
        stopped first (SIGTERM, grace period) and queued again once it has stopped."""
        with self.batch():  # signals wait for the commit
            return self._requeue_task(caller, job_id, task_id, sub_id)

    def _requeue_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int) -> Task:
        job = self.job(job_id)
        self.authorize(caller, job)
        task = self.find_task(job, task_id, sub_id)
        units = task.instances if (task.parametric and not sub_id) else [task]
        changed = [u for u in units if u.state in (TaskState.Failed, TaskState.Canceled)]
        running = [u for u in units if u.state == TaskState.Running]
        if not changed and not running:
            raise HpcError("InvalidOperation", f"Task {task.key} is {task.shown_state.name}; only Running, Failed "
                           "or Canceled tasks can be requeued.", task.key)
        if job.state != JobState.Configuring and (job.terminal or job.state in (JobState.Canceling,
                                                                                JobState.Finishing)):
            raise HpcError("InvalidOperation", f"Job {job.id} is {job.state.name}; requeue the job with "
                           "Submit-HpcJob instead.", job.id)
        for unit in changed:  # checked first, changed after: a refusal changes nothing
            unit.requeue()
        for unit in running:
            unit.move("stop")
            unit.requeue_when_stopped = True
            self._signal_units(job, [unit], signal.SIGTERM)
            self._kill_later(job, unit)
        self.commit(job, changed + running, (caller.name, "task requeue", "", task.key), job_changed=False)
        return task

    def submit_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int) -> Task:
        job = self.job(job_id)
        self.authorize(caller, job)
        task = self.find_task(job, task_id, sub_id)
        if job.state == JobState.Configuring:
            raise HpcError("InvalidOperation", f"Job {job.id} is not submitted yet; submit the job instead.", job.id)
        units = [u for u in [task, *task.instances] if u.state == TaskState.Configuring]
        if not units:
            raise HpcError("InvalidOperation", f"Task {task.key} is {task.shown_state.name}; only Configuring tasks "
                           "can be submitted.", task.key)
        self._queue_task(task)
        self.commit(job, units, job_changed=False)
        return task

    def set_property(self, caller: Caller, name: str, value: int) -> None:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can change cluster properties; "
                           f"{caller.name} is not one.", name)
        if name not in PROPERTY_DEFAULTS:
            raise HpcError("InvalidArgument", f"'{name}' is not a cluster property this head node knows; "
                           f"use one of {', '.join(PROPERTY_DEFAULTS)}.", name)
        if value < 0:
            raise HpcError("ArgumentOutOfRange", f"{name} must not be negative.", name)
        self.store.set_property(name, str(value))
        self._properties = None

    # ------------------------------------------------------------------ the loop's steps

    def step(self) -> None:
        """One pass of the loop's phases. A fault is contained: the storage failing (disk full, I/O
        error) undoes the change in memory and the pass ends, to be tried again; any other error
        fails the job that caused it (with the reason in its error message) and the pass goes on."""
        self.begin()
        for phase in (self.reap_exited_units, self.sweep_leftovers, self.watch_adopted_units,
                      self.enforce_task_deadlines, self.enforce_run_times, self.forget_expired_jobs,
                      self.complete_finished_jobs, self.advance_ending_jobs, self.validate_submitted_jobs,
                      self.allocate_queued_jobs, self.start_ready_units):
            self._current = None
            try:
                phase()
            except sqlite3.Error as e:
                log.error("the head node cannot write its state (%s); nothing was changed, trying again", e)
                self.reload(self._active_ids())
                return
            except Exception as e:
                log.exception("%s failed", phase.__name__)
                self.reload(self._active_ids())
                if self._current is not None:
                    self._fault(self._current, e)

    def _each(self, jobs: list[Job]) -> Iterable[Job]:
        """The jobs a phase works on, each remembered while it is worked on (to blame it for a fault)."""
        for job in jobs:
            if job.id not in self._quarantine:
                self._current = self.jobs.get(job.id, job)
                yield self._current

    def _fault(self, job: Job, error: Exception) -> None:
        """An unexpected error while handling a job ends that job Failed, never the head node."""
        job = self.jobs.get(job.id, job)
        reason = f"The head node failed while handling this job: {error!r}"
        try:
            if job.state in JOB_CANCELABLE:
                self._stop_by_scheduler(job, "fault", reason, "Failed", TASK_FAILURE)
                return
            if job.state in (JobState.Canceling, JobState.Finishing) and job.cancel is not None:
                job.cancel.final_state, job.cancel.force = "Failed", True
                job.error_message = reason
                self.commit(job, entry=("scheduler", "fault", reason))
                return
        except Exception:
            log.exception("job %d could not be failed; it is set aside until the head node restarts", job.id)
            self.reload([job.id])
        self._quarantine.add(job.id)

    def _active_ids(self) -> list[int]:
        ended = (JobState.Finished, JobState.Failed, JobState.Canceled)
        return [job_id for state, jobs in self._by_state.items() if state not in ended for job_id in jobs]

    def reload(self, job_ids: Iterable[int]) -> None:
        """Puts the jobs back as the store has them (after a change that could not be committed), and
        every reference the head node keeps to them with them."""
        fresh = {}
        for job_id in set(job_ids):
            old = self.jobs.pop(job_id, None)
            if old is not None:
                del self._by_state[old.state][job_id]
            for job in self.store.load_jobs(job_id):
                self._add(job)
                fresh[job.id] = job
        if not fresh:
            return

        def renew(job: Job, unit: Task) -> tuple[Job, Task]:
            new = fresh.get(job.id)
            match = next((u for u in new.units() if u.key == unit.key), None) if new else None
            return (new, match) if new is not None and match is not None else (job, unit)
        self.running = {pid: renew(*entry) for pid, entry in self.running.items()}
        self.adopted = {key: renew(*entry) for key, entry in self.adopted.items()}
        self._task_deadlines = {key: (deadline, *renew(job, unit))
                                for key, (deadline, job, unit) in self._task_deadlines.items()}

    def next_wakeup(self) -> float:
        """Seconds until some step has work to do without an outside event."""
        deadlines = [w.deadline for w in self.waiters]
        deadlines += [d for d, _, _ in self._task_deadlines.values()]
        if self._sweep:
            deadlines.append(self._next_sweep)
        deadlines += [j.start_time + j.runtime for j in self.in_state(JobState.Running)
                      if j.runtime > 0 and j.start_time is not None]
        deadlines += [j.hold_until for j in self.in_state(JobState.Queued) if j.hold_until and j.hold_until > now()]
        polling = bool(self.adopted)
        for job in self.in_state(JobState.Canceling, JobState.Finishing):
            if job.start_time is not None:
                polling = True
                if job.cancel and job.cancel.term_deadline:
                    deadlines.append(job.cancel.term_deadline)
        wait = min(deadlines, default=now() + 5.0) - now()
        if polling:
            wait = min(wait, 0.01)
        return max(0.0, wait)

    def reap_exited_units(self) -> None:
        """Records each exited task; an exit that could not be recorded (the store failed) is kept and
        recorded on a later pass, so a task that exited 0 is never taken for killed."""
        self._exits += executor.reap()
        while self._exits:
            pid, status = self._exits[0]
            entry = self.running.get(pid)
            if entry is not None:
                self._current = entry[0]
                try:
                    self._wrapper_exited(entry[0], entry[1], executor.exit_code(status))
                except sqlite3.Error:
                    raise  # kept: recorded on a later pass
                except Exception:
                    self._exits.pop(0)  # a fault of this job: it is failed, the exit is not retried
                    raise
            self._exits.pop(0)
            self.running.pop(pid, None)
            popen = self.popen.pop(pid, None)
            if popen is not None:
                popen.returncode = executor.exit_code(status)

    def watch_adopted_units(self) -> None:
        for key, (job, unit) in list(self.adopted.items()):
            if not self._unit_processes(job, unit):
                del self.adopted[key]
                self._wrapper_exited(job, unit, -signal.SIGKILL)

    def sweep_leftovers(self) -> None:
        """Kills what ended tasks left behind; one /proc scan serves every task that ended lately."""
        if not self._sweep or now() < self._next_sweep:
            return
        units, self._sweep = self._sweep, []
        self._next_sweep = now() + SWEEP_INTERVAL
        pids = [pid for left in units for pid in self._token_processes(left.job, left.token, left.since)]
        executor.signal_all(pids + [p.pid for p in self._orphans()], signal.SIGKILL)
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
        return self._token_processes(job, unit.token, unit.start_time, unit.pid)

    def _token_processes(self, job: Job, token: str, since: float | None, wrapper: int = 0) -> list[int]:
        """A run's live processes: its cgroup, else its wrapper (while it is our unreaped child, its pid
        cannot be anyone else's), those carrying its marker, and everything below them in the process
        tree (the wrapper is a subreaper, so escapes stay below it)."""
        found: set[int] = set(self.cgroups.pids(token))
        if token:
            owned = self._owned(job, since)
            ours = wrapper if wrapper in self.popen else 0
            roots = {p.pid for p in owned if p.task == token or (ours and p.pid == ours)}
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

    def begin(self) -> None:
        """Forget the last process scan and the jobs touched: called before each request and each step."""
        self._processes = None
        self.touched = set()

    def _wrapper_exited(self, job: Job, unit: Task, status: int) -> None:
        """The launcher's wrapper ended: the task's exit code is in its exit file; without one the
        wrapper itself was killed (`status`), and a start error there fails the task with its reason."""
        code, error = executor.read_result(self._exit_path(unit))
        if error:
            unit.output = executor.read_output(self._output_path(unit))
            self._fail_start(job, unit, error)
            return
        self._unit_exited(job, unit, code if code is not None else status)

    def _unit_exited(self, job: Job, unit: Task, code: int) -> None:
        unit.exit_code = code
        unit.end_time = now()
        unit.output = executor.read_output(self._output_path(unit))
        stopping = unit.state == TaskState.Canceling
        if not stopping or job.state != JobState.Canceling:
            # Nothing outlives its task: leftovers of a task that ended are killed at the next sweep.
            self._sweep.append(Leftover(job, unit.token, unit.start_time))
        if stopping and unit.requeue_when_stopped and job.state == JobState.Running:
            unit.requeue_when_stopped = False
            unit.requeue()
            self.commit(job, [unit], job_changed=False)
            return
        if stopping:
            finished = unit.error_code == FINISHED_BY_USER
            unit.move("stopped_finished" if finished else "stopped")
            if job.state == JobState.Canceling and not unit.error_message:
                unit.error_code = TASKS_JOB_CANCELED
                unit.error_message = "The job to which the task belongs was canceled."
        elif self._exit_ok(job, code):
            unit.move("exited_ok")
        else:
            unit.move("exited_failed")
            unit.error_code = TASK_FAILURE
            unit.error_message = (f"The task was killed by {executor.signal_name(code)}." if code < 0
                                  else f"The task failed with exit code {code}.")
        self.commit(job, [unit], job_changed=False)
        if unit.state == TaskState.Failed and not self._retry(job, unit):
            self._task_failed(job, unit)

    def _task_failed(self, job: Job, unit: Task) -> None:
        """A failed task fails its running job when the job or task asks for it, or it prepared a node."""
        if unit.state == TaskState.Failed and job.state == JobState.Running and (
                job.fail_on_task_failure or unit.fail_job_on_failure or unit.type == "NodePrep"):
            self._fail_job(job, f"Task {unit.key} failed: {unit.error_message}")

    def _retry(self, job: Job, unit: Task) -> bool:
        """TaskExecutionFailureRetryLimit: a failed, rerunnable task of a running job runs again."""
        if (job.state != JobState.Running or not unit.rerunnable or unit.is_node_task
                or unit.requeue_count >= job.task_retry_limit):
            return False
        failure = unit.error_message
        unit.requeue()
        self.commit(job, [unit], ("scheduler", "task retry", failure, unit.key), job_changed=False)
        return True

    def _exit_ok(self, job: Job, code: int) -> bool:
        return any(lo <= code <= hi for lo, hi in jobspec.valid_exit_codes(job.valid_exit_codes))

    def _fail_job(self, job: Job, reason: str) -> None:
        self._stop_by_scheduler(job, "fail", reason, "Failed", TASK_FAILURE)

    def _stop_by_scheduler(self, job: Job, kind: str, reason: str, final_state: str, code: int) -> None:
        """The scheduler's own cancel (a failed task, an expired run time): grace period, release, verify."""
        with self.batch():  # signals wait for the commit
            self._move(job, "cancel")
            self._scheduler_cancel(job, kind, reason, final_state, code)

    def _scheduler_cancel(self, job: Job, kind: str, reason: str, final_state: str, code: int) -> None:
        job.error_message, job.error_code = reason, code
        job.cancel = CancelRequest(kind=kind, final_state=final_state, force=False, graceful=False,
                                   message=reason, actor="scheduler", at=now())
        changed = self._cancel_waiting_units(job) + self._stop_running_units(job, False)
        self.commit(job, changed, ("scheduler", kind, reason))

    def enforce_run_times(self) -> None:
        """A job that runs past its RunTime is canceled, as HPC Pack does (JobRuntimeExpired)."""
        for job in self._each(self.in_state(JobState.Running)):
            if job.runtime > 0 and job.start_time is not None and now() >= job.start_time + job.runtime:
                reason = f"The job exceeded its run-time limit of {job.runtime // 60} minute(s)."
                self._stop_by_scheduler(job, "run time expired", reason, "Canceled", JOB_RUNTIME_EXPIRED)

    def forget_expired_jobs(self) -> None:
        """Ended jobs are kept TtlCompletedJobs days, then deleted with their output (checked hourly).
        Their history rows stay: the audit trail outlives the jobs."""
        if now() < self._next_cleanup:
            return
        self._next_cleanup = now() + CLEANUP_INTERVAL
        limit = now() - self.property("TtlCompletedJobs") * 86400
        expired = [j for j in self.in_state(JobState.Finished, JobState.Failed, JobState.Canceled)
                   if j.end_time is not None and j.end_time < limit]
        with self.batch():
            for job in expired:
                self.store.delete_job(job.id)
            self.store.forget_replies(now() - 86400)  # a resend comes within seconds, not days
        for job in expired:
            del self.jobs[job.id], self._by_state[job.state][job.id]
            shutil.rmtree(self.output_dir / str(job.id), ignore_errors=True)

    def validate_submitted_jobs(self) -> None:
        cluster_cores = sum(n.cores for n in self.config.nodes)
        node_names = {n.name.lower() for n in self.config.nodes}
        for job in self._each(self.in_state(JobState.Submitted)):
            self._move(job, "validate")
            problem = self._validation_problem(job, cluster_cores, node_names)
            units = []
            if problem:
                self._move(job, "reject")
                job.error_message, job.end_time = problem, now()
            else:
                self._move(job, "accept")
                for task in job.tasks:
                    self._queue_task(task)
                    units += [task, *task.instances]
            entry = ("scheduler", "validation failed", problem) if problem else ()
            self.commit(job, units, entry, expected=int(JobState.Submitted))

    def _validation_problem(self, job: Job, cluster_cores: int, node_names: set[str]) -> str:
        if job.run_until_canceled and (job.min_units is None or job.max_units is None):
            return ("A RunUntilCanceled job needs an explicit minimum and maximum: give NumCores, NumSockets or "
                    "NumNodes as min-max.")
        minimum, _ = self._core_demand(job)
        if minimum > cluster_cores:
            return f"The job needs at least {minimum} cores; the cluster has {cluster_cores}."
        unknown = [n for n in job.requested_nodes if n.lower() not in node_names]
        if unknown:
            return f"Requested nodes do not exist: {', '.join(unknown)}."
        return self._task_problem(job) or jobspec.dependency_problem(job.tasks)

    def _task_problem(self, job: Job) -> str:
        """A task that could never start: more cores than any node, or than the job may ever have."""
        largest = max((n.cores for n in self.config.nodes), default=0)
        _, most = self._core_demand(job)
        for unit in job.units():
            if unit.is_node_task:
                continue
            if unit.min_cores > largest:
                return (f"Task {unit.key} needs {unit.min_cores} cores on one node; the largest node has "
                        f"{largest}.")
            if unit.min_cores > most:
                return f"Task {unit.key} needs {unit.min_cores} cores; the job may have at most {most}."
        return ""

    def _core_demand(self, job: Job) -> tuple[int, int]:
        per_unit = [u.min_cores for u in job.units() if not u.is_node_task] or [1]
        per_node = max((n.cores for n in self.config.nodes), default=1)
        scale = {"Core": 1, "Socket": 1, "Node": per_node}[job.unit_type]
        low = job.min_units * scale if job.min_units is not None else max(per_unit)
        high = job.max_units * scale if job.max_units is not None else max(low, sum(per_unit))
        return low, high

    def allocate_queued_jobs(self) -> None:
        if not self._by_state[JobState.Queued]:
            return
        free = {n.name: n.cores for n in self.config.nodes}
        for job in self.in_state(JobState.Running, JobState.Canceling, JobState.Finishing):
            for node, cores in job.allocation.items():
                free[node] = free.get(node, 0) - cores
        for job in self.in_state(JobState.Queued):
            job.pending_reason = self._hold_reason(job) or "Resources"
        if not any(cores > 0 for cores in free.values()):
            return  # nothing can start, however long the queue
        queued = [j for j in self.in_state(JobState.Queued) if self._may_start(j)]
        idle = {n for n, cores in free.items() if cores == next(c.cores for c in self.config.nodes if c.name == n)}
        demands = []
        for job in queued:
            low, high = self._core_demand(job)
            allowed = tuple(n.name for n in self.config.nodes if n.name not in job.excluded_nodes
                            and (not job.requested_nodes or n.name.lower() in {r.lower() for r in job.requested_nodes}))
            demands.append(scheduler.Demand(job.id, job.priority, job.queue_order, low, high,
                                            job.exclusive or job.unit_type == "Node", allowed))
        grants = scheduler.plan(free, idle, demands)
        waiting = sorted((d for d in demands if d.job_id not in grants), key=scheduler.order)
        for place, demand in enumerate(waiting):  # the first waits for cores, the rest also for it
            self.jobs[demand.job_id].pending_reason = "Resources" if place == 0 else "Priority"
        for job_id, grant in grants.items():
            job = self.jobs[job_id]
            job.allocation = grant
            self._move(job, "start")
            job.start_time = now()
            prep = next((t for t in job.tasks if t.type == "NodePrep"), None)
            instances = self._node_instances(job, prep) if prep else []
            self.commit(job, instances)

    def _hold_reason(self, job: Job) -> str:
        """Why a queued job may not start yet whatever the cores: held, or parents not finished."""
        if job.hold_until is not None and now() < job.hold_until:
            return "HoldUntil"
        waiting = [p for p in job.parent_job_ids if self.jobs.get(p) is None or self.jobs[p].state != JobState.Finished]
        return f"Dependency ({','.join(map(str, waiting))})" if waiting else ""

    def _may_start(self, job: Job) -> bool:
        """Its parent jobs have finished, and it is not held (HoldUntil)."""
        return not self._hold_reason(job)

    def _node_instances(self, job: Job, template: Task) -> list[Task]:
        template.instances = [jobspec.node_instance(template, i + 1, node)
                              for i, node in enumerate(sorted(job.allocation))]
        for unit in template.instances:
            unit.move("submit")
        return template.instances

    def start_ready_units(self) -> None:
        for job in self._each(self.in_state(JobState.Running)):
            self._start_units(job, [u for u in job.units() if u.type != "NodeRelease"])
        for job in self._each(self.in_state(JobState.Canceling, JobState.Finishing)):
            self._start_units(job, [u for u in job.units() if u.type == "NodeRelease"])

    def _start_units(self, job: Job, units: list[Task]) -> None:
        waiting = [u for u in units if u.state == TaskState.Queued]
        if not waiting:
            return
        used: dict[str, int] = {}
        for unit in units:
            if unit.state in (TaskState.Running, TaskState.Canceling) and unit.type not in ("NodePrep", "NodeRelease"):
                used[unit.node] = used.get(unit.node, 0) + unit.min_cores
        prep = next((t for t in job.tasks if t.type == "NodePrep"), None)
        prepared = {u.node for u in prep.instances if u.state == TaskState.Finished} if prep else None
        by_name: dict[str, list[Task]] = {}
        for task in job.tasks:
            by_name.setdefault(task.name, []).append(task)
        for unit in waiting:
            if unit.is_node_task:
                self._launch(job, unit, unit.node)
                continue
            blocked = self._dependency_state(unit, by_name)
            if blocked == "never":
                self._cancel_unreachable(job, unit)
                continue
            if blocked == "wait":
                continue
            node = next((n for n, cores in job.allocation.items()
                         if cores - used.get(n, 0) >= unit.min_cores and (prepared is None or n in prepared)), None)
            if node is None:
                continue
            used[node] = used.get(node, 0) + unit.min_cores
            self._launch(job, unit, node)

    def _dependency_state(self, unit: Task, by_name: dict[str, list[Task]]) -> str:
        states = [t.shown_state for name in unit.depends for t in by_name.get(name, [])]
        if any(s in (TaskState.Failed, TaskState.Canceled) for s in states):
            return "never"
        return "ready" if all(s == TaskState.Finished for s in states) else "wait"

    def _cancel_unreachable(self, job: Job, unit: Task) -> None:
        unit.move("cancel")
        unit.error_code, unit.end_time = TASKS_JOB_CANCELED, now()
        unit.error_message = "A task this task depends on did not finish, so it cannot run."
        self.commit(job, [unit], job_changed=False)

    def _output_path(self, unit: Task) -> Path:
        return self.output_dir / str(unit.job_id) / f"{unit.task_id}.{unit.sub_id}.{unit.requeue_count}.out"

    def _exit_path(self, unit: Task) -> Path:
        return self.output_dir / str(unit.job_id) / f"{unit.task_id}.{unit.sub_id}.{unit.requeue_count}.rc"

    def _launch(self, job: Job, unit: Task, node: str) -> None:
        unit.node = node
        unit.move("start")
        unit.start_time = now()
        unit.token = executor.task_marker(self.head_id, job.id, unit.key, unit.requeue_count)
        # Intent before action: Running is on record before the process exists, so a crash in between
        # can never make the task run twice (the restarted head node finds no process and no exit code).
        self.commit(job, [unit], job_changed=False)
        try:
            spec = self._run_spec(job, unit)
            popen = self.launchers.start(spec, self.cgroups.create(unit.token))
        except Exception as e:  # whatever it is, it ends this task, never the head node
            log.warning("task %s of job %d could not be started: %r", unit.key, job.id, e)
            self._fail_start(job, unit, str(e) if isinstance(e, StartFailure) else repr(e))
            return
        unit.pid = popen.pid  # stored with the task's next change
        self.running[popen.pid] = (job, unit)
        self.popen[popen.pid] = popen

    def _fail_start(self, job: Job, unit: Task, reason: str) -> None:
        unit.move("stopped" if unit.state == TaskState.Canceling else "exited_failed")
        unit.end_time, unit.error_code = now(), TASK_FAILURE
        unit.error_message = f"The task could not be started: {reason}"
        self.commit(job, [unit], job_changed=False)
        self._task_failed(job, unit)

    def _run_spec(self, job: Job, unit: Task) -> executor.RunSpec:
        uid = self._task_uid(job)
        try:
            account = pwd.getpwuid(uid)
        except KeyError:
            raise StartFailure(f"the job's owner {job.owner} (uid {uid}) has no account on this machine.") from None
        env = {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name,
               "SHELL": account.pw_shell or "/bin/sh", "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
               "LANG": os.environ.get("LANG", "C.UTF-8")}
        nodes = " ".join(f"{n} {c}" for n, c in sorted(job.allocation.items()))
        env.update({
            "CCP_JOBID": str(job.id), "CCP_TASKID": str(unit.task_id), "CCP_TASKINSTANCEID": str(unit.sub_id),
            "CCP_JOBNAME": job.name, "CCP_TASKNAME": unit.name, "CCP_NODES": f"{len(job.allocation)} {nodes}",
            "CCP_NUMCPUS": str(unit.min_cores), "CCP_SCHEDULER": self.name, "CCP_RERUNNABLE": str(unit.rerunnable),
            "CCP_OWNER": job.owner, "COMPUTERNAME": unit.node, "CCP_WORKDIR": unit.work_dir,
        })
        for source in (job.env, unit.env):
            for name, value in source.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
        groups = os.getgrouplist(account.pw_name, account.pw_gid)
        return executor.RunSpec(
            command=unit.command, env=env, cwd=unit.work_dir or account.pw_dir, cwd_required=bool(unit.work_dir),
            uid=account.pw_uid, gid=account.pw_gid, groups=groups,
            job_marker=executor.job_marker(self.head_id, job.id), task_marker=unit.token,
            output_path=self._output_path(unit), exit_path=self._exit_path(unit),
            stdin=unit.stdin, stdout=unit.stdout, stderr=unit.stderr)

    def complete_finished_jobs(self) -> None:
        for job in self._each(self.in_state(JobState.Running)):
            work = [u for u in job.units() if not u.is_node_task]
            if job.run_until_canceled or any(u.state not in TASK_TERMINAL for u in work):
                continue
            if any(u.state not in TASK_TERMINAL for u in job.units()):
                continue
            self._move(job, "complete")
            self.commit(job)

    def advance_ending_jobs(self) -> None:
        for job in self._each(self.in_state(JobState.Canceling, JobState.Finishing)):
            self._advance_ending(job)

    def _advance_ending(self, job: Job) -> None:
        """Grace period -> kill -> node release -> verify nothing is left -> final state."""
        if self._work_still_running(job) or self._release_pending(job) or self._survivors_remain(job):
            return
        self._finalize(job)

    def _work_still_running(self, job: Job) -> bool:
        cancel = job.cancel
        work = [u for u in job.units() if u.type != "NodeRelease"]
        running = [u for u in work if u.state in (TaskState.Running, TaskState.Canceling)]
        if cancel is not None and cancel.graceful and running:
            return True
        release_tokens = {u.token for u in job.units() if u.type == "NodeRelease" and u.token}
        left = self._job_processes(job, exclude=release_tokens)
        if not running and not left:
            return False
        if cancel is None or (cancel.term_deadline is not None and now() >= cancel.term_deadline):
            self._kill(job, left, running)
        return True

    def _release_pending(self, job: Job) -> bool:
        release = next((t for t in job.tasks if t.type == "NodeRelease"), None)
        if release is None or not job.allocation or (job.cancel is not None and job.cancel.force):
            return False
        if not release.instances:
            job.release_deadline = now() + self.property("NodeReleaseTaskTimeout")
            self.commit(job, self._node_instances(job, release))
            return True
        pending = [u for u in release.instances if u.state not in TASK_TERMINAL]
        if pending and job.release_deadline is not None and now() >= job.release_deadline:
            self._signal_units(job, pending, signal.SIGKILL)
        return bool(pending)

    def _survivors_remain(self, job: Job) -> bool:
        """The proof step: no process of the job may be left; survivors are killed and, if they
        outlast SIGKILL, reported on the job instead of a false success."""
        left = self._job_processes(job)
        if not left:
            return False
        self._kill(job, left, [])
        return True

    def _kill(self, job: Job, pids: list[int], units: list[Task]) -> None:
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

    def _finalize(self, job: Job) -> None:
        expected = int(job.state)
        requeue = job.cancel is not None and job.cancel.final_state == "Requeue"
        with self.batch():
            ended = self._end(job)
            self.commit(job, ended, ("scheduler", "end", job.state.name or ""), expected=expected)
            if requeue and job.cancel is not None:
                self._requeue(job.cancel.actor, job)

    def _end(self, job: Job) -> list[Task]:
        """The final state, in memory: returns the units it changed."""
        work = [u for u in job.units() if not u.is_node_task]
        if job.state == JobState.Finishing:
            failed = any(u.state == TaskState.Failed for u in work)
            event = "failed" if failed else "finished"
            if failed and not job.error_message:
                job.error_message = "One or more tasks failed."
        else:
            assert job.cancel is not None
            event = {"Canceled": "canceled", "Requeue": "canceled", "Finished": "finished_by_user", "Failed": "failed"}[
                job.cancel.final_state]
        self._move(job, event)
        job.end_time = now()
        never_ran = [u for t in job.tasks for u in [t, *t.instances] if u.state in TASK_WAITING]
        for unit in never_ran:  # e.g. a node-release task that Force skipped
            unit.move("cancel")
            unit.error_code, unit.end_time = TASKS_JOB_CANCELED, now()
        job.allocation = {}
        job.release_deadline = None
        if job.cancel is not None:
            job.cancel.survivors = []
        for unit in job.units():
            self.cgroups.remove(unit.token)
        return never_ran

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """After a restart: units that were running are adopted if alive, else closed from their exit file.
        A job whose recovery fails is failed alone (see step)."""
        for job in list(self.jobs.values()):
            try:
                self._recover(job)
            except sqlite3.Error:
                raise  # the store itself is unusable: nothing can be served
            except Exception as e:
                log.exception("job %d could not be recovered", job.id)
                self.reload([job.id])
                self._fault(job, e)

    def _recover(self, job: Job) -> None:
        for unit in job.units():
            if unit.state not in (TaskState.Running, TaskState.Canceling):
                continue
            if self._unit_processes(job, unit):  # alive: keep it, watch it
                self.adopted[unit.key] = (job, unit)
            else:
                self._wrapper_exited(job, unit, -signal.SIGKILL)
        if job.state == JobState.Canceling:
            self.history(job, "scheduler", "recover", details="cancel resumed after a head node restart")
            self._resignal(job)

    def _resignal(self, job: Job) -> None:
        """A committed cancel whose signals a crash may have cut short: its stopping tasks get them again
        (a repeated SIGTERM is harmless; the grace period still ends when it was due)."""
        stopping = [u for u in job.units() if u.state == TaskState.Canceling]
        if stopping and job.cancel is not None and not job.cancel.graceful:
            self._signal_units(job, stopping, signal.SIGKILL if job.cancel.force else signal.SIGTERM)
