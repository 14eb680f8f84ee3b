"""The job lifecycle cmdlets through bin/pwsh on a real head node, and the spec's four examples verbatim."""

from __future__ import annotations

import os
from pathlib import Path

from hpcpack.backends.client import Client

from .conftest import ME, MODULE, ROOT, HeadNodeProcess, PwshResult, needs_root, run_pwsh, wait_until
from .jobs import add_task, job, task_states, tasks, wait_state

SPEC = ROOT.parent / "shared" / "spec" / "Stop-HpcJob.md"


def ok(result: PwshResult) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def spec_example(number: int) -> str:
    """The example's commands exactly as the reference page has them, prompts removed. Example 3's
    third line is two commands run together on the page; they are split where the newline was lost."""
    text = SPEC.read_text()
    block = text.split(f"### Example {number}:")[1].split("```")[1]
    lines = [line.split(">", 1)[1] for line in block.strip().splitlines()]
    return "\n".join(line.replace("Submit-HpcJob$Job", "Submit-HpcJob\n$Job") for line in lines)


def _jobs_up_to(client: Client, last: int) -> None:
    while client.call("new_job", spec={"Name": "filler"})["Id"] < last:
        pass


def test_the_specs_four_examples_run_verbatim(head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    _jobs_up_to(client, 26)
    gate, ready = tmp_path / "gate", tmp_path / "ready"
    tmp_path.chmod(0o777)
    job27 = client.call("new_job", spec={"Name": "27", "NumCores": "1"})["Id"]
    add_task(client, job27, CommandLine=f"touch {ready}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done")
    add_task(client, job27, CommandLine="echo never")
    _jobs_up_to(client, 38)
    job39 = client.call("new_job", spec={"Name": "39"})["Id"]
    add_task(client, job39, CommandLine=f"echo released >> {tmp_path}/release39", Type="NodeRelease")
    add_task(client, job39, CommandLine="trap '' TERM; sleep 300")
    _jobs_up_to(client, 44)
    job45 = client.call("new_job", spec={"Name": "45"})["Id"]
    add_task(client, job45, CommandLine="sleep 300")
    assert (job27, job39, job45) == (27, 39, 45)
    client.call("submit_jobs", ids=[27, 39, 45])
    wait_until(lambda: ready.exists() and all(job(client, i)["State"] == "Running" for i in (39, 45))
               and "Running" in task_states(client, 39).values())

    ok(run_pwsh(spec_example(1), env=head.env()))
    ended = job(client, 45)
    assert ended["State"] == "Canceled"
    assert ended["ErrorMessage"] == "Clearing space for Job 51, which needs to run immediately."

    result = run_pwsh(spec_example(2), env=head.env())
    ok(result)
    assert job(client, 39)["State"] == "Canceled"
    assert not (tmp_path / "release39").exists()  # Force: no node-release task
    assert tasks(client, 39)["39.2"]["State"] == "Failed"

    ok(run_pwsh(spec_example(3) + "\n$Job.Refresh()\n'final|' + $Job.Id + '|' + $Job.State", env=head.env()))
    created = max(j["Id"] for j in client.call("get_jobs", state="All"))
    assert job(client, created)["State"] == "Finished"
    assert job(client, created)["RunUntilCanceled"] is True and job(client, created)["MaxCores"] == 3
    assert task_states(client, created) == {f"{created}.1": "Finished"}, str(tasks(client, created))

    ok(run_pwsh(spec_example(4), env=head.env()))
    assert job(client, 27)["State"] == "Canceling"
    gate.touch()
    wait_state(client, 27, "Finished")
    assert task_states(client, 27) == {"27.1": "Finished", "27.2": "Canceled"}


def test_a_full_lifecycle_with_every_task_kind(head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    gate = tmp_path / "gate"
    script = f"""
$job = New-HpcJob -Name lifecycle -NumCores 2 -Priority 'AboveNormal+5' -Project physics
$null = $job | Add-HpcTask -Command "echo prep > {tmp_path}/prep-$env:COMPUTERNAME" -Type NodePrep
$null = $job | Add-HpcTask -CommandLine "echo first" -Name first
$null = $job | Add-HpcTask -CommandLine "echo step *" -Parametric -Start 1 -End 3 -Name sweep
$null = $job | Add-HpcTask -CommandLine "while [ ! -e {gate} ]; do sleep 0.05; done" -Name waits -Depend first
$null = $job | Add-HpcTask -CommandLine "echo release >> {tmp_path}/release" -Type NodeRelease
$job = $job | Submit-HpcJob
'id|' + $job.Id
"""
    out = ok(run_pwsh(script, env=head.env()))
    job_id = int(next(line for line in out.splitlines() if line.startswith("id|")).split("|")[1])
    # The sweep's steps are made by the loop once the job runs, so they may start after task 4 (which
    # waits for the gate): both, then.
    wait_until(lambda: tasks(client, job_id)[f"{job_id}.4"]["State"] == "Running"
               and all(task_states(client, job_id).get(f"{job_id}.3.{n}") == "Finished" for n in (1, 2, 3)))
    states = task_states(client, job_id)
    assert states[f"{job_id}.2"] == "Finished"
    assert all(states[f"{job_id}.3.{n}"] == "Finished" for n in (1, 2, 3))
    assert [t["Output"].strip() for k, t in tasks(client, job_id).items() if k.startswith(f"{job_id}.3.")] == \
        ["step 1", "step 2", "step 3"]
    assert list(tmp_path.glob("prep-*"))

    running = f"""
$j = Get-HpcJob -Id {job_id}
$j = Set-HpcJob -Id {job_id} -Name renamed -Priority Highest
'set|' + $j.Name + '|' + $j.Priority
try {{ Set-HpcJob -Id {job_id} -NumCores 4 -ErrorAction Stop }} catch {{ 'refused|' + $_.FullyQualifiedErrorId }}
$tasks = Get-HpcJob -Id {job_id} | Get-HpcTask
'tasks|' + $tasks.Count
Stop-HpcJob -Id {job_id} -Force
(Get-HpcJob -Id {job_id}).State
"""
    out = ok(run_pwsh(running, env=head.env())).splitlines()
    assert "set|renamed|Highest" in out
    assert "refused|JobModifyFailed,Microsoft.ComputeCluster.CCPPSH.SetHpcJobCommand" in out
    assert f"tasks|{1 + 1 + 3 + 1 + 1}" in out
    assert out[-1] == "Canceled"
    assert task_states(client, job_id)[f"{job_id}.4"] == "Failed"

    gate.touch()
    requeue = f"""
$j = Submit-HpcJob -Id {job_id}
'requeued|' + $j.State + '|' + $j.RequeueCount
"""
    out = ok(run_pwsh(requeue, env=head.env()))
    assert "|1" in out.splitlines()[-1]
    wait_state(client, job_id, "Finished")
    final = tasks(client, job_id)
    assert final[f"{job_id}.2"]["RequeueCount"] == 0  # finished before: kept
    assert final[f"{job_id}.4"]["RequeueCount"] == 1 and final[f"{job_id}.4"]["State"] == "Finished"
    assert (tmp_path / "release").read_text().count("release") >= 1


def test_parameter_validation_gives_clear_errors(head: HeadNodeProcess, client: Client) -> None:
    cases = {
        "New-HpcJob -Priority 5000": "ArgumentOutOfRange",
        "New-HpcJob -Priority Urgent": "InvalidArgument",
        "New-HpcJob -NumCores 3-1": "InvalidArgument",
        "New-HpcJob -NumCores 0": "InvalidArgument",
        "New-HpcJob -NumCores 2 -NumNodes 1": "InvalidArgument",
        "New-HpcJob -Name ('x' * 81)": "ArgumentOutOfRange",
        "New-HpcJob -RunTime '1:2:3:4'": "InvalidArgument",
        "New-HpcJob -JobEnv 'novalue'": "InvalidArgument",
        "New-HpcJob -Progress 101": "ArgumentOutOfRange",
        "$j = New-HpcJob; $j | Add-HpcTask -CommandLine x -Parametric -Start 5 -End 1": "InvalidArgument",
        "$j = New-HpcJob; $j | Add-HpcTask -Name t": "InvalidArgument",
        "Stop-HpcJob -Id 1 -Message ('m' * 129)": "CancelMessageIsTooLong",
    }
    script = "\n".join(f"try {{ {command} -ErrorAction Stop | Out-Null; 'no error' }} "
                       f"catch {{ '{i}|' + $_.FullyQualifiedErrorId.Split(',')[0] + '|' + $_.Exception.Message }}"
                       for i, command in enumerate(cases))
    lines = ok(run_pwsh("$null = New-HpcJob\n" + script, env=head.env())).splitlines()
    found = {int(line.split("|")[0]): line.split("|")[1:] for line in lines if line.split("|")[0].isdigit()}
    for i, (command, error_id) in enumerate(cases.items()):
        assert found[i][0] == error_id, (command, found.get(i))
        assert len(found[i][1]) > 10, command
    ruc = ok(run_pwsh("$j = New-HpcJob -RunUntilCanceled $true; $null = $j | Add-HpcTask -CommandLine true; "
                      "$null = $j | Submit-HpcJob; $j.Id", env=head.env())).split()[-1]
    failed = wait_state(client, int(ruc), "Failed")
    assert "minimum and maximum" in failed["ErrorMessage"]


def test_old_script_habits_keep_working(head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    script = f"""
$a = New-HpcJob -Template Default -Name habits
$a | Add-HpcTask -Command "echo one" | Out-Null
$b = New-HpcJob -Name habits2
$b | Add-HpcTask -Command "echo two" | Out-Null
$a, $b | Submit-HpcJob | Out-Null
$jobs = @((Get-HpcJob -Id $a.Id), (Get-HpcJob -Id $b.Id))
'piped|' + ($jobs | Get-HpcTask).Count
'flags|' + @(Get-HpcJob \u2013State Configuring,Queued,Running,Finished -Owner {ME}).Count
'all|' + @(Get-HpcJob -State All).Count
Get-HpcJob -Id $a.Id | Export-HpcJob -Path '{tmp_path}/exported/a.xml'
'exported|' + [IO.File]::Exists('{tmp_path}/exported/a.xml')
$copy = New-HpcJob -JobFile '{tmp_path}/exported/a.xml'
'copy|' + $copy.Name + '|' + @(Get-HpcTask -JobId $copy.Id).Count
[Microsoft.ComputeCluster.CCPPSH.HpcJob] -eq $a.GetType()
'byvalue|' + (($a.Id, $b.Id | Get-HpcJob | ForEach-Object Name) -join ',')
'mine|' + @(Get-HpcJob).Count + '|' + @(Get-HpcJob -State Queued,Running -Owner {ME}).Count
"""
    out = ok(run_pwsh(script, env=head.env())).splitlines()
    assert "piped|2" in out
    assert any(line.startswith("flags|") and int(line.split("|")[1]) >= 2 for line in out)
    assert "exported|True" in out
    assert "copy|habits|1" in out
    assert "True" in out
    assert "byvalue|habits,habits2" in out
    mine = next(line for line in out if line.startswith("mine|")).split("|")
    assert mine[1] == mine[2]  # by default: the caller's own queued and running jobs


def test_export_asks_before_overwriting_unless_forced(head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    target = tmp_path / "job.xml"
    target.write_text("keep me")
    job_id = client.call("new_job", spec={"Name": "x"})["Id"]
    ok(run_pwsh(f"Export-HpcJob -Id {job_id} -Path '{target}'", env=head.env(), stdin="N\n"))
    assert target.read_text() == "keep me"
    ok(run_pwsh(f"Export-HpcJob -Id {job_id} -Path '{target}' -Force", env=head.env()))
    assert target.read_text().startswith('<?xml version="1.0" encoding="utf-8"?>')


def test_add_pssnapin_and_autoloading_bring_the_cmdlets_in(head: HeadNodeProcess, tmp_path: Path) -> None:
    modules = tmp_path / "Modules"
    modules.mkdir()
    (modules / "HPC").symlink_to(MODULE.parent)
    env = {**head.env(), "PSModulePath": str(modules)}
    out = ok(run_pwsh("Add-PSSnapin Microsoft.HPC\n(Get-Module).Name\n(New-HpcJob -Name snap).Name",
                      env=env, import_module=False)).split()
    assert out == ["HPC", "snap"]
    out = ok(run_pwsh("(Get-HpcJob -State All).Count -ge 1", env=env, import_module=False)).split()
    assert out == ["True"]
    refused = run_pwsh("Add-PSSnapin Some.Other.Snapin -ErrorVariable e -ErrorAction SilentlyContinue; "
                       "$e[0].FullyQualifiedErrorId", env=env, import_module=False)
    assert ok(refused).strip() == "SnapinNotInstalled,Microsoft.ComputeCluster.CCPPSH.AddPSSnapinCommand"


def test_bulk_stop_through_the_pipeline_reports_progress(head: HeadNodeProcess, client: Client) -> None:
    # Jobs that run until canceled need no task (an empty job of another kind is refused at submit).
    # More than Stop-HpcJob's first request holds (1,000): the stop goes in two, with progress between.
    ids = [client.call("new_job", spec={"Name": "bulk", "RunUntilCanceled": True, "NumCores": "1-1"})["Id"]
           for _ in range(1100)]
    client.call("submit_jobs", ids=[client.call("new_job", spec={"NumCores": "8", "RunUntilCanceled": True})["Id"]])
    client.call("submit_jobs", ids=ids)
    script = f"""
$rs = [runspacefactory]::CreateRunspace([initialsessionstate]::CreateDefault2()); $rs.Open()
$ps = [powershell]::Create(); $ps.Runspace = $rs
$null = $ps.AddScript("Import-Module '{MODULE}'; Get-HpcJob -State Queued | Stop-HpcJob")
$null = $ps.Invoke()
'progress|' + $ps.Streams.Progress.Count + '|' + $ps.Streams.Error.Count
"""
    out = ok(run_pwsh(script, env=head.env()))
    progress = next(line for line in out.splitlines() if line.startswith("progress|")).split("|")
    assert int(progress[1]) >= 2 and progress[2] == "0"
    assert {j["State"] for j in client.call("get_jobs", ids=ids)} == {"Canceled"}
    submits = f"""
$rs = [runspacefactory]::CreateRunspace([initialsessionstate]::CreateDefault2()); $rs.Open()
$ps = [powershell]::Create(); $ps.Runspace = $rs
$null = $ps.AddScript("Import-Module '{MODULE}'; (Submit-HpcJob -Id {','.join(map(str, ids))}).Count")
$count = $ps.Invoke()
'submitted|' + $count + '|' + $ps.Streams.Progress.Count + '|' + $ps.Streams.Progress[-1].PercentComplete
"""
    out = ok(run_pwsh(submits, env=head.env()))
    line = next(line for line in out.splitlines() if line.startswith("submitted|")).split("|")
    assert line[1] == "1100" and int(line[2]) == 5 and line[3] == "100"  # 4 x 256 + 76


def test_task_objects_cancel_requeue_and_refresh(head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    script = """
$job = New-HpcJob -Name methods -NumCores 1 -RunUntilCanceled $true
$t1 = $job | Add-HpcTask -CommandLine "sleep 300"
$t2 = $job | Add-HpcTask -CommandLine "echo later"
$null = $job | Submit-HpcJob
$t2.Cancel()
'canceled|' + $t2.State
$t1.Refresh()
while ($t1.State -ne 'Running') { [Threading.Thread]::Sleep(20); $t1.Refresh() }
Stop-HpcTask -JobId $job.Id -TaskId 1 -Force
$t1.Refresh()
'stopped|' + $t1.State
$t2.Requeue()
'requeued|' + ($t2.State -in 'Queued', 'Running', 'Finished')
while ($t2.State -ne 'Finished') { [Threading.Thread]::Sleep(20); $t2.Refresh() }
'rerun|' + $t2.RequeueCount + '|' + $t2.Output.Trim()
$job.Refresh()
'job|' + $job.State
"""
    out = ok(run_pwsh(script, env=head.env())).splitlines()
    assert "canceled|Canceled" in out
    assert "stopped|Failed" in out
    assert "requeued|True" in out
    assert "rerun|1|later" in out
    assert "job|Running" in out  # it runs until canceled


@needs_root
def test_history_and_cluster_properties_are_for_administrators(head: HeadNodeProcess) -> None:
    script = """
Set-HpcClusterProperty -TaskCancelGracePeriod 7 -Confirm:$false
(Get-HpcClusterProperty -Parameter -Name TaskCancelGracePeriod).Value
$j = New-HpcJob -Name audited
Stop-HpcJob -Id $j.Id -Message 'audit'
$rows = Get-HpcJobHistory -JobId $j.Id
($rows | ForEach-Object { $_.Event }) -join ','
$start = [datetime]::Now.AddMinutes(-5); $end = [datetime]::Now.AddMinutes(5)
@(Get-HpcJobHistory $start $end -Audit).Count -ge 2
(Get-HpcJobHistory $start $end | Where-Object JobId -eq $j.Id).State
"""
    out = ok(run_pwsh(script, env=head.env())).splitlines()
    assert out[0] == "7"
    assert out[1] == "create,cancel,end"
    assert out[2] == "True"
    assert out[3] == "Canceled"  # one record per ended job
    assert os.geteuid() == 0


def test_the_embedded_head_node_starts_on_first_use_and_jobs_outlive_the_session(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from hpcpack.head.executor import Cgroups

    from .conftest import head_id, job_processes
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "CCP_SCHEDULER"}
    env["HPCPACK_HOME"] = str(home)
    script = ("$j = New-HpcJob -Name outlives; $null = $j | Add-HpcTask -CommandLine 'sleep 300'; "
              "$null = $j | Submit-HpcJob; $j.Id")
    out = ok(run_pwsh(script, env=env))  # no head node runs for this folder yet
    job_id = int(out.split()[-1])
    assert (home / "headnode.sock").exists()
    client = Client(f"unix:{home / 'headnode.sock'}")
    try:
        wait_until(lambda: job(client, job_id)["State"] == "Running")  # the pwsh that submitted it is gone
        assert job_processes(home, job_id)
        assert os.getsid(client.call("ping")["pid"]) != os.getsid(0)  # the head node has a session of its own
    finally:
        client.close()
        subprocess.run([sys.executable, "-m", "hpcpack.head.daemon", "--state-dir", str(home), "--stop"], check=True)
        for pid in job_processes(home):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not job_processes(home))
        Cgroups(head_id(home)).close()  # the head node stopped while its task ran: its cgroup stayed


def test_a_listed_job_has_every_property_as_its_refresh_reads_it(head: HeadNodeProcess, client: Client) -> None:
    """Get-HpcJob's listing reads each job straight from the head node's JSON text into its object
    (RecordReader); Refresh() reads records first (Records.Fill). Both must give every property the same
    value, of the same type, times as local ones (here, in New York)."""
    parent = client.call("new_job", spec={"Name": "parent"})["Id"]
    script = f"""
$j = New-HpcJob -Name rich -Project p -JobEnv 'A=1','B=two' -NumCores 2-4 -Priority AboveNormal `
    -HoldUntil ([datetime]'2099-01-01') -RequestedNodes NODE2 -ParentJobIds {parent}
$null = $j | Add-HpcTask -CommandLine 'true'
$null = $j | Submit-HpcJob
$listed = Get-HpcJob -State All | Where-Object Id -eq $j.Id
$read = [Microsoft.ComputeCluster.CCPPSH.HpcJob]::new(); $read.Id = $j.Id; $read.Scheduler = $listed.Scheduler
$read.Refresh()
function Shown($v) {{
    if ($null -eq $v) {{ return 'null' }}
    $v.GetType().FullName + $(if ($v -is [datetime]) {{ $v.Kind }}) + '=' + ($v | ConvertTo-Json -Compress -Depth 3)
}}
foreach ($p in $listed.PSObject.Properties) {{ 'prop|' + $p.Name + '|' + (Shown $p.Value) + '|' + (Shown $read.($p.Name)) }}
"""
    out = ok(run_pwsh(script, env={**head.env(), "TZ": "America/New_York"}))
    shown = {name: (listed, read) for name, listed, read in
             (line.split("|", 3)[1:] for line in out.splitlines() if line.startswith("prop|"))}
    assert len(shown) >= 60
    assert {name for name, (listed, read) in shown.items() if listed != read} == set()
    assert shown["HoldUntil"][0] == 'System.DateTimeLocal="2099-01-01T00:00:00-05:00"'  # as given, local
    environment = shown["EnvironmentVariables"][0]
    assert environment.startswith("System.Collections.Hashtable=") and len(environment) == 48  # (in any order)
    assert '"A":"1"' in environment and '"B":"two"' in environment
    assert shown["State"][0].startswith("Microsoft.Hpc.Scheduler.Properties.JobState=16")  # Queued (held)
    assert shown["ParentJobIds"][0] == f"System.Int32[]={parent}"
    assert shown["RequestedNodes"][0] == 'System.String[]="NODE2"'
    assert shown["Priority"][0] == 'System.String="AboveNormal"' and shown["MaxCores"][0] == "System.Int32=4"
