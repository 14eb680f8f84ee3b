"""Which queued job gets which cores: a pure function of free cores and the queue.

Jobs are served by priority, then queue order (submit order; a requeued job goes to the front of
its band). A job gets at least its minimum and at most its maximum. The first job that cannot get
its minimum stops the pass, so large jobs are not starved by a stream of small ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Demand:
    job_id: int
    priority: int
    queue_order: float
    min_cores: int
    max_cores: int
    exclusive: bool = False
    nodes: tuple[str, ...] = ()  # allowed nodes; empty means any
    node_sets: tuple[tuple[str, ...], ...] = ()  # node groups: all cores from one of these sets; empty = any
    single_node: bool = False  # SingleNode: all cores on one node
    preference: tuple[str, ...] = ()  # OrderBy: nodes in the order the job prefers them
    caps: tuple[tuple[str, int], ...] = ()  # the most cores the job may take on a node (EstimatedProcessMemory)


def order(demand: Demand) -> tuple[int, float, int]:
    """The queue's order: priority, then queue order."""
    return -demand.priority, demand.queue_order, demand.job_id


def plan(free: dict[str, int], idle_nodes: set[str], queue: list[Demand],
         capacity: dict[str, int] | None = None) -> dict[int, dict[str, int]]:
    """Returns job id -> {node: cores} for the jobs that can start now. `free` is not changed.
    `capacity`: every usable node's cores; a job that could not start even on an empty cluster is
    passed over (never), so that no job can hold up the queue behind it."""
    free = dict(free)
    idle = set(idle_nodes)
    grants: dict[int, dict[str, int]] = {}
    for demand in sorted(queue, key=order):
        room = _room(demand, free, idle)
        if sum(room.values()) < demand.min_cores:
            if capacity is not None and not can_ever_start(demand, capacity):
                continue
            break
        grant = _take(demand, room)
        for node, cores in grant.items():
            # An exclusive job shares its nodes with no one.
            free[node] = 0 if demand.exclusive else free[node] - cores
            idle.discard(node)
        grants[demand.job_id] = grant
    return grants


def _room(demand: Demand, free: dict[str, int], idle: set[str]) -> dict[str, int]:
    """The cores this job may take on each node now: its allowed nodes, its first node set (group) that
    can give the minimum, its per-node caps, and with SingleNode the best one node that can."""
    caps = dict(demand.caps)
    room = {n: min(free[n], caps.get(n, free[n])) for n in free
            if (not demand.nodes or n in demand.nodes) and (not demand.exclusive or n in idle) and free[n] > 0}
    if demand.node_sets:
        fitting = [{n: c for n, c in room.items() if n in node_set} for node_set in demand.node_sets]
        room = next((f for f in fitting if sum(f.values()) >= demand.min_cores), {})
    if demand.single_node:
        ordered = sorted(room, key=_preference(demand, room))
        room = next(({n: room[n]} for n in ordered if room[n] >= demand.min_cores), {})
    return {n: c for n, c in room.items() if c > 0}


def _take(demand: Demand, room: dict[str, int]) -> dict[str, int]:
    grant: dict[str, int] = {}
    wanted = demand.max_cores
    for node in sorted(room, key=_preference(demand, room)):
        take = min(room[node], wanted)
        grant[node] = take
        wanted -= take
        if wanted == 0:
            break
    return grant


def _preference(demand: Demand, room: dict[str, int]) -> Callable[[str], tuple[int, int]]:
    """OrderBy's node order when the job gives one, else the nodes with the most room first."""
    rank = {n: i for i, n in enumerate(demand.preference)}
    return lambda n: (rank.get(n, len(rank)), -room[n])


def can_ever_start(demand: Demand, capacity: dict[str, int]) -> bool:
    """Whether the job could start on these nodes with nothing else running."""
    return sum(_room(demand, dict(capacity), set(capacity)).values()) >= demand.min_cores
