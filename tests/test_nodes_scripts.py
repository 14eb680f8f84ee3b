"""Scripts in the style of real HPC Pack admin scripts, run unchanged against a head node with several nodes
and groups: an auto-grow/shrink decision from queued jobs and idle nodes, and draining a node and waiting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HeadNodeProcess, run_pwsh, start_head_node

CLUSTER = """
nodes:
  - {name: CN01, cores: 2, groups: [Workers]}
  - {name: CN02, cores: 2, groups: [Workers]}
  - {name: CN03, cores: 2, groups: [Workers]}
socket_mode: "0666"
"""

AUTO_GROW_SHRINK = r"""
Import-Module Microsoft.Hpc -ErrorAction SilentlyContinue   # HPC Pack 2016+ scripts begin so
$ErrorActionPreference = 'Stop'
function Get-Decision {
    $queued = @(Get-HpcJob -State Queued -Scheduler $scheduler)
    $online = @(Get-HpcNode -GroupName Workers -State Online -Scheduler $scheduler)
    $offline = @(Get-HpcNode -GroupName Workers -State Offline -Scheduler $scheduler)
    $idle = @($online | Where-Object { $_.JobsRunning -eq 0 -and $_.HealthState -eq [Microsoft.ComputeCluster.CCPPSH.NodeHealthState]::OK })
    $needed = ($queued | Measure-Object -Property MinCores -Sum).Sum
    if ($queued.Count -gt 0 -and $offline.Count -gt 0) {
        $grow = @($offline | Select-Object -First ([Math]::Ceiling($needed / 2)))
        "GROW $(($grow | ForEach-Object NetBiosName) -join ',')"
        $grow | Set-HpcNodeState -State Online -Scheduler $scheduler -Confirm:$false | Out-Null
    } elseif ($queued.Count -eq 0 -and $idle.Count -gt 1) {
        $shrink = @($idle | Select-Object -Skip 1)
        "SHRINK $(($shrink | ForEach-Object NetBiosName) -join ',')"
        $shrink | Set-HpcNodeState -State Offline -Async -Scheduler $scheduler -Confirm:$false | Out-Null
    } else { "STEADY" }
}
$scheduler = $env:CCP_SCHEDULER
Get-Decision                                     # nothing queued, three idle nodes: shrink to one
while (@(Get-HpcNode -State Offline).Count -lt 2) { Start-Sleep -Milliseconds 100 }
$o = Get-HpcClusterOverview
"overview $($o.OnlineNodeCount) online $($o.OfflineNodeCount) offline $($o.IdleCoreCount) idle"
$job = New-HpcJob -NumCores 4 -NodeGroups Workers
$job | Add-HpcTask -CommandLine 'sleep 1' | Out-Null
$job | Submit-HpcJob | Out-Null
Start-Sleep -Milliseconds 500
"pending $((Get-HpcJob -Id $job.Id).State)"      # 4 cores, 2 online: it waits
Get-Decision                                     # queued work, offline nodes: grow
while ((Get-HpcJob -Id $job.Id).State -ne 'Finished') { Start-Sleep -Milliseconds 100 }
"job $((Get-HpcJob -Id $job.Id).State)"
Get-Decision
"""

DRAIN_AND_WAIT = r"""
$ErrorActionPreference = 'Stop'
$node = 'CN01'
$job = New-HpcJob -RequestedNodes $node -NumCores 2
1..2 | ForEach-Object { $job | Add-HpcTask -CommandLine 'sleep 2' | Out-Null }
$job | Submit-HpcJob | Out-Null
while ((Get-HpcJob -Id $job.Id).State -ne 'Running') { Start-Sleep -Milliseconds 100 }
Write-Output "Draining $node"
Set-HpcNodeState -Name $node -State Offline -Async -Confirm:$false | Out-Null
$timeout = (Get-Date).AddMinutes(2)
do {
    $n = Get-HpcNode -Name $node
    Write-Output "state $($n.NodeState) running $($n.JobsRunning)" | Select-Object -First 1 | Out-Null
    Start-Sleep -Milliseconds 200
} until ($n.NodeState -eq 'Offline' -or (Get-Date) -gt $timeout)
Write-Output "$node is $($n.NodeState); job $((Get-HpcJob -Id $job.Id).State)"
$tasks = Get-HpcTask -JobId $job.Id
Write-Output "tasks $(($tasks | Where-Object State -eq 'Finished').Count) finished"
# maintenance here; then back online, the same way: and the history shows both
Set-HpcNodeState -Name $node -State Online -Confirm:$false | ForEach-Object { Write-Output "$($_.NetBiosName) $($_.State)" }
Get-HpcNodeStateHistory (Get-Date).AddMinutes(-10) (Get-Date).AddMinutes(1) |
    Where-Object NodeName -eq $node | ForEach-Object { Write-Output "history $($_.PreviousState)->$($_.State)" }
"""


@pytest.fixture
def cluster(state_dir: Path) -> Iterator[HeadNodeProcess]:
    node = start_head_node(state_dir, CLUSTER)
    yield node
    node.stop()


def test_auto_grow_shrink_script(cluster: HeadNodeProcess) -> None:
    result = run_pwsh(AUTO_GROW_SHRINK, env=cluster.env(), timeout=120)
    out = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, result.stderr + result.stdout
    assert out[0] == "SHRINK CN02,CN03", out
    assert out[1] == "overview 1 online 2 offline 2 idle", out
    assert out[2] == "pending Queued", out
    assert out[3] == "GROW CN02,CN03", out
    assert out[4] == "job Finished", out
    assert out[5] == "SHRINK CN02,CN03", out


def test_drain_a_node_and_wait_script(cluster: HeadNodeProcess) -> None:
    result = run_pwsh(DRAIN_AND_WAIT, env=cluster.env(), timeout=120)
    out = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, result.stderr + result.stdout
    assert out[0] == "Draining CN01"
    assert out[1] == "CN01 is Offline; job Finished", out
    assert out[2] == "tasks 2 finished", out
    assert out[3] == "CN01 Online", out
    assert out[-3:] == ["history Online->Draining", "history Draining->Offline", "history Offline->Online"], out
