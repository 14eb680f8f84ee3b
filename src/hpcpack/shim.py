"""The function the C# module calls: `call(command, arguments) -> records`, which it receives as JSON
(`call_json`).

Each cmdlet family (a module of hpcpack.cmdlets) registers its commands when it is first imported, which
is on the first call of one of them: a fresh pwsh imports only what the commands it runs need. A command
returns plain records: objects ("__type__" names the .NET type), plans (target/action/key, for
ShouldProcess) and per-item errors ("__error__"). An exception it raises stops the whole cmdlet (a
terminating error), except that a head node that cannot be reached or refuses the connection is HPC Pack's
per-statement connection error: a non-terminating error record, which -ErrorAction SilentlyContinue silences.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from itertools import groupby
from typing import Any

from .backends import client
from .backends.contract import JobPage
from .cmdlets import registry
from .errors import ErrorRecord, HpcError

UNREACHABLE = ("CannotConnectWithScheduler", "AuthenticationFailed")
# The most used first (Tab completion among them): the fewest imports to find one.
FAMILIES = ("jobs", "completion", "tasks", "nodes", "cluster", "templates")


def call(command: str, arguments: Any) -> list[registry.Element]:
    handler = _handler(command)
    if handler is None:
        raise HpcError("InvalidOperation", f"The HPC backend has no command '{command}'.")
    args = registry.Args(dict(arguments))
    _trace(command, args)
    working = client.CALL.set(args.call_id)
    try:
        return registry.chunk(args.call_id, handler(args))
    except HpcError as e:
        if e.error_id in UNREACHABLE:
            return [ErrorRecord(e).to_record()]
        raise
    finally:
        registry.STOPPED.discard(args.call_id)
        client.CALL.reset(working)


def call_json(command: str, arguments: Any) -> bytes:
    """`call`'s records as UTF-8 JSON text (an array of objects), as the module reads them: one value
    across the boundary, read by .NET's JSON reader, instead of one pythonnet conversion per value (a
    listing of 5,000 jobs holds 400,000 of them: Get-HpcJob of 5,000 jobs took 790 ms with conversions,
    667 ms with JSON). A page of jobs goes as the head node sent it: Python neither reads nor writes it
    again (for 5,000 jobs, that took 140 ms)."""
    return b"[" + b",".join(_elements(call(command, arguments))) + b"]"


def _elements(answer: list[registry.Element]) -> Iterator[memoryview]:
    """The answer's array elements as JSON text: each run of records, and each page of jobs, as one piece."""
    for pages, items in groupby(answer, lambda item: isinstance(item, JobPage)):
        group = list(items)
        texts = [_page_text(page) for page in group] if pages else [to_json(group)]
        yield from (memoryview(text)[1:-1] for text in texts if len(text) > 2)  # (not an empty array)


def _page_text(page: Any) -> bytes | memoryview:
    return page.json if page.json is not None else to_json(page.records())


def to_json(value: Any) -> bytes:
    """Any value as UTF-8 JSON text, as the module reads it (records, an error's target). A lone surrogate,
    which is no Unicode text and which .NET's reader refuses, becomes U+FFFD."""
    text = _JSON.encode(value)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


# The standard library's encoder, not the head node's faster one (pydantic-core): importing that would
# add 40 ms to every pwsh's first cmdlet. Any other iterable (a set) is an array, and NaN is refused:
# JSON has none.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False,
                         default=list)


def _handler(command: str) -> registry.Handler | None:
    """The command's handler, importing cmdlet families until one has registered it."""
    for family in FAMILIES:
        if command in registry.COMMANDS:
            break
        importlib.import_module(f"{__package__}.cmdlets.{family}")
    return registry.COMMANDS.get(command)


def stop(call_id: str) -> None:
    """PowerShell's StopProcessing (Ctrl+C, PowerShell.Stop()): the call's waits end at once, and a reply
    it still waits for after registry.LET_GO_AFTER is no longer waited for."""
    registry.STOPPED.add(call_id)
    registry.let_go_later(call_id)


def _trace(command: str, args: registry.Args) -> None:
    """With HPCPACK_SHIM_TRACE=<file>, every call from PowerShell is appended there as a JSON line:
    what the shim passed, exactly (for the module's own tests and for debugging)."""
    path = os.environ.get("HPCPACK_SHIM_TRACE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"command": command, "args": args.as_dict()}, default=str) + "\n")
