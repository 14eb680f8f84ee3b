"""Tab completion: the values the module's argument completers (dotnet/Shim/Completers.cs) offer.

Each answer is a short list, never a chunked one: at most LIMIT candidates that begin with the word typed
so far, picked here from the jobs the head node lists page by page, so a completer holds no more than that
whatever the size of the store. Which jobs a cmdlet's job id offers is decided here alone (PURPOSES).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from ..backends.contract import JobQuery
from ..errors import invalid_argument
from ..model.states import job_states_taking
from .registry import Args, Record, command

LIMIT = 100  # candidates in one answer: a longer completion list helps nobody, and costs every Tab

# The job states each cmdlet's job id is offered in: the states in which the head node takes the change
# (model.states' transitions): Stop-HpcJob and Stop-HpcTask "cancel" (a Canceling job too: a second stop
# forces it), Submit-HpcJob submits or requeues. None: every state.
PURPOSES: dict[str, tuple[str, ...] | None] = {"view": None, "change": None, "stop": ("cancel",),
                                               "submit": ("submit", "requeue")}
# Purposes that change a job: only its owner or an administrator may (HPC Pack), so a user who is neither
# is offered only their own jobs.
CHANGES = frozenset({"change", "stop", "submit"})


def _purpose(args: Args) -> str:
    purpose = str(args.get("For", "view")).lower()
    if purpose not in PURPOSES:
        raise invalid_argument(f"No completion is for '{purpose}'.", "For")
    return purpose


def _jobs(args: Args, purpose: str, fields: tuple[str, ...]) -> Iterator[Record]:
    """The jobs the completion may offer, with only `fields` (and Id, which pages), oldest first, paged by
    the backend."""
    backend = args.backend()
    owner = None
    if purpose in CHANGES:
        caller = backend.ping()
        owner = None if caller.get("admin") else str(caller.get("user"))
    events = PURPOSES[purpose]
    states = "All" if events is None else [state.name or "" for state in job_states_taking(*events)]
    return backend.query_jobs(JobQuery(state=states, owner=owner, fields=tuple(dict.fromkeys(("Id", *fields)))))


def _typed(args: Args) -> str:
    return str(args.get("Typed", "")).lower()


@command("Complete-JobId")
def complete_job_id(args: Args) -> list[Record]:
    """The newest LIMIT jobs whose id begins with what is typed, newest first, with how each is shown."""
    typed = _typed(args)
    jobs = _jobs(args, _purpose(args), ("Id", "Name", "State", "Owner"))
    newest = deque((j for j in jobs if str(j["Id"]).startswith(typed)), maxlen=LIMIT)
    return [_job_candidate(j) for j in reversed(newest)]


def _job_candidate(job: Record) -> Record:
    name = f"{job['Name']} " if job.get("Name") else ""
    return {"Value": str(job["Id"]), "Shown": f"{job['Id']} {name}({job['State']}, {job['Owner']})"}


@command("Complete-JobValue")
def complete_job_value(args: Args) -> list[Record]:
    """The first LIMIT distinct values (sorted, case-insensitively) of some properties of every visible job
    that begin with what is typed: owners, names, projects, templates, node groups, nodes."""
    fields = tuple(str(p) for p in (args.get("Property") or []))
    typed = _typed(args)
    found: dict[str, str] = {}
    for job in _jobs(args, "view", fields):
        for value in _texts(job.get(field) for field in fields):
            if value and value.lower().startswith(typed):
                found.setdefault(value.lower(), value)
    return [{"Value": found[key]} for key in sorted(found)[:LIMIT]]


def _texts(values: Iterable[Any]) -> Iterator[str]:
    """Each value's texts: a list's items, a comma-separated text's parts."""
    for value in values:
        if isinstance(value, list):
            yield from (str(v) for v in value if v is not None)
        elif value is not None:
            yield from (part.strip() for part in str(value).split(","))
