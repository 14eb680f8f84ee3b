"""Job and task parameters are declared once (hpcpack.model.properties): the C# module's parameters and
objects, the head node's setters and records and the `job` command's options agree with that table,
and every parameter acts or is refused with a clear error, never stored and dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hpcpack.cli import COMMANDS
from hpcpack.config import Node
from hpcpack.errors import HpcError
from hpcpack.head.headnode import HeadNode
from hpcpack.identity import Caller
from hpcpack.model import jobspec
from hpcpack.model.objects import Job, Task
from hpcpack.model.properties import JOB, JOB_CHANGES, JOB_FILE_ONLY, JOB_NAMES, TASK, TASK_NAMES
from hpcpack.model.states import JobState, TaskState

from .conftest import in_process_head_node, run_pwsh, wait_until

ROOT = Caller(uid=0, gid=0, name="root", admin=True)
# Each cmdlet's parameters that are not job or task properties (which job, where, credentials).
OWN = {"New-HpcJob": {"JobFile", "Job"}, "Set-HpcJob": {"Id", "Job", "Credential"},
       "Add-HpcTask": {"Job", "JobId", "TaskFile"}, "Set-HpcTask": {"Task", "JobId", "TaskId"}}
# Set-HpcTask takes Add-HpcTask's task properties, but -Parametric as a Boolean (hpcpack-facts.md §4.9).
SET_TASK = tuple(replace(p, type="Boolean") if p.name == "Parametric" else p for p in TASK)


@pytest.fixture(scope="module")
def engine() -> dict[str, dict[str, str]]:
    """What real pwsh says of the module: each cmdlet's parameters and each object's properties, by type."""
    script = """
$common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
foreach ($name in 'New-HpcJob', 'Set-HpcJob', 'Add-HpcTask', 'Set-HpcTask') {
  foreach ($p in (Get-Command $name).Parameters.Values) {
    if ($p.Name -notin $common -and $p.Name -ne 'Scheduler') { "$name|$($p.Name)|$($p.ParameterType.Name)" }
  }
}
foreach ($type in [Microsoft.ComputeCluster.CCPPSH.HpcJob], [Microsoft.ComputeCluster.CCPPSH.HpcTask]) {
  foreach ($p in $type.GetProperties()) { "$($type.Name)|$($p.Name)|$($p.PropertyType.Name)" }
}
"""
    result = run_pwsh(script)
    assert result.returncode == 0, result.stderr
    out: dict[str, dict[str, str]] = {}
    for line in result.stdout.splitlines():
        if line.count("|") == 2:
            owner, name, kind = line.split("|")
            out.setdefault(owner, {})[name] = kind
    return out


def test_the_cmdlets_take_exactly_the_declared_parameters_with_their_types(engine: dict[str, dict[str, str]]) -> None:
    for cmdlet, declared in (("New-HpcJob", JOB), ("Set-HpcJob", JOB + JOB_CHANGES), ("Add-HpcTask", TASK),
                             ("Set-HpcTask", SET_TASK)):
        theirs = {k: v for k, v in engine[cmdlet].items() if k not in OWN[cmdlet]}
        assert theirs == {p.name: p.type for p in declared}, cmdlet


def test_every_parameter_is_shown_by_a_property_of_the_object(engine: dict[str, dict[str, str]]) -> None:
    for type_name, declared in (("HpcJob", JOB + JOB_CHANGES), ("HpcTask", TASK)):
        missing = {p.shown for p in declared if p.shown is not None} - set(engine[type_name])
        assert not missing, (type_name, missing)


def test_the_head_nodes_records_carry_every_shown_property() -> None:
    job_record = Job(id=1, owner="root", owner_uid=0).to_record("here")
    task_record = Task(job_id=1, task_id=1).to_record("here")
    assert {p.shown for p in JOB + JOB_CHANGES if p.shown} <= set(job_record)
    assert {p.shown for p in TASK if p.shown} <= set(task_record)


def test_the_head_node_has_one_setter_per_job_parameter_and_refuses_others() -> None:
    assert set(jobspec._JOB_SETTERS) == {n.lower() for n in JOB_NAMES + JOB_FILE_ONLY}
    job = Job(id=1, owner="root", owner_uid=0)
    with pytest.raises(HpcError) as refused:
        jobspec.apply_job_properties(job, {"NoSuchProperty": "1"})
    assert refused.value.error_id == "InvalidArgument" and "NoSuchProperty" in refused.value.message
    assert job.extra == {}


def test_the_job_commands_options_set_declared_properties() -> None:
    for command, names in (("new", JOB_NAMES), ("add", TASK_NAMES)):
        keys = {o.key for o in COMMANDS[command].options if o.key}
        assert keys <= set(names), keys - set(names)


# -- each parameter acts ------------------------------------------------------------------------------


@pytest.fixture
def head(tmp_path: Path) -> Iterator[HeadNode]:
    nodes = [Node("SMALL", 2, memory=1000), Node("BIG", 4, memory=8000), Node("MID", 3, memory=4000)]
    yield from in_process_head_node(tmp_path, nodes)


def run(head: HeadNode, spec: dict[str, Any], *tasks: dict[str, Any]) -> Job:
    job = head.new_job(ROOT, spec)
    for task in tasks:
        head.add_task(ROOT, job.id, task)
    head.submit_job(ROOT, job.id)
    wait_until(lambda: (head.step(), job.state not in (JobState.Submitted, JobState.Validating))[1], 10)
    return job


def allocated(head: HeadNode, job: Job) -> dict[str, int]:
    """The cores the job got when it started (they are given back when it ends)."""
    return dict(wait_until(lambda: (head.step(), dict(job.allocation))[1], 10))


def ended(head: HeadNode, job: Job) -> Job:
    wait_until(lambda: (head.step(), job.terminal)[1], 20)
    return job


def test_per_node_core_and_memory_limits_choose_the_nodes(head: HeadNode) -> None:
    job = run(head, {"MinCoresPerNode": 3, "MaxMemoryPerNode": 5000, "NumCores": "1-8"}, {"CommandLine": "true"})
    assert set(allocated(head, job)) == {"MID"}  # BIG has too much memory, SMALL too few cores
    impossible = run(head, {"MinMemoryPerNode": 100_000}, {"CommandLine": "true"})
    assert impossible.state == JobState.Failed and "per-node limits" in impossible.error_message


def test_single_node_takes_all_its_cores_from_one_node(head: HeadNode) -> None:
    job = run(head, {"SingleNode": True, "NumCores": "3-9"}, {"CommandLine": "true"})
    assert allocated(head, job) == {"BIG": 4}
    too_big = run(head, {"SingleNode": True, "NumCores": "5-5"}, {"CommandLine": "true"})
    assert too_big.state == JobState.Failed and "SingleNode" in too_big.error_message


def test_order_by_decides_which_nodes_come_first(head: HeadNode) -> None:
    least_memory = run(head, {"OrderBy": ["-Memory"], "NumCores": "1-1"}, {"CommandLine": "true"})
    assert list(allocated(head, least_memory)) == ["SMALL"]
    most_cores = run(head, {"OrderBy": "Cores", "NumCores": "1-1"}, {"CommandLine": "true"})
    assert list(allocated(head, most_cores)) == ["BIG"]
    with pytest.raises(HpcError):
        head.new_job(ROOT, {"OrderBy": ["Memory", "-Memory"]})  # the same resource twice


def test_estimated_process_memory_caps_the_cores_on_each_node(head: HeadNode) -> None:
    job = run(head, {"EstimatedProcessMemory": 2000, "NumCores": "1-9"}, {"CommandLine": "true"})
    assert allocated(head, job) == {"BIG": 4, "MID": 2, "SMALL": 1}


def test_gpus_are_refused_on_a_cluster_without_them(head: HeadNode) -> None:
    job = run(head, {"NumGpus": "1"}, {"CommandLine": "true"})
    assert job.state == JobState.Failed and "GPU" in job.error_message


def test_fail_dependent_tasks_fails_the_dependants_of_a_failed_task(head: HeadNode) -> None:
    job = run(head, {"FailDependentTasks": True},
              {"CommandLine": "exit 3", "Name": "first"}, {"CommandLine": "true", "Depend": ["first"]})
    ended(head, job)
    assert [t.state for t in job.tasks] == [TaskState.Failed, TaskState.Failed]
    plain = run(head, {}, {"CommandLine": "exit 3", "Name": "first"}, {"CommandLine": "true", "Depend": ["first"]})
    ended(head, plain)
    assert [t.state for t in plain.tasks] == [TaskState.Failed, TaskState.Canceled]


def test_a_tasks_valid_exit_codes_and_required_nodes_act(head: HeadNode) -> None:
    job = run(head, {"NumCores": "1-9"},
              {"CommandLine": "exit 7", "ValidExitCodes": "0,7"}, {"CommandLine": "true", "RequiredNodes": ["MID"]})
    ended(head, job)
    assert job.tasks[0].state == TaskState.Finished
    assert job.tasks[1].node == "MID"
    nowhere = run(head, {"RequestedNodes": ["SMALL"]}, {"CommandLine": "true", "RequiredNodes": "MID"})
    ended(head, nowhere)
    assert nowhere.tasks[0].state == TaskState.Failed and "required nodes" in nowhere.tasks[0].error_message


def test_fail_job_on_failure_count_fails_the_job_at_the_nth_failed_step(head: HeadNode) -> None:
    job = run(head, {"NumCores": "1-1"}, {"CommandLine": "exit 1", "Type": "ParametricSweep", "Start": 1, "End": 5,
                                          "FailJobOnFailureCount": 2})
    ended(head, job)
    assert job.state == JobState.Failed
    assert sum(1 for u in job.tasks[0].instances if u.state == TaskState.Failed) >= 2
    assert job.tasks[0].instances[0].state == TaskState.Failed  # the first failure alone did not stop it


def test_a_task_past_its_run_time_is_stopped_and_failed(head: HeadNode) -> None:
    job = run(head, {}, {"CommandLine": "sleep 300", "RunTime": "1"})
    unit = job.tasks[0]
    wait_until(lambda: (head.step(), unit.state == TaskState.Running)[1], 10)
    unit.runtime_limit = 1  # the parameter counts minutes; one second here spares the test a minute
    wait_until(lambda: (head.step(), unit.state == TaskState.Failed)[1], 20)
    assert "run-time limit" in unit.error_message


def test_unknown_task_parameters_are_refused(head: HeadNode) -> None:
    job = head.new_job(ROOT, {})
    with pytest.raises(HpcError) as refused:
        head.add_task(ROOT, job.id, {"CommandLine": "true", "Bogus": "1"})
    assert refused.value.error_id == "InvalidArgument" and "Bogus" in refused.value.message


def test_a_task_on_nodes_holds_whole_nodes_and_is_told_them(head: HeadNode) -> None:
    job = run(head, {"NumNodes": "2-2"}, {"CommandLine": "echo $CCP_NUMCPUS $CCP_NODES", "NumNodes": "2"},
              {"CommandLine": "echo $CCP_NUMCPUS", "NumSockets": "1"})
    ended(head, job)
    multi, socket = job.tasks
    assert multi.state == TaskState.Finished and socket.state == TaskState.Finished
    numcpus, count, *pairs = multi.output.split()
    assert count == "2" and int(numcpus) == sum(int(c) for c in pairs[1::2]) == sum(job_cores(head, pairs[0::2]))
    too_many = run(head, {"NumNodes": "1-1"}, {"CommandLine": "true", "NumNodes": "2"})
    ended(head, too_many)
    assert too_many.tasks[0].state == TaskState.Failed and "needs 2 nodes" in too_many.tasks[0].error_message


def job_cores(head: HeadNode, names: list[str]) -> list[int]:
    return [n.cores for n in head.config.nodes if n.name in names]


def test_recorded_properties_are_shown_and_copied(head: HeadNode) -> None:
    spec = {"License": ["solver:4", "mesh:*"], "EmailAddress": "a@b.example", "NotifyOnStart": True,
            "NotifyOnCompletion": True, "CustomProperties": "site=north;Tier=2", "HoldUntil": "2999-01-01T00:00:00"}
    job = head.new_job(ROOT, spec)
    copy = head.copy_job(ROOT, job.id, {})
    for shown in (job.to_record("x"), copy.to_record("x")):
        assert shown["SoftwareLicense"] == "solver:4,mesh:*" and shown["EmailAddress"] == "a@b.example"
        assert shown["NotifyOnStart"] and shown["NotifyOnCompletion"]
        assert shown["CustomProperties"] == {"site": "north", "Tier": "2"}
        assert shown["HoldUntil"] is not None and shown["HoldUntil"].startswith("2999-01-01")


def test_objects_in_powershell_show_them(tmp_path: Path) -> None:
    """A job's recorded properties reach PowerShell typed (they were stored and then dropped before)."""
    env = {**os.environ, "HPCPACK_HOME": str(tmp_path)}
    result = run_pwsh("$j = New-HpcJob -NumGpus 0 -SingleNode $true -OrderBy Memory -EmailAddress a@b.example "
                      "-License solver:2 -CustomProperties 'x=1'\n"
                      "'|' + $j.SingleNode + '|' + ($j.OrderBy -join ',') + '|' + $j.EmailAddress + '|' + "
                      "$j.SoftwareLicense + '|' + $j.CustomProperties['x'] + '|' + $j.SingleNode.GetType().Name",
                      env=env)
    subprocess.run([sys.executable, "-m", "hpcpack.head.daemon", "--state-dir", str(tmp_path), "--stop"], check=True)
    assert result.returncode == 0, result.stderr
    assert "|True|Memory|a@b.example|solver:2|1|Boolean" in result.stdout


def test_set_hpctask_keeps_the_properties_it_does_not_change(head: HeadNode) -> None:
    job = head.new_job(ROOT, {})
    head.add_task(ROOT, job.id, {"CommandLine": "true", "RequiredNodes": ["MID"], "ValidExitCodes": "0,3",
                                 "CustomProperties": "a=1;b=2", "FailJobOnFailureCount": 2})
    task = head.set_task(ROOT, job.id, 1, {"Name": "renamed"})
    assert (task.name, task.required_nodes, task.valid_exit_codes, task.custom_properties,
            task.fail_job_on_failure_count) == ("renamed", ["MID"], "0,3", {"a": "1", "b": "2"}, 2)
