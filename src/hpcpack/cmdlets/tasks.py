"""Task cmdlets: Get-HpcTask, Stop-HpcTask, and the HpcTask object's Requeue() and Submit()."""

from __future__ import annotations

from typing import Any

from .registry import Args, Record, command, each, plan, wait_until_task_ended


def _address(args: Args) -> dict[str, Any]:
    task = args.get("Task")
    if isinstance(task, dict):  # an HpcTask object arrives as its key
        return {"job_id": task["JobId"], "task_id": task["TaskId"], "sub_id": task.get("SubTaskId") or 0}
    return {"job_id": args.get("JobId"), "task_id": args.get("TaskId"), "sub_id": args.get("SubTaskId") or 0}


@command("Get-HpcTask")
def get_task(args: Args) -> list[Record]:
    client = args.client()
    job_ids = args.ints("Job") or args.ints("JobId")
    out: list[Record] = []
    for job_id in job_ids:
        out.extend(client.call("get_tasks", job_id=job_id, task_id=args.get("TaskId"), sub_id=args.get("SubTaskId"),
                               state=args.get("State")))
    return out


@command("Stop-HpcTask:plan")
def stop_task_plan(args: Args) -> list[Record]:
    address = _address(args)
    key = f"{address['job_id']}.{address['task_id']}" + (f".{address['sub_id']}" if address["sub_id"] else "")
    how = "kill now" if args.flag("Force") else "stop (SIGTERM, grace period, then SIGKILL) if running"
    return [plan(f"Task {key}", f"Stop-HpcTask: {how}", address)]


@command("Stop-HpcTask")
def stop_task(args: Args) -> list[Record]:
    client = args.client()
    keys = args.get("Confirmed") or [_address(args)]
    accepted: list[dict[str, Any]] = []

    def stop(key: dict[str, Any]) -> list[Record]:
        client.call("cancel_task", **key, message=args.get("Message"), force=args.flag("Force"),
                    state=args.get("State"))
        accepted.append(key)
        return []
    out = each(keys if isinstance(keys, list) else [keys], stop)
    for key in accepted:
        wait_until_task_ended(args, key)
    return out


@command("Requeue-HpcTask")
def requeue_task(args: Args) -> list[Record]:
    return [args.client().call("requeue_task", **_address(args))]


@command("Submit-HpcTask")
def submit_task(args: Args) -> list[Record]:
    return [args.client().call("submit_task", **_address(args))]
