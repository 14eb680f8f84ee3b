"""The head node's logic: jobs and tasks through their lives, cores, processes, cancels, recovery.

It is synchronous and single-threaded: the daemon calls `step()` whenever something happened
(a request, a child exited, a deadline passed) and each step is one of a short list of named
phases. Every state change goes through the transition table and is written to the store
before anyone can observe it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import PROPERTY_DEFAULTS, HeadNodeConfig
from ..errors import HpcError
from ..identity import Caller, groups_of
from ..model import jobspec, paths
from ..model import templates as tpl
from ..model.objects import Job, Task, now
from ..model.states import JobState, TaskState
from . import placement, scheduler, slurm
from .core import CLEANUP_INTERVAL, ENDED_STATES, SLURM_POLL_INTERVAL, StartFailure, log
from .nodes import Nodes

__all__ = ["HeadNode", "StartFailure"]


# What a job's run gave it, not what its owner asked for: New-HpcJob -Job copies every other field.
_RUN_FIELDS = frozenset({"id", "owner", "owner_uid", "user_name", "state", "previous_state", "create_time",
                         "submit_time", "start_time", "end_time", "change_time", "error_message", "error_code",
                         "request_cancel", "requeue_count", "allocation", "release_deadline", "queue_order",
                         "cancel", "pending_reason", "tasks", "progress", "progress_message", "summary",
                         "slurm_job_id"})


class HeadNode(Nodes):
    """The head node: the parts in hpcpack.head, plus submission, validation, allocation and the loop."""

    def __init__(self, state_dir: Path, config: HeadNodeConfig) -> None:
        super().__init__(state_dir, config)
        self.load_nodes()

    def templates(self) -> list[tpl.JobTemplate]:
        """Every job template, by name; `Default` always (a built-in one until an administrator imports another)."""
        stored = [tpl.JobTemplate.from_row(d) for d in self.store.templates()]
        if not any(t.name.lower() == tpl.DEFAULT.lower() for t in stored):
            stored.insert(0, tpl.default_template())
        return sorted(stored, key=lambda t: (t.name.lower() != "default", t.name.lower()))

    def template(self, name: str) -> tpl.JobTemplate:
        found = next((t for t in self.templates() if t.name.lower() == name.lower()), None)
        if found is None:
            raise HpcError("InvalidJobTemplate", f"The job template '{name}' does not exist on the head node "
                           f"{self.name} (Get-HpcJobTemplate lists them).", name)
        return found

    def _usable_template(self, caller: Caller, name: str) -> tpl.JobTemplate:
        template = self.template(name)
        if not tpl.may_use(template, caller.name, groups_of(caller.name, caller.gid), caller.admin):
            raise HpcError("PermissionDenied", f"The user {caller.name} may not use the job template '{template.name}'"
                           f" (it is for {', '.join(template.users)}).", name)
        return template

    def _check_template_spec(self, caller: Caller, job: Job, spec: dict[str, Any]) -> None:
        if any(k.lower() == "templatename" and v not in (None, "") for k, v in spec.items()):
            job.template = self._usable_template(caller, job.template).name

    def put_template(self, caller: Caller, template: tpl.JobTemplate, replace: bool) -> tpl.JobTemplate:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can create or change job templates; "
                           f"{caller.name} is not one.", template.name)
        tpl.check(template)
        exists = any(t.name.lower() == template.name.lower() for t in self.store_templates())
        if exists and not replace:
            raise HpcError("InvalidOperation", f"A job template named '{template.name}' already exists; use -Force to "
                           "replace it.", template.name)
        self.store.save_template(template.name, template.to_row())
        return template

    def store_templates(self) -> list[tpl.JobTemplate]:
        return [tpl.JobTemplate.from_row(d) for d in self.store.templates()]

    def remove_template(self, caller: Caller, name: str) -> None:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can remove job templates; {caller.name} is "
                           "not one.", name)
        if name.lower() == tpl.DEFAULT.lower():
            raise HpcError("InvalidOperation", "The Default job template cannot be removed (every job without another "
                           "template uses it); import another to change it.", name)
        if not self.store.delete_template(name):
            raise HpcError("InvalidJobTemplate", f"The job template '{name}' does not exist.", name)

    def _check_paths(self, tasks: list[Task]) -> list[Task]:
        """A Windows path in a task's WorkDir, Stdin, Stdout or Stderr needs a rule of the path map (model.paths):
        refused now, with the reason, rather than when the task starts. (The head node maps it at start.)"""
        for task in tasks:
            for value, what in ((task.work_dir, "WorkDir"), (task.stdin, "Stdin"), (task.stdout, "Stdout"),
                                (task.stderr, "Stderr")):
                paths.map_path(value, self.config.path_map, what)
        return tasks

    def map_paths(self, values: list[str]) -> list[str]:
        return [paths.map_path(v, self.config.path_map) for v in values]

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
        with self.batch():
            for task in tasks:
                if submitted:
                    self._queue_task(task)
                job.tasks.append(task)
                self.store.insert_task(task)
            job.change_time = now()
            self.store.save_job(job)
        return tasks

    def submit_job(self, caller: Caller, job_id: int) -> Job:
        """Submits a Configuring job, or requeues a Canceled or Failed one."""
        job = self.job(job_id)
        self.authorize(caller, job)
        if job.state in (JobState.Canceled, JobState.Failed):
            return self._requeue(caller.name, job)
        if job.state != JobState.Configuring:
            raise HpcError("OnlyConfigJobsCanBeSubmitted", f"Job {job.id} is {job.state.name}; only a Configuring "
                           "job can be submitted, and only a Canceled or Failed one requeued.", job.id)
        if not job.tasks and not job.run_until_canceled:
            # HPC Pack: a job with no tasks has nothing to run; submitting it is a mistake (often an
            # Add-HpcTask that was refused earlier in the script), so it is refused, not run empty.
            raise HpcError("JobHasNoTasks", f"Job {job.id} has no tasks, so there is nothing to submit: add a task "
                           "(Add-HpcTask) first, or make it a RunUntilCanceled job.", job.id)
        template = self._usable_template(caller, job.template)  # who submits must be allowed to use it
        tpl.apply(template, job)  # its defaults, then its ranges: a job outside them is refused here
        self._move(job, "submit")
        job.submit_time = now()
        job.queue_order = self._take_order()
        self.commit(job, entry=(caller.name, "submit"))
        return job

    def set_job(self, caller: Caller, job_id: int, spec: dict[str, Any]) -> Job:
        job = self.job(job_id)
        self.authorize(caller, job)
        jobspec.check_changeable(job, spec)
        jobspec.apply_job_properties(job, spec)
        self._check_template_spec(caller, job, spec)
        job.change_time = now()
        changed = ", ".join(sorted(k for k, v in spec.items() if v is not None))
        self.commit(job, entry=(caller.name, "modify", "", changed))
        return job

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
        self.begin()
        for phase in (self.reap_exited_units, self.sweep_leftovers, self.watch_adopted_units,
                      self.enforce_task_deadlines, self.enforce_run_times, self.forget_expired_jobs,
                      self.evict_ended_jobs, self.expand_sweeps, self.complete_finished_jobs,
                      self.advance_ending_jobs, self.settle_draining_nodes, self.validate_submitted_jobs,
                      self.allocate_queued_jobs,
                      self.start_ready_units):
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
        polling = bool(self.adopted)
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
        return max(0.0, wait)

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

    def validate_submitted_jobs(self) -> None:
        cluster_cores = sum(n.cores for n in self.config.nodes)
        node_names = {n.name.lower() for n in self.config.nodes}
        for job in self._each(self.in_state(JobState.Submitted)):
            if any(t.pending_steps and not t.instances and not t.rest_canceled for t in job.tasks):
                continue  # its sweeps' first steps are made by expand_sweeps first: they are what is checked
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
        problem = self.group_problem(job) or placement.problem(job, self.config.nodes, minimum)
        if problem:
            return problem
        sets = self.node_sets(job)
        if sets:
            cores = {n.name: n.cores for n in self.config.nodes}
            best = max(sum(cores.get(n, 0) for n in s) for s in sets)
            if minimum > best:
                return (f"The job needs at least {minimum} cores; its node groups ({', '.join(self.job_groups(job))}, "
                        f"{self.group_op(job)}) have {best}.")
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

    def _stranded(self) -> list[Job]:
        """Running jobs left without nodes (their nodes were taken offline) that still have work to start."""
        return [j for j in self.in_state(JobState.Running) if not j.allocation
                and any(u.state == TaskState.Queued for u in j.units())]

    def allocate_queued_jobs(self) -> None:
        stranded = self._stranded()
        if not self._by_state[JobState.Queued] and not stranded:
            return
        if self.slurm is not None:
            self._allocate_on_slurm(self.slurm)
            return
        # Only Online nodes take new work: a Draining or Offline node gives no cores.
        free = {n.name: n.cores for n in self.config.nodes if self.node_usable(n.name)}
        for job in self.in_state(JobState.Running, JobState.Canceling, JobState.Finishing):
            for node, cores in job.allocation.items():
                if node in free:
                    free[node] -= cores
        for job in self.in_state(JobState.Queued):
            job.pending_reason = self._hold_reason(job) or "Resources"
        if not any(cores > 0 for cores in free.values()):
            return  # nothing can start, however long the queue
        queued = [j for j in self._each(self.in_state(JobState.Queued)) if self._may_start(j)] + stranded
        idle = {n for n, cores in free.items() if cores == next(c.cores for c in self.config.nodes if c.name == n)}
        demands = []
        for job in queued:
            low, high = self._core_demand(job)
            allowed = placement.allowed_nodes(job, self.config.nodes)
            if not allowed:
                continue  # none of its nodes is there now (validation saw them): it waits, Resources
            # Node groups (NodeGroups, NodeGroupOp): the sets of nodes the job may take its cores from.
            sets = tuple(tuple(n for n in allowed if n in group_set) for group_set in self.node_sets(job))
            demands.append(scheduler.Demand(job.id, job.priority, job.queue_order, low, high,
                                            job.exclusive or job.unit_type == "Node", allowed, sets,
                                            job.single_node, placement.preference(job, self.config.nodes),
                                            placement.caps(job, self.config.nodes)))
        grants = scheduler.plan(free, idle, demands)
        waiting = sorted((d for d in demands if d.job_id not in grants), key=scheduler.order)
        for place, demand in enumerate(waiting):  # the first waits for cores, the rest also for it
            self.jobs[demand.job_id].pending_reason = "Resources" if place == 0 else "Priority"
        for job_id, grant in grants.items():
            job = self.jobs[job_id]
            if job.state == JobState.Running:  # a stranded job: new nodes, the same run
                job.allocation = grant
                self.commit(job, entry=("scheduler", "nodes allocated", ",".join(sorted(grant))))
                continue
            self._start_job(job, grant)

    def _start_job(self, job: Job, grant: dict[str, int]) -> None:
        job.allocation = grant
        self._move(job, "start")
        job.start_time = now()
        prep = next((t for t in job.tasks if t.type == "NodePrep"), None)
        instances = self._node_instances(job, prep) if prep else []
        self.commit(job, instances)

    def _allocate_on_slurm(self, engine: slurm.Slurm) -> None:
        """Slurm decides when and where: a queued job asks for its allocation as its owner and stays
        Queued until Slurm grants it; then the granted nodes and CPUs are the job's allocation."""
        queued = self.in_state(JobState.Queued)
        for job in queued:
            job.pending_reason = self._hold_reason(job) or "Resources"
        if now() >= self._next_slurm_poll:
            self._next_slurm_poll = now() + SLURM_POLL_INTERVAL
            self._poll_allocations(engine, [j for j in queued if j.slurm_job_id])
        for job in self._each([j for j in queued if not j.slurm_job_id and self._may_start(j)]):
            self._request_allocation(engine, job)

    def _request_allocation(self, engine: slurm.Slurm, job: Job) -> None:
        try:
            job.slurm_job_id = engine.submit_holder(job.owner, f"hpc-{self.head_id}-{job.id}",
                                                    self._slurm_request(engine, job))
        except slurm.SlurmError as e:
            self._fail_job(job, f"Slurm refused the job's allocation: {e}")
            return
        self.commit(job, entry=("scheduler", "slurm allocation", "", str(job.slurm_job_id)))

    def _slurm_request(self, engine: slurm.Slurm, job: Job) -> slurm.Request:
        """The job's demand in Slurm's terms: as many cores as are idle now up to its maximum (never
        under its minimum, which it then waits for), only on the nodes it may use."""
        low, high = self._core_demand(job)
        names = [n.name for n in self.config.nodes]
        requested = {r.lower() for r in job.requested_nodes}
        excluded = {e.lower() for e in job.excluded_nodes}
        exclude = tuple(n for n in names if n.lower() in excluded or (requested and n.lower() not in requested))
        idle = sum(c for n, c in engine.idle_cpus().items() if n not in exclude)
        if job.unit_type == "Node":
            nodes = f"{job.min_units or 1}-{job.max_units or job.min_units or 1}"
            return slurm.Request(cores=job.min_units or 1, nodes=nodes, exclude=exclude, exclusive=True)
        cores = max(low, min(high, idle))
        return slurm.Request(cores=cores, exclude=exclude, exclusive=job.exclusive)

    def _poll_allocations(self, engine: slurm.Slurm, waiting: list[Job]) -> None:
        states = engine.states(j.slurm_job_id for j in waiting)
        for job in self._each(waiting):
            state = states.get(job.slurm_job_id)
            if state == "RUNNING":
                self._start_job(job, engine.allocation(job.slurm_job_id))
            elif state is None or state not in slurm.LIVE_STATES:
                log.warning("job %d: Slurm job %d ended while queued (%s); asking again", job.id,
                            job.slurm_job_id, state)
                job.slurm_job_id = 0
                self.commit(job)
            else:
                job.pending_reason = f"Resources (Slurm job {job.slurm_job_id} {state})"

    def _hold_reason(self, job: Job) -> str:
        """Why a queued job may not start yet whatever the cores: held, or parents not finished."""
        if job.hold_until is not None and now() < job.hold_until:
            return "HoldUntil"
        waiting = [p for p in job.parent_job_ids if not self._finished(p)]
        return f"Dependency ({','.join(map(str, waiting))})" if waiting else ""

    def _finished(self, job_id: int) -> bool:
        parent = self.find(job_id)
        return parent is not None and parent.state == JobState.Finished

    def _may_start(self, job: Job) -> bool:
        """Its parent jobs have finished, and it is not held (HoldUntil)."""
        return not self._hold_reason(job)
