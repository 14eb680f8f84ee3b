"""Entry point of the PowerShell module: one function the C# shim calls for every cmdlet."""
from typing import Any


def call(command: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"__type__": "HpcVariable", "Name": command, "Value": repr(sorted(args.items()))}]
