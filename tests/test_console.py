"""The console (issue 16): default views at 80 columns, progress and Ctrl+C during waits, tab completion
from the head node. All through real pwsh against a real head node."""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hpcpack.backends.client import Client

from .conftest import MODULE, HeadNodeProcess, PwshResult, as_user, run_pwsh, user_site, wait_until
from .jobs import job, make_job, wait_state
from .test_pwsh_interactive import PROMPT, Terminal

Pwsh = Callable[..., PwshResult]
IGNORES_TERM = "trap '' TERM; while true; do sleep 0.05; done"  # the task's own shell ignores SIGTERM


@pytest.fixture
def scene(client: Client) -> Iterator[dict[str, int]]:
    """Jobs in the states an administrator looks at: running (1 of 2 tasks done), waiting for a parent,
    waiting for cores, canceled with a message."""
    running = make_job(client, "true", "sleep 300", NumCores="8", Name="a-name-much-longer-than-any-column")
    wait_until(lambda: job(client, running)["FinishedTaskCount"] == 1)
    child = make_job(client, "true", NumCores="1", ParentJobIds=[running], Name="child")
    big = make_job(client, "true", NumCores="8", Name="big")
    canceled = make_job(client, "true", submit=False, Name="stopped")
    client.call("cancel_jobs", ids=[canceled], message="make room")
    wait_until(lambda: job(client, big)["PendingReason"] == "Resources")
    yield {"running": running, "child": child, "big": big, "canceled": canceled}
    client.call("cancel_jobs", ids=[running, child, big], force=True)


def rows(text: str) -> dict[str, str]:
    return {line.split()[0]: line for line in text.splitlines() if line.strip() and line.split()[0].isdigit()}


def check_job_table(text: str, scene: dict[str, int]) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 80, text
    assert lines[0].split() == ["Id", "Name", "Owner", "State", "Elapsed", "Tasks", "Cores", "Reason"], text
    found = rows(text)
    running = found[str(scene["running"])]
    assert re.search(r"a-name-much\S*\s+\S+\s+Running\s+0:00:\d\d\s+1/2\s+8\s*$", running), running
    assert re.search(rf"child\s+\S+\s+Queued\s+0/1\s+1 Dependency \({scene['running']}\)$", found[str(scene["child"])])
    assert re.search(r"big\s+\S+\s+Queued\s+0/1\s+8 Resources$", found[str(scene["big"])])
    assert re.search(r"stopped\s+\S+\s+Canceled\s+0/1\s+\* make room$", found[str(scene["canceled"])])


def test_the_default_job_table_fits_80_columns(pwsh: Pwsh, scene: dict[str, int]) -> None:
    result = pwsh("Get-HpcJob -State All | Out-String -Width 80")
    assert result.returncode == 0, result.stderr
    check_job_table(result.stdout, scene)
    listed = pwsh(f"Get-HpcJob -Id {scene['child']} | Format-List | Out-String -Width 80").stdout
    assert re.search(rf"PendingReason\s+: Dependency \({scene['running']}\)", listed)
    assert re.search(r"Tasks\s+: 0/1 finished, 0 running, 0 failed, 0 canceled", listed)


def test_the_default_job_table_at_an_80_column_terminal(head: HeadNodeProcess, scene: dict[str, int]) -> None:
    terminal = Terminal(head.env())
    terminal.child.setwinsize(40, 80)
    terminal.expect(PROMPT)
    terminal.run(f"Import-Module '{MODULE}'")
    assert "80" in terminal.run("$Host.UI.RawUI.WindowSize.Width")
    out = terminal.run("Get-HpcJob -State All")
    check_job_table(out.split("\n", 1)[1].replace("\r", ""), scene)
    assert terminal.exit() == 0


def progress_of(pwsh: Pwsh, command: str) -> tuple[list[dict[str, Any]], str]:
    """Runs a command in its own PowerShell and returns the progress records it wrote, and its errors."""
    result = pwsh(
        f"$ps = [powershell]::Create().AddScript(\"Import-Module '{MODULE}'; {command}\")\n"
        "$null = $ps.Invoke()\n"
        "$ps.Streams.Progress | ForEach-Object { [pscustomobject]@{ Id = $_.ActivityId; Parent = $_.ParentActivityId;"
        " Activity = $_.Activity; Status = $_.StatusDescription; Operation = $_.CurrentOperation;"
        " Percent = $_.PercentComplete; Seconds = $_.SecondsRemaining; Type = \"$($_.RecordType)\" } } |"
        " ConvertTo-Json -AsArray\n"
        "$ps.Streams.Error | ForEach-Object { 'ERROR ' + $_ } | Write-Host")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout[:result.stdout.rindex("]") + 1])
    return records, result.stdout[result.stdout.rindex("]") + 1:]


def test_stop_hpcjob_shows_which_jobs_and_the_grace_period_left(pwsh: Pwsh, client: Client) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 4})
    job_id = make_job(client, IGNORES_TERM, NumCores="1")
    wait_state(client, job_id, "Running")
    records, errors = progress_of(pwsh, f"Stop-HpcJob -Id {job_id}")
    assert "ERROR" not in errors and job(client, job_id)["State"] == "Canceled"
    waiting = [r for r in records if r["Type"] == "Processing"]
    assert waiting, records
    assert all(r["Status"] == f"Waiting for job {job_id} to end: 0 of 1 ended" for r in waiting)
    assert waiting[0]["Operation"].endswith("s left of the grace period, then running tasks are killed")
    assert 2 <= waiting[0]["Seconds"] <= 4 and waiting[0]["Percent"] == 0
    assert any(r["Seconds"] == 0 for r in waiting) or min(r["Seconds"] for r in waiting) <= 1
    assert records[-1]["Type"] == "Completed"


def test_bulk_stop_says_how_far_it_is(pwsh: Pwsh, client: Client) -> None:
    ids = [client.call("new_job", spec={})["Id"] for _ in range(1050)]
    records, errors = progress_of(pwsh, f"Stop-HpcJob -Id ({ids[0]}..{ids[-1]})")
    assert "ERROR" not in errors
    batches = [(r["Status"], r["Percent"]) for r in records if r["Id"] == 0 and r["Type"] == "Processing"]
    assert batches == [("Stopping jobs 1-1000 of 1050", 0), ("Stopping jobs 1001-1050 of 1050", 95)]
    assert all(s == "Canceled" for s in client.call("wait_jobs", ids=ids, timeout=5).values())


def test_ctrl_c_during_a_wait_names_the_jobs_still_being_cancelled(head: HeadNodeProcess, client: Client) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 60})
    job_id = make_job(client, IGNORES_TERM, NumCores="1")
    wait_state(client, job_id, "Running")
    terminal = Terminal(head.env())
    terminal.expect(PROMPT)
    terminal.run(f"Import-Module '{MODULE}'")
    mark = terminal.send(f"Stop-HpcJob -Id {job_id}\r")
    wait_state(client, job_id, "Canceling")
    terminal.expect(rf"Stopping job \[Waiting for job {job_id} to end: 0 of 1 ended +\d+s\]", mark, timeout=20)
    terminal.send("\x03")
    out = terminal.expect(PROMPT, mark, timeout=20)
    assert f"WARNING: Stopped waiting; the head node goes on stopping job {job_id}." in out.replace("\r\n", "")
    assert job(client, job_id)["State"] == "Canceling"
    assert terminal.exit() == 0
    client.call("cancel_jobs", ids=[job_id], force=True)
    wait_state(client, job_id, "Canceled")


def completions(pwsh: Pwsh, *lines: str) -> dict[str, list[list[str]]]:
    script = "$out = @{}\n" + "".join(
        f"$r = TabExpansion2 -inputScript '{line}' -cursorColumn {len(line)}\n"
        f"$out['{line}'] = @($r.CompletionMatches | ForEach-Object {{ ,@($_.CompletionText, $_.ListItemText) }})\n"
        for line in lines) + "$out | ConvertTo-Json -Depth 4"
    result = pwsh(script)
    assert result.returncode == 0, result.stderr
    return {k: [list(m) for m in v] for k, v in json.loads(result.stdout).items()}


def test_tab_completion_asks_the_head_node(pwsh: Pwsh, client: Client) -> None:
    first = make_job(client, "true", "echo two", submit=False, Name="alpha", Project="apollo", NodeGroups="gpu",
                     RequestedNodes="NODE2")
    second = make_job(client, "true", submit=False, Name="beta", Project="artemis", TemplateName="Default")
    owner = job(client, first)["Owner"]
    tasks_of_first = f"Stop-HpcTask -JobId {first} -TaskId "
    found = completions(pwsh, "Stop-HpcJob -Id ", "Get-HpcJob ", "Get-HpcTask -JobId 0 -TaskId ", tasks_of_first,
                        "Get-HpcJob -Owner ", "Get-HpcJob -Name al", "New-HpcJob -Project a",
                        "Set-HpcJob -Id 1 -Priority Above", "New-HpcJob -TemplateName ", "New-HpcJob -NodeGroups ",
                        "New-HpcJob -RequestedNodes NO", "Add-HpcTask -JobId ", "Get-HpcJobHistory -JobId ")
    assert found["Stop-HpcJob -Id "][:2] == [[str(second), f"{second} beta (Configuring, {owner})"],
                                              [str(first), f"{first} alpha (Configuring, {owner})"]]
    assert [m[0] for m in found["Get-HpcJob "]][:2] == [str(second), str(first)]  # -Id is its first position
    assert found["Get-HpcTask -JobId 0 -TaskId "] == []
    assert found[tasks_of_first] == [["1", f"1 ({first}.1)"], ["2", f"2 ({first}.2)"]]
    assert found["Get-HpcJob -Owner "] == [[owner, owner]]
    assert found["Get-HpcJob -Name al"] == [["alpha", "alpha"]]
    assert [m[0] for m in found["New-HpcJob -Project a"]] == ["apollo", "artemis"]
    assert found["Set-HpcJob -Id 1 -Priority Above"] == [["AboveNormal", "AboveNormal"]]
    assert found["New-HpcJob -TemplateName "] == [["Default", "Default"]]
    assert found["New-HpcJob -NodeGroups "] == [["gpu", "gpu"]]
    assert found["New-HpcJob -RequestedNodes NO"] == [["NODE2", "NODE2"]]
    assert [m[0] for m in found["Add-HpcTask -JobId "]][:2] == [str(second), str(first)]
    assert [m[0] for m in found["Get-HpcJobHistory -JobId "]][:2] == [str(second), str(first)]


def test_stop_hpcjob_completes_only_jobs_that_can_still_be_stopped(pwsh: Pwsh, client: Client) -> None:
    finished = make_job(client, "true")
    canceled = make_job(client, "true", submit=False)
    client.call("cancel_jobs", ids=[canceled])
    configuring = make_job(client, "true", submit=False)
    running = make_job(client, "sleep 300")
    stopping = make_job(client, "sleep 300")
    wait_state(client, finished, "Finished")
    wait_state(client, running, "Running")
    wait_state(client, stopping, "Running")
    client.call("cancel_jobs", ids=[stopping], graceful=True)  # Canceling: a second stop forces it
    try:
        wait_state(client, stopping, "Canceling")
        found = completions(pwsh, "Stop-HpcJob -Id ", "Stop-HpcJob ", "Stop-HpcTask -JobId ", "Submit-HpcJob -Id ",
                            "Get-HpcJob -Id ")
        assert [m[0] for m in found["Stop-HpcJob -Id "]] == [str(stopping), str(running), str(configuring)]
        assert found["Stop-HpcJob "] == found["Stop-HpcJob -Id "]  # -Id is its first position
        assert found["Stop-HpcTask -JobId "] == found["Stop-HpcJob -Id "]  # the tasks of ended jobs have ended
        assert [m[0] for m in found["Submit-HpcJob -Id "]] == [str(configuring), str(canceled)]  # submit, requeue
        assert "(Canceling, " in found["Stop-HpcJob -Id "][0][1]
        assert {str(finished), str(canceled)} <= {m[0] for m in found["Get-HpcJob -Id "]}  # others offer every job
    finally:
        client.call("cancel_jobs", ids=[running, stopping], force=True)


def test_tab_completion_among_more_jobs_than_a_chunk_offers_the_newest_and_finds_any(pwsh: Pwsh,
                                                                                    client: Client) -> None:
    ids = [client.call("new_job", spec={"Name": f"n{i:03}"})["Id"] for i in range(130)]  # a listing's first
    first = str(ids[0])  # chunk is 100: completion must neither break on the rest nor miss it
    found = completions(pwsh, "Stop-HpcJob -Id ", f"Stop-HpcJob -Id {first}", "Get-HpcJob -Name n12",
                        "Get-HpcJob -Name ", "Set-HpcJob -Id ")
    offered = [m[0] for m in found["Stop-HpcJob -Id "]]
    assert offered == [str(i) for i in reversed(ids[30:])]  # the newest 100, newest first
    assert found["Set-HpcJob -Id "] == found["Stop-HpcJob -Id "]
    assert first in [m[0] for m in found[f"Stop-HpcJob -Id {first}"]]  # the oldest, once its id is typed
    assert [m[0] for m in found["Get-HpcJob -Name n12"]] == [f"n12{i}" for i in range(10)]  # past the first 100
    assert [m[0] for m in found["Get-HpcJob -Name "]] == [f"n{i:03}" for i in range(100)]  # at most 100


def test_completion_for_a_change_offers_a_user_who_is_no_administrator_only_their_own_jobs(
        users: Any, head: HeadNodeProcess, pwsh: Pwsh, client: Client) -> None:
    mine = make_job(client, "true", submit=False, Name="roots")
    made = as_user("hpcalice", head, "print(c.call('new_job', spec={'Name': 'alices'})['Id'])")
    assert made.returncode == 0, made.stderr
    alices = int(made.stdout)
    found = completions(pwsh, "Stop-HpcJob -Id ", "Set-HpcJob -Id ")  # root: an administrator
    assert [m[0] for m in found["Stop-HpcJob -Id "]] == [str(alices), str(mine)]
    assert found["Set-HpcJob -Id "] == found["Stop-HpcJob -Id "]
    # The module's completion query (what its completers call) as hpcalice: pwsh's embedded Python here is
    # root's alone (README), so hers is the system Python with the same backend code.
    asked = as_user("hpcalice", head, textwrap.dedent(f"""
        sys.path.insert(0, {str(user_site())!r})  # the module's dependencies, where she can read them
        from hpcpack import shim
        for purpose in ("stop", "submit", "change", "view"):
            args = {{"For": purpose, "Typed": "", "Scheduler": "unix:{head.socket}"}}
            print(json.dumps([r["Value"] for r in shim.call("Complete-JobId", args)]))
    """))
    assert asked.returncode == 0, asked.stderr
    stop, submit, change, view = (json.loads(line) for line in asked.stdout.splitlines())
    assert stop == submit == change == [str(alices)]  # root's job is not hers to change
    assert view == [str(alices), str(mine)]  # Get-HpcJob -Id offers every job she sees


def test_tab_completion_without_a_head_node_offers_nothing_and_says_nothing(tmp_path: Any) -> None:
    line = "Stop-HpcJob -Id "
    env = {k: v for k, v in os.environ.items() if k != "HPCPACK_HOME"} | {"CCP_SCHEDULER": f"unix:{tmp_path}/none.sock"}
    result = run_pwsh(f"$r = TabExpansion2 -inputScript '{line}' -cursorColumn {len(line)}\n"
                      "'count=' + $r.CompletionMatches.Count; $Error.Count", env=env)
    assert result.stdout.split() == ["count=0", "0"], result


def test_help_pages_are_written_for_linux_without_stray_spaces() -> None:
    result = run_pwsh("foreach ($c in (Get-Module HPC).ExportedCmdlets.Keys) {\n"
                      "  $h = Get-Help $c -Full\n"
                      "  foreach ($e in $h.examples.example) { 'code|' + $c + '|' + ($e.code -split \"`n\")[0] }\n"
                      "  'text|' + $c + '|' + (($h | Out-String -Width 4000) -replace \"`r?`n\", ' ')\n"
                      "}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    codes = [line.split("|", 2) for line in lines if line.startswith("code|")]
    assert len(codes) >= 20 and all(code.startswith("PS /home/alice> ") for _, _, code in codes), codes
    for _, name, text in (line.split("|", 2) for line in lines if line.startswith("text|")):
        assert "PS C:" not in text, name
        stray = re.findall(r"\S{0,20}[A-Za-z0-9*] [.,;:!?)](?=\s|$)", text)
        assert not stray, (name, stray)
