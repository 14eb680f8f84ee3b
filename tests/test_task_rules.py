"""HPC Pack's task rules on a real head node: a task's grace period belongs to its program, stops wait,
sweeps end as HPC Pack shows them, running jobs and tasks requeue, output paths are the node's."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hpcpack.backends.client import Client

from .conftest import PwshResult, wait_until
from .jobs import add_task, cancel, job, make_job, tasks, wait_state, wait_task_state

CLEANUP = ("trap 'echo cleaning >> {log}; sleep 1; echo cleaned >> {log}; exit 0' TERM; "
           "echo ready >> {log}; while true; do sleep 0.05; done")


@pytest.fixture
def folder(shared_tmp: Path) -> Path:
    return shared_tmp


def _ready(log: Path) -> bool:
    return log.exists() and "ready" in log.read_text()


def test_a_cancelled_tasks_program_gets_its_grace_period(client: Client, folder: Path) -> None:
    """Stop-HpcTask without -Force: SIGTERM to the program, which cleans up for 1 s (grace is 2 s)."""
    log = folder / "log"
    job_id = make_job(client, CLEANUP.format(log=log), "sleep 300")
    wait_until(lambda: _ready(log))
    started = time.monotonic()
    client.call("cancel_task", job_id=job_id, task_id=1)
    stopped = wait_task_state(client, job_id, f"{job_id}.1", "Failed", "Canceled")
    took = time.monotonic() - started
    assert log.read_text().split() == ["ready", "cleaning", "cleaned"], log.read_text()
    assert 0.9 <= took < 2.5, took
    assert stopped["ExitCode"] == 0


def test_stop_hpctask_waits_for_the_task_to_stop_and_grants_the_grace_period(client: Client, folder: Path,
                                                                             pwsh: Callable[..., PwshResult]) -> None:
    log = folder / "log"
    job_id = make_job(client, CLEANUP.format(log=log), "sleep 300")
    wait_until(lambda: _ready(log))
    result = pwsh(f"Stop-HpcTask -JobId {job_id} -TaskId 1 -Confirm:$false\n"
                  f"'state|' + (Get-HpcTask -JobId {job_id} -TaskId 1).State")
    assert result.returncode == 0, result.stderr
    assert "state|Failed" in result.stdout.splitlines() or "state|Canceled" in result.stdout.splitlines()
    assert "cleaned" in log.read_text()


def test_a_cancelled_running_sweep_shows_canceled(client: Client) -> None:
    job_id = client.call("new_job", spec={"NumCores": "1"})["Id"]
    add_task(client, job_id, CommandLine="sleep 300", Type="ParametricSweep", Start=1, End=5)
    client.call("submit_jobs", ids=[job_id])
    wait_until(lambda: "Running" in {t["State"] for t in tasks(client, job_id).values()})
    cancel(client, job_id, force=True)
    wait_state(client, job_id, "Canceled")
    steps = client.call("get_tasks", job_id=job_id)
    assert sorted(t["State"] for t in steps) == ["Canceled"] * 4 + ["Failed"]  # the running step: Failed
    [parent] = client.call("get_tasks", job_id=job_id, expand=False)
    assert parent["State"] == "Canceled"


def test_a_running_job_requeues_after_its_tasks_stop(client: Client, folder: Path) -> None:
    log = folder / "log"
    job_id = make_job(client, CLEANUP.format(log=log))
    wait_until(lambda: _ready(log))
    [result] = client.call("requeue_jobs", ids=[job_id])
    assert "error" not in result, result
    wait_until(lambda: log.read_text().count("ready") == 2, 15)  # stopped with its grace, then run again
    again = job(client, job_id)
    assert again["State"] == "Running" and again["RequeueCount"] == 1
    assert [r["event"] for r in client.call("history", job_id=job_id)][-3:] == ["cancel", "end", "requeue"]
    cancel(client, job_id, force=True)


def test_a_running_task_requeues_after_it_stops(client: Client, folder: Path) -> None:
    log = folder / "log"
    job_id = make_job(client, CLEANUP.format(log=log), "sleep 300")
    wait_until(lambda: _ready(log))
    client.call("requeue_task", job_id=job_id, task_id=1)
    wait_until(lambda: log.read_text().count("ready") == 2, 15)
    rerun = tasks(client, job_id)[f"{job_id}.1"]
    assert rerun["State"] == "Running" and rerun["RequeueCount"] == 1
    assert "cleaned" in log.read_text()
    cancel(client, job_id, force=True)


def test_redirections_are_relative_to_the_working_folder_and_take_the_sweep_index(
        client: Client, folder: Path, pwsh: Callable[..., PwshResult]) -> None:
    work = folder / "work"
    work.mkdir()
    work.chmod(0o777)
    result = pwsh(
        f"$job = New-HpcJob\n"
        f"$job | Add-HpcTask -Parametric -Start 1 -End 3 -CommandLine 'echo step *' -WorkDir '{work}' "
        f"-Stdout 'out*.txt' -Stderr 'err*.txt' | Out-Null\n"
        f"$job | Submit-HpcJob | Out-Null\n'job|' + $job.Id")
    assert result.returncode == 0, result.stderr
    job_id = int(next(line for line in result.stdout.splitlines() if line.startswith("job|")).split("|")[1])
    wait_state(client, job_id, "Finished")
    assert sorted(p.name for p in work.iterdir()) == ["err1.txt", "err2.txt", "err3.txt", "out1.txt", "out2.txt",
                                                      "out3.txt"]
    assert (work / "out2.txt").read_text() == "step 2\n"


def test_a_missing_output_folder_fails_the_task_with_the_reason(client: Client, folder: Path) -> None:
    job_id = client.call("new_job", spec={})["Id"]
    add_task(client, job_id, CommandLine="echo hi", WorkDir=str(folder), Stdout="no/such/dir/out.txt")
    client.call("submit_jobs", ids=[job_id])
    wait_state(client, job_id, "Failed")
    message = tasks(client, job_id)[f"{job_id}.1"]["ErrorMessage"]
    assert "standard output" in message and "no/such/dir/out.txt" in message and "No such file" in message


def test_node_prep_and_release_tasks_show_their_exit_codes(client: Client) -> None:
    job_id = client.call("new_job", spec={})["Id"]
    add_task(client, job_id, CommandLine="exit 0", Type="NodePrep")
    add_task(client, job_id, CommandLine="true")
    add_task(client, job_id, CommandLine="exit 0", Type="NodeRelease")
    client.call("submit_jobs", ids=[job_id])
    wait_state(client, job_id, "Finished")
    shown: dict[str, Any] = {t["Type"]: t for t in client.call("get_tasks", job_id=job_id)}
    assert shown["NodePrep"]["State"] == "Finished" and shown["NodePrep"]["ExitCode"] == 0


@pytest.mark.parametrize("route", ["task cancel", "HpcTask.Cancel()"])
def test_every_route_of_a_task_cancel_grants_the_grace_period(client: Client, folder: Path, head: Any,
                                                              route: str) -> None:
    import subprocess
    import sys

    from .conftest import run_pwsh
    log = folder / "log"
    job_id = make_job(client, CLEANUP.format(log=log), "sleep 300")
    wait_until(lambda: _ready(log))
    if route == "task cancel":
        done = subprocess.run([sys.executable, "-m", "hpcpack.cli.task", "cancel", f"{job_id}.1",
                               f"/scheduler:unix:{head.socket}"], capture_output=True, text=True, timeout=60)
    else:
        done = run_pwsh(f"(Get-HpcTask -JobId {job_id} -TaskId 1).Cancel()", env=head.env())
    assert done.returncode == 0, done.stderr
    wait_task_state(client, job_id, f"{job_id}.1", "Failed", "Canceled")
    assert log.read_text().split() == ["ready", "cleaning", "cleaned"], (route, log.read_text())
    cancel(client, job_id, force=True)
