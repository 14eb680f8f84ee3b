"""The one function the C# module calls: `call(command, arguments) -> records`.

Each cmdlet family registers its commands here. A command returns plain records: objects
("__type__" names the .NET type), plans (target/action/key, for ShouldProcess) and per-item
errors ("__error__"). An exception it raises stops the whole cmdlet (a terminating error), except that a
head node that cannot be reached or refuses the connection is HPC Pack's per-statement connection error:
a non-terminating error record, which -ErrorAction SilentlyContinue silences.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .cmdlets import cluster, jobs, nodes, registry, tasks, templates  # noqa: F401  (they register their commands)
from .errors import ErrorRecord, HpcError

UNREACHABLE = ("CannotConnectWithScheduler", "AuthenticationFailed")


def call(command: str, arguments: Any) -> list[dict[str, Any]]:
    handler = registry.COMMANDS.get(command)
    if handler is None:
        raise HpcError("InvalidOperation", f"The HPC backend has no command '{command}'.")
    args = registry.Args(dict(arguments))
    _trace(command, args)
    try:
        return registry.chunk(args.call_id, handler(args))
    except HpcError as e:
        if e.error_id in UNREACHABLE:
            return [ErrorRecord(e).to_record()]
        raise
    finally:
        registry.STOPPED.discard(args.call_id)


def stop(call_id: str) -> None:
    """PowerShell's StopProcessing (Ctrl+C, PowerShell.Stop()): the call's waits end at once."""
    registry.STOPPED.add(call_id)


def _trace(command: str, args: registry.Args) -> None:
    """With HPCPACK_SHIM_TRACE=<file>, every call from PowerShell is appended there as a JSON line:
    what the shim passed, exactly (for the module's own tests and for debugging)."""
    path = os.environ.get("HPCPACK_SHIM_TRACE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"command": command, "args": args.as_dict()}, default=str) + "\n")
