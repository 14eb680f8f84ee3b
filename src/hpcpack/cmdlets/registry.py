"""Registration of cmdlet commands and the helpers they share."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..backends.client import Client, for_scheduler
from ..errors import ErrorRecord, HpcError

Record = dict[str, Any]
Handler = Callable[["Args"], list[Record]]
COMMANDS: dict[str, Handler] = {}
STOPPED: set[str] = set()  # ids of calls whose cmdlet PowerShell asked to stop
WAIT_SLICE = 0.25  # seconds a wait lasts before it looks whether it was asked to stop


def command(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = handler
        return handler
    return register


class Args:
    """A cmdlet's bound parameters, by name, case-insensitively (as PowerShell names them)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = {str(k).lower(): _plain(v) for k, v in values.items()}
        self.call_id = str(self._values.pop("__callid__", ""))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if v is not None}

    def get(self, name: str, default: Any = None) -> Any:
        value = self._values.get(name.lower())
        return default if value is None else value

    def has(self, name: str) -> bool:
        return self._values.get(name.lower()) is not None

    def flag(self, name: str) -> bool:
        return bool(self._values.get(name.lower()))

    def ints(self, name: str) -> list[int]:
        value = self.get(name)
        if value is None:
            return []
        return [int(v) for v in (value if isinstance(value, list) else [value])]

    def client(self) -> Client:
        return for_scheduler(self.get("Scheduler"))

    def pick(self, *names: str) -> dict[str, Any]:
        """The given parameters that were bound, under their PowerShell names."""
        return {n: self.get(n) for n in names if self.has(n)}


def _plain(value: Any) -> Any:
    """Converts pythonnet's CLR collection wrappers into lists and dicts."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return {str(k): _plain(value[k]) for k in value}
    if hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    return value


ENDED = ("Finished", "Failed", "Canceled")
PROGRESS: dict[str, Record] = {}  # call id -> how its wait is going, for the cmdlet's Write-Progress
SHOWN_IDS = 5  # ids named in a progress line before "and N more"


@command("Progress")
def progress(args: Args) -> list[Record]:
    """How the wait of call `Of` is going (asked by the cmdlet from its own thread while that call runs)."""
    record = PROGRESS.get(str(args.get("Of")))
    return [record] if record else []


def _some(ids: list[Any]) -> str:
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def _report(args: Args, what: str, left: list[Any], total: int, grace_end: float | None) -> None:
    """Publishes the wait's progress: which items, how many ended, how long is left of the grace period."""
    seconds = max(0, round(grace_end - time.time())) if grace_end is not None else -1
    status = f"Waiting for {what} {_some(left)} to end: {total - len(left)} of {total} ended"
    operation = (f"{seconds} s left of the grace period, then running tasks are killed" if seconds > 0
                 else "the grace period is over: ending the tasks" if seconds == 0 else "")
    PROGRESS[args.call_id] = {"__type__": "Progress", "Activity": f"Stopping {what}", "Status": status,
                              "CurrentOperation": operation, "PercentComplete": (total - len(left)) * 100 // total,
                              "SecondsRemaining": seconds, "Remaining": _some(left), "What": what}


def _grace_end(records: list[Record]) -> float | None:
    """When the last grace period of these jobs or tasks ends (HPC Pack's TaskCancelGracePeriod), if one runs."""
    ends = [datetime.fromisoformat(r["CancelGraceEnd"]).timestamp() for r in records if r.get("CancelGraceEnd")]
    return max(ends) if ends else None


def wait_until_ended(args: Args, ids: list[int]) -> dict[str, str]:
    """The jobs' states once they have all ended (or the head node's own deadline has passed)."""
    client = args.client()
    states: dict[str, str] = {}
    grace_end = _grace_end(client.call("get_jobs", ids=ids))

    def ended() -> bool:
        states.update(client.call("wait_jobs", ids=ids, timeout=WAIT_SLICE))
        left = [i for i in ids if states.get(str(i)) not in ENDED]
        _report(args, "job" if len(ids) == 1 else "jobs", left, len(ids), grace_end)
        return not left
    _wait(args, ended, "jobs")
    return states


def wait_until_task_ended(args: Args, address: dict[str, Any]) -> None:
    """Returns once the task (every subtask of a sweep) has ended, as Stop-HpcJob waits for jobs."""
    client = args.client()

    def ended() -> bool:
        units = client.call("get_tasks", job_id=address["job_id"], task_id=address["task_id"],
                            sub_id=address.get("sub_id") or None)
        left = [u["Id"] for u in units if u["State"] not in ENDED]
        _report(args, "task" if len(units) == 1 else "tasks", left, len(units), _grace_end(units))
        if not left:
            return True
        time.sleep(WAIT_SLICE / 10)
        return False
    _wait(args, ended, "tasks")


def _wait(args: Args, ended: Callable[[], bool], what: str) -> None:
    """Polls `ended` in short slices until it holds or a cancel's time limit has passed, so that a stop
    request from PowerShell ends the wait at once (the head node goes on with the cancel)."""
    deadline = time.monotonic() + float(args.client().call("cancel_time_limit"))
    try:
        while True:
            if args.call_id in STOPPED:
                raise HpcError("OperationStopped", f"Stopped while waiting for the {what} to end; the head node "
                               f"goes on ending them.")
            if ended() or time.monotonic() > deadline:
                return
    finally:
        PROGRESS.pop(args.call_id, None)


def error(error_id: str, message: str, target: Any = None) -> Record:
    return ErrorRecord(HpcError(error_id, message, target)).to_record()


def each(items: list[Any], action: Callable[[Any], list[Record]]) -> list[Record]:
    """The one per-item policy of every cmdlet that takes many items: an item that is refused becomes a
    non-terminating error record, and the others are still processed, in order."""
    out: list[Record] = []
    for item in items:
        try:
            out.extend(action(item))
        except HpcError as e:
            out.append(error(e.error_id, e.message, e.target))
    return out


def per_item(results: list[Record]) -> list[Record]:
    """Daemon per-item results -> objects and error records, in order."""
    out = []
    for entry in results:
        if "error" in entry:
            out.append(ErrorRecord(HpcError.from_wire(entry["error"])).to_record())
        elif entry.get("job") is not None:
            out.append(entry["job"])
    return out


def plan(target: str, action: str, key: Any) -> Record:
    return {"__type__": "Plan", "target": target, "action": action, "key": key}


def job_target(job: Record) -> str:
    name = f" '{job['Name']}'" if job.get("Name") else ""
    return f"Job {job['Id']}{name} ({job['State']}, owner {job['Owner']})"
