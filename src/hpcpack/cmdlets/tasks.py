"""Task cmdlets: Get-HpcTask, Stop-HpcTask, and the HpcTask object's Requeue() and Submit()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.contract import StopOptions, TaskKey, TaskQuery
from ..backends.stopping import stop_task as stop_and_wait
from ..errors import HpcError
from .registry import Args, Record, command, each, plan, waiting


def _key(args: Args) -> TaskKey:
    task = args.get("Task")
    if isinstance(task, dict):  # an HpcTask object arrives as its key
        return TaskKey(int(task["JobId"]), int(task["TaskId"]), int(task.get("SubTaskId") or 0))
    return TaskKey(int(args.get("JobId")), int(args.get("TaskId")), int(args.get("SubTaskId") or 0))


def _from_wire(key: dict[str, Any]) -> TaskKey:
    return TaskKey(int(key["job_id"]), int(key["task_id"]), int(key.get("sub_id") or 0))


@command("Get-HpcTask")
def get_task(args: Args) -> list[Record]:
    backend = args.backend()
    return [task for job_id in args.ints("Job") or args.ints("JobId")
            for task in backend.get_tasks(TaskQuery(job_id, args.get("TaskId"), args.get("SubTaskId"),
                                                    args.get("State")))]


@command("Stop-HpcTask:plan")
def stop_task_plan(args: Args) -> list[Record]:
    key = _key(args)
    how = "kill now" if args.flag("Force") else "stop (SIGTERM, grace period, then SIGKILL) if running"
    return [plan(f"Task {key}", f"Stop-HpcTask: {how}", key.to_wire())]


@command("Stop-HpcTask")
def stop_task(args: Args) -> list[Record]:
    """Stops each confirmed task and waits until it has ended (backends.stopping); outputs only errors."""
    backend = args.backend()
    options = StopOptions.from_parameters(force=args.flag("Force"), state=args.get("State"),
                                          message=args.get("Message"))
    keys = args.get("Confirmed") or [_key(args).to_wire()]
    with waiting(args) as (report, stopped):
        return each(keys if isinstance(keys, list) else [keys],
                    lambda key: [] if stop_and_wait(backend, _from_wire(key), options, report, stopped) else [])


@command("Requeue-HpcTask")
def requeue_task(args: Args) -> list[Record]:
    return [args.backend().requeue_task(_key(args))]


@command("Submit-HpcTask")
def submit_task(args: Args) -> list[Record]:
    return [args.backend().submit_task(_key(args))]


# Set-HpcTask's parameters: Add-HpcTask's, with -Parametric a Boolean (HPC Pack's).
SET_TASK_PROPERTIES = (
    "CommandLine", "Name", "Exclusive", "FailJobOnFailure", "FailJobOnFailureCount", "Rerunnable", "RunTime",
    "NumNodes", "NumSockets", "NumCores", "WorkDir", "Stdin", "Stdout", "Stderr", "ValidExitCodes", "Depend",
    "CustomProperties", "Env", "Parametric", "Type", "Start", "End", "Increment",
)


def _confirmed_keys(args: Args) -> list[TaskKey]:
    keys = args.get("Confirmed")
    if keys:
        return [_from_wire(k) for k in (keys if isinstance(keys, list) else [keys])]
    return [_key(args)]


@command("Set-HpcTask:plan")
def set_task_plan(args: Args) -> list[Record]:
    key = _key(args)
    changes = ", ".join(k for k in SET_TASK_PROPERTIES if args.has(k)) or "nothing"
    return [plan(f"Task {key}", f"Set-HpcTask: change {changes}", key.to_wire())]


@command("Set-HpcTask")
def set_task(args: Args) -> list[Record]:
    backend = args.backend()
    spec = args.pick(*SET_TASK_PROPERTIES)
    return each(_confirmed_keys(args), lambda key: [backend.set_task(key.job_id, key.task_id, spec)])


@command("Export-HpcTask:plan")
def export_task_plan(args: Args) -> list[Record]:
    key = _key(args)
    path = Path(str(args.get("Path")))
    query = f"The file {path} exists. Overwrite it?" if path.exists() else None
    return [{**plan(f"Task {key}", f"Export-HpcTask: write to {path}", key.to_wire()), "query": query}]


@command("Export-HpcTask")
def export_task(args: Args) -> list[Record]:
    from ..model.jobxml import write_task_file
    backend = args.backend()
    path = Path(str(args.get("Path")))

    def export(key: TaskKey) -> list[Record]:
        tasks = backend.get_tasks(TaskQuery(key.job_id, key.task_id, expand=False, full=True))
        found = backend.lookup_jobs([key.job_id])[0]
        if found.error is not None or found.record is None:
            raise found.error or HpcError("InvalidJobId", f"No job {key.job_id}.", key.job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(write_task_file(found.record, tasks[0]))
        return []
    return each(_confirmed_keys(args), export)
