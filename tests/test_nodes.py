"""Nodes, node groups, node states (drain) and the cluster overview, through real pwsh against a head node
with several nodes and groups."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hpcpack.head import scheduler

from .conftest import HeadNodeProcess, PwshResult, run_pwsh, start_head_node

CLUSTER = """
nodes:
  - {name: NODE1, cores: 4, groups: [GPU]}
  - {name: NODE2, cores: 4, groups: [GPU, BigMem], memory: 65536, sockets: 2}
  - {name: NODE3, cores: 2, groups: [BigMem]}
socket_mode: "0666"
"""


@pytest.fixture
def cluster(state_dir: Path) -> Iterator[HeadNodeProcess]:
    node = start_head_node(state_dir, CLUSTER)
    client = node.client()
    client.call("set_property", values={"TaskCancelGracePeriod": 1})
    client.close()
    yield node
    node.stop()


@pytest.fixture
def ps(cluster: HeadNodeProcess) -> Callable[..., PwshResult]:
    def run(script: str, **kwargs: Any) -> PwshResult:
        return run_pwsh("$ErrorActionPreference = 'Stop'\n" + script, env=cluster.env(), **kwargs)
    return run


def lines(result: PwshResult) -> list[str]:
    assert result.returncode == 0, result.stderr + result.stdout
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def test_get_hpcnode_filters_and_properties(ps: Callable[..., PwshResult]) -> None:
    out = lines(ps("""
        $n = Get-HpcNode -Name NODE2
        $n.GetType().FullName
        "$($n.NetBiosName) $($n.State) $($n.NodeState) $($n.HealthState) $($n.ProcessorCores) $($n.Sockets) $($n.Memory)"
        ($n.Groups -join ',')
        (Get-HpcNode -GroupName GPU | ForEach-Object NetBiosName) -join ','
        (Get-HpcNode -GroupName GPU,BigMem | ForEach-Object NetBiosName) -join ','
        (Get-HpcNode -State Online -Health OK | Measure-Object).Count
        (Get-HpcNode -HealthState ([Microsoft.ComputeCluster.CCPPSH.NodeHealthState]::OK)).Count
        (Get-HpcNode -TemplateName 'Default ComputeNode Template').Count
        (Get-HpcNode -State Offline | Measure-Object).Count
        [Microsoft.Hpc.Scheduler.Properties.NodeState]::Draining.value__
        (Get-HpcGroup -Name GPU | Get-HpcNode | ForEach-Object NetBiosName) -join ','
    """))
    assert out[0] == "Microsoft.ComputeCluster.CCPPSH.HpcNode"
    assert out[1] == "NODE2 Online Online OK 4 2 65536"
    assert out[2] == "ComputeNodes,GPU,BigMem"
    assert out[3] == "NODE1,NODE2"
    assert out[4] == "NODE1,NODE2,NODE3"
    assert out[5:9] == ["3", "3", "3", "0"]
    assert out[9] == "2"
    assert out[10] == "NODE1,NODE2"


def test_groups_new_add_remove(ps: Callable[..., PwshResult]) -> None:
    out = lines(ps("""
        $g = New-HpcGroup -Name Fast -Description 'fast nodes'
        "$($g.Name) $($g.NodeCount)"
        Add-HpcGroup -Name Fast -NodeName NODE1,NODE3
        Get-HpcNode -Name NODE2 | Add-HpcGroup -Name Fast
        (Get-HpcGroup -Name Fast).Nodes -join ','
        Remove-HpcGroup -Name Fast -NodeName NODE1 -Confirm:$false
        (Get-HpcGroup Fast).Nodes -join ','
        Remove-HpcGroup -Name Fast -WhatIf
        (Get-HpcGroup | ForEach-Object Name) -join ','
        Remove-HpcGroup -Name Fast -Confirm:$false
        (Get-HpcGroup | ForEach-Object Name) -join ','
        try { Remove-HpcGroup -Name ComputeNodes -Confirm:$false } catch { "builtin: $($_.Exception.Message)" }
        try { New-HpcGroup -Name GPU } catch { "dup: $($_.Exception.Message)" }
    """))
    assert out[0] == "Fast 0"
    assert out[1] == "NODE1,NODE2,NODE3"
    assert out[2] == "NODE2,NODE3"
    assert any("What if" in line and "delete the group" in line for line in out)
    assert "HeadNodes,ComputeNodes,GPU,BigMem,Fast" in out
    assert "HeadNodes,ComputeNodes,GPU,BigMem" in out
    assert any(line.startswith("builtin:") and "built-in" in line for line in out)
    assert any(line.startswith("dup:") and "already exists" in line for line in out)


def test_node_groups_decide_where_jobs_run(ps: Callable[..., PwshResult]) -> None:
    out = lines(ps("""
        function Run($groups, $op, $cores) {
            $j = New-HpcJob -NodeGroups $groups -NodeGroupOp $op -NumCores $cores
            $j | Add-HpcTask -CommandLine 'sleep 1' | Out-Null
            $j | Submit-HpcJob | Out-Null
            $nodes = ''
            for ($i = 0; $i -lt 200; $i++) {
                $j = Get-HpcJob -Id $j.Id
                if ($j.State -eq 'Running') { $nodes = ($j.AllocatedNodes | Sort-Object) -join ',' }
                if ($j.State -in 'Finished','Failed','Canceled') { break }
                Start-Sleep -Milliseconds 50
            }
            "$($j.State) $nodes $($j.ErrorMessage)"
        }
        Run 'GPU,BigMem' Intersect '1-8'
        Run 'GPU' Uniform '1-8'
        Run 'GPU,BigMem' Union '10'
        Run 'NoSuchGroup' Intersect '1'
        Run 'GPU,BigMem' Intersect '5'
    """, timeout=180))
    assert out[0] == "Finished NODE2", out
    assert out[1] == "Finished NODE1,NODE2", out
    assert out[2] == "Finished NODE1,NODE2,NODE3", out
    assert out[3].startswith("Failed") and "NoSuchGroup" in out[3] and "do not exist" in out[3], out
    assert out[4].startswith("Failed") and "node groups" in out[4], out


def test_drain_offline_and_history(ps: Callable[..., PwshResult]) -> None:
    """Offline drains: the running task finishes, nothing new starts on the node, then it is Offline."""
    out = lines(ps("""
        $j = New-HpcJob -RequestedNodes NODE3 -NumCores 1
        $j | Add-HpcTask -CommandLine 'sleep 2' | Out-Null
        $j | Submit-HpcJob | Out-Null
        while ((Get-HpcTask -JobId $j.Id).State -ne 'Running') { Start-Sleep -Milliseconds 50 }
        $n = Set-HpcNodeState -Name NODE3 -State Offline -Async -Confirm:$false
        "after async: $($n.State) $($n.HealthState)"
        $k = New-HpcJob -RequestedNodes NODE3 -NumCores 1
        $k | Add-HpcTask -CommandLine 'echo later' | Out-Null
        $k | Submit-HpcJob | Out-Null
        while ((Get-HpcNode -Name NODE3).State -ne 'Offline') { Start-Sleep -Milliseconds 100 }
        "drained: $((Get-HpcTask -JobId $j.Id).State) job2 $((Get-HpcJob -Id $k.Id).State)"
        (Get-HpcClusterOverview).OfflineNodeCount
        Set-HpcNodeState -Name NODE3 -State Online -Confirm:$false | ForEach-Object { "back: $($_.State)" }
        for ($i = 0; $i -lt 100 -and (Get-HpcJob -Id $k.Id).State -ne 'Finished'; $i++) { Start-Sleep -Milliseconds 100 }
        "job2 $((Get-HpcJob -Id $k.Id).State)"
        Get-HpcNodeStateHistory -StartDate (Get-Date).AddHours(-1) -EndDate (Get-Date).AddHours(1) -Name NODE3 |
            ForEach-Object { "$($_.PreviousState)->$($_.State)" }
    """, timeout=120))
    assert "after async: Draining Transitional" in out
    assert "drained: Finished job2 Queued" in out
    assert "1" in out
    assert "back: Online" in out
    assert "job2 Finished" in out
    assert out[-3:] == ["Online->Draining", "Draining->Offline", "Offline->Online"]


def test_force_offline_requeues_running_tasks(ps: Callable[..., PwshResult]) -> None:
    out = lines(ps("""
        $j = New-HpcJob -RequestedNodes NODE3,NODE1 -NumCores 1
        $j | Add-HpcTask -CommandLine 'sleep 30' | Out-Null
        $j | Submit-HpcJob | Out-Null
        while (($t = Get-HpcTask -JobId $j.Id).State -ne 'Running') { Start-Sleep -Milliseconds 50 }
        $first = $t.AllocatedNodes -join ','
        $n = Set-HpcNodeState -Name $first -State Offline -Force -Confirm:$false
        "forced: $($n.State)"
        for ($i = 0; $i -lt 100; $i++) {
            $t = Get-HpcTask -JobId $j.Id
            if ($t.State -eq 'Running' -and ($t.AllocatedNodes -join ',') -ne $first) { break }
            Start-Sleep -Milliseconds 100
        }
        "task: $($t.State) requeued $($t.RequeueCount) moved $(($t.AllocatedNodes -join ',') -ne $first)"
        $j | Stop-HpcJob -Force -Confirm:$false
    """, timeout=60))
    assert "forced: Offline" in out
    assert "task: Running requeued 1 moved True" in out


def test_set_node_state_whatif_and_errors(ps: Callable[..., PwshResult]) -> None:
    out = lines(ps("""
        Set-HpcNodeState -Name NODE1 -State Offline -WhatIf
        (Get-HpcNode NODE1).State
        Set-HpcNodeState -Name 'NODE1,NOPE' -State Offline -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable e |
            ForEach-Object { "set $($_.NetBiosName) $($_.State)" }
        "err: $($e[0].Exception.Message)"
        Get-HpcNode -Name NODE1 | Set-HpcNodeState -State Online -Confirm:$false | ForEach-Object { "set $($_.State)" }
        try { Set-HpcNodeState -Name NODE1 -State Online -Force -Confirm:$false } catch { "force: $($_.Exception.Message)" }
    """))
    assert any("What if" in line and "NODE1" in line for line in out)
    assert out[1] == "Online"
    assert "set NODE1 Offline" in out
    assert any(line.startswith("err:") and "NOPE" in line for line in out)
    assert "set Online" in out
    assert any(line.startswith("force:") and "Offline" in line for line in out)


def test_cluster_overview_and_properties(ps: Callable[..., PwshResult]) -> None:
    out = lines(ps("""
        $o = Get-HpcClusterOverview
        "$($o.TotalNodeCount) $($o.OnlineNodeCount) $($o.TotalCoreCount) $($o.IdleCoreCount) $($o.OfflineCoreCount)"
        $p = Get-HpcClusterProperty -Parameter
        foreach ($name in 'SchedulingMode','TtlCompletedJobs','JobRetryCount','TaskCancelGracePeriod') {
            "$name=$(($p | Where-Object Name -eq $name).Value)"
        }
        Set-HpcClusterProperty -Environment 'MY_VAR=hello' -Confirm:$false
        Get-HpcClusterProperty -Environment | ForEach-Object { "$($_.Name)=$($_.Value)" }
        $j = New-HpcJob; $j | Add-HpcTask -CommandLine 'printenv MY_VAR' | Out-Null; $j | Submit-HpcJob | Out-Null
        while ((Get-HpcJob -Id $j.Id).State -ne 'Finished') { Start-Sleep -Milliseconds 50 }
        "task: $((Get-HpcTask -JobId $j.Id).Output.Trim())"
        Set-HpcClusterProperty -Environment 'MY_VAR=' -Confirm:$false
        (Get-HpcClusterProperty -Environment | Where-Object Name -eq MY_VAR | Measure-Object).Count
    """))
    assert out[0] == "3 3 10 10 0"
    assert out[1:5] == ["SchedulingMode=Queued", "TtlCompletedJobs=5", "JobRetryCount=3", "TaskCancelGracePeriod=1"]
    assert any(line.startswith("CCP_CLUSTER_NAME=") for line in out)
    assert "MY_VAR=hello" in out
    assert "task: hello" in out
    assert out[-1] == "0"


def test_scheduler_uniform_takes_one_group() -> None:
    demand = scheduler.Demand(1, 0, 1.0, 3, 3, node_sets=(("A",), ("B", "C")))
    assert scheduler.plan({"A": 2, "B": 2, "C": 2}, set(), [demand]) == {1: {"B": 2, "C": 1}}



def test_nodes_piped_from_another_head_node_are_changed_there(state_dir: Path, tmp_path: Path) -> None:
    """Node and group records did not say which head node they came from: nodes piped from Get-HpcNode
    -Scheduler to Set-HpcNodeState were set on the default head node, another cluster."""
    default, other = start_head_node(state_dir, CLUSTER), start_head_node(tmp_path / "other", CLUSTER)
    try:
        script = (f"$other = 'unix:{other.socket}'\n"
                  "Get-HpcNode -Scheduler $other -Name NODE1 | Set-HpcNodeState -State Offline -Force\n"
                  "$null = New-HpcGroup -Scheduler $other -Name Moved\n"
                  "Get-HpcNode -Scheduler $other -Name NODE2 | Add-HpcGroup -Name Moved\n"
                  "'from|' + (Get-HpcNode -Scheduler $other -Name NODE1).Scheduler + '|' + "
                  "(Get-HpcGroup -Scheduler $other -Name Moved).Scheduler\n"
                  "'here|' + (Get-HpcNode -Name NODE1).NodeState + '|' + (Get-HpcNode -Name NODE2).Groups.Count\n"
                  "'there|' + (Get-HpcNode -Scheduler $other -Name NODE1).NodeState + '|' + "
                  "((Get-HpcNode -Scheduler $other -Name NODE2).Groups -join ',')\n")
        result = run_pwsh("$ErrorActionPreference = 'Stop'\n" + script, env=default.env())
        assert result.returncode == 0, result.stderr
        found = dict(line.split("|", 1) for line in result.stdout.splitlines() if "|" in line)
        assert found["from"] == f"unix:{other.socket}|unix:{other.socket}"
        assert found["there"].split("|")[0] == "Offline" and "Moved" in found["there"].split("|")[1].split(",")
        assert found["here"].split("|")[0] == "Online"
    finally:
        default.stop()
        other.stop()
