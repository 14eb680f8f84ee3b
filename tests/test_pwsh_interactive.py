"""bin/pwsh is real pwsh: arguments and standard input pass through, and at a terminal it is interactive."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from hpcpack.backends.client import Client

from .conftest import MODULE, PWSH, HeadNodeProcess
from .jobs import make_job, wait_state

PROMPT = re.compile(r"PS [^\r\n]*> ")
# pwsh writes terminal modes and colours even to a pipe when TERM names a terminal, as it does for users.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(PWSH), "-NoProfile", *args], input=stdin, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "POWERSHELL_TELEMETRY_OPTOUT": "1"})
    return subprocess.CompletedProcess(result.args, result.returncode, ESCAPES.sub("", result.stdout),
                                       ESCAPES.sub("", result.stderr))


def test_it_is_pwsh_7_4_or_newer_with_the_utility_cmdlets() -> None:
    result = run("-Command", "$PSVersionTable.PSVersion.ToString(); $PSVersionTable.PSEdition; "
                             "(Get-Command Select-Object, Sort-Object, Format-Table, Start-Sleep, Get-Date).Count")
    version, edition, count = result.stdout.split()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (7, 4)
    assert (edition, count) == ("Core", "5")


def test_arguments_pass_through_untouched(tmp_path: Path) -> None:
    script = tmp_path / "args.ps1"
    script.write_text("param([string] $First, [int] $Count, [switch] $Loud)\n"
                      "'{0}|{1}|{2}' -f $First, $Count, $Loud.IsPresent\nexit $Count\n")
    result = run("-File", str(script), "two words; $(not expanded) 'q'", "-Count", "3", "-Loud")
    assert result.stdout.strip() == "two words; $(not expanded) 'q'|3|True"
    assert result.returncode == 3
    assert run("-Command", "exit 7").returncode == 7
    thrown = run("-Command", "throw 'boom'")
    assert thrown.returncode == 1 and "boom" in thrown.stderr


@pytest.mark.parametrize("version", ["7.5.0", "7.2.0"])
def test_bin_pwsh_runs_your_pwsh_when_it_is_7_4_or_newer(version: str, tmp_path: Path) -> None:
    yours = tmp_path / "pwsh"
    yours.write_text(f"#!/bin/sh\n[ \"$3\" = -Version ] && {{ echo 'PowerShell {version}'; exit 0; }}\n"
                     "printf 'yours:%s\\n' \"$@\"; cat\n")
    yours.chmod(0o755)
    result = subprocess.run([str(PWSH), "-NoProfile", "-Command", "'a b';  \"c\""], input="from stdin\n",
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    if version == "7.5.0":
        assert result.stdout == "yours:-NoProfile\nyours:-Command\nyours:'a b';  \"c\"\nfrom stdin\n"
    else:  # too old: the pwsh 7.6 that make build installed runs instead
        assert ESCAPES.sub("", result.stdout).split() == ["a", "b", "c"]


def test_command_from_standard_input_runs_every_line() -> None:
    piped = run("-Command", "-", stdin="$a = 6\n$a * 7\n1..3 | Sort-Object -Descending | Select-Object -First 1\n")
    assert piped.stdout.split() == ["42", "3"]
    assert piped.returncode == 0


def test_parse_errors_are_reported(tmp_path: Path) -> None:
    script = tmp_path / "broken.ps1"
    script.write_text("'never'\nif (\n")
    result = run("-File", str(script))
    assert result.returncode == 1
    assert "Missing condition in if statement" in result.stderr and "never" not in result.stdout


class Terminal:
    """pwsh at a pseudo-terminal, answered as a terminal would: a reader thread keeps the screen's text and
    answers PSReadLine's cursor-position requests, which it waits for before it reads a key."""

    def __init__(self, env: dict[str, str]) -> None:
        self.child = pexpect.spawn(str(PWSH), ["-NoLogo", "-NoProfile"], env=env | {"TERM": "xterm"},
                                   encoding="utf-8", timeout=60, dimensions=(40, 200))
        self.raw = ""
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        answered = 0
        while True:
            try:
                chunk = self.child.read_nonblocking(4096, timeout=None)
            except (pexpect.EOF, OSError):
                break
            with self.changed:
                self.raw += chunk
                for _ in range(self.raw.count("\x1b[6n") - answered):
                    self.child.send("\x1b[1;1R")
                    answered += 1
                self.changed.notify_all()

    @property
    def text(self) -> str:
        return ESCAPES.sub("", self.raw)

    def expect(self, pattern: str | re.Pattern[str], since: int = 0, timeout: float = 60) -> str:
        """Waits until `pattern` shows after position `since` of the text; returns the text up to its end."""
        with self.changed:
            if not self.changed.wait_for(lambda: re.search(pattern, self.text[since:]), timeout):
                raise AssertionError(f"{pattern!r} did not show within {timeout} s; the screen:\n{self.text[since:]}")
            found = re.search(pattern, self.text[since:])
            assert found is not None
            return self.text[since:since + found.end()]

    def send(self, keys: str) -> int:
        """Types keys; returns the position of the text at that moment."""
        with self.changed:
            mark = len(self.text)
        self.child.send(keys)
        return mark

    def run(self, line: str) -> str:
        """Types a line and Enter (a terminal sends CR); returns what showed until the next prompt."""
        return self.expect(PROMPT, self.send(line + "\r"))

    def exit(self) -> int | None:
        self.send("exit\r")
        self.reader.join(60)
        self.child.close()
        return self.child.exitstatus


@pytest.fixture
def shell(head: HeadNodeProcess) -> Iterator[Terminal]:
    """An interactive pwsh at a pseudo-terminal, talking to the test's head node."""
    terminal = Terminal(head.env())
    terminal.expect(PROMPT)
    terminal.run(f"Import-Module '{MODULE}'")
    yield terminal
    assert terminal.exit() == 0


def test_an_interactive_session_runs_cmdlets_at_the_prompt(shell: Terminal, client: Client) -> None:
    job_id = make_job(client, "sleep 300", Name="at-the-prompt")
    out = shell.run(f"Get-HpcJob -Id {job_id} | Select-Object -ExpandProperty Name")
    assert "\nat-the-prompt\r\n" in out
    client.call("cancel_jobs", ids=[job_id], force=True)


def test_tab_completes_the_state_parameter_and_its_values(shell: Terminal) -> None:
    shell.expect("-State", shell.send("Get-HpcJob -Stat\t"))
    shell.expect("Queued", shell.send(" Que\t"))
    out = shell.expect(PROMPT, shell.send("\r"))
    assert "Cannot" not in out and "Error" not in out
    assert "ran|Get-HpcJob -State Queued" in shell.run("'ran|' + (Get-History -Count 1).CommandLine")


def test_ctrl_c_ends_a_cmdlets_wait_and_the_prompt_returns(shell: Terminal, client: Client) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 60})
    job_id = make_job(client, "trap '' TERM; while true; do sleep 0.05; done")
    wait_state(client, job_id, "Running")
    mark = shell.send(f"Stop-HpcJob -Id {job_id}; 'not reached'\r")
    wait_state(client, job_id, "Canceling")
    started = time.monotonic()
    shell.send("\x03")
    out = shell.expect(PROMPT, mark, timeout=20)
    assert time.monotonic() - started < 10, "Ctrl+C did not end the wait"
    assert "\nnot reached" not in out
    assert "state=Canceling" in shell.run(f"'state=' + (Get-HpcJob -Id {job_id}).State")
    client.call("cancel_jobs", ids=[job_id], force=True)
    assert wait_state(client, job_id, "Canceled")
