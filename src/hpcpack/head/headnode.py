"""The head node's logic: jobs and tasks through their lives, cores, processes, cancels, recovery.

It is synchronous and single-threaded: the daemon calls `step()` whenever something happened
(a request, a child exited, a deadline passed) and each step is one of a short list of named
phases. Every state change goes through the transition table and is written to the store
before anyone can observe it.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import PROPERTY_DEFAULTS, HeadNodeConfig
from ..errors import HpcError, invalid_argument
from ..identity import Caller
from ..model import jobspec
from ..model.objects import Job, Task, now
from ..model.states import JobState, TaskState
from .allocation import Allocation
from .core import ADOPTED_POLL_INTERVAL, CLEANUP_INTERVAL, ENDED_STATES, log
from .executor import StartFailure

__all__ = ["HeadNode", "StartFailure"]


# Seconds before a pass after one that could not write the store (a full disk), doubling up to the most:
# a failing pass retried at once would spin the CPU and fill the log.
STORAGE_RETRY_FIRST = 0.1
STORAGE_RETRY_MAX = 2.0
_IN_QUEUE = (JobState.Submitted, JobState.Validating, JobState.Queued, JobState.Running)
# What a job's run gave it, not what its owner asked for: New-HpcJob -Job copies every other field.
_RUN_FIELDS = frozenset({"id", "owner", "owner_uid", "user_name", "state", "previous_state", "create_time",
                         "submit_time", "start_time", "end_time", "change_time", "error_message", "error_code",
                         "request_cancel", "requeue_count", "allocation", "release_deadline", "queue_order",
                         "cancel", "pending_reason", "tasks", "progress", "progress_message", "summary",
                         "slurm_job_id"})


class HeadNode(Allocation):
    """The head node: the parts in hpcpack.head (core -> processes -> cancels -> running -> recovery ->
    nodes -> slurm_nodes -> admission -> allocation), plus the verbs on jobs and tasks and the loop."""

    def __init__(self, state_dir: Path, config: HeadNodeConfig) -> None:
        super().__init__(state_dir, config)
        self.load_nodes()
        self.storage_retry = 0.0  # seconds between passes while the store cannot be written (0: it can)
        self._retry_at = 0.0  # (time.monotonic) the next pass after a failed one

    def new_job(self, caller: Caller, spec: dict[str, Any], tasks: Sequence[dict[str, Any]] = ()) -> Job:
        """A Configuring job (with `tasks`, those too): everything is checked before anything is stored."""
        job = Job(id=0, owner=caller.name, owner_uid=caller.uid)
        jobspec.apply_job_properties(job, spec)
        self._check_template_spec(caller, job, spec)
        for task_spec in tasks:
            job.tasks += self._check_paths(jobspec.build_tasks(job, task_spec,
                                                               max([0, *(t.task_id for t in job.tasks)]) + 1))
            jobspec.check_size(job.tasks)
        return self._create(caller, job)

    def _create(self, caller: Caller, job: Job, details: str = "") -> Job:
        """Gives the job its id and stores it with its tasks, in one transaction."""
        with self.batch():
            job.id = self.store.allocate_job_id()
            self._check_parents(job)  # (a job made earlier may name the id this one gets as its parent)
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
        for name in (f.name for f in fields(Job) if f.name not in _RUN_FIELDS):
            value = getattr(source, name)
            setattr(job, name, type(value)(value) if isinstance(value, list | dict) else value)
        jobspec.apply_job_properties(job, spec)
        self._check_template_spec(caller, job, spec)
        for task in source.tasks:
            copy = Task.from_row({**task.to_row(), "state": 1, "previous_state": 1})
            copy.instances = [Task.from_row({**i.to_row(), "state": 1, "previous_state": 1})
                              for i in task.instances if task.parametric]
            for unit in [copy, *copy.instances]:
                unit.exit_code, unit.error_message, unit.error_code, unit.output = None, "", 0, ""
                unit.start_time = unit.end_time = unit.submit_time = None
                unit.pid, unit.node, unit.token, unit.requeue_count = 0, "", "", 0
                unit.rest_canceled = False
            job.tasks.append(copy)
        jobspec.check_size(job.tasks)
        return self._create(caller, job, f"copied from job {source.id}")

    def add_task(self, caller: Caller, job_id: int, spec: dict[str, Any]) -> list[Task]:
        job = self.job(job_id)
        self.authorize(caller, job)
        jobspec.allowed_to_add(job)
        first = max([0, *(t.task_id for t in job.tasks)]) + 1
        tasks = jobspec.build_tasks(job, spec, first)
        self._check_paths(tasks)
        jobspec.check_size(job.tasks + tasks)
        submitted = job.state not in (JobState.Configuring,)
        problem = submitted and jobspec.dependency_problem(job.tasks + tasks)
        if problem:  # a submitted job's tasks must be able to run; a Configuring job is checked at submit
            raise HpcError("InvalidOperation", f"The task cannot be added to job {job.id}: {problem}", job.id)
        if job.state in _IN_QUEUE:  # a bigger task makes a bigger job: its template and placement still hold
            self._recheck(caller, Job(**{**vars(job), "tasks": job.tasks + tasks}))
        with self.batch():
            for task in tasks:
                if submitted:
                    self._queue_task(task)
                job.tasks.append(task)
                self.store.insert_task(task)
            self.note_sweeps(job)
            job.change_time = now()
            self.store.save_job(job)
        return tasks

    def submit_job(self, caller: Caller, job_id: int) -> Job:
        """Submits a Configuring job, or requeues a Canceled or Failed one."""
        job = self.job(job_id)
        self.authorize(caller, job)
        if job.state in (JobState.Canceled, JobState.Failed):
            self.enforce_template(caller, job)
            return self._requeue(caller.name, job)
        if job.state != JobState.Configuring:
            raise HpcError("OnlyConfigJobsCanBeSubmitted", f"Job {job.id} is {job.state.name}; only a Configuring "
                           "job can be submitted, and only a Canceled or Failed one requeued.", job.id)
        if not job.tasks and not job.run_until_canceled:
            # HPC Pack: a job with no tasks has nothing to run; submitting it is a mistake (often an
            # Add-HpcTask that was refused earlier in the script), so it is refused, not run empty.
            raise HpcError("JobHasNoTasks", f"Job {job.id} has no tasks, so there is nothing to submit: add a task "
                           "(Add-HpcTask) first, or make it a RunUntilCanceled job.", job.id)
        self.enforce_template(caller, job)  # a job outside its template's ranges is refused here
        self._move(job, "submit")
        job.submit_time = now()
        job.queue_order = self._take_order()
        self.commit(job, entry=(caller.name, "submit"))
        return job

    def set_job(self, caller: Caller, job_id: int, spec: dict[str, Any]) -> Job:
        job = self.job(job_id)
        self.authorize(caller, job)
        jobspec.check_changeable(job, spec)
        try:
            jobspec.apply_job_properties(job, spec)
            self._check_template_spec(caller, job, spec)
            if any(k.lower() == "parentjobids" for k in spec):
                self._check_parents(job)
            if job.state in _IN_QUEUE:
                self._recheck(caller, job)
        except HpcError:
            self.reload([job.id])  # nothing of the refused change stays in memory
            raise
        job.change_time = now()
        changed = ", ".join(sorted(k for k, v in spec.items() if v is not None))
        self.commit(job, entry=(caller.name, "modify", "", changed))
        if any(k.lower() == "priority" for k in spec):
            self.reprioritize_on_slurm(job)
        return job

    def _check_parents(self, job: Job) -> None:
        """InvalidArgument when the job's parent jobs would make it wait for itself."""
        problem = jobspec.parent_problem(job, self.jobs)
        if problem:
            raise invalid_argument(problem, "ParentJobIds")

    def _recheck(self, caller: Caller, job: Job) -> None:
        """A job in the queue or running that changes keeps to its template (a requeue checks it again),
        and a queued one must still be one that can start; raises JobTemplateViolation, JobModifyFailed."""
        self.enforce_template(caller, job)
        problem = self.queued_problem(job) if job.state == JobState.Queued else ""
        if problem:
            raise HpcError("JobModifyFailed", f"Job modification failed: {problem}", job.id)

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

    def set_task(self, caller: Caller, job_id: int, task_id: int, changes: dict[str, Any]) -> Task:
        """Set-HpcTask: the task built again from its properties with `changes`, checked as Add-HpcTask
        checks a new one; it keeps its id, state and history."""
        job = self.job(job_id)
        self.authorize(caller, job)
        task = self.find_task(job, task_id, 0)
        jobspec.check_task_changeable(job, task)
        spec = {**jobspec.task_spec(task), **{k: v for k, v in changes.items() if v is not None}}
        for counter in ("NumCores", "NumSockets", "NumNodes"):
            if counter in changes and changes[counter] is not None:
                spec = {k: v for k, v in spec.items() if k not in ("NumCores", "NumSockets", "NumNodes")
                        or k == counter}
        others = [t for t in job.tasks if t is not task]
        probe = Job(id=job.id, owner=job.owner, owner_uid=job.owner_uid, state=job.state, tasks=others)
        built = self._check_paths(jobspec.build_tasks(probe, spec, task.task_id))[0]
        if job.state != JobState.Configuring:
            problem = jobspec.dependency_problem([*others, built])
            if problem:
                raise HpcError("TaskModifyFailed", f"Task {task.key} cannot be changed: {problem}", task.key)
        expected = int(task.state)
        old_instances = task.instances
        for name in Task.__dataclass_fields__:
            if name not in jobspec.TASK_KEPT_FIELDS:
                setattr(task, name, getattr(built, name))
        self.note_sweeps(job)
        if task.parametric or old_instances:
            task.instances = built.instances
            for instance in task.instances:
                instance.job_id = job.id
                if task.state != TaskState.Configuring:
                    self._queue_task_units([instance])
        with self.batch():
            self.store.save_task(task, expected=expected)
            if task.parametric or old_instances:
                self.store.delete_instances(job.id, task.task_id)
                for instance in task.instances:
                    self.store.insert_task(instance)
            job.change_time = now()
            self.store.save_job(job, expected=int(job.state))
            self.history(job, caller.name, "modify task", "", f"task {task.task_id}: "
                         + ", ".join(sorted(k for k, v in changes.items() if v is not None)))
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

    def step(self) -> None:
        """One pass of the loop's phases. A fault is contained: the storage failing (disk full, I/O
        error) undoes the change in memory and the pass ends, to be tried again; any other error
        fails the job that caused it (with the reason in its error message) and the pass goes on."""
        if time.monotonic() < self._retry_at:
            return  # the store could not be written: not again at every wakeup (a full disk is not freed in ms)
        self.begin()
        for phase in (self.reap_exited_units, self.sweep_leftovers, self.watch_adopted_units,
                      self.enforce_task_deadlines, self.enforce_run_times, self.forget_expired_jobs,
                      self.evict_ended_jobs, self.expand_sweeps, self.complete_finished_jobs,
                      self.advance_ending_jobs, self.refresh_slurm_nodes, self.settle_draining_nodes,
                      self.validate_submitted_jobs,
                      self.allocate_queued_jobs,
                      self.start_ready_units):
            self._current = None
            try:
                phase()
            except sqlite3.Error as e:
                self._storage_failed(e)
                self.reload(self._active_ids())
                return
            except Exception as e:
                log.exception("%s failed", phase.__name__)
                self.reload(self._active_ids())
                if self._current is not None:
                    self._fault(self._current, e)
        if self.storage_retry:
            log.info("the head node writes its state again")
            self.storage_retry = self._retry_at = 0.0

    def _storage_failed(self, error: sqlite3.Error) -> None:
        """The next pass waits, twice as long after each failure up to STORAGE_RETRY_MAX; said once a streak."""
        if not self.storage_retry:
            log.error("the head node cannot write its state (%s); nothing was changed, trying again every "
                      "%g s or less until it can", error, STORAGE_RETRY_MAX)
        self.storage_retry = min(STORAGE_RETRY_MAX, self.storage_retry * 2 or STORAGE_RETRY_FIRST)
        self._retry_at = time.monotonic() + self.storage_retry

    def next_wakeup(self) -> float:
        """Seconds until some step has work to do without an outside event."""
        deadlines = [w.deadline for w in self.waits.waiters]
        deadlines += [d for d, _, _ in self._task_deadlines.values()]
        if self._sweep:
            deadlines.append(self._next_sweep)
        deadlines += [j.start_time + j.runtime for j in self.in_state(JobState.Running)
                      if j.runtime > 0 and j.start_time is not None]
        deadlines += [u.start_time + u.runtime_limit for j in self.in_state(JobState.Running) for u in j.units()
                      if u.runtime_limit > 0 and u.start_time is not None and u.state == TaskState.Running]
        deadlines += [j.hold_until for j in self.in_state(JobState.Queued) if j.hold_until and j.hold_until > now()]
        if self.adopted:  # tasks found running after a restart are not our children: no SIGCHLD, so looked at
            deadlines.append(now() + ADOPTED_POLL_INTERVAL)
        polling = False
        if self.slurm is not None and any(j.slurm_job_id for j in self.in_state(JobState.Queued)):
            deadlines.append(self._next_slurm_poll)  # Slurm does not tell when it grants an allocation
        for job in self.in_state(JobState.Canceling, JobState.Finishing):
            if job.start_time is not None:
                polling = True
                if job.cancel and job.cancel.term_deadline:
                    deadlines.append(job.cancel.term_deadline)
        wait = min(deadlines, default=now() + 5.0) - now()
        if polling:
            wait = min(wait, 0.01)
        return max(0.0, wait, self._retry_at - time.monotonic())

    def forget_expired_jobs(self) -> None:
        """Ended jobs are kept TtlCompletedJobs days, then deleted with their output (checked hourly).
        Their history rows stay: the audit trail outlives the jobs."""
        if now() < self._next_cleanup:
            return
        self._next_cleanup = now() + CLEANUP_INTERVAL
        limit = now() - self.property("TtlCompletedJobs") * 86400
        expired = [j.id for j in self.store.load_jobs(states=ENDED_STATES, ended_before=limit)]
        with self.batch():
            for job_id in expired:
                self.store.delete_job(job_id)
            self.store.forget_replies(now() - 86400)  # a resend comes within seconds, not days
        for job_id in expired:
            job = self.jobs.pop(job_id, None)
            if job is not None:
                del self._by_state[job.state][job_id]
            shutil.rmtree(self.output_dir / str(job_id), ignore_errors=True)













