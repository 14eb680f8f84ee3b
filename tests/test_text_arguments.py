"""Text that is not Unicode (a byte that is not UTF-8 on a command line, a lone UTF-16 surrogate in a
cmdlet parameter) is refused where it enters, naming the argument, and changes nothing: a real head node,
the real `job` and `task` commands and a real pwsh."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from hpcpack.backends.client import Client

from .conftest import ROOT, HeadNodeProcess, PwshResult

COMPILED_JOB = ROOT / "build" / "bin" / "job"


def commands() -> list[list[str | bytes]]:
    """Each command line with a Latin-1 byte, in the Python `job` and `task` and in the compiled `job`."""
    python = [sys.executable, "-m"]
    return [[*python, "hpcpack.cli", "cancel", "1", b"/message:caf\xe9"],
            [str(COMPILED_JOB), "cancel", "1", b"/message:caf\xe9"],
            [str(COMPILED_JOB), "submit", "echo", b"caf\xe9"],
            [*python, "hpcpack.cli", "new", b"--jobname=caf\xe9"],
            [*python, "hpcpack.cli", "add", "1", "echo", b"caf\xe9"],
            [*python, "hpcpack.cli.task", "view", b"1.\xff"]]


def jobs_and_tasks(client: Client) -> list[Any]:
    return [(j, client.call("get_tasks", job_id=j["Id"])) for j in client.call("get_jobs", state="All")]


@pytest.mark.parametrize("index", range(6))
def test_a_command_line_word_that_is_not_utf8_is_refused_in_one_line_naming_it(head: HeadNodeProcess,
                                                                               client: Client, index: int) -> None:
    client.call("new_job", spec={"Name": "kept"})
    before = jobs_and_tasks(client)
    run = subprocess.run(commands()[index], capture_output=True, timeout=60, env=head.env())
    lines = run.stderr.decode("utf-8").splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr  # a usage error, not a traceback
    word = "/message" if b"/message" in run.stderr else "--jobname" if b"--jobname" in run.stderr else "argument "
    assert word in lines[0] and "not valid Unicode text" in lines[0] and "\\x" in lines[0], lines[0]
    assert "Input should be" not in lines[0]  # no validator's words
    assert jobs_and_tasks(client) == before


def test_the_head_node_names_text_that_is_not_unicode_in_its_own_words(client: Client) -> None:
    # A client that checks nothing: the head node refuses it, naming the field, not in pydantic's words.
    from hpcpack.errors import HpcError
    with pytest.raises(HpcError) as refused:
        client.call("cancel_jobs", ids=[1], message="caf\udce9")
    assert refused.value.error_id == "InvalidArgument"
    assert refused.value.message == ("Invalid request 'cancel_jobs': message: must be valid Unicode text (it holds a "
                                     "lone surrogate).")


def test_a_lone_surrogate_in_any_cmdlet_parameter_is_an_invalid_argument_naming_it(
        head: HeadNodeProcess, client: Client, pwsh: Callable[..., PwshResult]) -> None:
    job_id = client.call("new_job", spec={"Name": "kept"})["Id"]
    before = jobs_and_tasks(client)
    calls = {"Name": 'New-HpcJob -Name "a`u{D800}b"',
             "CommandLine": f'Add-HpcTask -JobId {job_id} -CommandLine "echo `u{{DC00}}"',
             "Message": f'Stop-HpcJob -Id {job_id} -Message "`u{{DFFF}}x" -Force',
             "Defaults": 'New-HpcJobTemplate -Name t -Defaults @{ Project = "`u{D83D}" }'}
    script = "".join(f"try {{ {call} -ErrorAction Stop; 'accepted' }} catch {{ $_.FullyQualifiedErrorId + '|' + "
                     f"$_.CategoryInfo.Category + '|' + $_.TargetObject + '|' + $_.Exception.Message }}\n"
                     for call in calls.values())
    result = pwsh(script + '(New-HpcJob -Name "pair`u{1F600}").Name')
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == len(calls) + 1, result
    for parameter, line in zip(calls, lines, strict=False):
        error_id, category, target, message = line.split("|")
        assert error_id.split(",")[0] == "InvalidArgument" and category == "InvalidArgument", line
        assert target == parameter and f"-{parameter} is not valid Unicode text" in message, line
        assert "lone UTF-16 surrogate" in message and "Python" not in message, line
    assert lines[-1] == "pair\U0001F600"  # a surrogate pair is text
    assert [j for j in jobs_and_tasks(client) if j[0]["Name"] != "pair\U0001F600"] == before  # nothing else changed


def test_records_cross_to_powershell_as_json_that_keeps_their_values_and_has_no_lone_surrogate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The module reads a call's records as UTF-8 JSON (shim.call_json): numbers keep their kind (an
    integer is not a float), any iterable is an array, and text that is no Unicode (a lone surrogate, from
    a backend that let one through) becomes U+FFFD instead of failing the whole answer in .NET's reader."""
    from hpcpack import shim
    from hpcpack.cmdlets import registry
    record = {"__type__": "HpcJob", "Id": 2**40, "Runtime": 1.0, "Name": "a\ud800b \U0001F600", "Flag": True,
              "Nodes": ("n1", "n2"), "Groups": {"g"}, "Extra": {"k": None}}
    monkeypatch.setitem(registry.COMMANDS, "Test-Records", lambda args: [record])
    text = shim.call_json("Test-Records", {})
    text.decode("utf-8")  # strict: raises on an encoded surrogate (which json.loads would let through)
    assert json.loads(text) == [{**record, "Name": "a\ufffdb \U0001F600", "Nodes": ["n1", "n2"], "Groups": ["g"]}]
    assert b'"Runtime":1.0' in text and b'"Id":1099511627776' in text
