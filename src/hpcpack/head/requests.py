"""What clients may ask of the head node: one handler per operation of `ops.OPERATIONS`.

Arguments arrive validated and typed (ops.parse); handlers only apply the head node's rules.
Operations on many jobs answer per job ({"id", "error"?}), so one bad id never hides the others.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from itertools import islice
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..acyclic import no_cycle_collection
from ..errors import HpcError, invalid_argument, storage_failure
from ..identity import Caller
from ..model.objects import Job, Task, now
from ..model.states import JobState, TaskState, parse_flags
from ..model.stop import StopOptions
from ..wire import operations as ops
from ..wire import protocol
from . import jsontext
from .cluster_requests import ClusterRequests, moment
from .core import ENDED_STATES, log
from .headnode import HeadNode
from .store import JobQuery, StaleState

if TYPE_CHECKING:
    from .daemon import Daemon

BATCH = 500


REPLY_MESSAGE_KEPT = 120  # characters of each error message a bulk reply keeps for a resend


def compact(result: Any) -> Any:
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


def _unsaved(ids: list[int], cause: sqlite3.Error, saved: int) -> list[dict[str, Any]]:
    """The answer for the jobs of a bulk request from a batch that could not be committed on: the batches
    before it are saved, so the request is answered job by job, not with "nothing was changed"."""
    log.error("a request could not be committed after %d of its jobs: %s", saved, cause)
    return [{"id": job_id, "error": storage_failure(cause, job_id).to_wire()} for job_id in ids]


def _request_key(caller: Caller, op: str, request_id: Any) -> str | None:
    if op in protocol.READ_ONLY or request_id is None:
        return None
    if not isinstance(request_id, str) or not (0 < len(request_id) <= 64) or not request_id.isalnum():
        raise invalid_argument("request_id must be 1 to 64 letters and digits.", "request_id")
    return f"{caller.uid}:{op}:{request_id}"


def _stop_options(params: ops.CancelJobs | ops.CancelTask) -> StopOptions:
    return StopOptions.from_parameters(params.force, getattr(params, "graceful", False), params.state,
                                       params.message)


_job_id = attrgetter("id")


class Requests(ClusterRequests):
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
            result = await handler(caller, params)  # (committed a batch at a time)
            if key is not None:
                self._keep_reply(key, result)
            return result
        with self.head.batch(), no_cycle_collection():  # (a listing builds thousands of records: acyclic)
            result = handler(caller, params)
            if key is not None:
                self.head.store.record_reply(key, now(), compact(result))
        return result

    def _keep_reply(self, key: str, result: Any) -> None:
        """Keeps the reply of a request whose changes are already committed: if it cannot be kept (a full
        disk), the caller still gets it, rather than an error saying that nothing was changed."""
        try:
            self.head.store.record_reply(key, now(), compact(result))
        except sqlite3.Error as e:
            log.error("the reply to a request could not be kept for a resend: %s", e)

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

    async def _per_job(self, caller: Caller, ids: list[int], batch: Callable[[list[int]], list[Job | HpcError]],
                       answer: Callable[[Job], dict[str, Any]]) -> list[dict[str, Any]]:
        """Runs `batch` on the ids a batch at a time (one transaction each), yielding between batches: per
        job, {"id", **answer(job)} or its error. One bulk change of the caller's at a time (Unsent.turn)."""
        async with self.daemon.unsent.turn(caller):
            return await self._batches(ids, batch, answer)

    async def _batches(self, ids: list[int], batch: Callable[[list[int]], list[Job | HpcError]],
                       answer: Callable[[Job], dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            try:
                outcomes = batch(chunk)
            except sqlite3.Error as e:
                if not results:
                    raise  # nothing was saved: the request fails as a whole
                return results + _unsaved(ids[start:], e, start)
            results += [{"id": job_id, "error": outcome.to_wire()} if isinstance(outcome, HpcError)
                        else {"id": job_id, **answer(outcome)}
                        for job_id, outcome in zip(chunk, outcomes, strict=True)]
            # Others' requests are served between batches, but no loop pass: each walks the whole queue
            # (15,000 queued: ~5 ms), and a pass once the request is done starts what the batches freed.
            self.daemon.touch()
            await asyncio.sleep(0)
        return results

    def _each_alone(self, action: Callable[[int], Job]) -> Callable[[list[int]], list[Job | HpcError]]:
        """A batch that runs `action(id)` for each id, each in a savepoint of its own (HeadNode.alone)."""
        def batch(ids: list[int]) -> list[Job | HpcError]:
            with self.head.batch():
                return [self.head.alone(job_id, partial(action, job_id)) for job_id in ids]
        return batch

    def _with_record(self, caller: Caller) -> Callable[[Job], dict[str, Any]]:
        return lambda job: {"job": self._record(job, caller)}

    async def op_submit_jobs(self, caller: Caller, params: ops.JobIds) -> list[dict[str, Any]]:
        return await self._per_job(caller, params.ids, self._each_alone(partial(self.head.submit_job, caller)),
                                   self._with_record(caller))

    async def op_requeue_jobs(self, caller: Caller, params: ops.JobIds) -> list[dict[str, Any]]:
        return await self._per_job(caller, params.ids, self._each_alone(partial(self.head.requeue_job, caller)),
                                   self._with_record(caller))

    async def op_cancel_jobs(self, caller: Caller, params: ops.CancelJobs) -> list[dict[str, Any]]:
        """Per job, its state once the cancel is committed (one that never started is already Canceled,
        and its client need not wait for it), or why it was refused."""
        options = _stop_options(params)

        def batch(ids: list[int]) -> list[Job | HpcError]:
            try:
                with self.head.batch():
                    return self.head.cancel_jobs(caller, ids, options)
            except StaleState:  # a row was not as memory had it: nothing of the batch was kept; each job alone
                self.head.reload(ids)
                with self.head.batch():
                    return self.head.cancel_jobs(caller, ids, options, together=False)
        return await self._per_job(caller, params.ids, batch, lambda job: {"state": job.state.name})

    async def op_wait_jobs(self, caller: Caller, params: ops.WaitJobs) -> dict[str, Any]:
        """Waits for the jobs' final states; by default as long as a cancel can take. A timeout of 0 looks once
        and answers at once (it is a timeout given, not a missing one)."""
        timeout = params.timeout if params.timeout is not None else self.op_cancel_time_limit(caller, params)
        return await self.daemon.until_ended(caller, params.ids, min(float(timeout), 3600.0))

    def op_cancel_time_limit(self, caller: Caller, params: ops.Request) -> float:
        """How long a cancel may take: the grace period, the node-release timeout, and a margin."""
        return float(self.head.property("TaskCancelGracePeriod") + self.head.property("NodeReleaseTaskTimeout") + 30)

    def op_lookup_jobs(self, caller: Caller, params: ops.JobIds) -> list[jsontext.Encoded]:
        """Per id: the job, or why it cannot be had (unlike get_jobs, which fails on the first bad id); for
        the first ids whose answers fill a page (protocol.PAGE_BYTES), at least one: the client asks again
        for the others."""
        return jsontext.fill((self._looked_up(caller, job_id) for job_id in params.ids), protocol.PAGE_BYTES)

    def _looked_up(self, caller: Caller, job_id: int) -> dict[str, Any]:
        try:
            return {"id": job_id, "job": self._record(self.head.read_job(job_id), caller)}
        except HpcError as e:
            return {"id": job_id, "error": e.to_wire()}

    def op_plan_cancel(self, caller: Caller, params: ops.CancelJobs) -> list[dict[str, Any]]:
        """What a cancel would do to each job, in words, for -WhatIf and -Confirm; each job's record is
        what names it to the user (Id, Name, State, Owner), not all of it (a plan of 5,000 jobs is read
        before any is cancelled)."""
        options = _stop_options(params)
        results: list[dict[str, Any]] = []
        for job_id in params.ids:
            try:
                job = self.head.read_job(job_id)  # (an ended one, refused, is not loaded with its tasks)
                action = self.head.describe_cancel(caller, job, options)
            except HpcError as e:
                results.append({"id": job_id, "error": e.to_wire()})
                continue
            record = {"__type__": "HpcJob", "Id": job.id, "Name": job.name, "State": job.state.name,
                      "Owner": job.owner}
            results.append({"id": job_id, "job": record, "action": action})
        return results

    def op_get_jobs(self, caller: Caller, params: ops.GetJobs) -> list[jsontext.Encoded] | dict[str, Any]:
        """The jobs that match, or those of `ids` (all of them, or InvalidJobId); a page of them with `after`
        and `limit` (the client pages), `counted` as {"count", "last", "more", "jobs"}. A counted page ends
        where its text fills protocol.PAGE_BYTES, and "more" says that jobs after "last" may still match
        although it holds fewer than `limit`; a reply not counted that would pass the limit of a message
        is refused (ProtocolError) once its text, or the stored text of the jobs read for it, passes it."""
        try:
            Job.check_fields(params.fields or ())
        except KeyError as e:
            raise invalid_argument(f"{e} is not a property of HpcJob.", "fields") from None
        if params.ids is not None and params.after is not None:
            raise invalid_argument("`after` pages a listing by its filters; with ids, ask for those not answered.",
                                   "after")
        size = protocol.PAGE_BYTES if params.counted else protocol.MAX_FRAME
        jobs: Iterator[Job]
        if params.ids is not None:  # read as written, one at a time: ended ones are not kept in memory
            jobs, cut = map(self.head.read_job, params.ids[:params.limit]), False
        else:
            selected, cut = self._select_jobs(caller, params, size)
            jobs = iter(selected)
        scheduler = self.head.name if params.scheduler is None else params.scheduler
        shown: list[int] = []

        def records() -> Iterator[dict[str, Any]]:
            for job in jobs:
                shown.append(job.id)
                yield job.to_record(scheduler, not self.head.may_read(caller, job), params.fields)
        page = jsontext.fill(records(), size)
        more = cut or next(jobs, None) is not None
        if not params.counted:
            if more:
                raise HpcError("ProtocolError", f"The jobs asked for hold more than {size:,} bytes, the limit of a "
                               "message: ask for them in counted pages, or for fewer at a time.")
            return page
        # "jobs" last: the client cuts them out of the reply unread (Client.job_page).
        return {"count": len(page), "last": shown[-1] if shown else None, "more": more, "jobs": page}

    def _select_jobs(self, caller: Caller, params: ops.GetJobs, size: int) -> tuple[list[Job], bool]:
        """A page of the jobs that match: active ones from memory (the head node indexes them by state),
        ended ones paged and filtered in SQL, without their tasks, until their stored text passes `size`,
        so a page costs a page; and whether the ended ones were so cut short."""
        query = self._job_query(caller, params)
        # Active jobs by id, from the first after `after`, until a page of them matches: a page costs a
        # sort of the active jobs (C), not a test of each (a listing of 5,000 in pages tested 24,000).
        candidates = sorted(self.head.in_state(*(JobState(s) for s in query.states if s not in ENDED_STATES)),
                            key=_job_id)
        rest = candidates[bisect_right(candidates, query.after, key=_job_id):]
        active = list(islice((job for job in rest if self._matches(job, query)), query.limit))
        ended, cut = self.head.store.list_jobs(replace(query, states=tuple(
            int(s) for s in ENDED_STATES if int(s) in query.states)), size)
        recent = {j.id: j for j in self.head.in_state(*ENDED_STATES)}  # memory may hold a newer copy
        jobs = sorted(active + [recent.get(j.id, j) for j in ended], key=lambda j: j.id)
        if cut:  # the page ends with the last ended job read: the next one may come before an active job
            jobs = [job for job in jobs if job.id <= ended[-1].id]
        return jobs[:query.limit], cut

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
                        owner=owner.split("\\")[-1].lower() if owner else None, begin=moment(params.begin,
                        "BeginSubmitDate"), end=moment(params.end, "EndSubmitDate"), texts=texts,
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

    def op_get_tasks(self, caller: Caller, params: ops.GetTasks) -> list[dict[str, Any]] | dict[str, Any]:
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
        shown = [u for u in units if int(u.shown_state) & mask]
        if not params.counted:
            return [self._task_record(u, caller) for u in shown]
        after = tuple(params.after or (0, 0))
        rest = sorted((u for u in shown if (u.task_id, u.sub_id) > after), key=attrgetter("task_id", "sub_id"))
        page = jsontext.fill((self._task_record(u, caller) for u in rest), protocol.PAGE_BYTES)
        last = rest[len(page) - 1] if page else None
        return {"count": len(page), "last": [last.task_id, last.sub_id] if last else None,
                "more": len(page) < len(rest), "tasks": page}

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

    def op_shutdown(self, caller: Caller, params: ops.Request) -> dict[str, Any]:
        if not caller.admin:
            raise HpcError("PermissionDenied", "Only an administrator can stop the head node.")
        self.daemon.stopping = True
        return {"stopping": True}

    # Nodes, groups and the cluster (head.nodes).











