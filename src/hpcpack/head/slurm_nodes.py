"""With `engine: slurm` the nodes and node groups are Slurm's (the local engine's are in nodes.py).

Nodes, their CPUs, memory, sockets and states come from one `sinfo` per poll (at most every
NODE_POLL_INTERVAL), mapped to HPC Pack's: idle/mixed/allocated -> Online; draining -> Draining; drained
-> Offline; down and the like -> Offline with HealthState Error and NodeHealth Unreachable (HPC Pack's
values of each). Not responding (sinfo's `*`, e.g. for a second after a resume) is health, not state, as
in HPC Pack: HealthState Warning and NodeHealth Unreachable, and no new task starts there. A change Slurm
made by itself goes to the node state history with Slurm's reason. Set-HpcNodeState drains and resumes
the Slurm node (scontrol, as root); no new task starts on a node that is not Online, and once the HPC
tasks on a draining node have ended (with -Force: at once) the jobs give it back to Slurm by shrinking
their allocations, so Slurm has it drained: Offline. Slurm keeps a job's batch host in its allocation,
so that node stays Draining until the job ends.

Node groups are Slurm's partitions and node features, besides HPC Pack's built-in groups; a job's
NodeGroups become --partition and --constraint. Only Slurm's own names (as sinfo spells them) reach
sbatch, never what the user typed, so no group name can add to Slurm's constraint syntax.
"""

from __future__ import annotations

from typing import Any

from ..config import BUILTIN_GROUPS, Node
from ..errors import HpcError
from ..identity import Caller
from ..model.objects import Job, now
from . import slurm
from .core import log
from .nodes import Group, Nodes

NODE_POLL_INTERVAL = 1.0  # seconds between looks at Slurm's nodes (a request for nodes may ask sooner)
DRAINS = {"draining": ("Draining", "Transitional", "OK"), "drained": ("Offline", "OK", "OK"),
          "drain": ("Offline", "OK", "OK"), "failing": ("Draining", "Error", "OK"), "fail": ("Offline", "Error", "OK")}
UNREACHABLE = ("down", "unknown", "future", "inval", "powered_down", "power_down", "powering_down", "powering_up")
SLURM_SUFFIXES = "*~#!%$@^-+"  # sinfo's marks after a state; `*` is "not responding"


def hpc_state(slurm_state: str) -> tuple[str, str, str]:
    """sinfo's long state -> HPC Pack's (NodeState, HealthState, NodeHealth)."""
    base = slurm_state.rstrip(SLURM_SUFFIXES).lower()
    if base in UNREACHABLE:
        return "Offline", "Error", "Unreachable"
    state, health, reach = DRAINS.get(base, ("Online", "OK", "OK"))
    if unresponsive(slurm_state):
        return state, "Warning" if health == "OK" else health, "Unreachable"
    return state, health, reach


def unresponsive(slurm_state: str) -> bool:
    return slurm_state.endswith("*")


class SlurmNodes(Nodes):
    _slurm_nodes: dict[str, slurm.SlurmNode]
    _next_node_poll: float = 0.0

    def load_nodes(self) -> None:
        super().load_nodes()
        self._slurm_nodes = {}
        self._kept: set[tuple[int, str]] = set()  # (job, node) Slurm would not take out of the allocation
        self.refresh_slurm_nodes(force=True)

    def refresh_slurm_nodes(self, force: bool = False, by: tuple[str, str, str] = ("", "", "")) -> None:
        """A loop phase (and before answering about nodes): Slurm's nodes, states and groups, if the last
        look is older than NODE_POLL_INTERVAL. A state that changed is recorded: `by` (node, actor, reason)
        names who changed that node; any other change is Slurm's own, with its reason."""
        if self.slurm is None or (not force and now() < self._next_node_poll):
            return
        self._next_node_poll = now() + NODE_POLL_INTERVAL
        try:
            found = self.slurm.node_info()
        except slurm.SlurmError as e:  # slurmctld away: the last look stands until it answers
            log.warning("Slurm's nodes could not be read: %s", e)
            return
        self._slurm_nodes = {n.name: n for n in found}
        self.config.nodes = [Node(n.name, n.cpus, n.sockets, n.memory) for n in found]
        self._node_by_name = {n.name.lower(): n for n in self.config.nodes}
        changed = [n for n in found if self.node_state.get(n.name) != hpc_state(n.state)[0]]
        if changed:
            with self.batch():
                for node in changed:
                    actor, reason = by[1:] if node.name == by[0] else ("slurm", f"Slurm: {node.state} {node.reason}")
                    self._record_state(node.name, hpc_state(node.state)[0], actor, reason.strip())
        self.groups = self._slurm_groups(found)

    def _load_groups(self) -> None:
        """With Slurm, the groups are Slurm's partitions and features as last read (the store keeps ids)."""
        super()._load_groups()
        if self.slurm is not None and getattr(self, "_slurm_nodes", None):
            self.groups = self._slurm_groups(list(self._slurm_nodes.values()))

    def _record_state(self, name: str, state: str, actor: str, reason: str = "") -> None:
        self.node_state.setdefault(name, "")  # a node Slurm added since the start
        super()._record_state(name, state, actor, reason)

    def _slurm_groups(self, found: list[slurm.SlurmNode]) -> dict[str, Group]:
        """The built-in groups (ComputeNodes: every node), then partitions and features by Slurm's names.
        A partition and a feature of the same name: the partition."""
        builtin = {g.name: g.id for g in self.groups.values() if g.name in BUILTIN_GROUPS}
        groups = {name.lower(): Group(builtin.get(name, 0), name, description,
                                      [n.name for n in found] if name == "ComputeNodes" else [])
                  for name, description in BUILTIN_GROUPS.items()}
        next_id = max([0, *builtin.values()]) + 1
        for kind, names in (("partition", [p for n in found for p in n.partitions]),
                            ("feature", sorted({f for n in found for f in n.features}))):
            for name in dict.fromkeys(names):
                if name.lower() in groups:
                    continue
                members = [n.name for n in found if name in (n.partitions if kind == "partition" else n.features)]
                groups[name.lower()] = Group(next_id, name, f"Slurm {kind}", members, slurm=kind)
                next_id += 1
        return groups

    # Nodes.

    def node_usable(self, name: str) -> bool:
        """New work may start there: Online, and on Slurm also answering Slurm."""
        node = self._slurm_nodes.get(name) if self.slurm is not None else None
        return super().node_usable(name) and not (node is not None and unresponsive(node.state))

    def node_records(self, names: list[str] | None = None, groups: list[str] | None = None,
                     states: list[str] | None = None, templates: list[str] | None = None,
                     locations: list[str] | None = None) -> list[dict[str, Any]]:
        """Get-HpcNode; on Slurm, cores in use and health are Slurm's (its jobs besides the HPC ones)."""
        self.refresh_slurm_nodes()
        records = super().node_records(names, groups, states, templates, locations)
        for record in records:
            node = self._slurm_nodes.get(record["NetBiosName"])
            if node is not None:
                _, health, reach = hpc_state(node.state)
                idle = max(0, node.cpus - node.alloc_cpus) if record["State"] == "Online" else 0
                record.update(HealthState=health, NodeHealth=reach, Reachable=reach == "OK",
                              CoresInUse=node.alloc_cpus, IdleCores=idle, SlurmState=node.state,
                              SlurmReason=node.reason)
        return records

    def _change_node(self, actor: str, name: str, target: str, force: bool, reason: str) -> None:
        """On Slurm: Online resumes the Slurm node, Offline drains it; with force the HPC tasks there are
        also stopped and queued again, as on the local engine. Then Slurm's new state is recorded."""
        if self.slurm is None:
            super()._change_node(actor, name, target, force, reason)
            return
        current = self.node_state[name]
        try:
            if target == "Online" and current != "Online":
                self.slurm.resume(name)
            elif target == "Offline" and current != "Offline":
                self.slurm.drain(name, reason or f"Set-HpcNodeState -State Offline by {actor}")
        except slurm.SlurmError as e:
            raise HpcError("InvalidOperation", f"Slurm did not change the node {name}: {e}", name) from None
        if target == "Offline" and force:
            self._evict(name, self._running_units().get(name, []))
        self.refresh_slurm_nodes(force=True, by=(name, actor, reason or ("forced" if force else "")))

    def _give_back(self, job: Job, name: str) -> bool:
        """On Slurm the job's allocation shrinks by the node, unless it is the job's last one (the job waits
        for it to come back: Slurm grants no other) or Slurm refuses (its batch host)."""
        if self.slurm is None:
            return True
        if len(job.allocation) < 2 or not job.slurm_job_id or (job.id, name) in self._kept:
            return False
        try:
            self.slurm.shrink(job.slurm_job_id, sorted(n for n in job.allocation if n != name))
        except slurm.SlurmError as e:
            self._kept.add((job.id, name))
            log.info("job %d keeps node %s until it ends: %s", job.id, name, e)
            return False
        return True

    def settle_draining_nodes(self) -> None:
        """On Slurm a draining node whose HPC tasks have ended is given back by the jobs (_give_back); sinfo
        then says drained, and the next look records it Offline."""
        if self.slurm is None:
            super().settle_draining_nodes()
            return
        draining = [n for n, s in self.node_state.items() if s == "Draining"]
        running = self._running_units() if draining else {}
        for name in draining:
            if not running.get(name):
                self._release_node(name)

    # Groups.

    def new_group(self, caller: Caller, name: str, description: str) -> dict[str, Any]:
        self._groups_are_slurms()
        return super().new_group(caller, name, description)

    def change_groups(self, caller: Caller, names: list[str], ids: list[int], nodes: list[str] | None,
                      add: bool) -> list[dict[str, Any]]:
        self._groups_are_slurms()
        return super().change_groups(caller, names, ids, nodes, add)

    def _groups_are_slurms(self) -> None:
        if self.slurm is not None:
            raise HpcError("InvalidOperation", "With engine: slurm the node groups are Slurm's partitions and "
                           "node features: change them in slurm.conf (PartitionName=..., Feature=...).")

    def group_problem(self, job: Job) -> str:
        if self.slurm is None:
            return super().group_problem(job)
        missing = [g for g in self.job_groups(job) if g.lower() not in self.groups]
        if missing:
            return (f"The node group(s) {', '.join(missing)} are neither a Slurm partition nor a Slurm node feature "
                    "(Get-HpcGroup lists the node groups).")
        try:
            self.slurm_group_options(job)
        except ValueError as e:
            return str(e)
        return super().group_problem(job)

    def slurm_group_options(self, job: Job) -> tuple[str, str]:
        """The job's NodeGroups as (--partition, --constraint), in Slurm's own names: Intersect a&b, Union
        a|b, Uniform [a|b]. Partitions: Slurm runs a job in one of them (an Intersect of several gets the
        nodes outside the intersection excluded). ValueError: what Slurm cannot be asked."""
        op = self.group_op(job)
        groups = [self.groups[g.lower()] for g in self.job_groups(job) if g.lower() in self.groups]
        if op != "Intersect" and any(g.name == "ComputeNodes" for g in groups):
            return "", ""  # any node will do
        partitions = [g.name for g in groups if g.slurm == "partition"]
        features = [g.name for g in groups if g.slurm == "feature"]
        if partitions and features and op != "Intersect":
            raise ValueError(f"NodeGroupOp {op} cannot join Slurm partitions ({', '.join(partitions)}) with node "
                             f"features ({', '.join(features)}): Slurm runs a job in one partition. Use Intersect, or "
                             "only partitions, or only features.")
        constraint = ("&" if op == "Intersect" else "|").join(features)
        if op == "Uniform" and len(features) > 1:
            constraint = f"[{constraint}]"
        return (partitions[0] if op == "Intersect" and partitions else ",".join(partitions)), constraint
