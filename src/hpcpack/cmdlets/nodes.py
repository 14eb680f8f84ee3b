"""Node and cluster cmdlets: Get-HpcNode, Set-HpcNodeState, Get-HpcNodeStateHistory, Get-/New-/Add-/Remove-HpcGroup,
Get-HpcClusterOverview."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..backends.contract import NamedItem, NodeQuery
from ..errors import ErrorRecord, HpcError
from .registry import STOPPED, Args, Record, command, error, plan

POLL = 0.25  # seconds between looks at a draining node (Set-HpcNodeState without -Async)


def names(args: Args, *keys: str) -> list[str]:
    """The names bound to the first of `keys` that is bound; "A,B" in one string is two names (HPC Pack)."""
    for key in keys:
        value = args.get(key)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        return [part.strip() for v in values for part in str(v).split(",") if part.strip()]
    return []


def _named(items: list[NamedItem]) -> list[Record]:
    return [ErrorRecord(i.error).to_record() if i.error is not None else (i.record or {}) for i in items
            if i.error is not None or i.record is not None]


def _nodes_of(args: Args) -> list[str]:
    return names(args, "Confirmed", "Name", "Node", "NodeName")


@command("Get-HpcNode")
def get_node(args: Args) -> list[Record]:
    groups = names(args, "GroupName") + names(args, "Group")
    query = NodeQuery(names=names(args, "Name") or None, groups=groups or None,
                      states=names(args, "State") or None, templates=names(args, "TemplateName") or None,
                      locations=names(args, "Location") or None)
    records = args.backend().get_nodes(query)
    health = {h.lower() for h in names(args, "HealthState")}
    node_health = {h.lower() for h in names(args, "Health")}
    out: list[Record] = [r for r in records if (not health or str(r["HealthState"]).lower() in health)
                         and (not node_health or str(r["NodeHealth"]).lower() in node_health)]
    if query.names and not out and not (groups or query.states or query.templates or health or node_health):
        return [error("InvalidArgument", f"The node(s) {', '.join(query.names)} do not exist.",
                      ",".join(query.names))]
    return out


@command("Set-HpcNodeState:plan")
def set_node_state_plan(args: Args) -> list[Record]:
    items = args.backend().plan_node_state(_nodes_of(args), str(args.get("State")), args.flag("Force"))
    return [plan(f"Node {i.name} ({i.record or ''})".replace(" ()", ""), f"Set-HpcNodeState {args.get('State')}: "
                 f"{i.action}", i.name) if i.error is None else ErrorRecord(i.error).to_record() for i in items]


@command("Set-HpcNodeState")
def set_node_state(args: Args) -> list[Record]:
    """Sets the nodes' state; without -Async, waits until each has it (a drain ends when its tasks end)."""
    backend = args.backend()
    target = str(args.get("State"))
    items = backend.set_node_state(_nodes_of(args), target, args.flag("Force"))
    if args.flag("Async"):
        return _named(items)
    pending = {i.name for i in items if i.error is None and i.record is not None
               and str(i.record["State"]).lower() != target.lower()}
    while pending and args.call_id not in STOPPED:
        time.sleep(POLL)
        for record in backend.get_nodes(NodeQuery(names=sorted(pending))):
            if str(record["State"]).lower() == target.lower() or str(record["State"]) == "Online":
                pending.discard(str(record["NetBiosName"]))
    done = {str(r["NetBiosName"]): r for r in backend.get_nodes(NodeQuery(names=[i.name for i in items
                                                                                if i.error is None]))} \
        if any(i.error is None for i in items) else {}
    return [ErrorRecord(i.error).to_record() if i.error is not None else done.get(i.name, i.record or {})
            for i in items]


def _when(value: Any) -> str:
    return datetime.fromtimestamp(float(value), UTC).isoformat()


@command("Get-HpcNodeStateHistory")
def get_node_state_history(args: Args) -> list[Record]:
    rows = args.backend().node_history(names(args, "Name", "Node") or None, args.get("StartDate"),
                                       args.get("EndDate"))
    return [{"__type__": "HpcNodeHistory", "NodeName": r["node"], "Time": _when(r["time"]), "State": r["state"],
             "PreviousState": r["previous"] or None, "Actor": r["actor"], "Reason": r["reason"]} for r in rows]


@command("Get-HpcGroup")
def get_group(args: Args) -> list[Record]:
    wanted = names(args, "Name")
    records = args.backend().get_groups(wanted or None, args.ints("Id") or None)
    found = {str(r["Name"]).lower() for r in records}
    missing = [n for n in wanted if n.lower() not in found]
    return records + [error("InvalidArgument", f"The node group '{n}' does not exist.", n) for n in missing]


@command("New-HpcGroup")
def new_group(args: Args) -> list[Record]:
    return [args.backend().new_group(str(args.get("Name")), str(args.get("Description") or ""))]


@command("Add-HpcGroup")
def add_group(args: Args) -> list[Record]:
    items = args.backend().change_groups(names(args, "Name"), args.ints("Id"), names(args, "NodeName", "Node"), True)
    return [ErrorRecord(i.error).to_record() for i in items if i.error is not None]


def _group_keys(args: Args) -> tuple[list[str], list[int]]:
    confirmed = args.get("Confirmed")
    if confirmed is not None:
        return [str(c) for c in (confirmed if isinstance(confirmed, list) else [confirmed])], []
    return names(args, "Name"), args.ints("Id")


@command("Remove-HpcGroup:plan")
def remove_group_plan(args: Args) -> list[Record]:
    backend = args.backend()
    group_names, ids = _group_keys(args)
    nodes = names(args, "NodeName", "Node")
    out: list[Record] = []
    records = backend.get_groups(group_names or None, ids or None)
    by_name = {str(r["Name"]).lower() for r in records}
    for name in group_names:
        if name.lower() not in by_name:
            out.append(error("InvalidArgument", f"The node group '{name}' does not exist.", name))
    found_ids = {int(r["Id"]) for r in records}
    out += [error("InvalidArgument", f"The node group {i} does not exist.", i) for i in ids if i not in found_ids]
    for record in records:
        action = (f"Remove-HpcGroup: remove node(s) {', '.join(nodes)} from the group" if nodes
                  else f"Remove-HpcGroup: delete the group and its {record['NodeCount']} membership(s)")
        out.append(plan(f"Node group '{record['Name']}' (Id {record['Id']})", action, record["Name"]))
    return out


@command("Remove-HpcGroup")
def remove_group(args: Args) -> list[Record]:
    group_names = names(args, "Confirmed")
    if not group_names:
        return []
    items = args.backend().change_groups(group_names, [], names(args, "NodeName", "Node") or None, False)
    return [ErrorRecord(i.error).to_record() for i in items if i.error is not None]


@command("Get-HpcClusterOverview")
def get_cluster_overview(args: Args) -> list[Record]:
    backend = args.backend()
    return [{"__type__": "ClusterOverview", **backend.cluster_overview(), "Scheduler": backend.name}]


def parse_environment(values: list[str]) -> dict[str, str | None]:
    """Set-HpcClusterProperty -Environment: NAME=value sets, NAME= removes (HPC Pack's rule)."""
    out: dict[str, str | None] = {}
    for text in values:
        name, sep, value = str(text).partition("=")
        if not sep or not name.strip():
            raise HpcError("InvalidArgument", f"'{text}' is not NAME=value.", "Environment")
        out[name.strip()] = value if value != "" else None
    return out
