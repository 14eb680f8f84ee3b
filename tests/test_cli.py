"""The `job` command: HPC Pack's command line against a real head node."""

from __future__ import annotations

import subprocess
import sys

from hpcpack.backends.client import Client

from .conftest import HeadNodeProcess, wait_until
from .jobs import job, task_states, wait_state


def job_cli(head: HeadNodeProcess, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpcpack.cli", *words], capture_output=True, text=True,
                          env=head.env(), timeout=60)


def test_new_add_submit_list_view_with_hpc_pack_options(head: HeadNodeProcess, client: Client) -> None:
    made = job_cli(head, "new", "/jobname:cli", "/numcores:1-2", "/priority:AboveNormal")
    assert made.returncode == 0, made.stderr
    job_id = int(made.stdout.split("ID:")[1])
    assert job_cli(head, "add", str(job_id), "/name:hello", "echo", "hello", "world").returncode == 0
    assert job_cli(head, "add", str(job_id), "--type", "NodeRelease", "echo", "bye").returncode == 0
    assert job_cli(head, "add", str(job_id), "/parametric:1-3", "echo", "step", "*").returncode == 0
    assert "submitted" in job_cli(head, "submit", f"/id:{job_id}").stdout
    wait_until(lambda: task_states(client, job_id).get(f"{job_id}.1") == "Finished")
    listing = job_cli(head, "listtasks", str(job_id), "/expand").stdout
    assert f"{job_id}.3.2" in listing and "echo step 2" in listing
    assert str(job_id) in job_cli(head, "list", "/all").stdout
    view = job_cli(head, "view", str(job_id)).stdout
    assert "Priority" in view and "AboveNormal" in view


def test_cancel_finish_and_requeue(head: HeadNodeProcess, client: Client) -> None:
    job_id = int(job_cli(head, "new", "/numcores:1", "/rununtilcanceled:true").stdout.split("ID:")[1])
    job_cli(head, "add", str(job_id), "sleep", "300")
    job_cli(head, "submit", str(job_id))
    wait_state(client, job_id, "Running")
    cancelled = job_cli(head, "cancel", str(job_id), "/force", "/message:make room")
    assert cancelled.returncode == 0 and "canceled" in cancelled.stdout
    assert job(client, job_id)["ErrorMessage"] == "make room"
    again = job_cli(head, "cancel", str(job_id))
    assert again.returncode == 1 and "current state (Canceled)" in again.stderr
    assert job_cli(head, "requeue", str(job_id)).returncode == 0
    wait_state(client, job_id, "Running")
    finished = job_cli(head, "finish", str(job_id), "--message", "all done")
    assert finished.returncode == 0, finished.stderr
    assert job(client, job_id)["State"] == "Finished"


def test_usage_errors_are_clear(head: HeadNodeProcess) -> None:
    assert job_cli(head, "cancel").returncode == 2
    assert "job ID is required" in job_cli(head, "cancel").stderr
    assert job_cli(head, "frobnicate").returncode == 2
    bad = job_cli(head, "new", "/colour:red")
    assert bad.returncode == 2 and "unknown option /colour" in bad.stderr
    long = job_cli(head, "cancel", "1", "/message:" + "x" * 129)
    assert long.returncode == 1 and "limit is 128" in long.stderr
