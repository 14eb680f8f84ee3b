"""Part B of the cluster cmdlets (issue 15), through real pwsh and a real head node, in the style of the
scripts that drive HPC Pack: a submission wrapper using a template, a nightly history report, task edits
and task files, HPC Pack 2016's module name and the snap-in test, Windows paths of migrated scripts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcpack.model import templates
from hpcpack.model.objects import Job

from .conftest import DEFAULT_CONFIG, MODULE, HeadNodeProcess, PwshResult, _kill_leftovers, run_pwsh, start_head_node


def ok(result: PwshResult) -> list[str]:
    assert result.returncode == 0, f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout.splitlines()


def test_a_submission_wrapper_uses_a_template_its_defaults_and_its_ranges(head: HeadNodeProcess,
                                                                           tmp_path: Path) -> None:
    template_file = tmp_path / "Short.xml"
    template_file.write_text("""<?xml version="1.0" encoding="utf-8"?>
<JobTemplate Name="Short" Description="Short jobs" xmlns="http://schemas.microsoft.com/HPCS2008R2/scheduler/">
  <TemplateItem PropertyName="Priority" Default="BelowNormal"><Value>Lowest</Value><Value>BelowNormal</Value>
    <Value>Normal</Value></TemplateItem>
  <TemplateItem PropertyName="MaxCores" Default="2" Min="1" Max="4" />
  <TemplateItem PropertyName="Runtime"><Default>600</Default><Min>60</Min><Max>3600</Max></TemplateItem>
</JobTemplate>""")
    script = f"""
$ErrorActionPreference = 'Stop'
Import-HpcJobTemplate -Path '{template_file}' -Force | Out-Null
function Submit-Short([string] $Command, [string] $Cores = $null) {{
    $params = @{{ Template = 'Short'; Name = 'wrapped' }}
    if ($Cores) {{ $params.NumCores = $Cores }}
    $job = New-HpcJob @params
    $job | Add-HpcTask -Command $Command | Out-Null
    Submit-HpcJob -Job $job
}}
$job = Submit-Short 'echo ok'
'ok|' + $job.Template + '|' + $job.Priority + '|' + $job.MaxCores + '|' + $job.Runtime
try {{ Submit-Short 'echo big' '8' }} catch {{ 'big|' + $_.FullyQualifiedErrorId.Split(',')[0] + '|' + $_.Exception.Message }}
(Get-HpcJob -TemplateName Short -State All | Measure-Object).Count
(Get-HpcJobTemplate).Name -join ','
(Get-HpcJobTemplate -Name Short).Items | Where-Object PropertyName -eq 'MaxCores' | ForEach-Object {{ 'item|' + $_.Default + '|' + $_.Allowed + '|' + $_.GetType().Name }}
Export-HpcJobTemplate -Name Short -Path '{tmp_path}/out/Short.xml'
Import-HpcJobTemplate -Path '{tmp_path}/out/Short.xml' -Name Short2 | ForEach-Object {{ 'copy|' + $_.Name + '|' + $_.Items.Count }}
Remove-HpcJobTemplate -Name Short2 -Confirm:$false
try {{ Remove-HpcJobTemplate -Name Default -Confirm:$false }} catch {{ 'default|' + $_.FullyQualifiedErrorId.Split(',')[0] }}
try {{ New-HpcJob -TemplateName Nope }} catch {{ 'nope|' + $_.FullyQualifiedErrorId.Split(',')[0] }}
"""
    out = ok(run_pwsh(script, env=head.env()))
    assert out[0] == "ok|Short|BelowNormal|2|600"
    assert out[1].startswith("big|JobTemplateViolation|") and "MaxCores is 8, above the maximum 4" in out[1]
    assert out[2] == "2"  # the refused job stays, Configuring, to be fixed
    assert out[3] == "Default,Short"
    assert out[4] == "item|2|1..4|HpcJobTemplateItem"  # typed items: Format-Table shows their columns
    assert out[5] == "copy|Short2|3"
    assert out[6:] == ["default|InvalidOperation", "nope|InvalidJobTemplate"]


def test_a_nightly_history_report_reads_one_typed_record_per_ended_job(head: HeadNodeProcess) -> None:
    script = """
$ErrorActionPreference = 'Stop'
$done = New-HpcJob -Name nightly -Project reports
$done | Add-HpcTask -CommandLine 'echo done' | Out-Null
$done | Submit-HpcJob | Out-Null
$gone = New-HpcJob -Name dropped
Stop-HpcJob -Id $gone.Id
while ((Get-HpcJob -Id $done.Id).State -ne 'Finished') { Start-Sleep -Milliseconds 100 }
$from = (Get-Date).AddDays(-1); $to = (Get-Date).AddMinutes(1)
foreach ($r in Get-HpcJobHistory -StartDate $from -EndDate $to) {
    '{0}|{1}|{2}|{3}|{4}|{5}|{6}' -f $r.JobId, $r.Name, $r.State, $r.EndTime.ToString('yyyy-MM-dd'), $r.NumberOfTasks, $r.Runtime.GetType().Name, $r.Project
}
'audit|' + ((Get-HpcJobHistory $from $to -Audit | Where-Object JobId -eq $gone.Id | ForEach-Object Event) -join ',')
@(Get-HpcJobHistory -StartDate $from -EndDate (Get-Date).AddDays(-1).AddMinutes(1)).Count
"""
    out = ok(run_pwsh(script, env=head.env()))
    today = __import__("datetime").date.today().isoformat()
    rows = sorted(line.split("|") for line in out if line.count("|") == 6)
    assert rows == [["1", "nightly", "Finished", today, "1", "TimeSpan", "reports"],
                    ["2", "dropped", "Canceled", today, "0", "TimeSpan", ""]]
    assert "audit|create,cancel,end" in out
    assert out[-1] == "0"


def test_a_refused_task_does_not_let_the_script_submit_an_empty_job(head: HeadNodeProcess) -> None:
    script = r"""
$job = New-HpcJob -RequestedNodes 'NODE1,NODE2' -NumCores 1
'nodes|' + ($job.RequestedNodes -join ';')
$job | Add-HpcTask -CommandLine 'dir' -WorkDir 'C:\Program Files' -ErrorVariable bad -ErrorAction SilentlyContinue | Out-Null
'add|' + $bad[0].FullyQualifiedErrorId.Split(',')[0] + '|' + ($bad[0].Exception.Message -like "*C:\Program Files*")
$job | Submit-HpcJob -ErrorVariable refused -ErrorAction SilentlyContinue | Out-Null
'submit|' + $refused[0].FullyQualifiedErrorId.Split(',')[0]
'state|' + (Get-HpcJob -Id $job.Id).State
"""
    assert ok(run_pwsh(script, env=head.env())) == ["nodes|NODE1;NODE2", "add|NoPathMapping|True",
                                                    "submit|JobHasNoTasks", "state|Configuring"]


def test_set_export_and_add_from_a_task_file(head: HeadNodeProcess, tmp_path: Path) -> None:
    script = f"""
$ErrorActionPreference = 'Stop'
$job = New-HpcJob
$job | Add-HpcTask -Name first -CommandLine 'echo a' | Out-Null
$t = Set-HpcTask -JobId $job.Id -TaskId 1 -CommandLine 'echo b' -NumNodes '1-2' -FailJobOnFailure $true
'set|' + $t.CommandLine + '|' + $t.UnitType + '|' + $t.MinNodes + '-' + $t.MaxNodes + '|' + $t.FailJobOnFailure + '|' + $t.Name
Get-HpcTask -JobId $job.Id -TaskId 1 | Export-HpcTask -Path '{tmp_path}/task.xml'
Add-HpcTask -JobId $job.Id -TaskFile '{tmp_path}/task.xml' | ForEach-Object {{ 'file|' + $_.TaskId + '|' + $_.CommandLine + '|' + $_.MaxNodes }}
$job | Submit-HpcJob | Out-Null
while ((Get-HpcJob -Id $job.Id).State -notin 'Finished','Failed') {{ Start-Sleep -Milliseconds 100 }}
try {{ Set-HpcTask -JobId $job.Id -TaskId 1 -CommandLine 'echo c' }} catch {{ 'late|' + $_.FullyQualifiedErrorId.Split(',')[0] }}
"""
    out = ok(run_pwsh(script, env=head.env()))
    assert out == ["set|echo b|Node|1-2|True|first", "file|2|echo b|2", "late|TaskModifyFailed"]


def test_scripts_for_hpc_pack_2016_and_for_the_snap_in_load_the_module(head: HeadNodeProcess) -> None:
    manifest = MODULE.parent / "Microsoft.Hpc.psd1"
    script = f"""
$ErrorActionPreference = 'Stop'
Import-Module '{manifest}'
if ((Get-PSSnapin -Name Microsoft.Hpc -ErrorAction SilentlyContinue) -eq $null) {{ Add-PSSnapin Microsoft.Hpc }}
(Get-PSSnapin Microsoft.HPC).Name
(Get-Command Get-HpcJobTemplate).Source
try {{ Get-PSSnapin Microsoft.Exchange }} catch {{ 'other|' + $_.FullyQualifiedErrorId.Split(',')[0] }}
@(Get-PSSnapin Micro*).Count
"""
    assert ok(run_pwsh(script, env=head.env(), import_module=False)) == [
        "Microsoft.HPC", "Microsoft.Hpc", "other|NoPSSnapInsFound", "1"]


@pytest.fixture
def mapped_head(state_dir: Path, shared_tmp: Path) -> Iterator[HeadNodeProcess]:
    config = DEFAULT_CONFIG + f"path_map:\n  'C:\\Work': {shared_tmp}\n  '\\\\fileserver\\share': {shared_tmp}/share\n"
    node = start_head_node(state_dir, config)
    yield node
    node.stop()
    _kill_leftovers(state_dir)


def test_windows_paths_of_migrated_scripts_are_mapped_where_the_task_starts(mapped_head: HeadNodeProcess,
                                                                            shared_tmp: Path) -> None:
    (shared_tmp / "run1").mkdir()
    (shared_tmp / "share" / "JobXml").mkdir(parents=True)
    (shared_tmp / "share" / "JobXml" / "1Core.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<Job Name="fromfile" MinCores="1" MaxCores="1" UnitType="Core" '
        'xmlns="http://schemas.microsoft.com/HPCS2008R2/scheduler/"><Tasks><Task NiceId="1" CommandLine="pwd" '
        'WorkDirectory="C:\\Work\\run1" MinNodes="1" MaxNodes="32" UnitType="Node" /></Tasks></Job>')
    script = rf"""
$ErrorActionPreference = 'Stop'
$root = '{shared_tmp}/share'
$job = New-HpcJob -JobFile (Join-Path $root "JobXml\1Core.Xml")
'file|' + $job.Name + '|' + $job.MinCores + '-' + $job.MaxCores
$t = Get-HpcTask -JobId $job.Id
'task|' + $t.UnitType + '|' + $t.MinNodes + '-' + $t.MaxNodes + '|' + $t.WorkDirectory
$job | Add-HpcTask -CommandLine 'pwd' -WorkDir 'c:\WORK\run1' -Stdout '\\FileServer\Share\out.txt' | Out-Null
$job | Submit-HpcJob | Out-Null
while ((Get-HpcJob -Id $job.Id).State -notin 'Finished','Failed') {{ Start-Sleep -Milliseconds 100 }}
(Get-HpcJob -Id $job.Id).State
(Get-HpcTask -JobId $job.Id -TaskId 1).Output.Trim()
try {{ New-HpcJob -JobFile 'D:\jobs\x.xml' }} catch {{ 'nomap|' + $_.FullyQualifiedErrorId.Split(',')[0] }}
"""
    out = ok(run_pwsh(script, env=mapped_head.env()))
    # The task runs on one whole node of the job's (a task of 2 nodes could not start in a 1-core job).
    assert out[:2] == ["file|fromfile|1-1", r"task|Node|1-32|C:\Work\run1"]
    assert out[2:4] == ["Finished", f"{shared_tmp}/run1"]
    assert (shared_tmp / "share" / "out.txt").read_text().strip() == f"{shared_tmp}/run1"
    assert out[4] == "nomap|NoPathMapping"


def test_a_template_applies_defaults_only_where_the_job_gave_none() -> None:
    template = templates.from_parameters("T", "", {"Priority": "AboveNormal", "MaxCores": 4},
                                         {"MaxCores": "1-8", "Project": "a,b"}, [])
    job = Job(id=1, owner="alice", owner_uid=1000, priority=1000, explicit=["Priority"])
    templates.apply(template, job)
    assert (job.priority, job.unit_type, job.max_units) == (1000, "Core", 4)
    job.project = "c"
    with pytest.raises(Exception, match="Project is c, not one of the allowed values"):
        templates.apply(template, job)
    assert templates.may_use(templates.JobTemplate("X", users=["group:physics"]), "bob", {"physics"}, False)
    assert not templates.may_use(templates.JobTemplate("X", users=["alice"]), "bob", set(), False)
