"""The requests about the cluster rather than one job: audit and per-job history, job templates,
cluster properties and environment, nodes, node groups and the overview. Part of `Requests`
(requests.py), which adds the job and task verbs and the dispatch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import CLUSTER_PARAMETERS, PROPERTY_DEFAULTS
from ..errors import HpcError, invalid_argument
from ..identity import Caller
from ..model import jobspec, templates
from ..model.objects import history_record
from ..model.states import JobState, TaskState
from ..wire import operations as ops
from .core import ENDED_STATES
from .headnode import HeadNode

if TYPE_CHECKING:
    from .daemon import Daemon


def moment(value: str | int | float | None, what: str) -> float | None:
    """A date and time (ISO 8601 text or POSIX seconds) as POSIX seconds; None for none."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    return jobspec.parse_time(value, what)


class ClusterRequests:
    head: HeadNode
    daemon: Daemon

    def op_history(self, caller: Caller, params: ops.History) -> list[dict[str, Any]]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read the job history; {caller.name} "
                           "is not one.")
        rows: list[dict[str, Any]] = self.head.store.history(params.job_id, moment(params.start, "StartDate"),
                                                             moment(params.end, "EndDate"))
        return rows

    def op_job_history(self, caller: Caller, params: ops.JobHistory) -> list[dict[str, Any]]:
        """One record per job that ended (Finished, Failed, Canceled) in [start, end), oldest end first:
        HPC Pack's HpcJobHistory (administrators only, as there)."""
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read the job history; {caller.name} "
                           "is not one.")
        start, end = moment(params.start, "StartDate"), moment(params.end, "EndDate")
        jobs = self.head.store.load_jobs(states=[int(s) for s in ENDED_STATES], ended_after=start, ended_before=end)
        return [history_record(job) for job in sorted(jobs, key=lambda j: (j.end_time or 0, j.id))]

    def op_get_templates(self, caller: Caller, params: ops.TemplateName) -> list[dict[str, Any]]:
        """Every template (anyone may list them, as on HPC Pack), or the one named (InvalidJobTemplate)."""
        found = [self.head.template(params.name)] if params.name else self.head.templates()
        return [t.to_record(self.head.name) for t in found]

    def op_put_template(self, caller: Caller, params: ops.PutTemplate) -> dict[str, Any]:
        template = templates.JobTemplate(params.name, params.description, list(params.users),
                                         [templates.TemplateItem(**i.model_dump()) for i in params.items])
        return self.head.put_template(caller, template, params.replace).to_record(self.head.name)

    def op_remove_template(self, caller: Caller, params: ops.TemplateName) -> dict[str, Any]:
        if not params.name:
            raise invalid_argument("Name the template to remove.", "Name")
        self.head.remove_template(caller, params.name)
        return {"removed": params.name}

    def op_get_properties(self, caller: Caller, params: ops.Request) -> dict[str, int]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read cluster properties; {caller.name} "
                           "is not one.")
        return {name: self.head.property(name) for name in PROPERTY_DEFAULTS}

    def op_set_property(self, caller: Caller, params: ops.SetProperty) -> dict[str, int]:
        for name, value in params.values.items():
            self.head.set_property(caller, name, value)
        return self.op_get_properties(caller, params)

    def op_get_nodes(self, caller: Caller, params: ops.GetNodes) -> list[dict[str, Any]]:
        return self.head.node_records(params.names, params.groups, params.states, params.templates,
                                      params.locations)

    def op_plan_node_state(self, caller: Caller, params: ops.SetNodeState) -> list[dict[str, Any]]:
        return self.head.plan_node_state(caller, params.names, params.state, params.force)

    def op_set_node_state(self, caller: Caller, params: ops.SetNodeState) -> list[dict[str, Any]]:
        result = self.head.set_node_state(caller, params.names, params.state, params.force, params.reason)
        self.daemon.poke()
        return result

    def op_node_history(self, caller: Caller, params: ops.NodeHistory) -> list[dict[str, Any]]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read the node state history; "
                           f"{caller.name} is not one.")
        return self.head.node_history_records(params.names, moment(params.start, "StartDate"),
                                              moment(params.end, "EndDate"))

    def op_get_groups(self, caller: Caller, params: ops.GetGroups) -> list[dict[str, Any]]:
        return self.head.group_records(params.names, params.ids)

    def op_new_group(self, caller: Caller, params: ops.NewGroup) -> dict[str, Any]:
        return self.head.new_group(caller, params.name, params.description)

    def op_change_groups(self, caller: Caller, params: ops.ChangeGroups) -> list[dict[str, Any]]:
        result = self.head.change_groups(caller, params.names, params.ids, params.nodes, params.add)
        self.daemon.poke()
        return result

    def op_cluster_overview(self, caller: Caller, params: ops.Request) -> dict[str, Any]:
        """Get-HpcClusterOverview: nodes by state, cores, jobs and tasks by state (anyone may read it)."""
        nodes = self.head.node_records()
        by_state = {s: sum(1 for n in nodes if n["State"] == s) for s in ("Online", "Draining", "Offline")}
        total = sum(n["ProcessorCores"] for n in nodes)
        busy = sum(n["CoresInUse"] for n in nodes)
        offline = sum(n["ProcessorCores"] for n in nodes if n["State"] != "Online")
        jobs = {s.name: 0 for s in JobState.__members__.values() if s != JobState.All}
        for state, count in self.head.store.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            jobs[JobState(state).name] = count
        tasks = {s.name: 0 for s in TaskState.__members__.values() if s != TaskState.All}
        for job in self.head.jobs.values():
            for unit in job.units():
                tasks[unit.shown_state.name] += 1
        return {"ClusterName": self.head.name, "Version": __version__,
                "TotalNodeCount": len(nodes), "OnlineNodeCount": by_state["Online"],
                "ReadyNodeCount": by_state["Online"], "DrainingNodeCount": by_state["Draining"],
                "OfflineNodeCount": by_state["Offline"],
                "UnreachableNodeCount": sum(1 for n in nodes if n["NodeHealth"] == "Unreachable"),
                "TotalCoreCount": total, "BusyCoreCount": busy, "IdleCoreCount": max(0, total - busy - offline),
                "OfflineCoreCount": offline, "TotalJobCount": sum(jobs.values()),
                **{f"{name}JobCount": count for name, count in jobs.items()},
                "TotalTaskCount": sum(tasks.values()), **{f"{name}TaskCount": count for name, count in tasks.items()}}

    def op_cluster_parameters(self, caller: Caller, params: ops.Request) -> dict[str, str]:
        """Get-HpcClusterProperty -Parameter: HPC Pack's cluster parameters (administrators only)."""
        values = {name: str(value) for name, value in self.op_get_properties(caller, params).items()}
        stored = self.head.store.properties()
        return {**{name: stored.get(name, default) for name, default in CLUSTER_PARAMETERS.items()}, **values}

    def op_get_environment(self, caller: Caller, params: ops.Request) -> dict[str, str]:
        """Get-HpcClusterProperty -Environment: the built-in CCP_ variables, then the cluster's own."""
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can read cluster properties; {caller.name} "
                           "is not one.")
        return {"CCP_CLUSTER_NAME": self.head.name, "CCP_SCHEDULER": self.head.name,
                **self.head.cluster_environment()}

    def op_set_environment(self, caller: Caller, params: ops.SetEnvironment) -> dict[str, str]:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can change cluster properties; "
                           f"{caller.name} is not one.")
        for name in params.values:
            if not name or "=" in name or name.upper().startswith("CCP_"):
                raise invalid_argument(f"'{name}' cannot be set as a cluster environment variable (empty, has '=', "
                                       "or a built-in CCP_ name).", "Environment")
        self.head.set_environment(dict(params.values))
        return self.op_get_environment(caller, params)
