"""Which queued job gets which cores: a pure function of free cores and the queue.

Jobs are served by priority, then queue order (submit order; a requeued job goes to the front of
its band). A job gets at least its minimum and at most its maximum. The first job that cannot get
its minimum stops the pass, so large jobs are not starved by a stream of small ones.
"""

from __future__ import annotations

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


def order(demand: Demand) -> tuple[int, float, int]:
    """The queue's order: priority, then queue order."""
    return -demand.priority, demand.queue_order, demand.job_id


def plan(free: dict[str, int], idle_nodes: set[str], queue: list[Demand]) -> dict[int, dict[str, int]]:
    """Returns job id -> {node: cores} for the jobs that can start now. `free` is not changed."""
    free = dict(free)
    idle = set(idle_nodes)
    grants: dict[int, dict[str, int]] = {}
    for demand in sorted(queue, key=order):
        candidates = [n for n in free if (not demand.nodes or n in demand.nodes)
                      and (not demand.exclusive or n in idle) and free[n] > 0]
        if demand.node_sets:  # the first node set (group) that can give the minimum
            fitting = [[n for n in candidates if n in node_set] for node_set in demand.node_sets]
            candidates = next((c for c in fitting if sum(free[n] for n in c) >= demand.min_cores), [])
        if sum(free[n] for n in candidates) < demand.min_cores:
            break
        grant: dict[str, int] = {}
        wanted = demand.max_cores
        for node in sorted(candidates, key=lambda n: -free[n]):
            take = min(free[node], wanted)
            if take <= 0:
                continue
            grant[node] = take
            wanted -= take
            if wanted == 0:
                break
        for node, cores in grant.items():
            # An exclusive job shares its nodes with no one.
            free[node] = 0 if demand.exclusive else free[node] - cores
            idle.discard(node)
        grants[demand.job_id] = grant
    return grants
