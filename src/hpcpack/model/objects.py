"""Jobs and tasks: plain data, with their state changed only through `states` transitions."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from .params import priority_name
from .states import JOB_TERMINAL, TASK_TERMINAL, JobState, TaskState, job_transition, task_transition

PARAMETRIC_SWEEP = "ParametricSweep"
TASK_TYPES = ("Basic", PARAMETRIC_SWEEP, "NodePrep", "NodeRelease", "Service")
NODE_TASK_TYPES = ("NodePrep", "NodeRelease")
_RUN_AS_INSTANCES = frozenset({PARAMETRIC_SWEEP, *NODE_TASK_TYPES})  # tasks whose instances run, not they


def now() -> float:
    return time.time()


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type, skip: str) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name != skip)
    return names


def _to_row(obj: Any, skip: str) -> dict[str, Any]:
    """The fields to store, without recursing into children (asdict would copy every task). A copy of the
    instance's dict when it holds exactly the fields (a bulk cancel writes thousands of rows; reading
    each field by name costs ten times more), in the fields' order either way."""
    names = _field_names(type(obj), skip)
    row = dict(vars(obj))
    if len(row) == len(names) + 1 and row.pop(skip, None) is not None:
        row["state"], row["previous_state"] = int(obj.state), int(obj.previous_state)
        return row
    row = {name: getattr(obj, name) for name in names}
    row["state"], row["previous_state"] = int(obj.state), int(obj.previous_state)
    return row


def _known_fields(cls: type, data: dict[str, Any], skip: str) -> dict[str, Any]:
    """A stored row's values for the fields this version knows (older rows may lack some)."""
    names = _field_names(cls, skip)
    return {k: v for k, v in data.items() if k in names}


@dataclass
class CancelRequest:
    """What a Stop-HpcJob asked for. `kind` is the history word: cancel, force, graceful or finish."""

    kind: str
    final_state: str  # "Canceled" or "Finished"
    force: bool
    graceful: bool
    message: str
    actor: str
    at: float
    term_deadline: float | None = None
    survivors: list[int] = field(default_factory=list)


# HPC Pack's error codes on cancelled tasks and jobs; a task stopped with one of these was stopped by a
# cancel (not failed by its own program), which decides a sweep's shown state.
CANCELED_BY_USER = 0x80040201
FINISHED_BY_USER = 0x80040370
TASKS_JOB_CANCELED = 0x800409D3
STOPPED_BY_CANCEL = frozenset({CANCELED_BY_USER, FINISHED_BY_USER, TASKS_JOB_CANCELED})


@dataclass
class Task:
    job_id: int
    task_id: int
    sub_id: int = 0
    name: str = ""
    command: str = ""
    type: str = "Basic"
    state: TaskState = TaskState.Configuring
    previous_state: TaskState = TaskState.Configuring
    exit_code: int | None = None
    error_message: str = ""
    error_code: int = 0
    min_cores: int = 1
    max_cores: int = 1
    depends: list[str] = field(default_factory=list)
    work_dir: str = ""
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    env: dict[str, str | None] = field(default_factory=dict)
    rerunnable: bool = True
    exclusive: bool = False
    runtime_limit: int = -1
    start_value: int = 0
    end_value: int = 0
    increment_value: int = 1
    requeue_count: int = 0
    create_time: float = field(default_factory=now)
    submit_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    node: str = ""
    pid: int = 0
    token: str = ""
    output: str = ""
    fail_job_on_failure: bool = False
    fail_job_on_failure_count: int = 0  # a sweep fails its job once this many steps failed (0: the first)
    required_nodes: list[str] = field(default_factory=list)  # the task runs only on these nodes
    held: dict[str, int] = field(default_factory=dict)  # cores by node of a running task on sockets or nodes
    valid_exit_codes: str = ""  # "" = the job's
    custom_properties: dict[str, str] = field(default_factory=dict)
    unit_type: str = "Core"  # what the task asked for: min_units..max_units cores, sockets or nodes
    min_units: int = 1
    max_units: int = 1
    auto_requeue_count: int = 0
    requeue_when_stopped: bool = False  # a running task asked to requeue: queued again once it has stopped
    steps: int = 0  # a sweep's steps in all; those not created yet are pending (see pending_steps)
    rest_canceled: bool = False  # a sweep's pending steps were canceled (with its job, or the sweep)
    instances: list[Task] = field(default_factory=list, repr=False)

    @property
    def pending_steps(self) -> int:
        """Steps of a sweep not created yet (they are Queued, or Canceled with rest_canceled)."""
        return max(0, self.steps - len(self.instances)) if self.parametric and not self.sub_id else 0

    @property
    def parametric(self) -> bool:
        return self.type == PARAMETRIC_SWEEP

    @property
    def is_node_task(self) -> bool:
        return self.type in NODE_TASK_TYPES

    @property
    def key(self) -> str:
        return f"{self.job_id}.{self.task_id}" + (f".{self.sub_id}" if self.sub_id else "")

    @property
    def shown_state(self) -> TaskState:
        """A sweep's or node task's state is derived from its instances; every other task has its own."""
        if not (self.parametric or self.is_node_task) or self.sub_id or not self.instances:
            return self.state
        states = [i.state for i in self.instances]
        if self.pending_steps:
            states.append(TaskState.Canceled if self.rest_canceled else TaskState.Queued)
        for candidate in (TaskState.Running, TaskState.Canceling, TaskState.Queued):
            if candidate in states:
                return candidate
        if all(s in TASK_TERMINAL for s in states):
            # HPC Pack: a cancelled sweep is Canceled (its steps stopped while running show Failed).
            if any(i.state == TaskState.Failed and i.error_code not in STOPPED_BY_CANCEL for i in self.instances):
                return TaskState.Failed
            stopped = TaskState.Canceled in states or any(i.error_code in STOPPED_BY_CANCEL for i in self.instances)
            return TaskState.Canceled if stopped else TaskState.Finished
        return self.state

    @property
    def shown_exit_code(self) -> int | None:
        """A sweep's or node task's exit code: the first non-zero one of its instances, else 0."""
        if self.sub_id or not self.instances:
            return self.exit_code
        codes = [i.exit_code for i in self.instances if i.exit_code is not None]
        return next((c for c in codes if c != 0), codes[0] if codes else None)

    def move(self, event: str) -> None:
        new = task_transition(self.state, event)
        self.previous_state, self.state = self.state, new

    def requeue(self) -> None:
        """Queued again for a new attempt, with nothing left of the last one but its count."""
        self.move("requeue")
        self.requeue_count += 1
        self.exit_code, self.error_message, self.error_code, self.output = None, "", 0, ""
        self.start_time = self.end_time = None
        self.pid, self.node = 0, ""

    def to_row(self) -> dict[str, Any]:
        return _to_row(self, skip="instances")

    @classmethod
    def from_row(cls, data: dict[str, Any]) -> Task:
        task = cls(**_known_fields(cls, data, skip="instances"))
        task.state, task.previous_state = TaskState(data["state"]), TaskState(data["previous_state"])
        return task

    def to_record(self, scheduler: str, private: bool = False) -> dict[str, Any]:
        """The task as the cmdlets show it; `private` blanks what may carry secrets (PRIVATE_TASK_FIELDS)
        for callers who are neither the job's owner nor an administrator."""
        record = self._record(scheduler)
        return {**record, **{k: type(record[k])() for k in PRIVATE_TASK_FIELDS}} if private else record

    def _record(self, scheduler: str) -> dict[str, Any]:
        runtime = 0.0
        if self.start_time:
            runtime = (self.end_time or now()) - self.start_time
        return {
            "__type__": "HpcTask", "JobId": self.job_id, "TaskId": self.task_id, "SubTaskId": self.sub_id,
            "Id": self.key, "Name": self.name, "CommandLine": self.command,
            "State": self.shown_state.name, "PreviousState": self.previous_state.name, "Type": self.type,
            "ExitCode": self.shown_exit_code, "ErrorMessage": self.error_message, "Output": self.output,
            "Runtime": runtime, "MinCores": self.min_cores, "MaxCores": self.max_cores,
            "DependsOn": list(self.depends), "WorkDirectory": self.work_dir, "StdInFilePath": self.stdin,
            "StdOutFilePath": self.stdout, "StdErrFilePath": self.stderr, "IsRerunnable": self.rerunnable,
            "IsParametric": self.parametric, "StartValue": self.start_value, "EndValue": self.end_value,
            "IncrementValue": self.increment_value, "RequeueCount": self.requeue_count,
            "UnitType": self.unit_type, **self._unit_counts(), "FailJobOnFailure": self.fail_job_on_failure,
            "FailJobOnFailureCount": self.fail_job_on_failure_count, "AutoRequeueCount": self.auto_requeue_count,
            "IsExclusive": self.exclusive, "RuntimeLimit": self.runtime_limit,
            "AllocatedNodes": sorted(self.held) if self.held else [self.node] if self.node else [],
            "EnvironmentVariables": {k: v or "" for k, v in self.env.items()},
            "RequiredNodes": list(self.required_nodes), "ValidExitCodes": self.valid_exit_codes,
            "CustomProperties": dict(self.custom_properties),
            "CreateTime": iso(self.create_time), "SubmitTime": iso(self.submit_time),
            "StartTime": iso(self.start_time), "EndTime": iso(self.end_time), "Scheduler": scheduler,
        }


    def _unit_counts(self) -> dict[str, int]:
        """MinNodes/MaxNodes, MinSockets/MaxSockets for a task that asked in those units (MinCores and
        MaxCores are always the cores it runs on)."""
        counts = {f"{bound}{unit}": 0 for bound in ("Min", "Max") for unit in ("Sockets", "Nodes")}
        if self.unit_type in ("Socket", "Node"):
            plural = self.unit_type + "s"
            counts[f"Min{plural}"], counts[f"Max{plural}"] = self.min_units, self.max_units
        return counts


# Who may see what (about_HPC, "Privacy"): the job list is public, as on HPC Pack; what can carry
# secrets is for the job's owner and administrators only, and others see these fields empty.
PRIVATE_JOB_FIELDS = ("EnvironmentVariables", "Extra", "CustomProperties", "EmailAddress")
PRIVATE_TASK_FIELDS = ("CommandLine", "Output", "EnvironmentVariables", "WorkDirectory", "StdInFilePath",
                       "StdOutFilePath", "StdErrFilePath", "ErrorMessage", "CustomProperties")


@dataclass
class Job:
    id: int
    owner: str
    owner_uid: int
    name: str = ""
    user_name: str = ""
    state: JobState = JobState.Configuring
    previous_state: JobState = JobState.Configuring
    priority: int = 2000
    project: str = ""
    template: str = "Default"
    create_time: float = field(default_factory=now)
    submit_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    change_time: float = field(default_factory=now)
    error_message: str = ""
    error_code: int = 0
    request_cancel: str = "None"
    requeue_count: int = 0
    run_until_canceled: bool = False
    exclusive: bool = False
    fail_on_task_failure: bool = False
    unit_type: str = "Core"
    min_units: int | None = None  # None: calculated from the tasks (`*`)
    max_units: int | None = None
    runtime: int = -1
    node_groups: list[str] = field(default_factory=list)
    requested_nodes: list[str] = field(default_factory=list)
    excluded_nodes: list[str] = field(default_factory=list)
    parent_job_ids: list[int] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)
    progress: int = 0
    progress_message: str = ""
    task_retry_limit: int = 0
    valid_exit_codes: str = ""
    num_gpus: int = 0
    node_group_op: str = "Intersect"
    order_by: list[str] = field(default_factory=list)  # node preference: Memory, -Memory, Cores, -Cores
    fail_dependent_tasks: bool = False
    min_memory_per_node: int = 0  # MB; 0: no bound
    max_memory_per_node: int = 0
    min_cores_per_node: int = 0
    max_cores_per_node: int = 0
    estimated_process_memory: int = 0  # MB a process needs: a node runs at most memory/this of the job's cores
    licenses: list[str] = field(default_factory=list)  # name:count
    notify_on_start: bool = False
    notify_on_completion: bool = False
    email_address: str = ""
    single_node: bool = False
    custom_properties: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # written by versions before the property table
    allocation: dict[str, int] = field(default_factory=dict)
    release_deadline: float | None = None
    hold_until: float | None = None
    queue_order: float = 0.0
    cancel: CancelRequest | None = None
    pending_reason: str = ""  # why a Queued job waits, from the head node's last scheduling pass
    shown_units: list[int] = field(default_factory=list)  # a job file's calculated min and max, as shown
    explicit: list[str] = field(default_factory=list)  # properties the user gave (a template fills the others)
    # An ended job's task counters, stored with it, so that listing ended jobs reads no task.
    summary: dict[str, int] = field(default_factory=dict)
    slurm_job_id: int = 0  # the Slurm allocation that holds the job's nodes (engine: slurm), 0 when none
    tasks: list[Task] = field(default_factory=list, repr=False)

    @property
    def terminal(self) -> bool:
        return self.state in JOB_TERMINAL

    def move(self, event: str) -> None:
        new = job_transition(self.state, event)
        self.previous_state, self.state = self.state, new
        self.change_time = now()

    def task(self, task_id: int) -> Task | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)

    def units(self) -> list[Task]:
        """Everything that runs as a process: tasks, sweep subtasks, node-task instances."""
        out: list[Task] = []
        for t in self.tasks:
            if t.type in _RUN_AS_INSTANCES:  # (t.parametric or t.is_node_task, without two calls a task)
                out.extend(t.instances)
            else:
                out.append(t)
        return out

    def to_row(self) -> dict[str, Any]:
        data = _to_row(self, skip="tasks")
        data["summary"] = self.task_summary() if self.terminal else {}  # (an ended job's tasks no longer change)
        data["cancel"] = dict(vars(self.cancel)) if self.cancel is not None else None
        return data

    @classmethod
    def from_row(cls, data: dict[str, Any]) -> Job:
        job = cls(**_known_fields(cls, data, skip="tasks"))
        job.state, job.previous_state = JobState(data["state"]), JobState(data["previous_state"])
        if isinstance(job.cancel, dict):
            job.cancel = CancelRequest(**job.cancel)
        return job

    def to_record(self, scheduler: str, private: bool = False,
                  fields: Sequence[str] | None = None) -> dict[str, Any]:
        """The job as the cmdlets show it; `private` blanks what may carry secrets (PRIVATE_JOB_FIELDS);
        `fields` keeps only those properties (and __type__). Raises KeyError for a name that is not one."""
        if fields is not None and all(name in _LISTED or name in _COUNTERS for name in fields):
            return self._listing(fields)
        record = self._record(scheduler)
        if private:
            record = {**record, **{k: type(record[k])() for k in PRIVATE_JOB_FIELDS}}
        return record if fields is None else {"__type__": "HpcJob", **{name: record[name] for name in fields}}

    @staticmethod
    def check_fields(fields: Sequence[str]) -> None:
        """Raises KeyError for a name in `fields` that is not a property of HpcJob: checked before any
        job is read, so a wrong name fails even when no job matches."""
        for name in fields:
            if name not in _record_names() or name == "__type__":
                raise KeyError(name)

    def _listing(self, fields: Sequence[str]) -> dict[str, Any]:
        """Only the properties a listing shows, each computed alone: a listing of 5,000 jobs builds and
        sends a tenth of the whole records (none of these is private)."""
        counters = self.summary if self.summary and not self.tasks else None
        record: dict[str, Any] = {"__type__": "HpcJob"}
        for name in fields:
            if name in _COUNTERS:
                counters = counters or self._task_counts()
                record[name] = counters[name]
            else:
                record[name] = _LISTED[name](self)
        return record

    def _record(self, scheduler: str) -> dict[str, Any]:
        cores = sum(self.allocation.values())
        return {
            "__type__": "HpcJob", "Id": self.id, "Name": self.name, "Owner": self.owner,
            "UserName": self.user_name or self.owner, "State": self.state.name,
            "PreviousState": self.previous_state.name, "Priority": priority_name(self.priority),
            "ExpandedPriority": self.priority, "Project": self.project, "Template": self.template,
            "CreateTime": iso(self.create_time), "SubmitTime": iso(self.submit_time),
            "StartTime": iso(self.start_time), "EndTime": iso(self.end_time),
            "ChangeTime": iso(self.change_time), "ErrorMessage": self.error_message,
            "RequestCancel": self.request_cancel, "RequeueCount": self.requeue_count,
            "RunUntilCanceled": self.run_until_canceled, "IsExclusive": self.exclusive,
            "FailOnTaskFailure": self.fail_on_task_failure, "UnitType": self.unit_type,
            **self._unit_counts(),
            "AutoCalculateMin": self.min_units is None, "AutoCalculateMax": self.max_units is None,
            "Runtime": self.runtime, "NodeGroups": ",".join(self.node_groups),
            "RequestedNodes": list(self.requested_nodes), "AllocatedNodes": sorted(self.allocation),
            "ExcludedNodes": list(self.excluded_nodes), "CurrentAllocation": cores,
            "ParentJobIds": list(self.parent_job_ids),
            "EnvironmentVariables": {k: v or "" for k, v in self.env.items()},
            "ProgressMessage": self.progress_message, "TaskExecutionFailureRetryLimit": self.task_retry_limit,
            "ValidExitCodes": self.valid_exit_codes, "Scheduler": scheduler, "Extra": dict(self.extra),
            "NumGpus": self.num_gpus, "NodeGroupOp": self.node_group_op, "OrderBy": list(self.order_by),
            "FailDependentTasks": self.fail_dependent_tasks, "MinMemory": self.min_memory_per_node,
            "MaxMemory": self.max_memory_per_node, "MinCoresPerNode": self.min_cores_per_node,
            "MaxCoresPerNode": self.max_cores_per_node, "EstimatedProcessMemory": self.estimated_process_memory,
            "SoftwareLicense": ",".join(self.licenses), "NotifyOnStart": self.notify_on_start,
            "NotifyOnCompletion": self.notify_on_completion, "EmailAddress": self.email_address,
            "HoldUntil": iso(self.hold_until), "SingleNode": self.single_node,
            "CustomProperties": dict(self.custom_properties),
            "PendingReason": self.pending_reason if self.state == JobState.Queued else "",
            "CancelGraceEnd": iso(self.cancel.term_deadline) if self.cancel else None,
            **(self.summary if self.summary and not self.tasks else self.task_summary()),
        }

    def task_summary(self) -> dict[str, int]:
        """What the job's record says of its tasks (read without them when `summary` has it)."""
        units = self._work_units()  # once for both
        counts = self._task_counts(units)
        return {**counts, "NumberOfTasks": len(self.tasks),
                "Progress": self.progress or self._derived_progress(units, counts)}

    def _work_units(self) -> list[Task]:
        return [u for u in self.units() if not u.is_node_task]

    def _task_counts(self, units: list[Task] | None = None) -> dict[str, int]:
        """HPC Pack's job counters (ISchedulerJobCounters): a sweep counts as its subtasks."""
        units = self._work_units() if units is None else units
        shown = [u.state for u in units]
        sweeps = [t for t in self.tasks if t.type == PARAMETRIC_SWEEP]  # (only they have steps pending)
        pending = sum(t.pending_steps for t in sweeps)
        canceled = sum(t.pending_steps for t in sweeps if t.rest_canceled)
        return {"TaskCount": len(units) + pending, "RunningTaskCount": shown.count(TaskState.Running),
                "FinishedTaskCount": shown.count(TaskState.Finished), "FailedTaskCount": shown.count(TaskState.Failed),
                "CanceledTaskCount": shown.count(TaskState.Canceled) + canceled}

    def _unit_counts(self) -> dict[str, int]:
        """MinCores/MaxCores, MinSockets/MaxSockets, MinNodes/MaxNodes: set for the job's unit type."""
        counts = dict(_NO_UNITS)
        low_name, high_name = _UNIT_BOUNDS[self.unit_type]
        low, high = self.min_units, self.max_units
        if low is None and high is None and len(self.shown_units) == 2:
            low, high = self.shown_units
        if (low is None or high is None) and self.unit_type == "Core":
            # Calculated from the tasks, as HPC Pack shows it: the largest task's minimum, the sum of maximums.
            work = [t for t in self.tasks if not t.is_node_task]
            low = low if low is not None else max([t.min_cores for t in work], default=1)
            high = high if high is not None else max(low, sum(t.max_cores * max(1, t.steps if t.parametric else 1)
                                                                for t in work) or 1)
        counts[low_name], counts[high_name] = low or 0, high or 0
        return counts

    def _derived_progress(self, units: list[Task], counts: dict[str, int]) -> int:
        """The share of the job's work units (and pending steps) that ended: `counts` are _task_counts(units)."""
        if not units:
            return 100 if self.state == JobState.Finished else 0
        done = counts["FinishedTaskCount"] + counts["FailedTaskCount"] + counts["CanceledTaskCount"]
        return done * 100 // counts["TaskCount"]


# Each unit type's bounds, as _unit_counts names them (made once: a listing names them for every job).
_UNIT_BOUNDS = {unit: (f"Min{unit}s", f"Max{unit}s") for unit in ("Core", "Socket", "Node")}
_NO_UNITS = {name: 0 for bound in ("Min", "Max") for name in (f"{bound}Cores", f"{bound}Sockets", f"{bound}Nodes")}

# The job properties a listing may ask for alone (Job._listing): the counters, computed together once, and
# the others with how each is had.
_COUNTERS = frozenset({"TaskCount", "RunningTaskCount", "FinishedTaskCount", "FailedTaskCount", "CanceledTaskCount"})
_LISTED: dict[str, Callable[[Job], Any]] = {
    "Id": lambda j: j.id, "Name": lambda j: j.name, "Owner": lambda j: j.owner, "State": lambda j: j.state.name,
    "Priority": lambda j: priority_name(j.priority), "Project": lambda j: j.project,
    "Template": lambda j: j.template, "SubmitTime": lambda j: iso(j.submit_time),
    "StartTime": lambda j: iso(j.start_time), "EndTime": lambda j: iso(j.end_time),
    "ErrorMessage": lambda j: j.error_message,
    "PendingReason": lambda j: j.pending_reason if j.state == JobState.Queued else "",
    "NumberOfTasks": lambda j: j.summary["NumberOfTasks"] if j.summary and not j.tasks else len(j.tasks),
}


def history_record(job: Job) -> dict[str, Any]:
    """An ended job as Get-HpcJobHistory shows it (HPC Pack's HpcJobHistory). Times are ISO text, CpuTime and
    Runtime seconds. CpuTime is core time (each task's run time times the cores it held): the head node does
    not measure processor time; MemoryUsed is 0 for the same reason."""
    units = [u for u in job.units() if not u.is_node_task]
    core_seconds = sum(((u.end_time or u.start_time or 0) - (u.start_time or 0)) * max(1, u.min_cores)
                       for u in units if u.start_time)
    runtime = (job.end_time - job.start_time) if job.start_time and job.end_time else 0.0
    counts = job._task_counts(units)
    return {
        "__type__": "HpcJobHistory", "JobId": job.id, "Name": job.name, "Owner": job.owner,
        "UserName": job.user_name or job.owner, "Project": job.project, "Template": job.template,
        "Priority": priority_name(job.priority), "State": job.state.name, "Event": job.state.name,
        "CreateTime": iso(job.create_time), "SubmitTime": iso(job.submit_time), "StartTime": iso(job.start_time),
        "EndTime": iso(job.end_time), "CpuTime": core_seconds, "Runtime": max(0.0, runtime), "MemoryUsed": 0,
        "NumberOfTasks": counts["TaskCount"], "FailedTaskCount": counts["FailedTaskCount"],
        "CanceledTaskCount": counts["CanceledTaskCount"], "FinishedTaskCount": counts["FinishedTaskCount"],
        "RequeueCount": job.requeue_count, "ErrorMessage": job.error_message, "Service": "", "Type": "Batch",
        "NumberOfCalls": 0, "CallsPerSecond": 0.0, "CallDuration": 0, "AllocatedNodes": sorted(job.allocation),
    }


@functools.cache
def _record_names() -> frozenset[str]:
    """Every property of a job record (Job.check_fields)."""
    return frozenset(Job(id=0, owner="", owner_uid=0).to_record(""))
