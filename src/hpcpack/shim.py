"""The one function the C# module calls: `call(command, arguments) -> records`.

Each cmdlet family registers its commands here. A command returns plain records: objects
("__type__" names the .NET type), plans (target/action/key, for ShouldProcess) and per-item
errors ("__error__"). An exception it raises stops the whole cmdlet (a terminating error).
"""

from __future__ import annotations

from typing import Any

from .cmdlets import registry
from .cmdlets import cluster, jobs, tasks  # noqa: F401  (they register their commands)
from .errors import HpcError


def call(command: str, arguments: Any) -> list[dict[str, Any]]:
    handler = registry.COMMANDS.get(command)
    if handler is None:
        raise HpcError("InvalidOperation", f"The HPC backend has no command '{command}'.")
    return handler(registry.Args(dict(arguments)))
