"""Every wire operation, declared once: its name and the exact shape of its arguments.

The head node validates each request against its operation's model before anything acts on it
(types are strict: `true` or `1.5` is not a job id; strings hold no NUL and are valid Unicode;
sizes are bounded), so a handler only ever sees well-formed values. A request that does not fit
is refused with InvalidArgument naming the field. `tests/test_operations.py` checks that every
operation has a handler and every handler an operation.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from ..errors import HpcError
from ..model.params import MAX_TIME
from .protocol import MAX_ECHO, MAX_ID, MAX_IDS, MAX_SCHEDULER_NAME, SCHEDULER_NAME

MAX_TEXT = 64 * 1024      # characters in any one string
MAX_SPEC_ITEMS = 256      # properties in one job or task specification
MAX_SPEC_DEPTH = 4        # nesting of lists and maps inside a specification


def _clean_text(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    return value


# pydantic's words for what _clean_text says of text inside a specification (a strict str field is
# checked by pydantic itself, before any validator of ours).
_PROBLEMS = {"string_unicode": "must be valid Unicode text (it holds a lone surrogate)"}

Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT), AfterValidator(_clean_text)]
# A head node's name as a client reached it (unix:/path, host:port): written into every job of a page, so
# short and printable ASCII (nothing JSON must escape six times over): a reply is not a request times 10,000.
SchedulerName = Annotated[str, Field(strict=True, max_length=MAX_SCHEDULER_NAME, pattern=SCHEDULER_NAME)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
SubId = Annotated[StrictInt, Field(ge=0, le=MAX_ID)]
Ids = Annotated[list[Id], Field(max_length=MAX_IDS)]
States = Text | Annotated[list[Text], Field(max_length=64)]
When = Text | Annotated[StrictInt, Field(ge=0, le=MAX_TIME)] | Annotated[StrictFloat, Field(ge=0, le=MAX_TIME,
                                                                                    allow_inf_nan=False)]


def _check_value(value: Any, where: str, depth: int = 0) -> Any:
    """A specification value: text, number, boolean, null, or lists and maps of them, bounded."""
    if depth > MAX_SPEC_DEPTH:
        raise ValueError(f"{where} is nested too deeply")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"{where} is longer than {MAX_TEXT} characters")
        try:
            return _clean_text(value)
        except ValueError as e:
            raise ValueError(f"{where} {e}") from None
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list) and len(value) <= MAX_SPEC_ITEMS * 16:
        return [_check_value(v, where, depth + 1) for v in value]
    if isinstance(value, dict) and len(value) <= MAX_SPEC_ITEMS:
        return {_check_value(str(k), where, depth + 1): _check_value(v, f"{where}.{k}", depth + 1)
                for k, v in value.items()}
    raise ValueError(f"{where} is not a text, number, boolean, list or map of a bounded size")


def _check_spec(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_SPEC_ITEMS:
        raise ValueError(f"has more than {MAX_SPEC_ITEMS} properties")
    return {_check_value(str(k), "a property name"): _check_value(v, str(k)) for k, v in value.items()}


Spec = Annotated[dict[str, Any], AfterValidator(_check_spec)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(Request):
    pass


class Hello(Request):
    """The first request on a connection: the client's protocol version (see protocol.PROTOCOL_VERSION)."""

    protocol: Annotated[StrictInt, Field(ge=0, le=MAX_ID)] = 0
    version: Text = ""


class NewJob(Request):
    """A new job; with `tasks` (a job file), the job and all its tasks in one step, or nothing."""

    spec: Spec = {}
    tasks: Annotated[list[Spec], Field(max_length=1_000)] = []


class CopyJob(Request):
    id: Id
    spec: Spec = {}


class SetJob(Request):
    id: Id
    spec: Spec = {}


class AddTask(Request):
    job_id: Id
    spec: Spec = {}


class JobIds(Request):
    ids: Ids


class CancelJobs(Request):
    ids: Ids
    message: Text | None = None
    state: Text | None = None
    force: StrictBool = False
    graceful: StrictBool = False


class WaitJobs(Request):
    ids: Ids
    timeout: Annotated[StrictInt | StrictFloat, Field(ge=0, le=3600)] | None = None


class GetJobs(Request):
    ids: Ids | None = None
    state: States | None = None
    owner: Text | None = None
    name: Text | None = None
    project: Text | None = None
    template: Text | None = None
    begin: When | None = None
    end: When | None = None
    nodes: Annotated[list[Text], Field(max_length=1024)] | None = None
    after: Annotated[StrictInt, Field(ge=0, le=MAX_ID)] | None = None  # a page: jobs with a greater id...
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_IDS)] | None = None  # ...at most this many
    fields: Annotated[list[Text], Field(max_length=256)] | None = None  # only these properties of each
    # The page as {"count", "last" (id), "jobs"}, each job's Scheduler as the caller names this head node: a
    # client that passes the jobs on to PowerShell unread still knows where the next page starts.
    counted: StrictBool = False
    scheduler: SchedulerName | None = None


class TaskAddress(Request):
    job_id: Id
    task_id: Id
    sub_id: SubId | None = None


class MapPaths(Request):
    paths: Annotated[list[Text], Field(max_length=64)]


class SetTask(Request):
    job_id: Id
    task_id: Id
    spec: Spec = {}


class GetTasks(Request):
    job_id: Id
    task_id: Id | None = None
    sub_id: SubId | None = None
    state: States | None = None
    expand: StrictBool = True
    full: StrictBool = False  # the whole task, or PermissionDenied (Export-HpcJob): never a blanked copy
    # A page, as {"count", "last", "more", "tasks"}: the tasks after `after` (task id, subtask id), up to the one
    # whose text fills protocol.PAGE_BYTES (a job may hold 50,000 tasks and 32 MB of their text).
    counted: StrictBool = False
    after: Annotated[list[SubId], Field(min_length=2, max_length=2)] | None = None


class CancelTask(TaskAddress):
    message: Text | None = None
    force: StrictBool = False
    state: Text | None = None


class History(Request):
    job_id: Id | None = None
    start: When | None = None
    end: When | None = None


class JobHistory(Request):
    """Get-HpcJobHistory: one record per job that ended in [start, end)."""

    start: When
    end: When


Name = Annotated[str, Field(strict=True, min_length=1, max_length=80), AfterValidator(_clean_text)]


class TemplateItemModel(Request):
    property: Name
    default: Annotated[str, Field(strict=True, max_length=1024), AfterValidator(_clean_text)] | None = None
    min: Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)] | None = None
    max: Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)] | None = None
    values: Annotated[list[Annotated[str, Field(strict=True, max_length=256), AfterValidator(_clean_text)]],
                      Field(max_length=256)] = []
    required: StrictBool = False
    read_only: StrictBool = False


class PutTemplate(Request):
    """New-HpcJobTemplate and Import-HpcJobTemplate: a template, new (or replacing one, with `replace`)."""

    name: Name
    description: Annotated[str, Field(strict=True, max_length=1024), AfterValidator(_clean_text)] = ""
    users: Annotated[list[Name], Field(max_length=256)] = []
    items: Annotated[list[TemplateItemModel], Field(max_length=64)] = []
    replace: StrictBool = False


class TemplateName(Request):
    name: Name | None = None


class SetProperty(Request):
    values: Annotated[dict[Text, Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]], Field(max_length=64)]


Names = Annotated[list[Text], Field(max_length=1024)]


class GetNodes(Request):
    names: Names | None = None
    groups: Names | None = None
    states: Names | None = None
    templates: Names | None = None
    locations: Names | None = None


class SetNodeState(Request):
    names: Names
    state: Text
    force: StrictBool = False
    reason: Text = ""


class NodeHistory(Request):
    names: Names | None = None
    start: When | None = None
    end: When | None = None


class GetGroups(Request):
    names: Names | None = None
    ids: Ids | None = None


class NewGroup(Request):
    name: Annotated[str, Field(strict=True, max_length=64), AfterValidator(_clean_text)]
    description: Text = ""


class ChangeGroups(Request):
    names: Names = []
    ids: Ids = []
    nodes: Names | None = None
    add: StrictBool


class SetEnvironment(Request):
    """NAME=value sets a cluster-wide environment variable; a null value (NAME=) removes it."""

    values: Annotated[dict[Text, Text | None], Field(max_length=256)]


OPERATIONS: dict[str, type[Request]] = {
    "hello": Hello,
    "ping": NoArgs,
    "new_job": NewJob,
    "copy_job": CopyJob,
    "add_task": AddTask,
    "submit_jobs": JobIds,
    "requeue_jobs": JobIds,
    "cancel_jobs": CancelJobs,
    "wait_jobs": WaitJobs,
    "cancel_time_limit": NoArgs,
    "lookup_jobs": JobIds,
    "plan_cancel": CancelJobs,
    "get_jobs": GetJobs,
    "set_job": SetJob,
    "get_tasks": GetTasks,
    "set_task": SetTask,
    "map_paths": MapPaths,
    "cancel_task": CancelTask,
    "requeue_task": TaskAddress,
    "submit_task": TaskAddress,
    "history": History,
    "job_history": JobHistory,
    "get_templates": TemplateName,
    "put_template": PutTemplate,
    "remove_template": TemplateName,
    "get_properties": NoArgs,
    "set_property": SetProperty,
    "shutdown": NoArgs,
    "get_nodes": GetNodes,
    "plan_node_state": SetNodeState,
    "set_node_state": SetNodeState,
    "node_history": NodeHistory,
    "get_groups": GetGroups,
    "new_group": NewGroup,
    "change_groups": ChangeGroups,
    "cluster_overview": NoArgs,
    "cluster_parameters": NoArgs,
    "get_environment": NoArgs,
    "set_environment": SetEnvironment,
}


# How pydantic names the member of a union a value was tried as ("function-after[_clean_text(), ...]",
# "list[...]", "constrained-int"): its words, not the request's, so they are left out of an error's target.
_UNION_MEMBER = re.compile(r"[a-z-]+\[.*\]|(constrained-)?(str|int|float|bool)", re.DOTALL)


def _location(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The field an error is about as the request names it: ("state",), ("items", 0, "property")."""
    return tuple(part for part in loc if not (isinstance(part, str) and _UNION_MEMBER.fullmatch(part)))


def parse(op: Any, args: Any) -> tuple[str, Request]:
    """(operation name, validated arguments); raises HpcError (ProtocolError, InvalidArgument)."""
    model = OPERATIONS.get(op) if isinstance(op, str) else None
    if model is None:
        raise HpcError("ProtocolError", f"The head node does not know the operation {repr(op)[:MAX_ECHO]}.")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise HpcError("InvalidArgument", f"The arguments of '{op}' must be a map.")
    try:
        return op, model.model_validate({k: v for k, v in args.items() if v is not None}, strict=True)
    except ValidationError as e:
        # A value that fits no member of a union has an error per member: the one that got deepest into
        # the value says best what is wrong ("state.1", not "state", for a list holding a number).
        first = max(e.errors(), key=lambda error: len(_location(error["loc"])))
        where = ".".join(str(part) for part in _location(first["loc"])) or op
        problem = str(first["ctx"]["error"]) if first["type"] == "value_error" else _PROBLEMS.get(first["type"],
                                                                                                   first["msg"])
        raise HpcError("InvalidArgument", f"Invalid request '{op}': {where}: {problem}.", where) from None
