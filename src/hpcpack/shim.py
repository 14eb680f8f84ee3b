"""The one function the C# module calls: `call(command, arguments) -> records`.

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
from typing import Any

from .cmdlets import registry
from .errors import ErrorRecord, HpcError

UNREACHABLE = ("CannotConnectWithScheduler", "AuthenticationFailed")
# The most used first (Tab completion among them): the fewest imports to find one.
FAMILIES = ("jobs", "completion", "tasks", "nodes", "cluster", "templates")


def call(command: str, arguments: Any) -> list[dict[str, Any]]:
    handler = _handler(command)
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


def _handler(command: str) -> registry.Handler | None:
    """The command's handler, importing cmdlet families until one has registered it."""
    for family in FAMILIES:
        if command in registry.COMMANDS:
            break
        importlib.import_module(f"{__package__}.cmdlets.{family}")
    return registry.COMMANDS.get(command)


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
