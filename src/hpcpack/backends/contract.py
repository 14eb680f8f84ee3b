"""The one contract between the cmdlets (and the `job` command) and a scheduler backend.

A backend is anything that keeps HPC Pack's model of jobs and tasks and acts on it: today the head
node reached over its socket (`backends.headnode.HeadNodeBackend`), local or remote; the Slurm engine
sits behind a head node and so needs no second client. Every verb is one method here, typed; the wire
carries exactly these verbs (`wire.operations`), and `tests/contract/` is the suite every backend passes.

Shapes: jobs and tasks travel as records (`Record`: HpcJob/HpcTask property names, as PowerShell shows
them, plus "__type__" and "Scheduler"). Verbs on many jobs answer per item, in the order asked
(`Item`), so one refused job never hides the others; verbs on one thing raise `HpcError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import HpcError
from ..model.stop import StopOptions
from ..wire import protocol

Record = dict[str, Any]
Spec = dict[str, Any]  # job or task properties by their PowerShell parameter names
__all__ = ["Backend", "Item", "JobPage", "JobQuery", "NamedItem", "NodeQuery", "Progress", "Record", "Spec",
           "StopOptions", "TaskKey", "TaskQuery"]


@dataclass(frozen=True)
class TaskKey:
    """A task (sub_id 0) or one subtask of a parametric sweep."""

    job_id: int
    task_id: int
    sub_id: int = 0

    def __str__(self) -> str:
        return f"{self.job_id}.{self.task_id}" + (f".{self.sub_id}" if self.sub_id else "")

    def to_wire(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "task_id": self.task_id, "sub_id": self.sub_id or None}


@dataclass(frozen=True)
class Item:
    """One item's answer to a verb on many: its record (or the action planned for it), or its error."""

    id: int
    record: Record | None = None
    error: HpcError | None = None
    action: str | None = None  # plan_cancel: what the cancel would do, in words
    state: str | None = None  # cancel_jobs: the job's state once its cancel was committed


@dataclass(frozen=True)
class NamedItem:
    """One node's or node group's answer to a verb on many, by name: its record or action, or its error."""

    name: str
    record: Record | None = None
    error: HpcError | None = None
    action: str | None = None


@dataclass(frozen=True)
class NodeQuery:
    """Get-HpcNode's filters; each matches any of its values, and a node must match every filter given."""

    names: list[str] | None = None
    groups: list[str] | None = None
    states: list[str] | None = None
    templates: list[str] | None = None
    locations: list[str] | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"names": self.names, "groups": self.groups, "states": self.states, "templates": self.templates,
                "locations": self.locations}


@dataclass(frozen=True)
class JobQuery:
    """Get-HpcJob's filters. Without state or owner: the caller's Queued and Running jobs (HPC Pack's
    default). Times are ISO 8601 text or POSIX seconds."""

    state: str | list[str] | None = None
    owner: str | None = None
    name: str | None = None
    project: str | None = None
    template: str | None = None
    begin: str | float | None = None
    end: str | float | None = None
    nodes: list[str] | None = None
    fields: tuple[str, ...] | None = None  # only these properties of each job (a listing's columns)

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class JobPage:
    """One page of a listing: `count` jobs and the last one's id (the next page starts after it); `more`
    when the page was cut short by its size (wire.protocol.PAGE_BYTES), so that jobs after it may still
    match although it holds fewer than were asked for. The jobs are either the JSON text the head node
    sent (`json`: UTF-8, an array of records), for a client that passes them on unread (the PowerShell
    module), or records already read (`jobs`)."""

    count: int
    last: int | None
    json: bytes | memoryview | None = None
    jobs: list[Record] | None = None
    more: bool = False

    def following(self, after: int | None) -> JobPage:
        """This page, if it follows the jobs up to `after`: a head node whose pages do not (a broken or hostile
        one) ends the listing with ProtocolError, instead of repeating jobs or keeping its client paging for
        ever."""
        last = self.last
        if self.count and (last is None or (after is not None and last <= after) or last > protocol.MAX_ID):
            raise HpcError("ProtocolError", f"The head node sent a page of {self.count} jobs ending with job "
                           f"{last}, which does not follow job {after}.", after)
        if self.more and not self.count:
            raise HpcError("ProtocolError", "The head node sent an empty page of jobs that says more follow.", after)
        return self

    def full(self, limit: int) -> bool:
        """Whether a page asked for with `limit` may have jobs after it."""
        return (self.count == limit or self.more) and self.last is not None and self.last < protocol.MAX_ID

    def records(self) -> list[Record]:
        if self.jobs is not None:
            return self.jobs
        assert self.json is not None
        records: list[Record] = protocol.loads(self.json)
        return records


@dataclass(frozen=True)
class TaskQuery:
    """Get-HpcTask's filters; `expand` shows sweeps as their subtasks; `full` asks for the whole task
    (the owner's or an administrator's right: Export-HpcJob) instead of a copy blanked for others."""

    job_id: int
    task_id: int | None = None
    sub_id: int | None = None
    state: str | list[str] | None = None
    expand: bool = True
    full: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Progress:
    """How a wait for jobs or tasks to end is going: what is left and when the grace period ends."""

    what: str                     # "job", "jobs", "task", "tasks"
    left: list[Any]               # ids (or task keys) not ended yet
    total: int
    grace_end: float | None = None  # POSIX seconds, when running tasks are killed
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """The verbs. Each raises HpcError (FullyQualifiedErrorId in `error_id`) for what it refuses;
    CannotConnectWithScheduler when the backend cannot be reached."""

    @property
    def name(self) -> str:
        """Where this backend is, as a user would name it again (`unix:/path`, `host:port`)."""
        ...

    def close(self) -> None:
        """Lets go of the connection (a later verb opens a new one)."""
        ...

    def ping(self) -> dict[str, Any]:
        """Who answers: name, version, protocol, the caller's user name and whether an administrator."""
        ...

    def new_job(self, spec: Spec, tasks: Sequence[Spec] = ()) -> Record:
        """A new job in Configuring; with `tasks` (a job file), the job and all its tasks, or nothing."""
        ...

    def copy_job(self, job_id: int, spec: Spec) -> Record:
        """A new job with the properties and tasks of `job_id` (its owner's or an administrator's), then `spec`."""
        ...

    def set_job(self, job_id: int, spec: Spec) -> Record:
        """Changes the job's properties (a Running job accepts only some); raises per HPC Pack's rules."""
        ...

    def add_task(self, job_id: int, spec: Spec) -> list[Record]:
        """Adds one task to a Configuring job, or to a Queued or Running one (HPC Pack allows it); the
        task's records (a sweep: the sweep)."""
        ...

    def submit_jobs(self, ids: Sequence[int]) -> list[Item]:
        """Submits each job (a Canceled or Failed job is requeued): per item, its record afterwards."""
        ...

    def requeue_jobs(self, ids: Sequence[int]) -> list[Item]:
        """Queues each Canceled or Failed job again: per item."""
        ...

    def lookup_jobs(self, ids: Sequence[int]) -> list[Item]:
        """Each job's record, or why it cannot be had (InvalidJobId): per item, changes nothing."""
        ...

    def query_jobs(self, query: JobQuery) -> Iterator[Record]:
        """The jobs that match, by id, fetched in pages as the caller consumes them (any number)."""
        ...

    def query_job_pages(self, query: JobQuery) -> Iterator[JobPage]:
        """The same jobs as query_jobs, page by page, each as the head node sent it."""
        ...

    def get_tasks(self, query: TaskQuery) -> list[Record]:
        """The job's tasks that match (blanked of private fields for callers who are neither owner nor
        administrator, unless `full`, which then raises PermissionDenied)."""
        ...

    def set_task(self, job_id: int, task_id: int, spec: Spec) -> Record:
        """Changes a task that has not started (Configuring, or Queued and not a sweep): its record afterwards."""
        ...

    def map_paths(self, paths: Sequence[str]) -> list[str]:
        """Windows paths (C:\\..., \\\\server\\share) -> Linux paths by the head node's path map (headnode.yaml
        `path_map`); NoPathMapping when no rule applies. Other paths come back unchanged."""
        ...

    def plan_cancel(self, ids: Sequence[int], options: StopOptions) -> list[Item]:
        """What a cancel would do to each job, in words (for -WhatIf and -Confirm): per item, no change."""
        ...

    def cancel_jobs(self, ids: Sequence[int], options: StopOptions) -> list[Item]:
        """Starts the cancel of each job, committed before any signal; does not wait (see `stopping`). Per
        item, the job's state once its cancel was committed (a job that never started is already ended)."""
        ...

    def wait_jobs(self, ids: Sequence[int], timeout: float) -> dict[int, str]:
        """Each job's state once all have ended or `timeout` seconds (≤ 3600) have passed."""
        ...

    def cancel_time_limit(self) -> float:
        """The longest a cancel may take, in seconds: grace period, node-release timeout and a margin."""
        ...

    def cancel_task(self, key: TaskKey, options: StopOptions) -> Record:
        """Starts stopping one task (or a whole sweep, or one subtask); does not wait."""
        ...

    def requeue_task(self, key: TaskKey) -> Record:
        """Queues a Failed or Canceled task again."""
        ...

    def submit_task(self, key: TaskKey) -> Record:
        """Submits a Configuring task of a Queued or Running job."""
        ...

    def history(self, job_id: int | None = None, start: str | float | None = None,
                end: str | float | None = None) -> list[Record]:
        """The audit events (administrators only), oldest first: job_id, event, actor, message, details, time."""
        ...

    def job_history(self, start: str | float, end: str | float) -> list[Record]:
        """One HpcJobHistory record per job that ended (Finished, Failed, Canceled) in [start, end), by end
        time (administrators only): JobId, Name, Owner, Project, SubmitTime, StartTime, EndTime, State,
        CpuTime and Runtime (seconds), MemoryUsed, NumberOfTasks, Service, Type, ..."""
        ...

    def get_templates(self, name: str | None = None) -> list[Record]:
        """HpcJobTemplate records: every job template (Default first), or the one named (InvalidJobTemplate)."""
        ...

    def put_template(self, template: dict[str, Any], replace: bool = False) -> Record:
        """Creates a job template (administrators only) from {name, description, users, items: [{property,
        default, min, max, values, required, read_only}]}; with `replace`, replaces one of that name."""
        ...

    def remove_template(self, name: str) -> None:
        """Removes a job template (administrators only; never Default)."""
        ...

    def get_properties(self) -> dict[str, int]:
        """The cluster properties (administrators only)."""
        ...

    def set_properties(self, values: dict[str, int]) -> dict[str, int]:
        """Sets cluster properties (administrators only); all of them afterwards."""
        ...

    def get_nodes(self, query: NodeQuery) -> list[Record]:
        """The nodes that match (HpcNode records: NetBiosName, State, HealthState, Groups, cores, jobs running)."""
        ...

    def plan_node_state(self, names: Sequence[str], state: str, force: bool) -> list[NamedItem]:
        """What setting each node's state would do, in words (for -WhatIf and -Confirm): per node, no change."""
        ...

    def set_node_state(self, names: Sequence[str], state: str, force: bool) -> list[NamedItem]:
        """Sets each node Online or Offline (Offline drains; with force, at once: running tasks are requeued);
        administrators only. Per node, its record afterwards; does not wait for a drain."""
        ...

    def node_history(self, names: Sequence[str] | None, start: str | float | None,
                     end: str | float | None) -> list[Record]:
        """Node state changes in [start, end), oldest first (administrators only): node, time, state,
        previous, actor, reason."""
        ...

    def get_groups(self, names: Sequence[str] | None = None, ids: Sequence[int] | None = None) -> list[Record]:
        """The node groups that match (HpcGroup records: Id, Name, Description, Nodes)."""
        ...

    def new_group(self, name: str, description: str = "") -> Record:
        """Creates an empty node group (administrators only)."""
        ...

    def change_groups(self, names: Sequence[str], ids: Sequence[int], nodes: Sequence[str] | None,
                      add: bool) -> list[NamedItem]:
        """Adds the nodes to each group, or removes them (without nodes: deletes the group); per group."""
        ...

    def cluster_overview(self) -> Record:
        """Nodes by state, cores (total, busy, idle, offline), jobs and tasks by state."""
        ...

    def cluster_parameters(self) -> dict[str, str]:
        """HPC Pack's cluster parameters with their values (administrators only)."""
        ...

    def get_environment(self) -> dict[str, str]:
        """The cluster-wide environment variables every task gets (administrators only)."""
        ...

    def set_environment(self, values: dict[str, str | None]) -> dict[str, str]:
        """Sets (or, with None, removes) cluster-wide environment variables; all of them afterwards."""
        ...
