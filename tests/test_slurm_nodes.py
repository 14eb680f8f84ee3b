"""With `engine: slurm` the cluster's nodes and node groups are Slurm's, and Slurm starts waiting jobs in
HPC priority order: Get-HpcNode and Set-HpcNodeState through real pwsh against the real two-node cluster,
NodeGroups as partitions and features, priorities as Slurm's order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hpcpack.backends.client import Client
from hpcpack.errors import HpcError

from . import test_slurm_engine as engine
from .conftest import HeadNodeProcess, run_pwsh, wait_until
from .jobs import job, task_states, tasks, wait_state
from .slurm_cluster import SlurmCluster
from .test_slurm_engine import slurm_job, user_job

head, client = engine.head, engine.client  # the fixtures of a head node on the Slurm cluster

GATE_WAIT = "while [ ! -e {gate} ]; do sleep 0.05; done"


@pytest.fixture(autouse=True)
def cluster_as_found(slurm: SlurmCluster) -> Iterator[None]:
    yield
    slurm.clear()


def resumed(slurm: SlurmCluster, node: str) -> bool:
    """Slurm no longer drains the node (`idle*` for a second: until slurmd answers Slurm's next ping)."""
    return slurm.node_states()[node].rstrip("*") in ("idle", "mix", "alloc", "comp")


def pwsh_json(head: HeadNodeProcess, script: str) -> list[Any]:
    """What the script writes, as a list (enums by name), through real pwsh against the head node."""
    result = run_pwsh(f"ConvertTo-Json -InputObject @({script}) -Depth 3 -EnumsAsStrings", env=head.env())
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr + result.stdout
    return json.loads(result.stdout)


def started(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["StartTime"])


def test_get_hpcnode_is_slurms_and_set_hpcnodestate_drains_and_resumes_the_slurm_node(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client) -> None:
    shown = pwsh_json(head, "Get-HpcNode | Select-Object NetBiosName,ProcessorCores,Memory,Sockets,State,"
                            "HealthState,Groups")
    assert [(n["NetBiosName"], n["ProcessorCores"], n["Memory"], n["Sockets"], n["State"], n["HealthState"])
            for n in shown] == [("node1", 2, 4000, 1, "Online", "OK"), ("node2", 2, 4000, 1, "Online", "OK")]
    assert [sorted(n["Groups"]) for n in shown] == [["ComputeNodes", "big", "debug"],
                                                    ["ComputeNodes", "debug", "fast", "small"]]
    offline = pwsh_json(head, "Set-HpcNodeState -Name node2 -State Offline -Confirm:$false | "
                              "Select-Object NetBiosName,State")
    assert offline == [{"NetBiosName": "node2", "State": "Offline"}]
    assert slurm.node_states()["node2"] == "drain"
    assert "Set-HpcNodeState" in slurm_node(slurm, "node2")["Reason"]
    assert pwsh_json(head, "Get-HpcNode -State Offline | Select-Object -ExpandProperty NetBiosName") == ["node2"]
    [overview] = pwsh_json(head, "Get-HpcClusterOverview | Select-Object TotalNodeCount,OnlineNodeCount,"
                                 "OfflineNodeCount,TotalCoreCount,OfflineCoreCount")
    assert list(overview.values()) == [2, 1, 1, 4, 2], overview
    # A job that may run only on node2 waits while node2 is drained, and starts there once it is Online.
    job_id = user_job(head, "echo $SLURMD_NODENAME", RequestedNodes="node2")
    wait_until(lambda: "PENDING" in job(client, job_id)["PendingReason"], 20)
    online = pwsh_json(head, "Set-HpcNodeState -Name node2 -State Online -Confirm:$false | "
                             "Select-Object NetBiosName,State")
    assert online == [{"NetBiosName": "node2", "State": "Online"}]
    assert resumed(slurm, "node2")
    assert wait_state(client, job_id, "Finished", "Failed")["State"] == "Finished"
    assert [t["Output"].strip() for t in tasks(client, job_id).values()] == ["node2"]
    history = pwsh_json(head, "Get-HpcNodeStateHistory -Name node2 (Get-Date).AddHours(-1) (Get-Date).AddMinutes(1) | "
                              "Select-Object PreviousState,State,Actor")
    assert [(h["PreviousState"], h["State"], h["Actor"]) for h in history][-2:] == [
        ("Online", "Offline", "root"), ("Offline", "Online", "root")]


def slurm_ids(slurm: SlurmCluster, job_id: int) -> list[int]:
    """The Slurm jobs (allocations) slurmctld holds for this HPC job: named hpc-<head node>-<job id>."""
    jobs = (line.split() for line in slurm.run(["squeue", "-h", "-o", "%i %j"]).stdout.splitlines())
    return [int(i) for i, name in jobs if name.endswith(f"-{job_id}")]


def slurm_node(slurm: SlurmCluster, node: str) -> dict[str, str]:
    """scontrol's fields of a node; Reason, the last one with spaces, whole."""
    out = slurm.run(["scontrol", "-o", "show", "node", node]).stdout
    head_part, _, reason = out.partition(" Reason=")
    return {**dict(f.split("=", 1) for f in head_part.split() if "=" in f), "Reason": reason.strip()}


def test_a_draining_node_gets_no_new_task_and_is_offline_once_slurm_drained_it(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared_tmp: Path) -> None:
    gate = shared_tmp / "gate"
    # Six one-core tasks on four cores: four run, two per node, until the gate opens; two wait.
    job_id = user_job(head, *[f"echo $SLURMD_NODENAME; {GATE_WAIT.format(gate=gate)}"] * 6, NumCores="4")
    wait_until(lambda: list(task_states(client, job_id).values()).count("Running") == 4, 30)
    [answer] = client.call("set_node_state", names=["node2"], state="Offline")
    assert answer["node"]["State"] == "Draining" and answer["node"]["HealthState"] == "Transitional", answer
    assert slurm.node_states()["node2"] == "drng"
    gate.touch()
    assert wait_state(client, job_id, "Finished", "Failed")["State"] == "Finished"
    nodes = [tasks(client, job_id)[f"{job_id}.{n}"]["Output"].strip() for n in range(1, 7)]
    assert sorted(nodes[:4]) == ["node1", "node1", "node2", "node2"] and nodes[4:] == ["node1", "node1"], nodes
    # The job's allocation was the last on node2: Slurm has drained it, and Get-HpcNode follows.
    wait_until(lambda: client.call("get_nodes", names=["node2"])[0]["State"] == "Offline", 20)
    assert slurm.node_states()["node2"] == "drain"
    [answer] = client.call("set_node_state", names=["node2"], state="Online")
    assert answer["node"]["State"] == "Online" and resumed(slurm, "node2")


def test_force_offline_requeues_the_hpc_tasks_there_and_the_job_gives_the_node_back_to_slurm(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared_tmp: Path) -> None:
    gate = shared_tmp / "gate"
    job_id = user_job(head, *[f"echo $SLURMD_NODENAME; {GATE_WAIT.format(gate=gate)}"] * 4, NumCores="4")
    wait_until(lambda: list(task_states(client, job_id).values()).count("Running") == 4, 30)
    [slurm_id] = slurm_ids(slurm, job_id)
    batch_host = slurm_job(slurm, slurm_id)["BatchHost"]
    [other] = [n for n in slurm.nodes if n != batch_host]  # Slurm keeps a job's batch host: take the other
    moved = sorted(k for k, t in tasks(client, job_id).items() if t["AllocatedNodes"] == [other])
    [answer] = client.call("set_node_state", names=[other], state="Offline", force=True)
    assert answer["node"]["State"] == "Offline" and slurm.node_states()[other] == "drain", answer
    assert job(client, job_id)["AllocatedNodes"] == [batch_host]
    gate.touch()
    assert wait_state(client, job_id, "Finished", "Failed")["State"] == "Finished"
    after = tasks(client, job_id)
    assert len(moved) == 2 and [(after[k]["RequeueCount"], after[k]["Output"].strip()) for k in moved] == [
        (1, batch_host), (1, batch_host)]


def test_get_hpcgroup_lists_partitions_features_and_the_built_in_groups(head: HeadNodeProcess,
                                                                        client: Client) -> None:
    groups = {g["Name"]: (g["Description"], g["Nodes"]) for g in client.call("get_groups")}
    assert groups == {"HeadNodes": (groups["HeadNodes"][0], []),
                      "ComputeNodes": (groups["ComputeNodes"][0], ["node1", "node2"]),
                      "debug": ("Slurm partition", ["node1", "node2"]), "small": ("Slurm partition", ["node2"]),
                      "big": ("Slurm feature", ["node1"]), "fast": ("Slurm feature", ["node2"])}
    with pytest.raises(HpcError, match="slurm.conf"):
        client.call("new_group", name="gpu", description="")


@pytest.mark.parametrize(("groups", "op", "nodes", "partition", "features"), [
    ("big", "Intersect", {"node1"}, "debug", "big"),
    ("small", "Intersect", {"node2"}, "small", "(null)"),
    ("debug,fast", "Intersect", {"node2"}, "debug", "fast"),
    ("big,fast", "Union", {"node1", "node2"}, "debug", "big|fast"),
    ("big,fast", "Uniform", {"node1", "node2"}, "debug", "[big|fast]"),
    ("small,ComputeNodes", "Union", {"node1", "node2"}, "debug", "(null)"),
])
def test_node_groups_become_the_slurm_jobs_partition_and_constraint(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, groups: str, op: str, nodes: set[str],
        partition: str, features: str) -> None:
    job_id = user_job(head, "echo $SLURMD_NODENAME $SLURM_JOB_ID", NodeGroups=groups, NodeGroupOp=op)
    done = wait_state(client, job_id, "Finished", "Failed")
    assert done["State"] == "Finished", done["ErrorMessage"]
    [output] = [t["Output"].split() for t in tasks(client, job_id).values()]
    assert output[0] in nodes
    fields = slurm_job(slurm, int(output[1]))
    assert (fields["Partition"], fields["Features"]) == (partition, features)


@pytest.mark.parametrize(("groups", "op", "reason"), [
    ("nope", "Intersect", "nope are neither a Slurm partition nor a Slurm node feature"),
    ("big&fast", "Intersect", "big&fast are neither"),
    ("big|fast", "Union", "big|fast are neither"),
    ("[big]", "Intersect", "[big] are neither"),
    ("big,fast", "Intersect", "No node is in all of the node groups big, fast"),
    ("small,big", "Union", "NodeGroupOp Union cannot join Slurm partitions (small) with node features (big)"),
])
def test_a_group_slurm_does_not_have_fails_validation_and_never_reaches_sbatch(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, groups: str, op: str, reason: str) -> None:
    job_id = user_job(head, "true", NodeGroups=groups, NodeGroupOp=op)
    failed = wait_state(client, job_id, "Failed", "Finished")
    assert failed["State"] == "Failed" and reason in failed["ErrorMessage"], failed["ErrorMessage"]
    assert slurm_ids(slurm, job_id) == []


def test_higher_hpc_priority_starts_first_on_a_full_cluster_and_set_hpcjob_reorders(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared_tmp: Path) -> None:
    gate = shared_tmp / "gate"
    blocker = user_job(head, GATE_WAIT.format(gate=gate), NumCores="4")
    wait_state(client, blocker, "Running")
    # Each needs the whole cluster, so they start one after another, in Slurm's order.
    waiting = {name: user_job(head, "true", NumCores="4", Priority=priority) for name, priority in
               (("low", "BelowNormal"), ("normal1", "Normal"), ("raised", "Lowest"), ("normal2", "Normal"),
                ("high", "Highest"))}
    wait_until(lambda: all(slurm_ids(slurm, i) for i in waiting.values()), 20)  # all wait in Slurm's queue
    client.call("set_job", id=waiting["raised"], spec={"Priority": "AboveNormal"})
    gate.touch()
    ended = {name: wait_state(client, i, "Finished", "Failed", timeout=60) for name, i in waiting.items()}
    assert all(e["State"] == "Finished" for e in ended.values()), ended
    assert sorted(ended, key=lambda name: started(ended[name])) == ["high", "raised", "normal1", "normal2", "low"]
