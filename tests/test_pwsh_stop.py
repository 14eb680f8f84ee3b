"""Stop-HpcJob's PowerShell surface, through bin/pwsh (the real engine) and the real head node."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpcpack.backends.client import Client
from hpcpack.head.requests import BATCH

from .conftest import ME, MODULE, HeadNodeProcess, PwshResult, interrupting_proxy, run_pwsh
from .jobs import job, make_job, wait_state

Pwsh = Callable[..., PwshResult]


def ok(result: PwshResult) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def traced(head: HeadNodeProcess, tmp_path: Path, script: str) -> tuple[PwshResult, list[dict[str, Any]]]:
    """Runs the script with the shim's trace on: the arguments each call passed to Python."""
    trace = tmp_path / "trace.jsonl"
    # In the process environment: what pwsh sets with $env: is not seen by the embedded Python.
    result = run_pwsh(script, env={**head.env(), "HPCPACK_SHIM_TRACE": str(trace)})
    calls = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    # The progress a waiting cmdlet polls for is asked beside its calls, in any order: not one of them.
    return result, [c for c in calls if c.get("command") != "Progress"]


def test_get_command_shows_the_specs_parameter_sets_and_attributes(pwsh: Pwsh) -> None:
    script = r"""
$c = Get-Command Stop-HpcJob
foreach ($set in $c.ParameterSets) {
  foreach ($p in $set.Parameters) {
    '{0}|{1}|{2}|{3}|{4}|{5}|{6}|{7}' -f $set.Name, $set.IsDefault, $p.Name, $p.ParameterType.Name, $p.Position, $p.IsMandatory, $p.ValueFromPipeline, ($p.Aliases -join ',')
  }
}
$attr = $c.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
'impact|' + $attr.ConfirmImpact + '|' + $attr.SupportsShouldProcess + '|' + $attr.DefaultParameterSetName
'validate|' + ($c.Parameters['State'].Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] }).ValidValues
'output|' + $c.OutputType.Count
"""
    lines = ok(pwsh(script)).splitlines()
    rows = {(r[0], r[2]): r for r in (line.split("|") for line in lines if line.count("|") == 7)}
    named = "-2147483648"
    expected = {
        ("id", "Id"): ["id", "True", "Id", "Int32[]", "1", "True", "False", ""],
        ("job", "Job"): ["job", "False", "Job", "HpcJob[]", named, "True", "True", ""],
    }
    for key, row in expected.items():
        assert rows[key] == row
    for set_name in ("id", "job"):
        for name, type_name in (("Message", "String"), ("State", "String"), ("Force", "SwitchParameter"),
                                ("Graceful", "SwitchParameter"), ("Scheduler", "String[]")):
            assert rows[(set_name, name)][3:7] == [type_name, named, "False", "False"], (set_name, name)
        assert rows[(set_name, "WhatIf")][7] == "wi"
        assert rows[(set_name, "Confirm")][7] == "cf"
    assert ("id", "Job") not in rows and ("job", "Id") not in rows
    assert "impact|Medium|True|id" in lines
    assert "validate|Finished" in lines
    assert "output|1" in lines


def test_the_first_positional_argument_binds_to_id(head: HeadNodeProcess, tmp_path: Path) -> None:
    # -WhatIf: the plan (asked only when ShouldProcess shows it) carries the parameters as bound.
    result, calls = traced(head, tmp_path, "Stop-HpcJob 45 -WhatIf -ErrorAction SilentlyContinue")
    assert calls[0]["command"] == "Stop-HpcJob:plan"
    assert calls[0]["args"]["id"] == [45]


def test_an_id_list_binds_the_same_ids_in_every_shape_powershell_gives_it(head: HeadNodeProcess,
                                                                         tmp_path: Path) -> None:
    # Int32 lists take a fast path past the binder's conversions (Int32ArrayAttribute); every other shape
    # must still reach them, and a value that is no Int32 must still be the binder's own error.
    shapes = ["45,46,47", "(45..47 | ForEach-Object { $_ })", "'45',46,47", "45L,46,47.0", "(@(45) + 46..47)"]
    script = "".join(f"Stop-HpcJob -Id {shape} -WhatIf -ErrorAction SilentlyContinue\n" for shape in shapes)
    script += ("foreach ($bad in @(@(45, 'x'), @(45, [long]1e12))) {\n"
               "  try { Stop-HpcJob -Id $bad -WhatIf -ErrorAction Stop } "
               "catch { $_.FullyQualifiedErrorId.Split(',')[0] + ' ' + $_.CategoryInfo.Category } }")
    result, calls = traced(head, tmp_path, script)
    assert [c["args"]["id"] for c in calls] == [[45, 46, 47]] * len(shapes)
    assert ok(result).splitlines() == ["CannotConvertArgumentNoMessage InvalidArgument"] * 2


def test_id_list_stops_every_job(pwsh: Pwsh, client: Client) -> None:
    ids = [make_job(client, "sleep 300") for _ in range(3)]
    ok(pwsh(f"Stop-HpcJob -Id {','.join(map(str, ids))} -Force"))
    assert [job(client, i)["State"] for i in ids] == ["Canceled"] * 3


def test_id_and_job_together_is_the_engines_parameter_set_error(pwsh: Pwsh) -> None:
    result = pwsh("$j = New-HpcJob\ntry { Stop-HpcJob -Id 1 -Job $j -ErrorAction Stop } "
                  "catch { $_.FullyQualifiedErrorId; $_.CategoryInfo.Category }")
    assert ok(result).split() == ["AmbiguousParameterSet,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand",
                                  "InvalidArgument"]


def test_a_state_other_than_finished_is_refused_by_validation_naming_finished(pwsh: Pwsh) -> None:
    result = pwsh("try { Stop-HpcJob -Id 1 -State Foo -ErrorAction Stop } "
                  "catch { $_.FullyQualifiedErrorId; $_.Exception.Message }")
    lines = ok(result).splitlines()
    assert lines[0] == "ParameterArgumentValidationError,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand"
    assert 'The argument "Foo" does not belong to the set "Finished"' in lines[1]


def test_missing_id_under_noninteractive_is_the_missing_parameter_error(head: HeadNodeProcess) -> None:
    result = run_pwsh("try { Stop-HpcJob -ErrorAction Stop } catch { $_.FullyQualifiedErrorId }",
                      env=head.env(), args=("-NonInteractive",))
    assert ok(result).strip() == "MissingMandatoryParameter,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand"


def test_piped_jobs_are_planned_and_stopped_together_in_order(head: HeadNodeProcess, tmp_path: Path,
                                                               client: Client) -> None:
    """Jobs piped in one by one are planned (for what ShouldProcess shows: -WhatIf here) and stopped a batch
    at a time, in the order they came: one request for all of them each time, not one per job; the stop
    names only the batch, and is asked for no plan when ShouldProcess shows nothing."""
    ids = [make_job(client, "sleep 300", submit=False) for _ in range(3)]
    script = (f"$jobs = {','.join(map(str, ids))} | ForEach-Object {{ Get-HpcJob -Id $_ }}\n"
              "$jobs | Stop-HpcJob -WhatIf\n$jobs | Stop-HpcJob")
    result, calls = traced(head, tmp_path, script)
    ok(result)
    stops = [(c["command"], c["args"].get("job"), c["args"].get("confirmed")) for c in calls
             if c["command"].startswith("Stop-HpcJob")]
    assert stops == [("Stop-HpcJob:plan", ids, None), ("Stop-HpcJob", None, ids)]
    assert [job(client, i)["State"] for i in ids] == ["Canceled"] * 3


def test_only_a_stop_that_shows_its_plan_asks_for_one(head: HeadNodeProcess, tmp_path: Path, client: Client) -> None:
    """Without -WhatIf, -Confirm or -Verbose, ShouldProcess shows nothing: each job is still passed through
    it, but no plan is asked for (a request and its words for every job); with -Verbose the plan is shown."""
    first, second, third = (make_job(client, "sleep 300", submit=False) for _ in range(3))
    script = (f"Stop-HpcJob -Id {first},{second}\n"
              f"Stop-HpcJob -Id {third} -Verbose 4>&1 | ForEach-Object {{ 'verbose: ' + $_ }}")
    result, calls = traced(head, tmp_path, script)
    assert [(c["command"], c["args"].get("confirmed")) for c in calls] == [
        ("Stop-HpcJob", [first, second]), ("Stop-HpcJob:plan", None), ("Stop-HpcJob", [third])]
    assert ok(result).strip() == (f'verbose: Performing the operation "Stop-HpcJob: cancel 1 waiting task(s), end '
                                  f'Canceled" on target "Job {third} (Configuring, owner {ME})".')
    assert [job(client, i)["State"] for i in (first, second, third)] == ["Canceled"] * 3


def test_whatif_prints_one_line_per_job_and_changes_nothing(pwsh: Pwsh, client: Client) -> None:
    ids = [make_job(client, "sleep 300", submit=False) for _ in range(2)]
    out = ok(pwsh(f"Stop-HpcJob -Id {ids[0]},{ids[1]} -WhatIf"))
    lines = [line for line in out.splitlines() if line.startswith("What if: ")]
    assert len(lines) == 2
    assert lines[0] == (f'What if: Performing the operation "Stop-HpcJob: cancel 1 waiting task(s), end Canceled" '
                        f'on target "Job {ids[0]} (Configuring, owner {ME})".')
    assert [job(client, i)["State"] for i in ids] == ["Configuring"] * 2


def test_confirm_preference_medium_prompts_and_no_changes_nothing(pwsh: Pwsh, client: Client) -> None:
    job_id = make_job(client, "sleep 300", submit=False)
    out = ok(pwsh(f"$ConfirmPreference = 'Medium'\nStop-HpcJob -Id {job_id}", stdin="N\n"))
    assert "Are you sure you want to perform this action?" in out
    assert "[Y] Yes  [A] Yes to All  [N] No  [L] No to All  [S] Suspend  [?] Help" in out
    assert job(client, job_id)["State"] == "Configuring"
    ok(pwsh(f"$ConfirmPreference = 'Medium'\nStop-HpcJob -Id {job_id}", stdin="Y\n"))
    assert wait_state(client, job_id, "Canceled")


def test_confirm_false_never_prompts_and_the_default_preference_does_not_either(
        pwsh: Pwsh, client: Client) -> None:
    first, second = (make_job(client, "sleep 300", submit=False) for _ in range(2))
    out = ok(pwsh(f"$ConfirmPreference = 'Low'\nStop-HpcJob -Id {first} -Confirm:$false"))
    assert "Are you sure" not in out
    out = ok(pwsh(f"Stop-HpcJob -Id {second}"))
    assert "Are you sure" not in out
    assert job(client, first)["State"] == job(client, second)["State"] == "Canceled"


def test_no_to_all_skips_the_rest(pwsh: Pwsh, client: Client) -> None:
    ids = [make_job(client, "sleep 300", submit=False) for _ in range(3)]
    out = ok(pwsh(f"Stop-HpcJob -Id {','.join(map(str, ids))} -Confirm", stdin="Y\nL\n"))
    assert out.count("Are you sure") == 2
    assert [job(client, i)["State"] for i in ids] == ["Canceled", "Configuring", "Configuring"]


def test_force_with_graceful_is_a_clear_terminating_error(pwsh: Pwsh, client: Client) -> None:
    job_id = make_job(client, "sleep 300", submit=False)
    result = pwsh(f"try {{ Stop-HpcJob -Id {job_id} -Force -Graceful -ErrorAction Stop }} "
                  "catch { $_.FullyQualifiedErrorId; $_.CategoryInfo.Category; $_.Exception.Message }")
    lines = ok(result).splitlines()
    assert lines[0] == "ForcedGracefulConflict,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand"
    assert lines[1] == "InvalidArgument"
    assert "cannot be used together" in lines[2]
    assert job(client, job_id)["State"] == "Configuring"


def test_per_job_errors_are_non_terminating_with_stable_ids_and_the_rest_still_stop(
        pwsh: Pwsh, client: Client) -> None:
    job_id = make_job(client, "sleep 300", submit=False)
    script = (f"Stop-HpcJob -Id 424242,{job_id} -ErrorVariable errs -ErrorAction SilentlyContinue\n"
              "$e = $errs[0]\n$e.FullyQualifiedErrorId\n$e.CategoryInfo.Category\n$e.TargetObject\n"
              "$e.Exception.GetType().FullName\n$e.Exception.InnerException.GetType().Name\n$errs.Count")
    lines = ok(pwsh(script)).splitlines()
    assert lines == ["InvalidJobId,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand", "ObjectNotFound", "424242",
                     "Microsoft.ComputeCluster.CCPPSH.HpcException", "BackendException", "1"]
    assert job(client, job_id)["State"] == "Canceled"


def fail_writes(head: HeadNodeProcess, *ids: int) -> None:
    """A real write error (a SQLite trigger, as a full disk would give) for these jobs' rows only: the
    head node's commit that changes one of them fails, and nothing of that commit is kept."""
    with sqlite3.connect(head.state_dir / "headnode.db") as db:
        db.execute(f"CREATE TRIGGER fail BEFORE UPDATE ON jobs WHEN NEW.id IN ({','.join(map(str, ids))}) "
                   "BEGIN SELECT RAISE(ABORT, 'disk I/O error (a test)'); END")


FIRST_STOP_BATCH = 1000  # Stop-HpcJob's first request (FirstStopBatchSize in dotnet/Shim/JobCommands.cs)
STOP_BATCH = 4000  # its requests after the first (StopBatchSize)


def errors_by_job(lines: list[str]) -> dict[int, str]:
    """'<error id> <job id> <message>' lines -> each job's error id; a job named twice fails the test."""
    found: dict[int, str] = {}
    for line in lines:
        error_id, target, _ = line.split(" ", 2)
        assert int(target) not in found, line
        found[int(target)] = error_id
    return found


ERRORS = ("$errs | ForEach-Object { '{0} {1} {2}' -f $_.FullyQualifiedErrorId.Split(',')[0], $_.TargetObject, "
          "$_.Exception.Message }")


def test_a_bulk_stop_whose_later_requests_fail_names_each_job_it_did_not_stop_and_goes_on(
        head: HeadNodeProcess, pwsh: Pwsh, client: Client) -> None:
    """Piped jobs go in requests of FIRST_STOP_BATCH, then STOP_BATCH, which the head node commits 500 at a
    time. The second request's second commit fails (its first is saved) and the third request fails as a
    whole: every job is Canceled or named by exactly one non-terminating error, and nothing is a terminating
    error."""
    first = FIRST_STOP_BATCH
    ids = [client.call("new_job", spec={})["Id"] for _ in range(first + STOP_BATCH + 50)]
    fail_writes(head, ids[first + BATCH + 5], ids[first + STOP_BATCH + 5])
    script = ("try {\n"
              "  Get-HpcJob -State Configuring | Stop-HpcJob -Confirm:$false -ErrorAction SilentlyContinue "
              "-ErrorVariable errs\n  'ok=' + $?\n"
              "} catch { 'terminating: ' + $_ }\n" + ERRORS)
    lines = ok(pwsh(script)).splitlines()
    assert lines[0] == "ok=False", lines[:3]
    errors = errors_by_job(lines[1:])
    assert errors == {i: "StorageFailure" for i in ids[first + BATCH:]}
    states = {j["Id"]: j["State"] for j in client.call("get_jobs", ids=ids)}
    assert {i for i, state in states.items() if state == "Canceled"} == set(ids[:first + BATCH])


def test_a_bulk_submit_whose_second_request_fails_names_each_job_of_it(head: HeadNodeProcess, pwsh: Pwsh,
                                                                        client: Client) -> None:
    ids = [client.call("new_job", spec={"HoldUntil": "2099-01-01T00:00:00"}, tasks=[{"CommandLine": "true"}])["Id"]
           for _ in range(300)]
    fail_writes(head, ids[260])  # in the second request of 256: it fails as a whole, the first is saved
    script = (f"try {{\n  Submit-HpcJob -Id {','.join(map(str, ids))} -ErrorAction SilentlyContinue "
              "-ErrorVariable errs | Out-Null\n  'ok=' + $?\n} catch { 'terminating: ' + $_ }\n" + ERRORS)
    lines = ok(pwsh(script)).splitlines()
    assert lines[0] == "ok=False", lines[:3]
    assert errors_by_job(lines[1:]) == {i: "StorageFailure" for i in ids[256:]}
    states = [j["State"] for j in client.call("get_jobs", ids=ids)]
    assert states == ["Queued"] * 256 + ["Configuring"] * 44


def test_piped_objects_bind_by_their_id_and_one_without_is_not_bound(pwsh: Pwsh, client: Client) -> None:
    """An Import-Csv row or a custom object acts on the job its Id names, however it holds the Id; one with
    no Id gets PowerShell's own binding error for that object alone, never a job with Id 0."""
    ids = [make_job(client, "sleep 300", submit=False) for _ in range(2)]
    script = (f"{ids[0]},{ids[1]} | ForEach-Object {{ [pscustomobject]@{{Id = $_}} }} | Stop-HpcJob -WhatIf\n"
              f"[pscustomobject]@{{Name = 'x'}}, [pscustomobject]@{{Id = '{ids[1]}'}} | "
              "Stop-HpcJob -WhatIf -ErrorVariable errs -ErrorAction SilentlyContinue\n"
              "$errs.Count\n$errs[0].FullyQualifiedErrorId\n$errs[0].CategoryInfo.Category")
    lines = ok(pwsh(script)).splitlines()
    planned = [line for line in lines if line.startswith("What if:")]
    assert [line.split("target ")[1].split()[:2] for line in planned] == [
        ["\"Job", str(ids[0])], ["\"Job", str(ids[1])], ["\"Job", str(ids[1])]], lines
    assert lines[len(planned):] == ["1", "InputObjectNotBound,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand",
                                    "InvalidArgument"]
    assert [job(client, i)["State"] for i in ids] == ["Configuring"] * 2
    # Nothing is rounded or parsed loosely: a task's Id in a CSV row ("5.1") is not job 5, 1.5 is not job 2.
    loose = [f"'{ids[0]}.1'", f"{ids[0]}.6", f"'0x{ids[0]:x}'", f"' {ids[0]}'", "$true", f"'{ids[0]}e0'"]
    script = ("$objects = " + ", ".join(f"[pscustomobject]@{{Id = {v}}}" for v in loose) + "\n"
              "$objects | Stop-HpcJob -Confirm:$false -ErrorVariable errs -ErrorAction SilentlyContinue\n"
              "$errs.Count")
    assert ok(pwsh(script)).splitlines() == [str(len(loose))]
    assert [job(client, i)["State"] for i in ids] == ["Configuring"] * 2


def test_an_id_no_job_can_have_is_a_per_job_error_like_an_unknown_one(pwsh: Pwsh, client: Client) -> None:
    job_id = make_job(client, "sleep 300", submit=False)
    script = (f"Stop-HpcJob -Id 0,{job_id},-3 -ErrorVariable errs -ErrorAction SilentlyContinue\n"
              "Get-HpcJob -Id 0 -ErrorVariable +errs -ErrorAction SilentlyContinue\n"
              "$errs | ForEach-Object { $_.FullyQualifiedErrorId.Split(',')[0] + ' ' + $_.TargetObject }")
    assert ok(pwsh(script)).splitlines() == ["InvalidJobId 0", "InvalidJobId -3", "InvalidJobId 0"]
    assert job(client, job_id)["State"] == "Canceled"


def test_scheduler_defaults_to_ccp_scheduler(head: HeadNodeProcess, tmp_path: Path, client: Client) -> None:
    job_id = make_job(client, "sleep 300", submit=False)
    env = {**head.env(), "HPCPACK_HOME": str(tmp_path / "elsewhere")}  # the default head node is not ours
    script = f"$env:CCP_SCHEDULER = 'unix:{head.socket}'\nStop-HpcJob -Id {job_id}"
    ok(run_pwsh(script, env=env))
    assert job(client, job_id)["State"] == "Canceled"
    bad = run_pwsh(f"try {{ Stop-HpcJob -Id {job_id} -Scheduler far.away.example -ErrorAction Stop }} "
                   "catch { $_.FullyQualifiedErrorId }", env=env)
    assert ok(bad).strip() == "CannotConnectWithScheduler,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand"


def test_the_module_imports_twice_and_in_two_runspaces(pwsh: Pwsh, client: Client) -> None:
    job_id = make_job(client, "true", submit=False)
    script = f"""
Import-Module '{MODULE}' -Force
Import-Module '{MODULE}' -Force
# Two runspaces working at the same time on their own threads, each importing the module.
$shells = foreach ($i in 1..2) {{
  $rs = [runspacefactory]::CreateRunspace([initialsessionstate]::CreateDefault2()); $rs.Open()
  $ps = [powershell]::Create(); $ps.Runspace = $rs
  $null = $ps.AddScript("Import-Module '{MODULE}'; foreach (`$n in 1..20) {{ (Get-HpcJob -Id {job_id}).State }}")
  [pscustomobject]@{{ Shell = $ps; Handle = $ps.BeginInvoke() }}
}}
$results = foreach ($s in $shells) {{ $s.Shell.EndInvoke($s.Handle); $s.Shell.HadErrors }}
($results | Where-Object {{ $_ -eq 'Configuring' }}).Count
($results | Where-Object {{ $_ -is [bool] -and $_ }}).Count
(Get-HpcJob -Id {job_id}).Name -eq ''
"""
    assert ok(pwsh(script)).splitlines()[-3:] == ["40", "0", "True"]


def test_stop_waits_for_the_final_state_and_graceful_returns_at_once(pwsh: Pwsh, client: Client,
                                                                      tmp_path: Path) -> None:
    plain = make_job(client, "sleep 300")
    wait_state(client, plain, "Running")
    assert ok(pwsh(f"Stop-HpcJob -Id {plain}; (Get-HpcJob -Id {plain}).State")).strip() == "Canceled"
    graceful = make_job(client, f"while [ ! -e {tmp_path}/gate ]; do sleep 0.05; done")
    wait_state(client, graceful, "Running")
    assert ok(pwsh(f"Stop-HpcJob -Id {graceful} -Graceful; (Get-HpcJob -Id {graceful}).State")).strip() \
        == "Canceling"
    (tmp_path / "gate").touch()
    assert wait_state(client, graceful, "Canceled")


def test_stopping_the_pipeline_ends_the_wait_and_the_cancel_goes_on(pwsh: Pwsh, client: Client,
                                                                     tmp_path: Path) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 30})
    ready = tmp_path / "ready"
    tmp_path.chmod(0o777)
    job_id = make_job(client, f"trap '' TERM; touch {ready}; while true; do sleep 0.05; done")
    wait_until_file = f"while (-not [IO.File]::Exists('{ready}')) {{ [Threading.Thread]::Sleep(20) }}"
    script = f"""
{wait_until_file}
$rs = [runspacefactory]::CreateRunspace([initialsessionstate]::CreateDefault2()); $rs.Open()
$ps = [powershell]::Create(); $ps.Runspace = $rs
$null = $ps.AddScript("Import-Module '{MODULE}'; Stop-HpcJob -Id {job_id}")
$handle = $ps.BeginInvoke()
while ((Get-HpcJob -Id {job_id}).State -ne 'Canceling') {{ [Threading.Thread]::Sleep(20) }}
[Threading.Thread]::Sleep(500)
$sw = [Diagnostics.Stopwatch]::StartNew()
$ps.Stop()
'stopped|' + ($sw.Elapsed.TotalSeconds -lt 5) + '|' + (Get-HpcJob -Id {job_id}).State
"""
    out = ok(pwsh(script)).splitlines()
    assert "stopped|True|Canceling" in out
    client.call("cancel_jobs", ids=[job_id], force=True)
    assert wait_state(client, job_id, "Canceled")


def test_yes_to_all_confirms_the_rest_without_asking(pwsh: Pwsh, client: Client) -> None:
    ids = [make_job(client, "sleep 300", submit=False) for _ in range(3)]
    out = ok(pwsh(f"$ConfirmPreference = 'Medium'\nStop-HpcJob -Id {','.join(map(str, ids))}", stdin="A\n"))
    assert out.count("Are you sure") == 1
    assert [job(client, i)["State"] for i in ids] == ["Canceled"] * 3


def test_a_mixed_id_list_stops_each_job_it_can_and_reports_the_others_one_by_one(pwsh: Pwsh, client: Client) -> None:
    # A running job holding every core, jobs queued behind it (ended at once, together), an ended job
    # and an unknown id, in one Stop-HpcJob: two non-terminating errors, naming their jobs, and the rest stop.
    ended = make_job(client, "true")
    wait_state(client, ended, "Finished")
    running = make_job(client, "sleep 300", NumCores="8")
    wait_state(client, running, "Running")
    queued = [make_job(client, "true") for _ in range(3)]
    assert {job(client, i)["State"] for i in queued} == {"Queued"}
    ids = [queued[0], 424242, running, ended, *queued[1:]]
    script = (f"Stop-HpcJob -Id {','.join(map(str, ids))} -Confirm:$false -ErrorVariable errs "
              "-ErrorAction SilentlyContinue\n"
              "foreach ($e in $errs) { $e.FullyQualifiedErrorId.Split(',')[0] + '|' + $e.TargetObject }")
    lines = ok(pwsh(script)).splitlines()
    assert lines == ["InvalidJobId|424242", f"InvalidCancelJobState|{ended}"]
    assert [job(client, i)["State"] for i in [running, *queued]] == ["Canceled"] * 4
    assert job(client, ended)["State"] == "Finished"


def test_a_pipeline_that_stops_early_reads_no_more_of_a_long_listing(head: HeadNodeProcess, tmp_path: Path,
                                                                     client: Client) -> None:
    """Get-HpcJob writes its first objects before it reads on: Select-Object -First 10 asks for no "More"
    and lets the rest go ("Close"); a whole listing reads every chunk, each job once, in order."""
    ids = [client.call("new_job", spec={"Name": "many"})["Id"] for _ in range(250)]
    result, calls = traced(head, tmp_path, "(Get-HpcJob -State All | Select-Object -First 10).Id -join ','")
    assert ok(result).strip() == ",".join(map(str, ids[:10]))
    assert [c["command"] for c in calls] == ["Get-HpcJob", "Close"]
    (tmp_path / "trace.jsonl").unlink()
    result, calls = traced(head, tmp_path, "(Get-HpcJob -State All).Id -join ','")
    assert ok(result).strip() == ",".join(map(str, ids))
    assert [c["command"] for c in calls] == ["Get-HpcJob", "More"]  # the first chunk, then the rest


def test_a_listing_of_many_chunks_fetches_each_next_one_ahead_and_a_stop_does_not_wait_for_it(
        head: HeadNodeProcess, tmp_path: Path, client: Client) -> None:
    """From the second chunk on, the next chunk is asked for before the current one is written (a chunk is
    whole pages of at least CHUNK = 1000 jobs after a first of 100: 100, then 1,400 in pages of 200, 400 and
    800, then 1,600): a whole listing still has each job once, in order; a pipeline that stops lets go of the
    rest ("Close") without waiting for the chunk asked for ahead, even from a head node that never sends the
    page that chunk needs (helper 36: Select-Object -First 101 hung, and no stop ended it)."""
    ids = [client.call("new_job", spec={"Name": "chunks"})["Id"] for _ in range(3300)]
    result, calls = traced(head, tmp_path, "(Get-HpcJob -State All).Id -join ','")
    assert ok(result).strip() == ",".join(map(str, ids))
    assert [c["command"] for c in calls] == ["Get-HpcJob", "More", "More", "More"]
    (tmp_path / "trace.jsonl").unlink()
    result, calls = traced(head, tmp_path, "(Get-HpcJob -State All | Select-Object -First 3000).Id -join ','")
    assert ok(result).strip() == ",".join(map(str, ids[:3000]))
    # The fourth chunk was asked for ahead, while the third was written: before or after the Close.
    assert [c["command"] for c in calls][:3] == ["Get-HpcJob", "More", "More"]
    assert sorted(c["command"] for c in calls[3:]) == ["Close", "More"]
    # Pages of 100, 200, 400, 800 make the first two chunks; the third needs the page of 1,600, held for ever.
    with interrupting_proxy(head.socket, tmp_path / "proxy.sock", b'"limit":1600') as proxy:
        result = run_pwsh("(Get-HpcJob -State All | Select-Object -First 101).Id -join ','",
                          env={**head.env(), "CCP_SCHEDULER": f"unix:{proxy}"})
    assert ok(result).strip() == ",".join(map(str, ids[:101]))
