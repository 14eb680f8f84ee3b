"""What a job must pass before it may run: its template (defaults, ranges, who may use it), Windows
paths mapped by the head node's path map, and validation at submit (cores, nodes, groups, per-node
limits, tasks that could never start), as HPC Pack's validation step does."""

from __future__ import annotations

from typing import Any

from ..errors import HpcError
from ..identity import Caller, groups_of
from ..model import jobspec, paths
from ..model import templates as tpl
from ..model.objects import Job, Task, now
from ..model.states import JobState
from . import placement, scheduler
from .slurm_nodes import SlurmNodes


class Admission(SlurmNodes):
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

    def enforce_template(self, caller: Caller, job: Job) -> None:
        """Who submits must be allowed to use the job's template; its defaults fill what the job left
        unset, then its ranges hold (JobTemplateViolation). At submit, requeue and every change."""
        # Cores calculated from the tasks count against its core limits as cores asked for do.
        tpl.apply(self._usable_template(caller, job.template), job, self._core_demand)

    def demand(self, job: Job) -> scheduler.Demand | None:
        """What the job asks of the allocator (head/scheduler.py); None when none of its nodes is there."""
        low, high = self._core_demand(job)
        allowed = placement.allowed_nodes(job, self.config.nodes)
        if not allowed:
            return None
        # Node groups (NodeGroups, NodeGroupOp): the sets of nodes the job may take its cores from.
        sets = tuple(tuple(n for n in allowed if n in group_set) for group_set in self.node_sets(job))
        return scheduler.Demand(job.id, job.priority, job.queue_order, low, high,
                                job.exclusive or job.unit_type == "Node", allowed, sets, job.single_node,
                                placement.preference(job, self.config.nodes), placement.caps(job, self.config.nodes))

    def queued_problem(self, job: Job) -> str:
        """What validation would say of the job as it is now (a Queued job changed by Set-HpcJob)."""
        return self._validation_problem(job, sum(n.cores for n in self.config.nodes),
                                        {n.name.lower() for n in self.config.nodes})

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
        demand = self.demand(job)  # what the allocator will ask: it must be able to say yes one day
        if demand is None or not scheduler.can_ever_start(demand, {n.name: n.cores for n in self.config.nodes}):
            return (f"The nodes the job may use (its requested, excluded and grouped nodes, per-node limits and "
                    f"EstimatedProcessMemory) can never give it {minimum} cores.")
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
