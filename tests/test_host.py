"""bin/pwsh: pwsh's command line, streams, exit codes and prompts, on the real engine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import PWSH


def pwsh(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PWSH), "-NoProfile", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "POWERSHELL_TELEMETRY_OPTOUT": "1"})


def test_exit_codes_follow_pwsh() -> None:
    assert pwsh("-Command", "exit 7").returncode == 7
    assert pwsh("-Command", "'fine'").returncode == 0
    thrown = pwsh("-Command", "throw 'boom'")
    assert thrown.returncode == 1 and "boom" in thrown.stderr
    failed_last = pwsh("-Command", "Get-Command -Name no-such-command-anywhere")
    assert failed_last.returncode == 1
    assert pwsh("-Command", "Get-Command -Name no-such-command-anywhere -ErrorAction SilentlyContinue; 1").returncode == 0


def test_command_from_stdin_and_file_with_arguments(tmp_path: Path) -> None:
    piped = pwsh("-Command", "-", stdin="$a = 6\n$a * 7\n")
    assert piped.stdout.split() == ["42"]
    script = tmp_path / "args.ps1"
    script.write_text("param([string] $First, [int] $Count, [switch] $Loud)\n"
                      "'{0}|{1}|{2}' -f $First, $Count, $Loud.IsPresent\nexit $Count\n")
    result = pwsh("-File", str(script), "hello", "-Count", "3", "-Loud")
    assert result.stdout.strip() == "hello|3|True"
    assert result.returncode == 3
    missing = pwsh("-File", str(tmp_path / "missing.ps1"))
    assert missing.returncode == 64 and "not recognized as the name of a script file" in missing.stderr


def test_streams_go_where_pwsh_writes_them() -> None:
    script = ("function Test-It { [CmdletBinding(SupportsShouldProcess)] param() "
              "$PSCmdlet.WriteWarning('careful'); $PSCmdlet.WriteVerbose('details'); "
              "$PSCmdlet.WriteError([Management.Automation.ErrorRecord]::new([Exception]::new('bad'), 'Bad', "
              "'InvalidOperation', $null)); 'result' }\nTest-It -Verbose")
    result = pwsh("-Command", script)
    assert "WARNING: careful" in result.stdout
    assert "VERBOSE: details" in result.stdout
    assert "result" in result.stdout
    assert result.stderr.startswith("Test-It:") and "| bad" in result.stderr and "bad" not in result.stdout


def test_whatif_and_confirm_are_worded_by_the_engine() -> None:
    script = ("function Remove-Thing { [CmdletBinding(SupportsShouldProcess, ConfirmImpact='High')] param() "
              "if ($PSCmdlet.ShouldProcess('thing')) { 'removed' } }\n")
    whatif = pwsh("-Command", script + "Remove-Thing -WhatIf")
    assert whatif.stdout.strip() == 'What if: Performing the operation "Remove-Thing" on target "thing".'
    yes = pwsh("-Command", script + "Remove-Thing", stdin="y\n")
    assert "Are you sure you want to perform this action?" in yes.stdout and "removed" in yes.stdout
    no = pwsh("-Command", script + "Remove-Thing", stdin="n\n")
    assert "removed" not in no.stdout
    help_then_yes = pwsh("-Command", script + "Remove-Thing", stdin="?\nY\n")
    assert "Y - Continue with only the next step of the operation." in help_then_yes.stdout
    assert "removed" in help_then_yes.stdout


def test_noninteractive_refuses_to_prompt_as_pwsh_does() -> None:
    script = ("function Remove-Thing { [CmdletBinding(SupportsShouldProcess, ConfirmImpact='High')] param() "
              "if ($PSCmdlet.ShouldProcess('thing')) { 'removed' } }\nRemove-Thing")
    result = pwsh("-NonInteractive", "-Command", script)
    assert "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available." in result.stderr
    assert "removed" not in result.stdout


def test_output_is_plain_text_when_redirected() -> None:
    result = pwsh("-Command", "Get-Command Get-Help")
    assert "\x1b[" not in result.stdout
    assert "Get-Help" in result.stdout
