"""Nodes and node groups: their states (Set-HpcNodeState's drain), groups and where a job may run.

A node is Online, Draining or Offline (HPC Pack's ClusterNodeState names). Taking a node Offline drains it:
nothing new starts there, running tasks finish, then it is Offline. With force it is Offline at once: its
running tasks are killed and queued again (HPC Pack requeues them), and jobs release it. States and their
history are stored; a node keeps its state over restarts.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import BUILTIN_GROUPS, Node
from ..errors import HpcError, invalid_argument
from ..identity import Caller
from ..model.objects import Job, Task, now
from ..model.states import JobState, TaskState
from .recovery import Recovery

NODE_STATES = ("Online", "Draining", "Offline")
GROUP_OPS = ("Intersect", "Uniform", "Union")
MAX_GROUP_NAME = 64


@dataclass
class Group:
    id: int
    name: str
    description: str
    members: list[str] = field(default_factory=list)
    slurm: str = ""  # with engine: slurm, "partition" or "feature" (head/slurm_nodes.py)


class Nodes(Recovery):
    """The head node's nodes and groups (see the module's docstring)."""

    def load_nodes(self) -> None:
        """Node states from the store (Online for a node not seen before); groups from the store, with the
        built-in groups and the memberships headnode.yaml declares added."""
        self._node_by_name: dict[str, Node] = {n.name.lower(): n for n in self.config.nodes}
        stored = {name.lower() for name in self.store.node_states()}
        with self.batch():
            for node in self.config.nodes:
                if node.name.lower() not in stored:
                    self.store.save_node_state(node.name, "Online", "", now(), "headnode.yaml", "added")
            for name, description in BUILTIN_GROUPS.items():
                self.store.ensure_group(name, description)
            for node in self.config.nodes:
                for group in node.groups:
                    self.store.seed_member(self.store.ensure_group(group), node.name)
        self.node_state = self._stored_node_states()
        self._load_groups()

    def _stored_node_states(self) -> dict[str, str]:
        stored = {name.lower(): state for name, (state, _) in self.store.node_states().items()}
        return {node.name: stored.get(node.name.lower(), "Online") for node in self.config.nodes}

    def forget_uncommitted(self, written: set[int]) -> None:
        """Node states and groups are changed in memory with their rows: after a rollback, as stored."""
        super().forget_uncommitted(written)
        self.node_state = self._stored_node_states()
        self._load_groups()

    def _load_groups(self) -> None:
        self.groups: dict[str, Group] = {name.lower(): Group(gid, name, desc, members)
                                         for gid, name, desc, members in self.store.groups()}

    # Queries.

    def node(self, name: str) -> Node:
        node = self._node_by_name.get(name.lower())
        if node is None:
            raise HpcError("InvalidArgument", f"The node '{name}' does not exist.", name)
        return node

    def node_usable(self, name: str) -> bool:
        """New work may start there: the node is Online."""
        return self.node_state.get(name) == "Online"

    def groups_of(self, node: str) -> list[str]:
        return [g.name for g in self.groups.values() if node.lower() in {m.lower() for m in g.members}]

    def _running_units(self) -> dict[str, list[tuple[Job, Task]]]:
        out: dict[str, list[tuple[Job, Task]]] = {}
        for job in self.in_state(JobState.Running, JobState.Canceling, JobState.Finishing):
            for unit in job.units():
                if unit.state in (TaskState.Running, TaskState.Canceling) and unit.node:
                    out.setdefault(unit.node, []).append((job, unit))
        return out

    def node_records(self, names: list[str] | None = None, groups: list[str] | None = None,
                     states: list[str] | None = None, templates: list[str] | None = None,
                     locations: list[str] | None = None) -> list[dict[str, Any]]:
        """Get-HpcNode: the nodes that match every filter given (each filter: any of its values)."""
        running = self._running_units()
        allocated: dict[str, tuple[int, set[int]]] = {}
        for job in self.in_state(JobState.Running, JobState.Canceling, JobState.Finishing):
            for name, cores in job.allocation.items():
                used, jobs = allocated.get(name, (0, set()))
                allocated[name] = (used + cores, jobs | {job.id})
        wanted_groups: set[str] | None = None
        if groups:
            wanted_groups = set()
            for group in groups:
                found = self.groups.get(group.lower())
                if found is not None:
                    wanted_groups |= {m.lower() for m in found.members}
        records = []
        for number, node in enumerate(self.config.nodes, start=1):
            state = self.node_state[node.name]
            if names and node.name.lower() not in {n.lower() for n in names}:
                continue
            if wanted_groups is not None and node.name.lower() not in wanted_groups:
                continue
            if states and state.lower() not in {s.lower() for s in states}:
                continue
            if templates and node.template.lower() not in {t.lower() for t in templates}:
                continue
            if locations and not any(node.location.lower().startswith(loc.lower()) for loc in locations):
                continue
            used, jobs = allocated.get(node.name, (0, set()))
            units = running.get(node.name, [])
            records.append({
                "__type__": "HpcNode", "Id": number, "NetBiosName": node.name, "State": state, "NodeState": state,
                "HealthState": "Transitional" if state == "Draining" else "OK", "NodeHealth": "OK",
                "Groups": self.groups_of(node.name), "ProcessorCores": node.cores, "SubscribedCores": node.cores,
                "Sockets": node.sockets, "SubscribedSockets": node.sockets, "Memory": node.memory,
                "Template": node.template, "Location": node.location,
                "Role": "HeadNode" if "headnodes" in {g.lower() for g in self.groups_of(node.name)} else "ComputeNode",
                "JobsRunning": len(jobs), "TasksRunning": len(units), "CoresInUse": min(used, node.cores),
                "IdleCores": max(0, node.cores - used) if state == "Online" else 0,
                "Reachable": True, "FullyQualifiedDomainName": node.name.lower(),
                "RunningJobIds": sorted(jobs)})
        return records

    def group_records(self, names: list[str] | None = None, ids: list[int] | None = None) -> list[dict[str, Any]]:
        out = []
        for group in sorted(self.groups.values(), key=lambda g: g.id):
            if names and group.name.lower() not in {n.lower() for n in names}:
                continue
            if ids and group.id not in ids:
                continue
            out.append({"__type__": "HpcGroup", "Id": group.id, "Name": group.name, "Description": group.description,
                        "NodeCount": len(group.members), "Nodes": list(group.members),
                        "Builtin": group.name in BUILTIN_GROUPS})
        return out

    def node_history_records(self, names: list[str] | None, start: float | None,
                             end: float | None) -> list[dict[str, Any]]:
        if names:
            names = [self.node(n).name for n in names]
        return self.store.node_history(names, start, end)

    # Node states.

    def _admin(self, caller: Caller, what: str) -> None:
        if not caller.admin:
            raise HpcError("PermissionDenied", f"Only an administrator can {what}; {caller.name} is not one.")

    def plan_node_state(self, caller: Caller, names: list[str], state: str, force: bool) -> list[dict[str, Any]]:
        """Per node, what Set-HpcNodeState would do, in words (for -WhatIf and -Confirm)."""
        target = self._check_state(state, force)
        running = self._running_units()

        def plan(node: Node) -> dict[str, Any]:
            current = self.node_state[node.name]
            units = running.get(node.name, [])
            if target == "Online":
                action = f"set {current} -> Online" if current != "Online" else "already Online"
            elif force:
                action = (f"take Offline now (Force): cancel and requeue {len(units)} running task(s)" if units
                          else "take Offline now")
            else:
                action = (f"drain, then Offline when its {len(units)} running task(s) end" if units
                          else "take Offline (nothing runs there)")
            return {"name": node.name, "action": action, "state": current}
        return self._per_node(names, plan)

    def _per_node(self, names: list[str], action: Callable[[Node], dict[str, Any]]) -> list[dict[str, Any]]:
        """`action` for each named node, in order; a name that is no node answers with its error."""
        out: list[dict[str, Any]] = []
        for name in names:
            try:
                node = self.node(name)
            except HpcError as e:
                out.append({"name": name, "error": e.to_wire()})
                continue
            out.append(action(node))
        return out

    @staticmethod
    def _check_state(state: str, force: bool) -> str:
        target = next((s for s in ("Online", "Offline") if s.lower() == state.strip().lower()), None)
        if target is None:
            if state.strip().lower() == "rejected":
                raise invalid_argument("This head node approves every node in headnode.yaml, so no node can be "
                                       "Rejected; set it Offline, or remove it from headnode.yaml.", "State")
            raise invalid_argument(f"'{state}' is not a state a node can be set to; use Online or Offline.", "State")
        if force and target != "Offline":
            raise invalid_argument("Force applies only to -State Offline.", "Force")
        return target

    def set_node_state(self, caller: Caller, names: list[str], state: str, force: bool,
                       reason: str = "") -> list[dict[str, Any]]:
        """Per node: its record afterwards, or its error. Offline drains (Draining until its running tasks
        end); Offline with force stops its running tasks now and queues them again."""
        self._admin(caller, "change the state of a node")
        target = self._check_state(state, force)

        def change(node: Node) -> dict[str, Any]:
            with self.batch():
                self._change_node(caller.name, node.name, target, force, reason)
            return {"name": node.name, "node": self.node_records([node.name])[0]}
        return self._per_node(names, change)

    def _change_node(self, actor: str, name: str, target: str, force: bool, reason: str) -> None:
        current = self.node_state[name]
        if target == "Online":
            if current != "Online":
                self._record_state(name, "Online", actor, reason)
            return
        if current == "Offline":
            return
        units = self._running_units().get(name, [])
        if force:
            self._evict(name, units)
            self._record_state(name, "Offline", actor, reason or "forced")
        elif units:
            if current != "Draining":
                self._record_state(name, "Draining", actor, reason)
        else:
            self._release_node(name)
            self._record_state(name, "Offline", actor, reason)

    def _record_state(self, name: str, state: str, actor: str, reason: str = "") -> None:
        previous = self.node_state[name]
        self.store.save_node_state(name, state, previous, now(), actor, reason)
        self.node_state[name] = state

    def _evict(self, name: str, units: list[tuple[Job, Task]]) -> None:
        """Offline with force: the node's running tasks are killed at once and queued again (a task that
        is not rerunnable fails), and every job releases the node."""
        for job, unit in units:
            if unit.state != TaskState.Running or job.state != JobState.Running:
                continue  # a task already being canceled ends as its cancel says
            unit.move("stop")
            if unit.rerunnable and not unit.is_node_task:
                unit.requeue_when_stopped = True
            else:
                unit.error_message = f"The node {name} was taken offline while the task ran."
            self._signal_units(job, [unit], signal.SIGKILL)
            self.commit(job, [unit], ("scheduler", "node offline", f"task {unit.key} stopped: node {name} offline"),
                        job_changed=False)
        self._release_node(name)

    def _release_node(self, name: str) -> None:
        for job in self.in_state(JobState.Running, JobState.Queued):
            if name in job.allocation and self._give_back(job, name):
                job.allocation = {n: c for n, c in job.allocation.items() if n != name}
                self.commit(job, entry=("scheduler", "node released", f"node {name} went offline"))

    def _give_back(self, job: Job, name: str) -> bool:
        """Whether the job may let go of the node now (on Slurm, whether Slurm's allocation could)."""
        return True

    def settle_draining_nodes(self) -> None:
        """A loop phase: a Draining node whose running tasks have all ended goes Offline."""
        draining = [n for n, s in self.node_state.items() if s == "Draining"]
        if not draining:
            return
        running = self._running_units()
        for name in draining:
            if not running.get(name):
                with self.batch():
                    self._release_node(name)
                    self._record_state(name, "Offline", "scheduler", "drained")

    # Groups.

    def new_group(self, caller: Caller, name: str, description: str) -> dict[str, Any]:
        self._admin(caller, "create a node group")
        name = name.strip()
        if not name or len(name) > MAX_GROUP_NAME or "," in name:
            raise invalid_argument(f"A node group name has 1 to {MAX_GROUP_NAME} characters and no comma.", "Name")
        if name.lower() in self.groups:
            raise HpcError("InvalidOperation", f"The node group '{self.groups[name.lower()].name}' already exists.",
                           name)
        with self.batch():
            self.store.ensure_group(name, description)
        self._load_groups()
        return self.group_records([name])[0]

    def _group(self, name: str | None = None, group_id: int | None = None) -> Group:
        found = (self.groups.get(name.lower()) if name is not None
                 else next((g for g in self.groups.values() if g.id == group_id), None))
        if found is None:
            raise HpcError("InvalidArgument", f"The node group '{name if name is not None else group_id}' does not "
                           "exist.", name if name is not None else group_id)
        return found

    def _member_nodes(self, nodes: list[str]) -> list[str]:
        """-NodeName is a filter (HPC Pack): unknown names are ignored while one exists."""
        known = [self._node_by_name[n.lower()].name for n in nodes if n.lower() in self._node_by_name]
        if not known:
            raise HpcError("InvalidArgument", f"None of the nodes {', '.join(nodes)} exists.", ",".join(nodes))
        return list(dict.fromkeys(known))

    def change_groups(self, caller: Caller, names: list[str], ids: list[int], nodes: list[str] | None,
                      add: bool) -> list[dict[str, Any]]:
        """Add-HpcGroup (add) or Remove-HpcGroup: per group, its record afterwards (or its error). Remove
        without nodes deletes the group (not a built-in one)."""
        self._admin(caller, "change node groups")
        members = self._member_nodes(nodes) if nodes else None
        if add and members is None:
            raise invalid_argument("Name the nodes to add.", "NodeName")
        out: list[dict[str, Any]] = []
        keys: list[tuple[str | None, int | None]] = [(n, None) for n in names] + [(None, i) for i in ids]
        for name, group_id in keys:
            try:
                group = self._group(name, group_id)
                with self.batch():
                    if members is None:
                        if group.name in BUILTIN_GROUPS:
                            raise HpcError("InvalidOperation", f"'{group.name}' is a built-in node group; it cannot "
                                           "be deleted (name the nodes to remove from it).", group.name)
                        self.store.delete_group(group.id)
                    else:
                        for node in members:
                            self.store.set_member(group.id, node, add)
                self._load_groups()
                records = self.group_records([group.name])
                out.append({"name": group.name, "group": records[0] if records else None})
            except HpcError as e:
                out.append({"name": name if name is not None else str(group_id), "error": e.to_wire()})
        return out

    # Where a job may run.

    @staticmethod
    def job_groups(job: Job) -> list[str]:
        """The job's node groups ("A,B" in one value is two groups, as HPC Pack takes it)."""
        return [part.strip() for g in job.node_groups for part in g.split(",") if part.strip()]

    def group_problem(self, job: Job) -> str:
        """Why the job's NodeGroups can never be satisfied: a group that does not exist, a bad NodeGroupOp,
        or groups that leave no node."""
        groups = self.job_groups(job)
        if not groups:
            return ""
        missing = [g for g in groups if g.lower() not in self.groups]
        if missing:
            return f"The node group(s) {', '.join(missing)} do not exist."
        op = self.group_op(job)
        if op not in GROUP_OPS:
            return f"NodeGroupOp '{op}' is not one of {', '.join(GROUP_OPS)}."
        if not any(self.node_sets(job)):
            return (f"No node is in all of the node groups {', '.join(groups)}." if op == "Intersect"
                    else f"The node groups {', '.join(groups)} have no nodes.")
        return ""

    @staticmethod
    def group_op(job: Job) -> str:
        value = job.node_group_op
        return next((op for op in GROUP_OPS if op.lower() == value.lower()), value)

    def node_sets(self, job: Job) -> list[set[str]]:
        """The sets of nodes the job may run on, by its node groups: one set (Intersect: nodes in every group;
        Union: in any), or with Uniform one per group (all of its nodes from one group). [] = no groups."""
        groups = self.job_groups(job)
        if not groups:
            return []
        sets = [set(self.groups[g.lower()].members) if g.lower() in self.groups else set() for g in groups]
        op = self.group_op(job)
        if op == "Union":
            return [set().union(*sets)]
        if op == "Uniform":
            return sets
        return [set.intersection(*sets)]
