"""`task`: HPC Pack's task command (task.exe) for one task of a job: cancel, finish, requeue, view.

    task cancel <jobID>.<taskID>[.<subtaskID>] [/force] [/message:<message>]
    task finish <jobID>.<taskID>[.<subtaskID>] [/message:<message>]
    task requeue <jobID>.<taskID>[.<subtaskID>]
    task view <jobID>.<taskID>[.<subtaskID>]

The parsing, help, errors and exit statuses are the job command's (see hpcpack.cli)."""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from . import EXIT_INTERRUPTED, Command, Option
from . import main as run

if TYPE_CHECKING:
    from ..backends.client import Client

ENDED = ("Finished", "Failed", "Canceled")
POLL = 0.1  # seconds between looks at a task that is being stopped


def _address(args: argparse.Namespace) -> dict[str, Any]:
    job_id, task_id, sub_id = args.id
    return {"job_id": job_id, "task_id": task_id, "sub_id": sub_id or None}


def _key(args: argparse.Namespace) -> str:
    return ".".join(str(part) for part in args.id if part)


def _stop(client: Client, args: argparse.Namespace, finish: bool) -> int:
    """Cancels (or finishes) the task, then waits until it (every subtask of a sweep) has ended, as HPC
    Pack's client does; Ctrl+C ends the waiting, not the stop."""
    verb = "finish" if finish else "cancel"
    client.call("cancel_task", **_address(args), message=args.message, force=bool(getattr(args, "force", False)),
                state="Finished" if finish else None)
    deadline = time.monotonic() + float(client.call("cancel_time_limit"))
    try:
        while True:
            units = client.call("get_tasks", **_address(args))
            if all(u["State"] in ENDED for u in units) or time.monotonic() > deadline:
                break
            time.sleep(POLL)
    except KeyboardInterrupt:
        print(f"task {verb}: stopped waiting; the head node goes on stopping task {_key(args)}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    states = sorted({u["State"] for u in units})
    wanted = ("Finished",) if finish else ("Canceled", "Failed")
    if any(s not in wanted for s in states):
        print(f"task: task {_key(args)} is {', '.join(states)}, not {' or '.join(wanted)}.", file=sys.stderr)
        return 1
    print(f"Task {_key(args)} {'finished' if finish else 'canceled'}.")
    return 0


def cmd_requeue(client: Client, args: argparse.Namespace) -> int:
    client.call("requeue_task", **_address(args))
    print(f"Task {_key(args)} has been requeued.")
    return 0


def cmd_view(client: Client, args: argparse.Namespace) -> int:
    from . import show
    show.tasks(client.call("get_tasks", **_address(args)), "list")
    return 0


_MESSAGE = Option("message", "why (128 characters at most); the task's ErrorMessage shows it", metavar="message")
_TASK = "<jobID>.<taskID>[.<subtaskID>]"
COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("cancel", "Cancels a task (a whole sweep, or one subtask) and waits until it has ended.",
            f"task cancel {_TASK} [/force] [/message:<message>]", partial(_stop, finish=False),
            (Option("force", "stop it at once: no grace period", "bool"), _MESSAGE), job_id="task", tool="task",
            epilog="Ctrl+C stops the waiting, not the cancel.\n\nExample:\n  task cancel 5.2 /message:\"wrong input\""),
    Command("finish", "Ends a queued or running task as Finished, and waits.",
            f"task finish {_TASK} [/message:<message>]", partial(_stop, finish=True), (_MESSAGE,), job_id="task",
            tool="task"),
    Command("requeue", "Queues a running, canceled or failed task of a running job again, next in line.",
            f"task requeue {_TASK}", cmd_requeue, job_id="task", tool="task"),
    Command("view", "Shows a task: its state, command line, exit code, node and times.",
            f"task view {_TASK}", cmd_view, job_id="task", tool="task"),
)}


def main(argv: list[str] | None = None) -> int:
    return run(argv, COMMANDS, "task")


if __name__ == "__main__":
    sys.exit(main())
