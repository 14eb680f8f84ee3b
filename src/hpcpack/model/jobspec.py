"""Turning what a user asked for (cmdlet parameters, CLI options, job XML) into jobs and tasks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from ..errors import HpcError, invalid_argument
from .objects import PARAMETRIC_SWEEP, TASK_TYPES, Job, Task
from .params import (
    INT32_MAX,
    MAX_COMMAND,
    MAX_JOB_BYTES,
    MAX_JOB_PROPERTY_BYTES,
    MAX_JOB_UNITS,
    MAX_NAME,
    MAX_TIME,
    SWEEP_WINDOW,
    WINDOW_BYTES,
    check_length,
    parse_env,
    parse_priority,
    parse_range,
    parse_runtime,
    substitute_sweep,
    sweep_count,
)
from .properties import RUNNING_CHANGEABLE, TASK_FILE_ONLY, TASK_NAMES
from .states import JobState

Node = TypeVar("Node", str, int)  # a task's name or a job's id, in a graph of what waits for what
_UNIT_PARAMETERS = (("NumCores", "Core"), ("NumSockets", "Socket"), ("NumNodes", "Node"))


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in ("true", "$true", "1", "yes"):
        return True
    if text in ("false", "$false", "0", "no", ""):
        return False
    raise invalid_argument(f"{what} must be $true or $false, not '{value}'.", what)


INT32_MIN = -(2**31)


def _int(value: Any, what: str, low: int = INT32_MIN, high: int = INT32_MAX) -> int:
    """A whole number within [low, high] (HPC Pack's numbers are Int32 unless said otherwise)."""
    if isinstance(value, str) and len(value.strip()) > 11:  # longer than any Int32: not worth converting
        raise HpcError("ArgumentOutOfRange", f"{what} must be between {low} and {high}.", what)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid_argument(f"{what} must be a whole number, not '{value}'.", what) from None
    if number < low or number > high:
        raise HpcError("ArgumentOutOfRange", f"{what} must be between {low} and {high}; {number} is not.", what)
    return number


def parse_time(value: Any, what: str) -> float:
    """ISO 8601 text as POSIX seconds, within what every side can show again (1970 to 9999: a time past
    the end of year 9999 UTC, DateTime.MaxValue west of Greenwich, has no date in Python nor .NET)."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid_argument(f"{what} '{value}' is not a date and time.", what) from None
    try:
        seconds = moment.timestamp()
    except (ValueError, OverflowError):  # year 1 in the local time zone is before the platform's epoch range
        seconds = -1.0
    if not 0 <= seconds <= MAX_TIME:
        raise HpcError("ArgumentOutOfRange", f"{what} must be between 1970-01-01T00:00Z and 9999-12-31T00:00Z; "
                       f"'{value}' is not.", what)
    return seconds


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _names(value: Any) -> list[str]:
    """Node or group names: a list, a comma-joined string, or a list of comma-joined strings (a real script
    passes -RequestedNodes 'NODE1,NODE2', which HPC Pack takes as two nodes)."""
    return [name.strip() for item in (value if isinstance(value, list | tuple) else [value])
            for name in str(item).split(",") if name.strip()]


def apply_job_properties(job: Job, spec: dict[str, Any]) -> None:
    """Sets the job properties named in `spec` (PowerShell parameter names), validating each; remembers
    which were given (a template's defaults fill in only the others)."""
    units = [(name, unit) for name, unit in _UNIT_PARAMETERS if spec.get(name) not in (None, "")]
    if len(units) > 1:
        raise invalid_argument("Give only one of NumCores, NumSockets and NumNodes.", units[1][0])
    for name, value in spec.items():
        if value is None:
            continue
        if name not in job.explicit:
            job.explicit.append(name)
        setter = _JOB_SETTERS.get(name.lower())
        if setter is None:  # never stored aside: what is not a job property is said so
            raise invalid_argument(f"'{name}' is not a job property.", name)
        setter(job, value)
    for name, unit in units:
        requested = parse_range(spec[name], name)
        job.unit_type, job.min_units, job.max_units = unit, requested.min, requested.max
        job.shown_units = []
    _check_property_bytes(job)


def _check_property_bytes(job: Job) -> None:
    """ArgumentOutOfRange when the job's own properties, as stored, would pass MAX_JOB_PROPERTY_BYTES."""
    size = len(json.dumps(job.to_row(), ensure_ascii=False).encode(errors="surrogatepass"))
    if size > MAX_JOB_PROPERTY_BYTES:
        raise HpcError("ArgumentOutOfRange", f"A job's properties (its environment, node lists, custom properties) "
                       f"may hold {MAX_JOB_PROPERTY_BYTES:,} bytes of text on this head node; these would hold "
                       f"{size:,}.", "JobEnv")


def _set_progress(job: Job, value: Any) -> None:
    job.progress = _int(value, "Progress", 0, 100)


def _add_nodes(field_name: str) -> Any:
    def setter(job: Job, value: Any) -> None:
        nodes = list(getattr(job, field_name))
        for node in _names(value):
            if node not in nodes:
                nodes.append(node)
        setattr(job, field_name, nodes)
    return setter


def _remove_excluded(job: Job, value: Any) -> None:
    job.excluded_nodes = [n for n in job.excluded_nodes if n not in _names(value)]


def _clear_excluded(job: Job, value: Any) -> None:
    if _bool(value, "ClearExcludedNodes"):
        job.excluded_nodes = []


def _set_env(job: Job, value: Any) -> None:
    for name, text in parse_env(_list(value) if not isinstance(value, list) else value, "JobEnv").items():
        if text is None:
            job.env.pop(name, None)
        else:
            job.env[name] = text


def _checked_codes(value: Any) -> str:
    valid_exit_codes(str(value))  # refused now if it does not parse, never when a task exits
    return str(value)


def _set_gpus(job: Job, value: Any) -> None:
    # HPC Pack leaves NumGpus' form undocumented; `[min-]max` as for cores, the minimum is what counts.
    text = str(value).strip()
    job.num_gpus = _int(text.split("-")[0] or 0, "NumGpus", 0)


def _set_node_group_op(job: Job, value: Any) -> None:
    choice = next((op for op in NODE_GROUP_OPS if op.lower() == str(value).strip().lower()), None)
    if choice is None:
        raise invalid_argument(f"NodeGroupOp '{value}' is not one of {', '.join(NODE_GROUP_OPS)}.", "NodeGroupOp")
    job.node_group_op = choice


def _set_order_by(job: Job, value: Any) -> None:
    """HPC Pack's `primary[,secondary]` from Memory, -Memory, Cores, -Cores; two different resources."""
    keys = _list(value)
    known = {k.lower(): k for k in ORDER_BY_KEYS}
    if len(keys) > 2 or any(k.lower() not in known for k in keys):
        raise invalid_argument(f"OrderBy '{','.join(keys)}' is not valid: give one or two of "
                               f"{', '.join(ORDER_BY_KEYS)}.", "OrderBy")
    if len({k.lstrip("-").lower() for k in keys}) < len(keys):
        raise invalid_argument("OrderBy's two keys must be different resources.", "OrderBy")
    job.order_by = [known[k.lower()] for k in keys]


def _set_licenses(job: Job, value: Any) -> None:
    """`name:count` items (count a number or `*`), 160 characters at most in all (HPC Pack's limit)."""
    items = _list(value)
    check_length(",".join(items), 160, "License")
    for item in items:
        name, sep, count = item.partition(":")
        if not name.strip() or not sep or not (count.strip() == "*" or count.strip().isdigit()):
            raise invalid_argument(f"License '{item}' is not name:count (count a number or *).", "License")
    job.licenses = items


def custom_properties(value: Any) -> dict[str, str]:
    """`name=value;name2=value2` (or a list of such), names case-insensitive: the last one wins."""
    pairs = [p for item in _list(value) for p in item.split(";") if p.strip()]
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise invalid_argument(f"CustomProperties '{pair}' is not name=value.", "CustomProperties")
        out = {k: v for k, v in out.items() if k.lower() != name.strip().lower()}
        out[name.strip()] = check_length(text, 1024, "CustomProperties") or ""
    return out


NODE_GROUP_OPS = ("Intersect", "Uniform", "Union")
ORDER_BY_KEYS = ("Memory", "-Memory", "Cores", "-Cores")

def _set_calculated(job: Job, value: Any) -> None:
    """A job file's unit type and Min/Max values for a job whose minimum and maximum are both calculated
    from its tasks ('Node:2-32'): shown as they were until the head node calculates them."""
    unit, _, numbers = str(value).partition(":")
    low, _, high = numbers.partition("-")
    if unit not in ("Core", "Socket", "Node") or not low.isdigit() or not high.isdigit():
        raise invalid_argument(f"AutoCalculatedUnits '{value}' is not Unit:min-max.", "AutoCalculatedUnits")
    job.unit_type, job.min_units, job.max_units = unit, None, None
    job.shown_units = [int(low), int(high)]


_JOB_SETTERS: dict[str, Any] = {
    "autocalculatedunits": _set_calculated,
    "name": lambda j, v: setattr(j, "name", check_length(str(v), MAX_NAME, "Name")),
    "project": lambda j, v: setattr(j, "project", check_length(str(v), MAX_NAME, "Project")),
    "templatename": lambda j, v: setattr(j, "template", check_length(str(v), MAX_NAME, "TemplateName")),
    "priority": lambda j, v: setattr(j, "priority", parse_priority(v)),
    "runtime": lambda j, v: setattr(j, "runtime", parse_runtime(str(v))),
    "exclusive": lambda j, v: setattr(j, "exclusive", _bool(v, "Exclusive")),
    "rununtilcanceled": lambda j, v: setattr(j, "run_until_canceled", _bool(v, "RunUntilCanceled")),
    "failontaskfailure": lambda j, v: setattr(j, "fail_on_task_failure", _bool(v, "FailOnTaskFailure")),
    "requestednodes": lambda j, v: setattr(j, "requested_nodes", _names(v)),
    "nodegroups": lambda j, v: setattr(j, "node_groups", _names(v)),
    "parentjobids": lambda j, v: setattr(j, "parent_job_ids", [_int(x, "ParentJobIds", 1) for x in _list(v)]),
    "jobenv": _set_env,
    "progress": _set_progress,
    "progressmessage": lambda j, v: setattr(j, "progress_message", check_length(str(v), MAX_NAME,
                                                                                  "ProgressMessage")),
    "validexitcodes": lambda j, v: setattr(j, "valid_exit_codes", _checked_codes(v)),
    "taskexecutionfailureretrylimit": lambda j, v: setattr(j, "task_retry_limit",
                                                           _int(v, "TaskExecutionFailureRetryLimit", 0)),
    "holduntil": lambda j, v: setattr(j, "hold_until", parse_time(v, "HoldUntil")),
    "addexcludednodes": _add_nodes("excluded_nodes"),
    "removeexcludednodes": _remove_excluded,
    "clearexcludednodes": _clear_excluded,
    "numgpus": _set_gpus,
    "nodegroupop": _set_node_group_op,
    "orderby": _set_order_by,
    "faildependenttasks": lambda j, v: setattr(j, "fail_dependent_tasks", _bool(v, "FailDependentTasks")),
    "minmemorypernode": lambda j, v: setattr(j, "min_memory_per_node", _int(v, "MinMemoryPerNode", 0)),
    "maxmemorypernode": lambda j, v: setattr(j, "max_memory_per_node", _int(v, "MaxMemoryPerNode", 0)),
    "mincorespernode": lambda j, v: setattr(j, "min_cores_per_node", _int(v, "MinCoresPerNode", 0)),
    "maxcorespernode": lambda j, v: setattr(j, "max_cores_per_node", _int(v, "MaxCoresPerNode", 0)),
    "estimatedprocessmemory": lambda j, v: setattr(j, "estimated_process_memory",
                                                   _int(v, "EstimatedProcessMemory", 0)),
    "license": _set_licenses,
    "notifyonstart": lambda j, v: setattr(j, "notify_on_start", _bool(v, "NotifyOnStart")),
    "notifyoncompletion": lambda j, v: setattr(j, "notify_on_completion", _bool(v, "NotifyOnCompletion")),
    "emailaddress": lambda j, v: setattr(j, "email_address", check_length(str(v), 256, "EmailAddress")),
    "singlenode": lambda j, v: setattr(j, "single_node", _bool(v, "SingleNode")),
    "customproperties": lambda j, v: setattr(j, "custom_properties", custom_properties(v)),
    # Handled by apply_job_properties itself.
    "numcores": lambda j, v: None,
    "numsockets": lambda j, v: None,
    "numnodes": lambda j, v: None,
}


def check_changeable(job: Job, spec: dict[str, Any]) -> None:
    """Set-HpcJob's state rules: nothing changes on a Finished job; a Running one takes a short list."""
    asked = {k for k, v in spec.items() if v is not None}
    if job.state in (JobState.Finished, JobState.Finishing):
        raise HpcError("JobModifyFailed", f"Job modification failed: job {job.id} is {job.state.name}; a "
                       "finished job cannot be changed.", job.id)
    if job.state in (JobState.Running, JobState.Canceling):
        refused = sorted(a for a in asked if a not in RUNNING_CHANGEABLE)
        if refused:
            raise HpcError("JobModifyFailed", f"Job modification failed: job {job.id} is {job.state.name}; "
                           f"{', '.join(refused)} cannot be changed while it runs.", job.id)


def valid_exit_codes(text: str) -> list[tuple[int, int]]:
    """'0..max', 'min..-1,5', '0,3' -> inclusive ranges; empty means just 0."""
    if not text.strip():
        return [(0, 0)]
    ranges = []
    for part in text.split(","):
        low, sep, high = part.strip().partition("..")
        try:
            lo = -(2**31) if low.strip().lower() == "min" else int(low)
            hi = lo if not sep else (2**31 - 1 if high.strip().lower() == "max" else int(high))
        except ValueError:
            raise invalid_argument(f"ValidExitCodes '{text}' is not valid: use numbers, ranges a..b, min and max.",
                                   "ValidExitCodes") from None
        ranges.append((lo, hi))
    return ranges


def build_tasks(job: Job, spec: dict[str, Any], first_id: int) -> list[Task]:
    """Add-HpcTask's parameters -> one task (with its sweep instances), checked against the job."""
    task_type = _task_type(spec)
    command = spec.get("CommandLine")
    if not command:
        raise invalid_argument("CommandLine is required (or a TaskFile that gives one).", "CommandLine")
    task = Task(job_id=job.id, task_id=first_id, type=task_type, command=str(command))
    task.name = check_length(str(spec.get("Name") or ""), MAX_NAME, "Name") or ""
    units = [(name, unit) for name, unit in _UNIT_PARAMETERS if spec.get(name) not in (None, "")]
    if len(units) > 1:
        raise invalid_argument("Give only one of NumCores, NumSockets and NumNodes.", units[1][0])
    for name, unit in units:
        requested = parse_range(spec[name], name, allow_auto=False)
        task.unit_type, task.min_units, task.max_units = unit, int(requested.min or 1), int(requested.max or 1)
        if unit == "Core":
            task.min_cores, task.max_cores = task.min_units, task.max_units
    if spec.get("AutoRequeueCount") not in (None, ""):
        task.auto_requeue_count = _int(spec["AutoRequeueCount"], "AutoRequeueCount", 0)
    task.depends = _list(spec.get("Depend"))
    task.env = parse_env(spec.get("Env"), "Env")
    for key, attr in (("WorkDir", "work_dir"), ("Stdin", "stdin"), ("Stdout", "stdout"), ("Stderr", "stderr")):
        setattr(task, attr, check_length(str(spec.get(key) or ""), 160, key) or "")
    if spec.get("Rerunnable") is not None:
        task.rerunnable = _bool(spec["Rerunnable"], "Rerunnable")
    if spec.get("Exclusive") is not None:
        task.exclusive = _bool(spec["Exclusive"], "Exclusive")
    if spec.get("FailJobOnFailure") is not None:
        task.fail_job_on_failure = _bool(spec["FailJobOnFailure"], "FailJobOnFailure")
    if spec.get("RunTime"):
        task.runtime_limit = parse_runtime(str(spec["RunTime"]))
    _apply_task_extras(task, spec)
    if task.is_node_task or task_type == "Service":
        _check_special_task(job, task)
    if task.parametric:
        start = _int(spec.get("Start", 1), "Start")
        end = _int(spec.get("End", start), "End")
        increment = _int(spec.get("Increment", 1), "Increment")
        task.start_value, task.end_value, task.increment_value = start, end, increment
        task.steps = sweep_count(start, end, increment)
        _check_substituted(task)  # its steps are created by the head node's loop, a window at a time
    elif len(task.command) > MAX_COMMAND:
        raise HpcError("ArgumentOutOfRange", f"CommandLine is longer than {MAX_COMMAND:,} characters.", "CommandLine")
    return [task]


def _apply_task_extras(task: Task, spec: dict[str, Any]) -> None:
    """The task parameters beyond the basics; an unknown one is refused, never stored aside."""
    unknown = sorted(k for k, v in spec.items() if v is not None and k not in TASK_NAMES + TASK_FILE_ONLY)
    if unknown:
        raise invalid_argument(f"'{unknown[0]}' is not a task property.", unknown[0])
    count = _int(spec.get("FailJobOnFailureCount") or 0, "FailJobOnFailureCount", 0, 1_000_000)
    if count:  # HPC Pack: 1 to 1,000,000 (a job file's 0 is unset); it implies FailJobOnFailure...
        task.fail_job_on_failure = spec.get("FailJobOnFailure") is None or task.fail_job_on_failure
        task.fail_job_on_failure_count = count if task.fail_job_on_failure else 0  # ...and $false clears it
    task.required_nodes = _list(spec.get("RequiredNodes"))
    if spec.get("ValidExitCodes"):
        valid_exit_codes(str(spec["ValidExitCodes"]))  # refused now if it does not parse
        task.valid_exit_codes = str(spec["ValidExitCodes"])
    if spec.get("CustomProperties") is not None:
        task.custom_properties = custom_properties(spec["CustomProperties"])


def _check_substituted(sweep: Task) -> None:
    """A step's command and paths are the sweep's with `*` replaced by its value: each `*` may grow to
    11 characters, so the limits hold for the widest value (Start's or End's, the longest numbers)."""
    widest = max(sweep.start_value, sweep.end_value, key=lambda v: len(str(v)))
    step = _instance(sweep, 1, substitute_sweep(sweep.command, widest), widest)
    if len(step.command) > MAX_COMMAND:
        raise HpcError("ArgumentOutOfRange", f"A step's CommandLine would be {len(step.command):,} characters once "
                       f"its `*` are replaced; the limit is {MAX_COMMAND:,}.", "CommandLine")
    for what, value in (("WorkDir", step.work_dir), ("Stdin", step.stdin), ("Stdout", step.stdout),
                        ("Stderr", step.stderr)):
        check_length(value, 160, what)


def unit_bytes(unit: Task) -> int:
    """What a task or step holds in text (memory, the store, every record of it)."""
    return (len(unit.command) + len(unit.name) + len(unit.work_dir) + len(unit.stdin) + len(unit.stdout)
            + len(unit.stderr) + sum(len(k) + len(v or "") for k, v in unit.env.items()) + 256)


def window(sweep: Task) -> int:
    """How many of a sweep's steps exist at once beyond those that ended: SWEEP_WINDOW, fewer when
    its steps are large, so that a window holds at most WINDOW_BYTES (and at least one step)."""
    widest = max(sweep.start_value, sweep.end_value, key=lambda v: len(str(v)))
    size = unit_bytes(sweep) + len(substitute_sweep(sweep.command, widest)) - len(sweep.command)
    return max(1, min(SWEEP_WINDOW, WINDOW_BYTES // size))


def more_steps(sweep: Task, most: int) -> list[Task]:
    """The sweep's next steps, at most `most` of them: a sweep's steps are created as they come near,
    so that a million-step sweep costs a window of them, not a million."""
    first = len(sweep.instances) + 1
    last = min(sweep.pending_steps, most) + first - 1
    values = (sweep.start_value + (n - 1) * sweep.increment_value for n in range(first, last + 1))
    return [_instance(sweep, n, substitute_sweep(sweep.command, value), value)
            for n, value in zip(range(first, last + 1), values, strict=True)]


def _task_type(spec: dict[str, Any]) -> str:
    wanted = str(spec.get("Type") or "").strip()
    parametric = _bool(spec.get("Parametric") or False, "Parametric")
    if not wanted:
        return PARAMETRIC_SWEEP if parametric else "Basic"
    match = next((t for t in TASK_TYPES if t.lower() == wanted.lower()), None)
    if match is None:
        raise invalid_argument(f"Type '{wanted}' is not a task type; use one of {', '.join(TASK_TYPES)}.", "Type")
    if parametric and match != PARAMETRIC_SWEEP:
        raise invalid_argument(f"-Parametric cannot be used with a {match} task.", "Type")
    return match


def _check_special_task(job: Job, task: Task) -> None:
    if job.state != JobState.Configuring:
        raise HpcError("IllegalTaskType", f"A {task.type} task can only be added before the job is submitted "
                       f"(job {job.id} is {job.state.name}).", job.id)
    if task.depends:
        raise invalid_argument(f"A {task.type} task cannot depend on other tasks.", "Depend")
    if any(t.type == task.type for t in job.tasks):
        raise HpcError("IllegalTaskType", f"Job {job.id} already has a {task.type} task; a job has at most one.",
                       job.id)
    task.rerunnable = False
    task.min_cores = task.max_cores = 1


def _instance(parent: Task, sub_id: int, command: str, index: int | None = None) -> Task:
    """A sweep step (its index replaces `*` in the command, working folder and redirections, as HPC
    Pack does on the node) or a node-prep/release instance (index None: taken as written)."""
    def text(value: str) -> str:
        return substitute_sweep(value, index) if index is not None and value else value
    return Task(job_id=parent.job_id, task_id=parent.task_id, sub_id=sub_id, name=parent.name, command=command,
                type=parent.type, min_cores=parent.min_cores, max_cores=parent.max_cores, depends=parent.depends,
                work_dir=text(parent.work_dir), stdin=text(parent.stdin), stdout=text(parent.stdout),
                stderr=text(parent.stderr),
                env=dict(parent.env), rerunnable=parent.rerunnable, runtime_limit=parent.runtime_limit,
                fail_job_on_failure=parent.fail_job_on_failure, unit_type=parent.unit_type,
                min_units=parent.min_units, max_units=parent.max_units,
                fail_job_on_failure_count=parent.fail_job_on_failure_count, required_nodes=parent.required_nodes,
                valid_exit_codes=parent.valid_exit_codes, custom_properties=parent.custom_properties)


def node_instance(template: Task, sub_id: int, node: str) -> Task:
    instance = _instance(template, sub_id, template.command)
    instance.node = node
    return instance


def allowed_to_add(job: Job) -> None:
    """Tasks join a job that has not ended or begun to end (HPC Pack refuses the others)."""
    if job.state in (JobState.Finished, JobState.Finishing, JobState.Canceling, JobState.Canceled, JobState.Failed):
        raise HpcError("InvalidOperation", f"Tasks cannot be added to job {job.id}: it is {job.state.name}.", job.id)


def check_size(tasks: list[Task]) -> None:
    """ArgumentOutOfRange when a job would hold more than params.MAX_JOB_UNITS tasks and sweep steps, or
    more than MAX_JOB_BYTES of their text: what one request can make the head node hold is bounded."""
    units = sum(1 + len(t.instances) for t in tasks)
    if units > MAX_JOB_UNITS:
        raise HpcError("ArgumentOutOfRange", f"A job may hold {MAX_JOB_UNITS:,} tasks and sweep steps on this head "
                       f"node; this one would hold {units:,}.", "CommandLine")
    size = sum(unit_bytes(u) for t in tasks for u in (t, *t.instances))
    if size > MAX_JOB_BYTES:
        raise HpcError("ArgumentOutOfRange", f"A job's tasks and sweep steps may hold {MAX_JOB_BYTES:,} bytes of "
                       f"commands, paths and environment on this head node; this one would hold {size:,}.",
                       "CommandLine")


def dependency_problem(tasks: list[Task]) -> str:
    """Why the tasks' dependencies (DependsOn, by task name) can never all be met, or "": a name no task
    has, a task depending on itself, or a cycle (HPC Pack refuses such jobs at validation)."""
    names: dict[str, list[Task]] = {}
    for task in tasks:
        if task.name:
            names.setdefault(task.name, []).append(task)
    for task in tasks:
        missing = [d for d in task.depends if d not in names]
        if missing:
            return f"Task {task.key} depends on tasks that do not exist: {', '.join(missing)}."
    graph = {name: {d for t in group for d in t.depends} for name, group in names.items()}
    cycle = _find_cycle(graph, sorted(graph))
    if cycle:
        return "The tasks' dependencies form a cycle, so none of them can start: " + " -> ".join(cycle) + "."
    return ""


def parent_problem(job: Job, active: Mapping[int, Job]) -> str:
    """Why the job's parent jobs (ParentJobIds) can never all finish, or "": the job is its own parent, or
    parents of active jobs lead back to it. The rule of the tasks' dependencies, for jobs: a job waits for
    its parents to finish, so a cycle waits for ever. (An ended parent ends any cycle: it waits for nothing.)
    Only the job's ancestors are looked at: a job without parents costs nothing."""
    graph = {job.id: set(job.parent_job_ids)}
    pending = list(job.parent_job_ids)
    while pending:
        parent_id = pending.pop()
        if parent_id not in graph:
            parent = active.get(parent_id)
            graph[parent_id] = set(parent.parent_job_ids) if parent is not None and not parent.terminal else set()
            pending += graph[parent_id]
    cycle = _find_cycle(graph, [job.id])
    if cycle:
        return ("The parent jobs form a cycle, so none of them can start: " + " -> ".join(map(str, cycle)) +
                ". A job cannot wait for itself.")
    return ""


def _find_cycle(graph: Mapping[Node, set[Node]], starts: list[Node]) -> list[Node]:
    """A cycle reachable from `starts` in the dependency graph as a path of nodes (the first repeated at
    the end), or []."""
    done: set[Node] = set()
    for start in starts:
        if start in done:
            continue
        path, on_path = [start], {start}
        stack: list[tuple[Node, list[Node]]] = [(start, sorted(graph[start]))]
        while stack:
            node, pending = stack[-1]
            if not pending:
                stack.pop()
                done.add(node)
                on_path.discard(path.pop())
                continue
            nxt = pending.pop()
            if nxt in on_path:
                return path[path.index(nxt):] + [nxt]
            if nxt not in done:
                stack.append((nxt, sorted(graph.get(nxt, set()))))
                path.append(nxt)
                on_path.add(nxt)
    return []


def task_spec(task: Task) -> dict[str, Any]:
    """A task's properties as Add-HpcTask parameters (Set-HpcTask changes some and builds it again)."""
    spec: dict[str, Any] = {
        "CommandLine": task.command, "Name": task.name, "Type": task.type, "WorkDir": task.work_dir,
        "Stdin": task.stdin, "Stdout": task.stdout, "Stderr": task.stderr, "Rerunnable": task.rerunnable,
        "Exclusive": task.exclusive, "FailJobOnFailure": task.fail_job_on_failure, "Depend": list(task.depends),
        "Env": [f"{k}={v or ''}" for k, v in task.env.items()], "AutoRequeueCount": task.auto_requeue_count,
        "FailJobOnFailureCount": task.fail_job_on_failure_count or None,
        "RequiredNodes": list(task.required_nodes) or None, "ValidExitCodes": task.valid_exit_codes or None,
        "CustomProperties": ";".join(f"{k}={v}" for k, v in task.custom_properties.items()) or None,
    }
    if task.unit_type == "Core":
        spec["NumCores"] = f"{task.min_cores}-{task.max_cores}"
    else:
        spec[f"Num{task.unit_type}s"] = f"{task.min_units}-{task.max_units}"
    if task.runtime_limit > 0:
        minutes = max(1, -(-task.runtime_limit // 60))
        spec["RunTime"] = f"{minutes // 1440}:{minutes % 1440 // 60}:{minutes % 60}"
    if task.parametric:
        spec.update(Start=task.start_value, End=task.end_value, Increment=task.increment_value)
    return spec


# Set-HpcTask's parameters that replace a list rather than add to it.
TASK_KEPT_FIELDS = ("job_id", "task_id", "sub_id", "state", "previous_state", "create_time", "submit_time",
                    "requeue_count", "start_time", "end_time", "node", "pid", "token", "output", "exit_code",
                    "error_message", "error_code", "instances")


def check_task_changeable(job: Job, task: Task) -> None:
    """Set-HpcTask's rule: a task that has not started (Configuring, or Queued and not a sweep that has
    begun to expand) may change; anything else is refused with the reason."""
    from .states import TaskState
    if task.state == TaskState.Configuring:
        return
    if task.state == TaskState.Queued and not task.parametric and not task.is_node_task:
        return
    raise HpcError("TaskModifyFailed", f"Task {task.key} is {task.shown_state.name}; only a Configuring task (or a "
                   "Queued task that is not a sweep) can be changed.", task.key)
