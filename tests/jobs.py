"""Helpers to drive the head node from tests through its client API."""

from __future__ import annotations

from typing import Any

from hpcpack.backends.client import Client

from .conftest import wait_until


def make_job(client: Client, *commands: str, submit: bool = True, **spec: Any) -> int:
    job = client.call("new_job", spec=spec)
    for command in commands:
        client.call("add_task", job_id=job["Id"], spec={"CommandLine": command})
    if submit:
        [result] = client.call("submit_jobs", ids=[job["Id"]])
        assert "error" not in result, result
    return int(job["Id"])


def add_task(client: Client, job_id: int, **spec: Any) -> dict[str, Any]:
    return client.call("add_task", job_id=job_id, spec=spec)[0]


def job(client: Client, job_id: int) -> dict[str, Any]:
    return client.call("get_jobs", ids=[job_id])[0]


def tasks(client: Client, job_id: int) -> dict[str, dict[str, Any]]:
    return {t["Id"]: t for t in client.call("get_tasks", job_id=job_id)}


def task_states(client: Client, job_id: int) -> dict[str, str]:
    return {key: t["State"] for key, t in tasks(client, job_id).items()}


def wait_state(client: Client, job_id: int, *states: str, timeout: float = 20) -> dict[str, Any]:
    return wait_until(lambda: (j := job(client, job_id))["State"] in states and j, timeout)


def wait_task_state(client: Client, job_id: int, key: str, *states: str, timeout: float = 20) -> dict[str, Any]:
    return wait_until(lambda: (t := tasks(client, job_id).get(key)) and t["State"] in states and t, timeout)


def cancel(client: Client, *ids: int, **options: Any) -> list[dict[str, Any]]:
    return client.call("cancel_jobs", ids=list(ids), **options)
