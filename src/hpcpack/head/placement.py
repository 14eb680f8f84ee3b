"""Where a job may run, from its own properties: RequestedNodes and ExcludedNodes, the per-node
filters (Min/MaxCoresPerNode, Min/MaxMemoryPerNode), OrderBy, EstimatedProcessMemory, NumGpus.
Pure functions of the job and the nodes (hpcpack-facts.md §4.1 gives each property's meaning);
node groups are the head node's (head/nodes.py)."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import Node
from ..model.objects import Job


def fits(job: Job, node: Node) -> bool:
    """The node passes the job's per-node filters (0 means no bound)."""
    return (node.cores >= job.min_cores_per_node
            and (not job.max_cores_per_node or node.cores <= job.max_cores_per_node)
            and node.memory >= job.min_memory_per_node
            and (not job.max_memory_per_node or node.memory <= job.max_memory_per_node))


def allowed_nodes(job: Job, nodes: Sequence[Node]) -> tuple[str, ...]:
    requested = {r.lower() for r in job.requested_nodes}
    excluded = {e.lower() for e in job.excluded_nodes}
    return tuple(n.name for n in nodes if n.name.lower() not in excluded
                 and (not requested or n.name.lower() in requested) and fits(job, n))


def preference(job: Job, nodes: Sequence[Node]) -> tuple[str, ...]:
    """OrderBy (`Memory`, `-Memory`, `Cores`, `-Cores`; primary then secondary): the nodes in that order.
    HPC Pack's `Memory` prefers nodes with more memory, `-Memory` with less."""
    if not job.order_by:
        return ()

    def key(node: Node) -> tuple[int, ...]:
        values = []
        for item in job.order_by:
            value = node.memory if item.lstrip("-").lower() == "memory" else node.cores
            values.append(value if item.startswith("-") else -value)
        return tuple(values)
    return tuple(n.name for n in sorted(nodes, key=key))


def caps(job: Job, nodes: Sequence[Node]) -> tuple[tuple[str, int], ...]:
    """EstimatedProcessMemory (MB per process): a node runs at most its memory / that many of the job's
    cores (at least one, so that a job is never stuck on memory it cannot know)."""
    if job.estimated_process_memory <= 0:
        return ()
    return tuple((n.name, max(1, n.memory // job.estimated_process_memory)) for n in nodes)


def problem(job: Job, nodes: Sequence[Node], minimum: int) -> str:
    """Why no node can ever take the job (checked at submit, as HPC Pack does), or ''. `minimum`: the
    fewest cores the job runs on."""
    if job.num_gpus > 0:
        return f"The job asks for {job.num_gpus} GPU(s); no node of this cluster has GPUs."
    allowed = set(allowed_nodes(job, nodes))
    if nodes and not any(fits(job, n) for n in nodes):
        return ("No node fits the job's per-node limits (cores "
                f"{job.min_cores_per_node}-{job.max_cores_per_node or 'any'}, memory "
                f"{job.min_memory_per_node}-{job.max_memory_per_node or 'any'} MB).")
    largest = max((n.cores for n in nodes if n.name in allowed), default=0)
    if job.single_node and minimum > largest:
        return f"SingleNode: the job needs {minimum} cores on one node; the largest node it may use has {largest}."
    return ""
