"""Where the head node keeps its state, how a scheduler name finds it, and its configuration file."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import HpcError

SYSTEM_STATE_DIR = Path("/var/lib/hpcpack")
SOCKET_NAME = "headnode.sock"
CONFIG_NAME = "headnode.yaml"
LOCAL_NAMES = {"", ".", "localhost", "127.0.0.1", "::1"}

# Cluster properties the head node understands, with HPC Pack's defaults (seconds unless noted).
PROPERTY_DEFAULTS: dict[str, int] = {
    "TaskCancelGracePeriod": 15,
    "NodeReleaseTaskTimeout": 15,
    "TtlCompletedJobs": 5,  # days
    "ExcludedNodesLimit": 10,
}


def machine_wide() -> bool:
    """True on a machine where 'make install' as root set up one head node for every user (in /var/lib/hpcpack)."""
    return (SYSTEM_STATE_DIR / CONFIG_NAME).exists()


def default_state_dir() -> Path:
    """Which head node a user reaches by default, root or not: HPCPACK_HOME, else the machine's head node when
    installed machine-wide, else the user's own (XDG_STATE_HOME or ~/.local/state, /hpcpack)."""
    explicit = os.environ.get("HPCPACK_HOME")
    if explicit:
        return Path(explicit)
    if machine_wide():
        return SYSTEM_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hpcpack"


@dataclass(frozen=True)
class Endpoint:
    """A head node a client can reach; `state_dir` is set when the client may start it itself."""

    socket_path: Path
    state_dir: Path | None
    name: str


def resolve(scheduler: list[str] | str | None) -> list[Endpoint]:
    """Scheduler names -> endpoints to try in order (several names are alternative head nodes). Without names:
    CCP_SCHEDULER (comma-separated, as HPC Pack has it), else this machine's default head node."""
    names = [scheduler] if isinstance(scheduler, str) else list(scheduler or [])
    names = names or os.environ.get("CCP_SCHEDULER", "").split(",")
    names = [n.strip() for n in names if n and n.strip()] or [""]
    return [_endpoint(n) for n in names]


def _endpoint(name: str) -> Endpoint:
    if name.startswith("unix:") or name.startswith("/"):
        path = Path(name.removeprefix("unix:"))
        return Endpoint(path, None, name)
    if name.lower() in LOCAL_NAMES or name.lower() == socket.gethostname().lower():
        state = default_state_dir()
        # Anyone may start their own head node when none runs; only root starts the machine's.
        may_start = state != SYSTEM_STATE_DIR or os.geteuid() == 0
        return Endpoint(state / SOCKET_NAME, state if may_start else None, name or socket.gethostname())
    raise HpcError("CannotConnectWithScheduler",
                   f"Cannot connect to the head node '{name}': only the local head node is supported "
                   "(use localhost, this machine's name, or unix:<socket path>).", name)


@dataclass(frozen=True)
class Node:
    name: str
    cores: int


@dataclass
class HeadNodeConfig:
    administrators: set[str] = field(default_factory=set)
    admin_groups: set[str] = field(default_factory=set)
    nodes: list[Node] = field(default_factory=list)
    socket_mode: int = 0o600

    @classmethod
    def load(cls, state_dir: Path) -> HeadNodeConfig:
        import yaml  # only the head node reads its configuration; clients need the standard library only

        path = state_dir / CONFIG_NAME
        data: dict[str, Any] = {}
        if path.exists():
            loaded = yaml.safe_load(path.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping at the top level")
            data = loaded
        nodes = [Node(str(n["name"]), int(n["cores"])) for n in data.get("nodes") or []]
        if not nodes:
            nodes = [Node(socket.gethostname().upper(), os.cpu_count() or 1)]
        return cls(
            administrators={str(u) for u in data.get("administrators") or []},
            admin_groups={str(g) for g in data.get("admin_groups") or []},
            nodes=nodes,
            socket_mode=int(str(data.get("socket_mode", "0600")), 8),
        )
