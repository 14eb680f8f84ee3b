"""A head node with `engine: slurm` runs HPC jobs on a real two-node Slurm cluster with HPC Pack's
semantics: one allocation per job (asked for as its owner), one step per task, HPC Pack's cancel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcpack.backends.client import Client

from .conftest import HeadNodeProcess, as_user, start_head_node
from .jobs import job, tasks, wait_state
from .slurm_cluster import SlurmCluster, slurm_cluster_fixture

OWNER = "hpcalice"
slurm = slurm_cluster_fixture()


def slurm_config(cluster: SlurmCluster) -> str:
    return (f"engine: slurm\nslurm_conf: {cluster.slurm_conf}\nsocket_mode: \"0666\"\n"
            "administrators: [hpcadmin]\n")


@pytest.fixture
def head(slurm: SlurmCluster, state_dir: Path, users: dict[str, object]) -> Iterator[HeadNodeProcess]:
    node = start_head_node(state_dir, slurm_config(slurm))
    client = node.client()
    client.call("set_property", values={"TaskCancelGracePeriod": 2, "NodeReleaseTaskTimeout": 5})
    client.close()
    yield node
    node.stop()


@pytest.fixture
def client(head: HeadNodeProcess) -> Iterator[Client]:
    c = head.client()
    yield c
    c.close()


def user_job(head: HeadNodeProcess, *commands: str, user: str = OWNER, **spec: object) -> int:
    """A job of `user` (a real Unix user, through the socket as that user), submitted."""
    code = (f"j = c.call('new_job', spec={spec!r})\n"
            f"for cmd in {list(commands)!r}: c.call('add_task', job_id=j['Id'], spec={{'CommandLine': cmd}})\n"
            "print(json.dumps(c.call('submit_jobs', ids=[j['Id']])))\nprint(j['Id'])")
    done = as_user(user, head, code)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stdout.splitlines()[0], done.stdout
    return int(done.stdout.split()[-1])


def slurm_job(slurm: SlurmCluster, job_id: int) -> dict[str, str]:
    out = slurm.run(["scontrol", "-o", "show", "job", str(job_id)], check=False).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def test_nodes_are_slurms_and_a_task_runs_as_its_owner_on_a_slurm_node(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client) -> None:
    job_id = user_job(head, "echo $SLURMD_NODENAME $(hostname) $(id -un) $CCP_JOBID $SLURM_JOB_ID")
    done = wait_state(client, job_id, "Finished", "Failed")
    assert done["State"] == "Finished", (done["ErrorMessage"], [(t["ErrorMessage"], t["Output"]) for t in tasks(client, job_id).values()])
    [task] = tasks(client, job_id).values()
    node, host, user, hpc_id, slurm_id = task["Output"].split()
    assert node in slurm.nodes and host == node and user == OWNER and hpc_id == str(job_id)
    assert slurm_job(slurm, int(slurm_id)).get("UserId", "").startswith(f"{OWNER}(")
    assert task["ExitCode"] == 0 and job(client, job_id)["AllocatedNodes"] == []
