"""Cluster cmdlets: Get-HpcClusterProperty, Set-HpcClusterProperty, Get-HpcJobHistory."""

from __future__ import annotations

from datetime import UTC, datetime

from .nodes import parse_environment
from .registry import Args, Record, command, plan

SETTABLE = ("TaskCancelGracePeriod", "NodeReleaseTaskTimeout", "TtlCompletedJobs", "ExcludedNodesLimit")


@command("Get-HpcClusterProperty")
def get_cluster_property(args: Args) -> list[Record]:
    """HPC Pack's cluster parameters (-Parameter), the cluster's environment variables (-Environment), or
    both (neither switch); `HeadNode` (which head node answered) is always there and needs no administrator."""
    backend = args.backend()
    name = args.get("Name")
    values: dict[str, object] = {}
    if str(name).lower() != "headnode":
        if not args.flag("Environment"):
            values.update(backend.cluster_parameters())
        if not args.flag("Parameter"):
            values.update(backend.get_environment())
    if not args.flag("Environment"):
        values["HeadNode"] = backend.name
    return [{"__type__": "HpcVariable", "Name": k, "Value": str(v)} for k, v in values.items()
            if name is None or k.lower() == str(name).lower()]


@command("Set-HpcClusterProperty:plan")
def set_cluster_property_plan(args: Args) -> list[Record]:
    out = [plan(f"Cluster property {name}", f"Set-HpcClusterProperty: set to {args.get(name)}", name)
           for name in SETTABLE if args.has(name)]
    for variable, value in parse_environment(_environment(args)).items():
        action = f"set to '{value}'" if value is not None else "remove"
        out.append(plan(f"Cluster environment variable {variable}", f"Set-HpcClusterProperty: {action}",
                        f"env:{variable}"))
    return out


def _environment(args: Args) -> list[str]:
    value = args.get("Environment")
    return [] if value is None else [str(v) for v in (value if isinstance(value, list) else [value])]


@command("Set-HpcClusterProperty")
def set_cluster_property(args: Args) -> list[Record]:
    confirmed = args.get("Confirmed") or []
    values = {name: args.get(name) for name in SETTABLE if args.has(name) and name in confirmed}
    if values:
        args.backend().set_properties(values)
    environment = {k: v for k, v in parse_environment(_environment(args)).items() if f"env:{k}" in confirmed}
    if environment:
        args.backend().set_environment(environment)
    return []


@command("Get-HpcJobHistory")
def get_job_history(args: Args) -> list[Record]:
    """One HpcJobHistory record per job that ended in the range (HPC Pack's meaning); with -Audit or -JobId,
    the head node's audit events instead (HpcJobEvent: who did what to a job, and when)."""
    if not args.flag("Audit") and not args.has("JobId"):
        return args.backend().job_history(args.get("StartDate"), args.get("EndDate"))
    rows = args.backend().history(args.get("JobId"), args.get("StartDate"), args.get("EndDate"))
    return [{"__type__": "HpcJobEvent", "JobId": r["job_id"], "Event": r["event"], "Actor": r["actor"],
             "Message": r["message"], "Details": r["details"],
             "Time": datetime.fromtimestamp(r["time"], UTC).isoformat()} for r in rows]
