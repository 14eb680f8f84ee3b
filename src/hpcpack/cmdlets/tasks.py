"""Task cmdlets: Get-HpcTask, Stop-HpcTask, and the HpcTask object's Requeue() and Submit()."""

from __future__ import annotations

from typing import Any

from ..backends.contract import StopOptions, TaskKey, TaskQuery
from ..backends.stopping import stop_task as stop_and_wait
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
