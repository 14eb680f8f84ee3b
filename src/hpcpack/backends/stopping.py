"""The one client-side stop-and-wait, used by Stop-HpcJob, Stop-HpcTask, `job cancel`/`finish` and
`task cancel`/`finish`: start the stop, then wait for the final state as HPC Pack's client does
(not after -Graceful, which lets tasks end by themselves), reporting progress and giving up when the
caller asks (Ctrl+C, PowerShell's StopProcessing) or when the longest a cancel can take has passed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..errors import HpcError
from .contract import Backend, Item, Progress, Record, StopOptions, TaskKey, TaskQuery

ENDED = ("Finished", "Failed", "Canceled")
SLICE = 0.25  # seconds one wait lasts before it looks whether the caller asked to stop waiting

Report = Callable[[Progress], None]
Stopped = Callable[[], bool]


def _never() -> bool:
    return False


def _ignore(progress: Progress) -> None:
    return None


def grace_end(records: Sequence[Record]) -> float | None:
    """When the last grace period of these jobs or tasks ends (HPC Pack's TaskCancelGracePeriod)."""
    ends = [datetime.fromisoformat(r["CancelGraceEnd"]).timestamp() for r in records if r.get("CancelGraceEnd")]
    return max(ends) if ends else None


def stop_jobs(backend: Backend, ids: Sequence[int], options: StopOptions, report: Report = _ignore,
              stopped: Stopped = _never, records: bool = True) -> list[Item]:
    """Per job, in order: the job as it ended, or an error: refused (the head node's error), or
    CancelIncomplete (still ending when the time limit passed) or CancelFailed (ended otherwise than
    asked). Raises OperationStopped when `stopped()` turns true while waiting. Without `records`,
    a job that ended as asked comes without its record (only the others are read again)."""
    started = backend.cancel_jobs(ids, options)
    accepted = [item.id for item in started if item.error is None]
    if not accepted or options.graceful:
        return started
    # Jobs that never started are ended by the cancel itself: waited for only when some other is not.
    states = {item.id: item.state for item in started if item.state in ENDED}
    if len(states) < len(accepted):
        states = _wait_for_jobs(backend, accepted, report, stopped)
    reread = accepted if records else [i for i in accepted if states.get(i) != options.final_state]
    final = {item.id: item for item in backend.lookup_jobs(reread)} if reread else {}
    return [item if item.error is not None else _outcome(final.get(item.id, item), states.get(item.id), options)
            for item in started]


def _outcome(item: Item, state: str | None, options: StopOptions) -> Item:
    if item.error is not None or item.record is None:
        return item
    expected = options.final_state
    if state == expected:
        return item
    reason = item.record.get("ErrorMessage") or ""
    if state in ("Canceling", "Finishing"):
        error = HpcError("CancelIncomplete", f"Job {item.id} did not reach {expected} in time; it is still "
                         f"{state}. {reason}".rstrip(), item.id)
    else:
        error = HpcError("CancelFailed", f"Job {item.id} ended {state}, not {expected}: {reason}", item.id)
    return Item(id=item.id, record=item.record, error=error)


def _wait_for_jobs(backend: Backend, ids: list[int], report: Report, stopped: Stopped) -> dict[int, str]:
    states: dict[int, str] = {}
    graces: list[float | None] = []  # read once, and only when some job has not ended at the first look
    what = "job" if len(ids) == 1 else "jobs"

    def ended() -> bool:
        states.update(backend.wait_jobs(ids, SLICE))
        left = [i for i in ids if states.get(i) not in ENDED]
        if left and not graces:
            graces.append(grace_end([i.record for i in backend.lookup_jobs(left) if i.record is not None]))
        report(Progress(what, left, len(ids), graces[0] if graces else None))
        return not left
    wait(backend, ended, stopped, "jobs")
    return states


def stop_task(backend: Backend, key: TaskKey, options: StopOptions, report: Report = _ignore,
              stopped: Stopped = _never) -> list[Record]:
    """Stops the task (every subtask of a sweep, or one subtask) and returns its units once all have
    ended; raises what the head node refuses, or OperationStopped."""
    backend.cancel_task(key, options)
    query = TaskQuery(job_id=key.job_id, task_id=key.task_id, sub_id=key.sub_id or None)
    units: list[Record] = []

    def ended() -> bool:
        nonlocal units
        units = backend.get_tasks(query)
        left = [u["Id"] for u in units if u["State"] not in ENDED]
        report(Progress("task" if len(units) == 1 else "tasks", left, len(units), grace_end(units)))
        if left:
            time.sleep(SLICE / 10)
        return not left
    wait(backend, ended, stopped, "tasks")
    return units


def wait(backend: Backend, ended: Callable[[], bool], stopped: Stopped, what: str) -> None:
    """Calls `ended` (each call waits at most a slice) until it holds or a cancel's time limit has passed."""
    deadline = time.monotonic() + backend.cancel_time_limit()
    while True:
        if stopped():
            raise HpcError("OperationStopped", f"Stopped while waiting for the {what} to end; the head node "
                           "goes on ending them.")
        if ended() or time.monotonic() > deadline:
            return


def describe(progress: Progress) -> dict[str, Any]:
    """A progress report in words: Activity, Status, CurrentOperation, PercentComplete, SecondsRemaining."""
    shown = ", ".join(str(i) for i in progress.left[:5])
    if len(progress.left) > 5:
        shown += f" and {len(progress.left) - 5} more"
    seconds = max(0, round(progress.grace_end - time.time())) if progress.grace_end is not None else -1
    done = progress.total - len(progress.left)
    operation = (f"{seconds} s left of the grace period, then running tasks are killed" if seconds > 0
                 else "the grace period is over: ending the tasks" if seconds == 0 else "")
    return {"Activity": f"Stopping {progress.what}", "CurrentOperation": operation,
            "Status": f"Waiting for {progress.what} {shown} to end: {done} of {progress.total} ended",
            "PercentComplete": done * 100 // max(progress.total, 1), "SecondsRemaining": seconds,
            "Remaining": shown, "What": progress.what}
