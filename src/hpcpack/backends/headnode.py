"""The head node as a backend: each verb of the contract is one wire operation over `client.Client`."""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import HpcError
from ..wire import protocol
from .client import Client, for_scheduler
from .contract import Item, JobPage, JobQuery, NamedItem, NodeQuery, Record, Spec, StopOptions, TaskKey, TaskQuery

FIRST_PAGE = 100  # jobs in the first page of a listing (query_jobs)
T = TypeVar("T")


def backend_for(scheduler: list[str] | str | None) -> HeadNodeBackend:
    """The backend for -Scheduler (or `/scheduler:`), CCP_SCHEDULER, HPCPACK_HOME or the default head
    node, resolved as README "The head node" says; one connection per process and head node."""
    return HeadNodeBackend(for_scheduler(scheduler))


def _items(results: list[dict[str, Any]]) -> list[Item]:
    return [Item(id=int(r["id"]), record=r.get("job"),
                 error=HpcError.from_wire(r["error"]) if "error" in r else None, action=r.get("action"),
                 state=r.get("state"))
            for r in results]


def _no_such_job(job_id: int) -> Item:
    message = f"Job {job_id} does not exist: job IDs are 1 to {protocol.MAX_ID}."
    return Item(id=job_id, error=HpcError("InvalidJobId", message, job_id))


def _named(results: list[dict[str, Any]], key: str) -> list[NamedItem]:
    return [NamedItem(name=str(r["name"]), record=r.get(key),
                      error=HpcError.from_wire(r["error"]) if "error" in r else None, action=r.get("action"))
            for r in results]


class HeadNodeBackend:
    """A head node (embedded, the machine's or remote) behind its socket. Satisfies `contract.Backend`."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def name(self) -> str:
        return self.client.address

    def close(self) -> None:
        self.client.close()

    def ping(self) -> dict[str, Any]:
        return dict(self.client.call("ping"))

    def new_job(self, spec: Spec, tasks: Sequence[Spec] = ()) -> Record:
        return dict(self.client.call("new_job", spec=spec, tasks=list(tasks)))

    def copy_job(self, job_id: int, spec: Spec) -> Record:
        return dict(self.client.call("copy_job", id=job_id, spec=spec))

    def set_job(self, job_id: int, spec: Spec) -> Record:
        return dict(self.client.call("set_job", id=job_id, spec=spec))

    def add_task(self, job_id: int, spec: Spec) -> list[Record]:
        return list(self.client.call("add_task", job_id=job_id, spec=spec))

    def submit_jobs(self, ids: Sequence[int]) -> list[Item]:
        return self._per_job("submit_jobs", ids)

    def requeue_jobs(self, ids: Sequence[int]) -> list[Item]:
        return self._per_job("requeue_jobs", ids)

    def lookup_jobs(self, ids: Sequence[int]) -> list[Item]:
        return self._per_job("lookup_jobs", ids)

    def _per_job(self, operation: str, ids: Sequence[int], **params: Any) -> list[Item]:
        """`operation` on the jobs `ids`, one answer each in their order; an ID no job can have (Stop-HpcJob
        -Id 0) is answered here as the head node answers one it does not know, and the others still act."""
        valid = [i for i in ids if 1 <= i <= protocol.MAX_ID]
        items = _items(self.client.call(operation, ids=valid, **params)) if valid else []
        if [item.id for item in items] != valid:
            raise HpcError("ProtocolError", f"The head node's answer to {operation} is not one per job asked for, "
                           "in their order.")
        answers = iter(items)
        return [next(answers) if 1 <= i <= protocol.MAX_ID else _no_such_job(i) for i in ids]

    def query_jobs(self, query: JobQuery) -> Iterator[Record]:
        for page in self.query_job_pages(query):
            yield from page.records()

    def query_job_pages(self, query: JobQuery) -> Iterator[JobPage]:
        """Pages that no reply outgrows a frame with, asked for as the consumer goes on: the first is small,
        so that `Select-Object -First 10` costs the head node FIRST_PAGE records, and each next one twice
        as large, up to protocol.MAX_IDS, so that a long listing costs few requests. From the second page
        on, the next one is asked for before this one is handed on: the head node makes it (in its own
        process) while the consumer works through this one."""
        def page(after: int | None, limit: int) -> JobPage:
            return self.client.job_page(**query.to_wire(), after=after, limit=limit)

        limit, jobs = FIRST_PAGE, page(None, FIRST_PAGE).following(None)
        while jobs.full(limit):
            after, limit = jobs.last, min(2 * limit, protocol.MAX_IDS)
            ahead = None if limit == 2 * FIRST_PAGE else _started(functools.partial(page, after, limit))
            yield jobs
            jobs = (ahead() if ahead else page(after, limit)).following(after)
        yield jobs

    def get_tasks(self, query: TaskQuery) -> list[Record]:
        return list(self.client.call("get_tasks", **query.to_wire()))

    def set_task(self, job_id: int, task_id: int, spec: Spec) -> Record:
        return dict(self.client.call("set_task", job_id=job_id, task_id=task_id, spec=spec))

    def map_paths(self, paths: Sequence[str]) -> list[str]:
        return [str(p) for p in self.client.call("map_paths", paths=list(paths))]

    def plan_cancel(self, ids: Sequence[int], options: StopOptions) -> list[Item]:
        return self._per_job("plan_cancel", ids, **options.to_wire())

    def cancel_jobs(self, ids: Sequence[int], options: StopOptions) -> list[Item]:
        return self._per_job("cancel_jobs", ids, **options.to_wire())

    def wait_jobs(self, ids: Sequence[int], timeout: float) -> dict[int, str]:
        states = self.client.call("wait_jobs", ids=list(ids), timeout=timeout)
        return {int(k): str(v) for k, v in states.items()}

    def cancel_time_limit(self) -> float:
        return float(self.client.call("cancel_time_limit"))

    def cancel_task(self, key: TaskKey, options: StopOptions) -> Record:
        wire = options.to_wire()
        del wire["graceful"]  # a task has no graceful stop (Stop-HpcTask has no -Graceful)
        return dict(self.client.call("cancel_task", **key.to_wire(), **wire))

    def requeue_task(self, key: TaskKey) -> Record:
        return dict(self.client.call("requeue_task", **key.to_wire()))

    def submit_task(self, key: TaskKey) -> Record:
        return dict(self.client.call("submit_task", **key.to_wire()))

    def history(self, job_id: int | None = None, start: str | float | None = None,
                end: str | float | None = None) -> list[Record]:
        return list(self.client.call("history", job_id=job_id, start=start, end=end))

    def job_history(self, start: str | float, end: str | float) -> list[Record]:
        return list(self.client.call("job_history", start=start, end=end))

    def get_templates(self, name: str | None = None) -> list[Record]:
        return list(self.client.call("get_templates", name=name))

    def put_template(self, template: dict[str, Any], replace: bool = False) -> Record:
        return dict(self.client.call("put_template", **template, replace=replace))

    def remove_template(self, name: str) -> None:
        self.client.call("remove_template", name=name)

    def get_properties(self) -> dict[str, int]:
        return dict(self.client.call("get_properties"))

    def set_properties(self, values: dict[str, int]) -> dict[str, int]:
        return dict(self.client.call("set_property", values=values))

    def get_nodes(self, query: NodeQuery) -> list[Record]:
        return list(self.client.call("get_nodes", **query.to_wire()))

    def plan_node_state(self, names: Sequence[str], state: str, force: bool) -> list[NamedItem]:
        return _named(self.client.call("plan_node_state", names=list(names), state=state, force=force), "node")

    def set_node_state(self, names: Sequence[str], state: str, force: bool) -> list[NamedItem]:
        return _named(self.client.call("set_node_state", names=list(names), state=state, force=force), "node")

    def node_history(self, names: Sequence[str] | None, start: str | float | None,
                     end: str | float | None) -> list[Record]:
        return list(self.client.call("node_history", names=list(names) if names else None, start=start, end=end))

    def get_groups(self, names: Sequence[str] | None = None, ids: Sequence[int] | None = None) -> list[Record]:
        return list(self.client.call("get_groups", names=list(names) if names else None,
                                     ids=list(ids) if ids else None))

    def new_group(self, name: str, description: str = "") -> Record:
        return dict(self.client.call("new_group", name=name, description=description))

    def change_groups(self, names: Sequence[str], ids: Sequence[int], nodes: Sequence[str] | None,
                      add: bool) -> list[NamedItem]:
        return _named(self.client.call("change_groups", names=list(names), ids=list(ids),
                                       nodes=list(nodes) if nodes is not None else None, add=add), "group")

    def cluster_overview(self) -> Record:
        return dict(self.client.call("cluster_overview"))

    def cluster_parameters(self) -> dict[str, str]:
        return dict(self.client.call("cluster_parameters"))

    def get_environment(self) -> dict[str, str]:
        return dict(self.client.call("get_environment"))

    def set_environment(self, values: dict[str, str | None]) -> dict[str, str]:
        return dict(self.client.call("set_environment", values=values))


def _started(work: Callable[[], T]) -> Callable[[], T]:
    """`work` started on a thread of its own, in this one's context (the call its requests are made for:
    client.CALL); the function returned waits for its result or raises its error. (Not concurrent.futures:
    its import costs every pwsh's first cmdlet 7 ms.)"""
    outcome: list[tuple[bool, Any]] = []
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.append((True, context.run(work)))
        except BaseException as e:  # handed to the caller, whatever it is
            outcome.append((False, e))

    thread = threading.Thread(target=run, name="hpc-next-page", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        done, value = outcome[0]
        if not done:
            raise value
        return value  # type: ignore[no-any-return]
    return result
