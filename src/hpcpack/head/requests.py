"""What clients may ask of the head node: one handler per operation of `ops.OPERATIONS`.

Arguments arrive validated and typed (ops.parse); handlers only apply the head node's rules.
Operations on many jobs answer per job ({"id", "error"?}), so one bad id never hides the others.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import CLUSTER_PARAMETERS, PROPERTY_DEFAULTS
from ..errors import HpcError, invalid_argument
from ..identity import Caller
from ..model import templates
from ..model.objects import Job, Task, history_record, now
from ..model.states import JobState, TaskState, parse_flags
from ..model.stop import StopOptions
from ..wire import operations as ops
from ..wire import protocol
from .core import ENDED_STATES
from .headnode import HeadNode
from .store import JobQuery

if TYPE_CHECKING:
    from .daemon import Daemon

BATCH = 500


def _time(value: str | int | float | None, what: str) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid_argument(f"{what} '{value}' is not a date and time.", what) from None


REPLY_MESSAGE_KEPT = 120  # characters of each error message a bulk reply keeps for a resend


def _compact(result: Any) -> Any:
    """A bulk reply as kept for a resend: each job's id and error id with the start of its message, not
    its whole record nor the full message (a resend of a 10,000-job request must not store megabytes)."""
    if isinstance(result, list):
        return [_compact_item(item) if isinstance(item, dict) else item for item in result]
    return result


def _compact_item(item: dict[str, Any]) -> dict[str, Any]:
    error = item.get("error")
    if not isinstance(error, dict):
        return {k: v for k, v in item.items() if k != "job"}
    return {"id": item.get("id"), "error": {"error_id": error.get("error_id"),
                                            "message": str(error.get("message", ""))[:REPLY_MESSAGE_KEPT]}}


def _request_key(caller: Caller, op: str, request_id: Any) -> str | None:
    if op in protocol.READ_ONLY or request_id is None:
        return None
    if not isinstance(request_id, str) or not (0 < len(request_id) <= 64) or not request_id.isalnum():
        raise invalid_argument("request_id must be 1 to 64 letters and digits.", "request_id")
    return f"{caller.uid}:{op}:{request_id}"


def _stop_options(params: ops.CancelJobs | ops.CancelTask) -> StopOptions:
    return StopOptions.from_parameters(params.force, getattr(params, "graceful", False), params.state,
                                       params.message)


class Requests:
    def __init__(self, head: HeadNode, daemon: Daemon) -> None:
        self.head = head
        self.daemon = daemon
        self.handlers: dict[str, Callable[[Caller, Any], Any]] = {
            name: getattr(self, "op_" + name) for name in ops.OPERATIONS}

    async def handle(self, caller: Caller, op: Any, args: Any, request_id: Any = None) -> Any:
        """Validates and runs one request. A changing request with an id is applied once: its reply is
        stored with its changes (in the same transaction, for the single-step operations) and a resend
        of the same id by the same user gets that reply again."""
        name, params = ops.parse(op, args)
        self.head.begin()
        key = _request_key(caller, name, request_id)
        if key is not None:
            done = self.head.store.applied_reply(key)
            if done is not None:
                return done
        handler = self.handlers[name]
        if asyncio.iscoroutinefunction(handler):
            result = await handler(caller, params)
            if key is not None:
                self.head.store.record_reply(key, now(), _compact(result))
            return result
        with self.head.batch():
            result = handler(caller, params)
            if key is not None:
                self.head.store.record_reply(key, now(), _compact(result))
        return result

    def _record(self, job: Job, caller: Caller) -> dict[str, Any]:
        return job.to_record(self.head.name, private=not self.head.may_read(caller, job))

    def _task_record(self, task: Task, caller: Caller) -> dict[str, Any]:
        return task.to_record(self.head.name, private=not self.head.may_read(caller, self.head.job(task.job_id)))

    def op_hello(self, caller: Caller, params: ops.Hello) -> dict[str, Any]:
        """Both sides' protocol versions; a client older or newer than the head node learns it here."""
        return {**self.op_ping(caller, params), "protocol": protocol.PROTOCOL_VERSION}

    def op_ping(self, caller: Caller, params: ops.Request) -> dict[str, Any]:
        return {"name": self.head.name, "head_id": self.head.head_id, "pid": os.getpid(), "version": __version__,
                "protocol": protocol.PROTOCOL_VERSION, "user": caller.name, "admin": caller.admin,
                "state_dir": str(self.head.state_dir)}

    def op_new_job(self, caller: Caller, params: ops.NewJob) -> dict[str, Any]:
        return self._record(self.head.new_job(caller, dict(params.spec), [dict(t) for t in params.tasks]), caller)

    def op_copy_job(self, caller: Caller, params: ops.CopyJob) -> dict[str, Any]:
        return self._record(self.head.copy_job(caller, params.id, dict(params.spec)), caller)

    def op_add_task(self, caller: Caller, params: ops.AddTask) -> list[dict[str, Any]]:
        tasks = self.head.add_task(caller, params.job_id, dict(params.spec))
        return [self._task_record(t, caller) for t in tasks]

    async def _per_job(self, caller: Caller, ids: list[int], action: Callable[[int], Job],
                       records: bool = True) -> list[dict[str, Any]]:
        """Runs `action(id)` for each id in batches (one transaction each), yielding between batches.
        With `records`, each answer carries the job as it is afterwards."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH):
            with self.head.batch():
                for job_id in ids[start:start + BATCH]:
                    try:
                        with self.head.batch():  # a savepoint: a refused job's writes are undone alone
                            job = action(job_id)
                        results.append({"id": job_id, "job": self._record(job, caller)} if records
                                       else {"id": job_id})
                    except HpcError as e:
                        self.head.reload([job_id])  # and so is anything it changed in memory
                        results.append({"id": job_id, "error": e.to_wire()})
            self.daemon.poke()
            await asyncio.sleep(0)
        return results

    async def op_submit_jobs(self, caller: Caller, params: ops.JobIds) -> list[dict[str, Any]]:
        return await self._per_job(caller, params.ids, lambda i: self.head.submit_job(caller, i))

    async def op_requeue_jobs(self, caller: Caller, params: ops.JobIds) -> list[dict[str, Any]]:
        return await self._per_job(caller, params.ids, lambda i: self.head.requeue_job(caller, i))

    async def op_cancel_jobs(self, caller: Caller, params: ops.CancelJobs) -> list[dict[str, Any]]:
        options = _stop_options(params)
        return await self._per_job(caller, params.ids, lambda i: self.head.cancel_job(caller, i, options),
                                   records=False)

    async def op_wait_jobs(self, caller: Caller, params: ops.WaitJobs) -> dict[str, Any]:
        """Waits for the jobs' final states; by default as long as a cancel can take."""
        timeout = params.timeout if params.timeout else self.op_cancel_time_limit(caller, params)
        return await self.daemon.until_ended(caller, params.ids, min(float(timeout), 3600.0))

    def op_cancel_time_limit(self, caller: Caller, params: ops.Request) -> float:
        """How long a cancel may take: the grace period, the node-release timeout, and a margin."""
        return float(self.head.property("TaskCancelGracePeriod") + self.head.property("NodeReleaseTaskTimeout") + 30)

    def op_lookup_jobs(self, caller: Caller, params: ops.JobIds) -> list[dict[str, Any]]:
        """Per id: the job, or why it cannot be had (unlike get_jobs, which fails on the first bad id)."""
        results: list[dict[str, Any]] = []
        for job_id in params.ids:
            try:
                results.append({"id": job_id, "job": self._record(self.head.job(job_id), caller)})
            except HpcError as e:
                results.append({"id": job_id, "error": e.to_wire()})
        return results

    def op_plan_cancel(self, caller: Caller, params: ops.CancelJobs) -> list[dict[str, Any]]:
        """What a cancel would do to each job, in words, for -WhatIf and -Confirm."""
        options = _stop_options(params)
        results = []
        for entry in self.op_lookup_jobs(caller, ops.JobIds(ids=params.ids)):
            if "job" in entry:
                job = self.head.jobs[entry["id"]]
                try:
                    entry["action"] = self.head.describe_cancel(caller, job, options)
                except HpcError as e:
                    entry = {"id": entry["id"], "error": e.to_wire()}
            results.append(entry)
        return results

    def op_get_jobs(self, caller: Caller, params: ops.GetJobs) -> list[dict[str, Any]]:
        """The jobs that match, by id; a page of them with `after` and `limit` (the client pages)."""
        if params.ids is not None:
            jobs = [self.head.job(job_id) for job_id in params.ids]
            jobs = [j for j in jobs if params.after is None or j.id > params.after]
            return [self._record(j, caller) for j in jobs[:params.limit]]
        return [self._record(j, caller) for j in self._select_jobs(caller, params)]

    def _select_jobs(self, caller: Caller, params: ops.GetJobs) -> list[Job]:
        """A page of the jobs that match: active ones from memory (the head node indexes them by state),
        ended ones paged and filtered in SQL, without their tasks, so a page costs a page."""
        query = self._job_query(caller, params)
        active = [job for job in self.head.in_state(*(JobState(s) for s in query.states))
                  if job.state not in ENDED_STATES and job.id > query.after and self._matches(job, query)]
        ended = self.head.store.list_jobs(replace(query, states=tuple(
            int(s) for s in ENDED_STATES if int(s) in query.states)))
        recent = {j.id: j for j in self.head.in_state(*ENDED_STATES)}  # memory may hold a newer copy
        jobs = sorted(active + [recent.get(j.id, j) for j in ended], key=lambda j: j.id)
        return jobs[:query.limit]

    def _job_query(self, caller: Caller, params: ops.GetJobs) -> JobQuery:
        state, owner = params.state, params.owner
        if state is None and owner is None:
            # HPC Pack's default: the caller's own Queued and Running jobs.
            mask, owner = int(JobState.Queued | JobState.Running), caller.name
        else:
            try:
                mask = parse_flags(JobState, state) if state is not None else int(JobState.All)
            except ValueError as e:
                raise invalid_argument(str(e), "State") from None
        nodes = {n.lower() for n in params.nodes or []}
        if nodes and not nodes & {n.name.lower() for n in self.head.config.nodes}:
            raise invalid_argument(f"None of the nodes {', '.join(sorted(nodes))} exists.", "NodeName")
        texts = tuple((key, value.lower()) for key, value in
                      (("name", params.name), ("project", params.project), ("template", params.template)) if value)
        states = tuple(int(s) for s in JobState.__members__.values() if s != JobState.All and int(s) & mask)
        return JobQuery(states=states, limit=params.limit or protocol.MAX_IDS, after=params.after or 0,
                        owner=owner.split("\\")[-1].lower() if owner else None, begin=_time(params.begin,
                        "BeginSubmitDate"), end=_time(params.end, "EndSubmitDate"), texts=texts,
                        nodes=tuple(sorted(nodes)))

    @staticmethod
    def _matches(job: Job, query: JobQuery) -> bool:
        """The query's filters, for a job in memory (JobQuery.sql says the same to SQLite)."""
        submitted = job.submit_time
        values = {"name": job.name, "project": job.project, "template": job.template}
        return ((query.owner is None or job.owner.lower() == query.owner)
                and (query.begin is None or (submitted is not None and submitted >= query.begin))
                and (query.end is None or (submitted is not None and submitted <= query.end))
                and (not query.nodes or bool(set(query.nodes) & {n.lower() for n in job.allocation}))
                and all(values[key].lower() == wanted for key, wanted in query.texts))

    def op_set_job(self, caller: Caller, params: ops.SetJob) -> dict[str, Any]:
        return self._record(self.head.set_job(caller, params.id, dict(params.spec)), caller)

    def op_get_tasks(self, caller: Caller, params: ops.GetTasks) -> list[dict[str, Any]]:
        job = self.head.job(params.job_id)
        if params.full:
            self.head.authorize_read(caller, job)
        try:
            mask = parse_flags(TaskState, params.state) if params.state else int(TaskState.All)
        except ValueError as e:
            raise invalid_argument(str(e), "State") from None
        if params.task_id is not None:
            task = self.head.find_task(job, params.task_id, 0)
            units = [task] if not params.sub_id else [self.head.find_task(job, params.task_id, params.sub_id)]
        else:
            # Without a task id, sweeps show as their subtasks (HPC Pack's rule), unless asked not to.
            units = [u for t in job.tasks
                     for u in (t.instances if params.expand and t.parametric and t.instances else [t])]
        return [self._task_record(u, caller) for u in units if int(u.shown_state) & mask]

    def op_set_task(self, caller: Caller, params: ops.SetTask) -> dict[str, Any]:
        return self._task_record(self.head.set_task(caller, params.job_id, params.task_id, dict(params.spec)), caller)

    def op_map_paths(self, caller: Caller, params: ops.MapPaths) -> list[str]:
        """Windows paths -> Linux paths by the head node's path map (NoPathMapping when none applies)."""
        return self.head.map_paths(list(params.paths))

    def op_cancel_task(self, caller: Caller, params: ops.CancelTask) -> dict[str, Any]:
        task = self.head.cancel_task(caller, params.job_id, params.task_id, params.sub_id or 0,
                                     _stop_options(params))
        return self._task_record(task, caller)

    def op_requeue_task(self, caller: Caller, params: ops.TaskAddress) -> dict[str, Any]:
        return self._task_record(self.head.requeue_task(caller, params.job_id, params.task_id, params.sub_id or 0),
                                 caller)

    def op_submit_task(self, caller: Caller, params: ops.TaskAddress) -> dict[str, Any]:
        return self._task_record(self.head.submit_task(caller, params.job_id, params.task_id, params.sub_id or 0),
                                 caller)

    def op_history(self, caller: Caller, params: ops.History) -> list[dict[str, Any]]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read the job history; {caller.name} "
                           "is not one.")
        rows: list[dict[str, Any]] = self.head.store.history(params.job_id, _time(params.start, "StartDate"),
                                                             _time(params.end, "EndDate"))
        return rows

    def op_job_history(self, caller: Caller, params: ops.JobHistory) -> list[dict[str, Any]]:
        """One record per job that ended (Finished, Failed, Canceled) in [start, end), oldest end first:
        HPC Pack's HpcJobHistory (administrators only, as there)."""
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read the job history; {caller.name} "
                           "is not one.")
        start, end = _time(params.start, "StartDate"), _time(params.end, "EndDate")
        jobs = self.head.store.load_jobs(states=[int(s) for s in ENDED_STATES], ended_after=start, ended_before=end)
        return [history_record(job) for job in sorted(jobs, key=lambda j: (j.end_time or 0, j.id))]

    def op_get_templates(self, caller: Caller, params: ops.TemplateName) -> list[dict[str, Any]]:
        """Every template (anyone may list them, as on HPC Pack), or the one named (InvalidJobTemplate)."""
        found = [self.head.template(params.name)] if params.name else self.head.templates()
        return [t.to_record(self.head.name) for t in found]

    def op_put_template(self, caller: Caller, params: ops.PutTemplate) -> dict[str, Any]:
        template = templates.JobTemplate(params.name, params.description, list(params.users),
                                         [templates.TemplateItem(**i.model_dump()) for i in params.items])
        return self.head.put_template(caller, template, params.replace).to_record(self.head.name)

    def op_remove_template(self, caller: Caller, params: ops.TemplateName) -> dict[str, Any]:
        if not params.name:
            raise invalid_argument("Name the template to remove.", "Name")
        self.head.remove_template(caller, params.name)
        return {"removed": params.name}

    def op_get_properties(self, caller: Caller, params: ops.Request) -> dict[str, int]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read cluster properties; {caller.name} "
                           "is not one.")
        return {name: self.head.property(name) for name in PROPERTY_DEFAULTS}

    def op_set_property(self, caller: Caller, params: ops.SetProperty) -> dict[str, int]:
        for name, value in params.values.items():
            self.head.set_property(caller, name, value)
        return self.op_get_properties(caller, params)

    def op_shutdown(self, caller: Caller, params: ops.Request) -> dict[str, Any]:
        if not caller.admin:
            raise HpcError("PermissionDenied", "Only an administrator can stop the head node.")
        self.daemon.stopping = True
        return {"stopping": True}

    # Nodes, groups and the cluster (head.nodes).

    def op_get_nodes(self, caller: Caller, params: ops.GetNodes) -> list[dict[str, Any]]:
        return self.head.node_records(params.names, params.groups, params.states, params.templates,
                                      params.locations)

    def op_plan_node_state(self, caller: Caller, params: ops.SetNodeState) -> list[dict[str, Any]]:
        return self.head.plan_node_state(caller, params.names, params.state, params.force)

    def op_set_node_state(self, caller: Caller, params: ops.SetNodeState) -> list[dict[str, Any]]:
        result = self.head.set_node_state(caller, params.names, params.state, params.force, params.reason)
        self.daemon.poke()
        return result

    def op_node_history(self, caller: Caller, params: ops.NodeHistory) -> list[dict[str, Any]]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read the node state history; "
                           f"{caller.name} is not one.")
        return self.head.node_history_records(params.names, _time(params.start, "StartDate"),
                                              _time(params.end, "EndDate"))

    def op_get_groups(self, caller: Caller, params: ops.GetGroups) -> list[dict[str, Any]]:
        return self.head.group_records(params.names, params.ids)

    def op_new_group(self, caller: Caller, params: ops.NewGroup) -> dict[str, Any]:
        return self.head.new_group(caller, params.name, params.description)

    def op_change_groups(self, caller: Caller, params: ops.ChangeGroups) -> list[dict[str, Any]]:
        result = self.head.change_groups(caller, params.names, params.ids, params.nodes, params.add)
        self.daemon.poke()
        return result

    def op_cluster_overview(self, caller: Caller, params: ops.Request) -> dict[str, Any]:
        """Get-HpcClusterOverview: nodes by state, cores, jobs and tasks by state (anyone may read it)."""
        nodes = self.head.node_records()
        by_state = {s: sum(1 for n in nodes if n["State"] == s) for s in ("Online", "Draining", "Offline")}
        total = sum(n["ProcessorCores"] for n in nodes)
        busy = sum(n["CoresInUse"] for n in nodes)
        offline = sum(n["ProcessorCores"] for n in nodes if n["State"] != "Online")
        jobs = {s.name: 0 for s in JobState.__members__.values() if s != JobState.All}
        for state, count in self.head.store.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            jobs[JobState(state).name] = count
        tasks = {s.name: 0 for s in TaskState.__members__.values() if s != TaskState.All}
        for job in self.head.jobs.values():
            for unit in job.units():
                tasks[unit.shown_state.name] += 1
        return {"ClusterName": self.head.name, "Version": __version__,
                "TotalNodeCount": len(nodes), "OnlineNodeCount": by_state["Online"],
                "ReadyNodeCount": by_state["Online"], "DrainingNodeCount": by_state["Draining"],
                "OfflineNodeCount": by_state["Offline"], "UnreachableNodeCount": 0,
                "TotalCoreCount": total, "BusyCoreCount": busy, "IdleCoreCount": max(0, total - busy - offline),
                "OfflineCoreCount": offline, "TotalJobCount": sum(jobs.values()),
                **{f"{name}JobCount": count for name, count in jobs.items()},
                "TotalTaskCount": sum(tasks.values()), **{f"{name}TaskCount": count for name, count in tasks.items()}}

    def op_cluster_parameters(self, caller: Caller, params: ops.Request) -> dict[str, str]:
        """Get-HpcClusterProperty -Parameter: HPC Pack's cluster parameters (administrators only)."""
        values = {name: str(value) for name, value in self.op_get_properties(caller, params).items()}
        stored = self.head.store.properties()
        return {**{name: stored.get(name, default) for name, default in CLUSTER_PARAMETERS.items()}, **values}

    def op_get_environment(self, caller: Caller, params: ops.Request) -> dict[str, str]:
        """Get-HpcClusterProperty -Environment: the built-in CCP_ variables, then the cluster's own."""
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read cluster properties; {caller.name} "
                           "is not one.")
        return {"CCP_CLUSTER_NAME": self.head.name, "CCP_SCHEDULER": self.head.name,
                **self.head.cluster_environment()}

    def op_set_environment(self, caller: Caller, params: ops.SetEnvironment) -> dict[str, str]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can change cluster properties; "
                           f"{caller.name} is not one.")
        for name in params.values:
            if not name or "=" in name or name.upper().startswith("CCP_"):
                raise invalid_argument(f"'{name}' cannot be set as a cluster environment variable (empty, has '=', "
                                       "or a built-in CCP_ name).", "Environment")
        self.head.set_environment(dict(params.values))
        return self.op_get_environment(caller, params)
