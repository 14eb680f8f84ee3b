"""A fresh pwsh with the module exits without finalizing its Python: the head node keeps all state, so
pythonnet's shutdown at exit (half a second) would buy nothing. Timings are bench/clients.py's (pwsh_start)."""

from __future__ import annotations

from collections.abc import Callable

from .conftest import PwshResult

Pwsh = Callable[..., PwshResult]

# A shutdown handler of pythonnet's that prints an empty line: it runs only if pythonnet shuts Python down.
MARK_SHUTDOWN = ("[Python.Runtime.PythonEngine]::AddShutdownHandler([Delegate]::CreateDelegate("
                 "[Python.Runtime.PythonEngine+ShutdownHandler], [Console].GetMethod('WriteLine', [Type[]]@())))\n")


def test_python_is_not_shut_down_at_exit(pwsh: Pwsh) -> None:
    result = pwsh("$null = Get-HpcJob\n" + MARK_SHUTDOWN + "'last'")
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout == "last\n"


def test_a_pwsh_that_only_imports_the_module_exits_cleanly(pwsh: Pwsh) -> None:
    result = pwsh("'last'")
    assert (result.returncode, result.stdout, result.stderr) == (0, "last\n", "")


def test_importing_the_module_starts_python_before_any_cmdlet_and_keeps_it_at_exit(pwsh: Pwsh) -> None:
    """Import-Module starts Python in the background (PythonBridge.StartInBackground), so that the first
    cmdlet finds it started or starting; it is still not shut down at exit."""
    wait = ("$deadline = [DateTime]::Now.AddSeconds(30)\n"
            "while (-not (($engine = 'Python.Runtime.PythonEngine' -as [type]) -and $engine::IsInitialized) -and "
            "[DateTime]::Now -lt $deadline) { Start-Sleep -Milliseconds 20 }\n"
            "[bool]$engine::IsInitialized\n")
    result = pwsh(wait + MARK_SHUTDOWN + "'last'")
    assert (result.returncode, result.stdout, result.stderr) == (0, "True\nlast\n", "")
