"""Where the head node keeps its state, how a scheduler name finds it (a local socket or a remote head node),
and its configuration file."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_STATE_DIR = Path("/var/lib/hpcpack")
SOCKET_NAME = "headnode.sock"
CONFIG_NAME = "headnode.yaml"
LOCAL_NAMES = {"", ".", "localhost", "127.0.0.1", "::1"}
DEFAULT_PORT = 5800  # a remote head node's TCP port unless headnode.yaml or the name says otherwise

# Cluster properties the head node understands, with HPC Pack's defaults (seconds unless noted).
PROPERTY_DEFAULTS: dict[str, int] = {
    "TaskCancelGracePeriod": 15,
    "NodeReleaseTaskTimeout": 15,
    "TtlCompletedJobs": 5,  # days
    "ExcludedNodesLimit": 10,
}

# HPC Pack's other cluster parameters, shown by Get-HpcClusterProperty with their defaults. This head node
# reads JobRetryCount/TaskRetryCount nowhere yet; they are shown (and kept) as HPC Pack has them.
CLUSTER_PARAMETERS: dict[str, str] = {
    "SchedulingMode": "Queued",
    "PreemptionType": "Graceful",
    "PriorityBias": "MediumBias",
    "JobRetryCount": "3",
    "TaskRetryCount": "3",
    "JobCleanupHour": "2",
    "HeartbeatInterval": "30",
    "InactivityCount": "3",
    "SubmissionFilterTimeout": "15",
    "ActivationFilterTimeout": "15",
    "DefaultHoldDuration": "900",
    "AllowNewUserConnections": "True",
    "AutomaticGrowthEnabled": "True",
    "AutomaticShrinkEnabled": "True",
    "EmailNotificationEnabled": "False",
}

BUILTIN_GROUPS = {"HeadNodes": "The head nodes of the cluster.",
                  "ComputeNodes": "The compute nodes of the cluster."}
DEFAULT_NODE_TEMPLATE = "Default ComputeNode Template"


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
    """A head node a client can reach: a Unix socket (`socket_path`; `state_dir` is set when the client may
    start it itself), or a remote one over TCP with MUNGE (`address`). `problem` explains a name that cannot
    be used at all (an https:// address); connecting to it fails with that message."""

    socket_path: Path | None
    state_dir: Path | None
    name: str
    address: tuple[str, int] | None = None
    problem: str | None = None

    def describe(self) -> str:
        """Where it is, for messages: the socket path or host:port."""
        if self.address is not None:
            return format_address(self.address)
        return str(self.socket_path or self.name)


def resolve(scheduler: list[str] | str | None) -> list[Endpoint]:
    """Scheduler names -> endpoints to try in order (several names are alternative head nodes, as HPC Pack's
    high-availability head nodes are). Without names: CCP_SCHEDULER (comma-separated, as HPC Pack has it),
    else this machine's default head node. Each name may itself be a comma-separated list (HPC Pack 2016's
    form). Never raises: a name that cannot work fails when used."""
    names = [scheduler] if isinstance(scheduler, str) else list(scheduler or [])
    names = names or os.environ.get("CCP_SCHEDULER", "").split(",")
    names = [n.strip() for name in names for n in (name or "").split(",") if n.strip()] or [""]
    return [_endpoint(n) for n in names]


def _endpoint(name: str) -> Endpoint:
    if name.startswith("unix:") or name.startswith("/"):
        path = Path(name.removeprefix("unix:"))
        return Endpoint(path, None, name)
    if is_local_name(name):
        state = default_state_dir()
        # Anyone may start their own head node when none runs; only root starts the machine's.
        may_start = state != SYSTEM_STATE_DIR or os.geteuid() == 0
        return Endpoint(state / SOCKET_NAME, state if may_start else None, name or socket.gethostname())
    if "://" in name:
        return Endpoint(None, None, name, problem=f"'{name}' is an address of HPC Pack's REST front end, which "
                        "this module does not speak; name the head node itself: a host name, host:port, an IP "
                        f"address (TCP port {DEFAULT_PORT} unless given, MUNGE authentication), a local name or "
                        "unix:<socket path>")
    try:
        return Endpoint(None, None, name, address=parse_address(name))
    except ValueError as e:
        return Endpoint(None, None, name, problem=str(e))


def is_local_name(name: str) -> bool:
    """A name for this machine's own head node: empty, localhost, or this machine's host name (short or
    fully qualified) without a port; that reaches the local head node, not a TCP loop to itself."""
    lowered = name.lower()
    if lowered in LOCAL_NAMES:
        return True
    host = socket.gethostname().lower()
    return lowered in (host, host.split(".")[0], socket.getfqdn().lower())


def parse_address(text: str, default_host: str | None = None) -> tuple[str, int]:
    """'host', 'host:port', 'v4', '[v6]:port' or a bare IPv6 address -> (host, port), the port defaulting
    to DEFAULT_PORT. Raises ValueError for a bad port or an empty host (unless `default_host`)."""
    host, port = text.strip(), ""
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":")
    elif host.count(":") == 1:
        host, port = host.split(":")
    host = host or (default_host or "")
    if not host:
        raise ValueError(f"'{text}' names no host")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"'{text}': the port must be a number from 1 to 65535")
    return host, int(port) if port else DEFAULT_PORT


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Node:
    name: str
    cores: int
    sockets: int = 1
    memory: int = 0  # MB
    groups: tuple[str, ...] = ("ComputeNodes",)
    template: str = DEFAULT_NODE_TEMPLATE
    location: str = ""

    @classmethod
    def from_yaml(cls, entry: dict[str, Any]) -> Node:
        """One entry of `nodes:`; memory (MB) defaults to this machine's, every node is in ComputeNodes."""
        groups = entry.get("groups") or []
        if isinstance(groups, str):
            groups = [g.strip() for g in groups.split(",")]
        names = ["ComputeNodes", *(str(g) for g in groups if str(g).strip())]
        unique = tuple(dict.fromkeys(names))
        return cls(name=str(entry["name"]), cores=int(entry["cores"]), sockets=int(entry.get("sockets") or 1),
                   memory=int(entry.get("memory") or machine_memory_mb()), groups=unique,
                   template=str(entry.get("template") or DEFAULT_NODE_TEMPLATE),
                   location=str(entry.get("location") or ""))


def machine_memory_mb() -> int:
    """This machine's memory in MB (/proc/meminfo), 0 when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def machine_sockets() -> int:
    """This machine's processor sockets (distinct physical ids in /proc/cpuinfo), at least 1."""
    try:
        with open("/proc/cpuinfo") as f:
            ids = {line.split(":")[1].strip() for line in f if line.startswith("physical id")}
    except OSError:
        return 1
    return max(1, len(ids))


@dataclass
class HeadNodeConfig:
    administrators: set[str] = field(default_factory=set)
    admin_groups: set[str] = field(default_factory=set)
    nodes: list[Node] = field(default_factory=list)
    socket_mode: int = 0o600
    listen: list[tuple[str, int]] = field(default_factory=list)  # TCP addresses for remote clients (MUNGE)
    munge_socket: str | None = None  # the munged that checks remote clients' credentials (default: the system's)
    path_map: list[tuple[str, str]] = field(default_factory=list)  # Windows prefix -> Linux folder (model.paths)
    engine: str = "local"  # "local": tasks run on this machine; "slurm": Slurm allocates and launches
    slurm_conf: str | None = None  # SLURM_CONF for Slurm's commands (default: Slurm's own /etc/slurm/slurm.conf)

    @classmethod
    def load(cls, state_dir: Path) -> HeadNodeConfig:
        import yaml  # only the head node reads its configuration; clients need the standard library only

        from .model.paths import parse_rules

        path = state_dir / CONFIG_NAME
        data: dict[str, Any] = {}
        if path.exists():
            loaded = yaml.safe_load(path.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping at the top level")
            data = loaded
        nodes = [Node.from_yaml(n) for n in data.get("nodes") or []]
        engine = str(data.get("engine") or "local")
        if engine not in ("local", "slurm"):
            raise ValueError(f"{path}: engine must be 'local' or 'slurm', not '{engine}'")
        if not nodes and engine == "local":  # this machine: the head node is also the compute node
            nodes = [Node(socket.gethostname().upper(), os.cpu_count() or 1, machine_sockets(), machine_memory_mb(),
                          ("HeadNodes", "ComputeNodes"))]
        seen: set[str] = set()
        for node in nodes:
            if node.name.lower() in seen:
                raise ValueError(f"{path}: the node {node.name} is listed twice")
            seen.add(node.name.lower())
        return cls(
            administrators={str(u) for u in data.get("administrators") or []},
            admin_groups={str(g) for g in data.get("admin_groups") or []},
            nodes=nodes,
            socket_mode=int(str(data.get("socket_mode", "0600")), 8),
            listen=[parse_address(str(a), default_host="0.0.0.0") for a in data.get("listen") or []],
            munge_socket=str(data["munge_socket"]) if data.get("munge_socket") else None,
            path_map=parse_rules(data.get("path_map")),
            engine=engine,
            slurm_conf=str(data["slurm_conf"]) if data.get("slurm_conf") else None,
        )
