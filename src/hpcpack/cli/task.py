"""`task`: HPC Pack's task command (task.exe) for one task of a job: cancel, finish, requeue, view.

    task cancel <jobID>.<taskID>[.<subtaskID>] [/force] [/message:<message>]
    task finish <jobID>.<taskID>[.<subtaskID>] [/message:<message>]
    task requeue <jobID>.<taskID>[.<subtaskID>]
    task view <jobID>.<taskID>[.<subtaskID>]

The parsing, help, errors and exit statuses are the job command's (see hpcpack.cli)."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import TYPE_CHECKING

from ..backends.contract import StopOptions, TaskKey, TaskQuery
from ..backends.stopping import stop_task
from . import EXIT_INTERRUPTED, Command, Option
from . import main as run

if TYPE_CHECKING:
    from ..backends.contract import Backend

def _address(args: argparse.Namespace) -> TaskKey:
    job_id, task_id, sub_id = args.id
    return TaskKey(job_id, task_id, sub_id or 0)


def _stop(backend: Backend, args: argparse.Namespace, finish: bool) -> int:
    """Cancels (or finishes) the task, then waits until it (every subtask of a sweep) has ended: the
    cmdlets' stop-and-wait (backends.stopping); Ctrl+C ends the waiting, not the stop."""
    key = _address(args)
    options = StopOptions.from_parameters(force=bool(getattr(args, "force", False)),
                                          state="Finished" if finish else None, message=args.message)
    try:
        units = stop_task(backend, key, options)
    except KeyboardInterrupt:
        print(f"task {'finish' if finish else 'cancel'}: stopped waiting; the head node goes on stopping task "
              f"{key}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    states = sorted({u["State"] for u in units})
    wanted = ("Finished",) if finish else ("Canceled", "Failed")
    if any(s not in wanted for s in states):
        print(f"task: task {key} is {', '.join(states)}, not {' or '.join(wanted)}.", file=sys.stderr)
        return 1
    print(f"Task {key} {'finished' if finish else 'canceled'}.")
    return 0


def cmd_requeue(backend: Backend, args: argparse.Namespace) -> int:
    backend.requeue_task(_address(args))
    print(f"Task {_address(args)} has been requeued.")
    return 0


def cmd_view(backend: Backend, args: argparse.Namespace) -> int:
    from . import show
    key = _address(args)
    show.tasks(backend.get_tasks(TaskQuery(key.job_id, key.task_id, key.sub_id or None)), "list")
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
