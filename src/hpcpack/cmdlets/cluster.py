"""Cluster cmdlets: Get-HpcClusterProperty, Set-HpcClusterProperty, Get-HpcJobHistory."""

from __future__ import annotations

from datetime import UTC, datetime

from .registry import Args, Record, command, plan

SETTABLE = ("TaskCancelGracePeriod", "NodeReleaseTaskTimeout", "TtlCompletedJobs", "ExcludedNodesLimit")


@command("Get-HpcClusterProperty")
def get_cluster_property(args: Args) -> list[Record]:
    backend = args.backend()
    name = args.get("Name")
    # Which head node this is (README, "The head node") needs no administrator, unlike the properties.
    values: dict[str, object] = {} if str(name).lower() == "headnode" else dict(backend.get_properties())
    values["HeadNode"] = backend.name
    return [{"__type__": "HpcVariable", "Name": k, "Value": str(v)} for k, v in values.items()
            if name is None or k.lower() == str(name).lower()]


@command("Set-HpcClusterProperty:plan")
def set_cluster_property_plan(args: Args) -> list[Record]:
    return [plan(f"Cluster property {name}", f"Set-HpcClusterProperty: set to {args.get(name)}", name)
            for name in SETTABLE if args.has(name)]


@command("Set-HpcClusterProperty")
def set_cluster_property(args: Args) -> list[Record]:
    confirmed = args.get("Confirmed") or []
    values = {name: args.get(name) for name in SETTABLE if args.has(name) and name in confirmed}
    if values:
        args.backend().set_properties(values)
    return []


@command("Get-HpcJobHistory")
def get_job_history(args: Args) -> list[Record]:
    rows = args.backend().history(args.get("JobId"), args.get("StartDate"), args.get("EndDate"))
    return [{"__type__": "HpcJobHistory", "JobId": r["job_id"], "Event": r["event"], "Actor": r["actor"],
             "Message": r["message"], "Details": r["details"],
             "Time": datetime.fromtimestamp(r["time"], UTC).isoformat()} for r in rows]
