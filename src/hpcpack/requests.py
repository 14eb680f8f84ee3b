"""What clients may ask of the head node: one method per operation, arguments checked here.

Operations on many jobs answer per job ({"id", "error"?}), so one bad id never hides the others.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import PROPERTY_DEFAULTS
from .errors import HpcError, invalid_argument
from .headnode import HeadNode
from .identity import Caller
from .model import Job
from .states import JobState, TaskState, parse_flags

if TYPE_CHECKING:
    from .daemon import Daemon

BATCH = 500


def _ids(value: Any) -> list[int]:
    items = value if isinstance(value, list) else [value]
    try:
        return [int(v) for v in items if v is not None]
    except (TypeError, ValueError):
        raise invalid_argument(f"Job ids must be whole numbers: {value!r}.") from None


def _time(value: Any, what: str) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid_argument(f"{what} '{value}' is not a date and time.", what) from None


class Requests:
    def __init__(self, head: HeadNode, daemon: Daemon) -> None:
        self.head = head
        self.daemon = daemon

    async def handle(self, caller: Caller, op: str, args: dict[str, Any]) -> Any:
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            raise HpcError("ProtocolError", f"The head node does not know the operation '{op}'.")
        self.head.begin()
        result = handler(caller, args)
        return await result if asyncio.iscoroutine(result) else result

    def _record(self, job: Job) -> dict[str, Any]:
        return job.to_record(self.head.name)

    def op_ping(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        return {"name": self.head.name, "head_id": self.head.head_id, "pid": os.getpid(), "version": __version__,
                "user": caller.name, "admin": caller.admin}

    def op_new_job(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        return self._record(self.head.new_job(caller, args.get("spec") or {}))

    def op_copy_job(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        return self._record(self.head.copy_job(caller, int(args["id"]), args.get("spec") or {}))

    def op_add_task(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        tasks = self.head.add_task(caller, int(args["job_id"]), args.get("spec") or {})
        return [t.to_record(self.head.name) for t in tasks]

    async def _per_job(self, ids: list[int], action: Any, records: bool = True) -> list[dict[str, Any]]:
        """Runs `action(id)` for each id in batches (one transaction each), yielding between batches.
        With `records`, each answer carries the job as it is afterwards."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH):
            with self.head.batch():
                for job_id in ids[start:start + BATCH]:
                    try:
                        job = action(job_id)
                        results.append({"id": job_id, "job": self._record(job)} if records else {"id": job_id})
                    except HpcError as e:
                        results.append({"id": job_id, "error": e.to_wire()})
            self.daemon.poke()
            await asyncio.sleep(0)
        return results

    async def op_submit_jobs(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._per_job(_ids(args.get("ids")), lambda i: self.head.submit_job(caller, i))

    async def op_cancel_jobs(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        message = args.get("message")
        force, graceful = bool(args.get("force")), bool(args.get("graceful"))
        finish = str(args.get("state") or "").lower() == "finished"
        if args.get("state") and not finish:
            raise invalid_argument(f"State '{args['state']}' is not valid; the only valid value is Finished.", "State")
        self.head.check_cancel_request(message, force, graceful)
        return await self._per_job(_ids(args.get("ids")),
                                   lambda i: self.head.cancel_job(caller, i, message, force, graceful, finish),
                                   records=False)

    async def op_wait_jobs(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        """Waits for the jobs' final states; by default as long as a cancel can take."""
        timeout = min(float(args.get("timeout") or self.op_cancel_time_limit(caller, args)), 3600.0)
        return await self.daemon.until_ended(_ids(args.get("ids")), timeout)

    def op_cancel_time_limit(self, caller: Caller, args: dict[str, Any]) -> float:
        """How long a cancel may take: the grace period, the node-release timeout, and a margin."""
        return float(self.head.property("TaskCancelGracePeriod") + self.head.property("NodeReleaseTaskTimeout") + 30)

    def op_lookup_jobs(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Per id: the job, or why it cannot be had (unlike get_jobs, which fails on the first bad id)."""
        results: list[dict[str, Any]] = []
        for job_id in _ids(args.get("ids")):
            try:
                results.append({"id": job_id, "job": self._record(self.head.job(job_id))})
            except HpcError as e:
                results.append({"id": job_id, "error": e.to_wire()})
        return results

    def op_plan_cancel(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        """What a cancel would do to each job, in words, for -WhatIf and -Confirm."""
        force, graceful = bool(args.get("force")), bool(args.get("graceful"))
        self.head.check_cancel_request(args.get("message"), force, graceful)
        finish = str(args.get("state") or "").lower() == "finished"
        results = []
        for entry in self.op_lookup_jobs(caller, args):
            if "job" in entry:
                job = self.head.jobs[entry["id"]]
                try:
                    entry["action"] = self.head.describe_cancel(caller, job, force, graceful, finish)
                except HpcError as e:
                    entry = {"id": entry["id"], "error": e.to_wire()}
            results.append(entry)
        return results

    def op_get_jobs(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        return [self._record(j) for j in self._select_jobs(caller, args)]

    def _select_jobs(self, caller: Caller, args: dict[str, Any]) -> list[Job]:
        ids = _ids(args["ids"]) if args.get("ids") is not None else None
        if ids is not None:
            found = []
            for job_id in ids:
                found.append(self.head.job(job_id))
            return found
        state = args.get("state")
        owner = args.get("owner")
        if state is None and owner is None:
            # HPC Pack's default: the caller's own Queued and Running jobs.
            mask, owner = int(JobState.Queued | JobState.Running), caller.name
        else:
            try:
                mask = parse_flags(JobState, state) if state is not None else int(JobState.All)
            except ValueError as e:
                raise invalid_argument(str(e), "State") from None
        owner_name = str(owner).split("\\")[-1].lower() if owner else None
        begin, end = _time(args.get("begin"), "BeginSubmitDate"), _time(args.get("end"), "EndSubmitDate")
        nodes = {n.lower() for n in args.get("nodes") or []}
        if nodes and not nodes & {n.name.lower() for n in self.head.config.nodes}:
            raise invalid_argument(f"None of the nodes {', '.join(sorted(nodes))} exists.", "NodeName")
        text_filters = [(key, str(args[key]).lower()) for key in ("name", "project", "template") if args.get(key)]
        selected = []
        for job in self.head.jobs.values():
            if not int(job.state) & mask or (owner_name and job.owner.lower() != owner_name):
                continue
            if begin is not None and (job.submit_time is None or job.submit_time < begin):
                continue
            if end is not None and (job.submit_time is None or job.submit_time > end):
                continue
            if nodes and not nodes & {n.lower() for n in job.allocation}:
                continue
            values = {"name": job.name, "project": job.project, "template": job.template}
            if any(values[key].lower() != wanted for key, wanted in text_filters):
                continue
            selected.append(job)
        return sorted(selected, key=lambda j: j.id)

    def op_set_job(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        return self._record(self.head.set_job(caller, int(args["id"]), args.get("spec") or {}))

    def op_get_tasks(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        job = self.head.job(int(args["job_id"]))
        task_id, sub_id = args.get("task_id"), args.get("sub_id")
        try:
            mask = parse_flags(TaskState, args["state"]) if args.get("state") else int(TaskState.All)
        except ValueError as e:
            raise invalid_argument(str(e), "State") from None
        if task_id is not None:
            task = job.task(int(task_id))
            if task is None:
                raise HpcError("InvalidTaskId", f"Task {job.id}.{task_id} does not exist.", f"{job.id}.{task_id}")
            units = [task] if not sub_id else [i for i in task.instances if i.sub_id == int(sub_id)]
            if not units:
                raise HpcError("InvalidTaskId", f"Task {job.id}.{task_id}.{sub_id} does not exist.",
                               f"{job.id}.{task_id}.{sub_id}")
        else:
            # Without a task id, sweeps show as their subtasks (HPC Pack's rule), unless asked not to.
            expand = args.get("expand", True)
            units = [u for t in job.tasks for u in (t.instances if expand and t.parametric and t.instances else [t])]
        return [u.to_record(self.head.name) for u in units if int(u.shown_state) & mask]

    def _task_args(self, args: dict[str, Any]) -> tuple[int, int, int]:
        return int(args["job_id"]), int(args["task_id"]), int(args.get("sub_id") or 0)

    def op_cancel_task(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        finish = str(args.get("state") or "").lower() == "finished"
        task = self.head.cancel_task(caller, *self._task_args(args), args.get("message"), bool(args.get("force")),
                                     finish)
        return task.to_record(self.head.name)

    def op_requeue_task(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        return self.head.requeue_task(caller, *self._task_args(args)).to_record(self.head.name)

    def op_submit_task(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        return self.head.submit_task(caller, *self._task_args(args)).to_record(self.head.name)

    def op_history(self, caller: Caller, args: dict[str, Any]) -> list[dict[str, Any]]:
        job_id = args.get("job_id")
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read the job history; {caller.name} "
                           "is not one.")
        rows = self.head.store.history(int(job_id) if job_id is not None else None,
                                       _time(args.get("start"), "StartDate"), _time(args.get("end"), "EndDate"))
        return rows

    def op_get_properties(self, caller: Caller, args: dict[str, Any]) -> dict[str, int]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read cluster properties; {caller.name} "
                           "is not one.")
        return {name: self.head.property(name) for name in PROPERTY_DEFAULTS}

    def op_set_property(self, caller: Caller, args: dict[str, Any]) -> dict[str, int]:
        for name, value in (args.get("values") or {}).items():
            self.head.set_property(caller, str(name), int(value))
        return self.op_get_properties(caller, args)

    def op_shutdown(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        if not caller.admin:
            raise HpcError("PermissionDenied", "Only an administrator can stop the head node.")
        self.daemon.stopping = True
        return {"stopping": True}
