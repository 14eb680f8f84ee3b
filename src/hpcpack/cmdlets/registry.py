"""Registration of cmdlet commands and the helpers they share."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..backends import client, stopping
from ..backends.contract import Backend, Item, JobPage, Progress
from ..backends.headnode import backend_for
from ..backends.stopping import Report, Stopped
from ..errors import ErrorRecord, HpcError

Record = dict[str, Any]
Element = Record | JobPage  # of an answer: a record, or a page of jobs as the head node sent them (a listing)
Answer = Sequence[Element] | Iterator[Element]  # an iterator is handed out in chunks
Handler = Callable[["Args"], Answer]
COMMANDS: dict[str, Handler] = {}
CURSORS: dict[str, Iterator[Element]] = {}  # call id -> the rest of a long answer, fetched with "More"
FETCHING: set[str] = set()  # calls whose next chunk is being made ("More" runs)
CLOSED: set[str] = set()  # of those, calls let go of meanwhile ("Close"): their rest is not kept
CHUNK = 1000  # records in one answer to PowerShell (or whole pages of at least as many); the rest wait in CURSORS
FIRST_CHUNK = 100  # the first answer: the pipeline sees its first objects soon (Select-Object -First stops early)
STOPPED: set[str] = set()  # ids of calls whose cmdlet PowerShell asked to stop
# Seconds a call that PowerShell stopped, or whose rest it let go of, may still wait for a head node before
# its connection is shut (the module waits StopGrace, 2 s, for a stopped call, and not at all for a "More").
LET_GO_AFTER = 3.0


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

    def backend(self) -> Backend:
        return backend_for(self.get("Scheduler"))

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


PROGRESS: dict[str, Record] = {}  # call id -> how its wait is going, for the cmdlet's Write-Progress


@command("Progress")
def progress(args: Args) -> list[Record]:
    """How the wait of call `Of` is going (asked by the cmdlet from its own thread while that call runs)."""
    record = PROGRESS.get(str(args.get("Of")))
    return [record] if record else []


def chunk(call_id: str, records: Answer, size: int = FIRST_CHUNK) -> list[Element]:
    """A list as it is; an iterator's next `size` records (a page counts as its jobs: the chunk ends
    with the page that makes it up), then a "More" marker if it has more (the module writes them and
    asks for "More": the rest is only read if the pipeline wants it)."""
    if not isinstance(records, Iterator):
        return list(records)
    out: list[Element] = []
    count = 0
    for item in records:
        out.append(item)
        count += item.count if isinstance(item, JobPage) else 1
        if count >= size or (isinstance(item, JobPage) and item.more):  # (a page cut by its size is enough)
            break
    else:
        return out
    if call_id not in CLOSED:
        CURSORS[call_id] = records
    out.append({"__type__": "More"})
    return out


@command("More")
def more(args: Args) -> list[Element]:
    """The next chunk of call `Of`'s answer."""
    call_id = str(args.get("Of"))
    FETCHING.add(call_id)  # before the cursor is taken: a Close from now on knows a chunk is being made
    working = client.CALL.set(call_id)  # its requests are the call's (a Close lets go of them)
    try:
        rest = CURSORS.pop(call_id, None)
        return chunk(call_id, rest, CHUNK) if rest is not None else []
    finally:
        FETCHING.discard(call_id)
        CLOSED.discard(call_id)
        client.CALL.reset(working)


@command("Close")
def close(args: Args) -> list[Record]:
    """Call `Of`'s pipeline stopped early: its answer's rest is not wanted, and is let go of at once, or,
    when its next chunk is being made (the module asks for it ahead), as soon as that is made: the
    module does not wait for a chunk it will not write (behind a head node that stopped answering, it
    would wait for ever)."""
    call_id = str(args.get("Of"))
    if CURSORS.pop(call_id, None) is None and call_id in FETCHING:
        CLOSED.add(call_id)
    let_go_later(call_id)  # (its next page may be asked for ahead, on a thread of its own: query_job_pages)
    return []


def let_go_later(call_id: str) -> None:
    """After LET_GO_AFTER, shuts the connection that call `call_id` still waits on, if it does (see
    client.abandon): PowerShell no longer waits for it."""
    timer = threading.Timer(LET_GO_AFTER, client.abandon, [call_id])
    timer.daemon = True
    timer.start()


@contextmanager
def waiting(args: Args) -> Iterator[tuple[Report, Stopped]]:
    """What a stop-and-wait needs from the cmdlet: where to publish its progress (for Write-Progress)
    and whether PowerShell asked the cmdlet to stop."""
    def report(progress: Progress) -> None:
        PROGRESS[args.call_id] = {"__type__": "Progress", **stopping.describe(progress)}
    try:
        yield report, lambda: args.call_id in STOPPED
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


def per_item(items: list[Item]) -> list[Record]:
    """Per-item answers -> their records and non-terminating error records, in order."""
    out = []
    for item in items:
        if item.error is not None:
            out.append(ErrorRecord(item.error).to_record())
        elif item.record is not None:
            out.append(item.record)
    return out


def plans(items: list[Item], describe: Callable[[Record], str]) -> list[Record]:
    """Per-item answers -> ShouldProcess plans (or error records), in order."""
    return [plan(job_target(i.record), describe(i.record), i.id) if i.record is not None and i.error is None
            else ErrorRecord(i.error or HpcError("InvalidJobId", f"No job {i.id}.", i.id)).to_record()
            for i in items]


def plan(target: str, action: str, key: Any) -> Record:
    return {"__type__": "Plan", "target": target, "action": action, "key": key}


def job_target(job: Record) -> str:
    name = f" '{job['Name']}'" if job.get("Name") else ""
    return f"Job {job['Id']}{name} ({job['State']}, owner {job['Owner']})"
