"""What users feel: commands as fresh processes, a fresh pwsh, bulk cancels and listings, each next to its
baseline in the same run, interleaved so that the machine's load hits both alike.

Baselines: an interpreter that imports nothing (`python -I -S -c pass`, the floor of any Python client),
a bare `pwsh -Command 1`, and Slurm's own commands when a Slurm cluster answers `scontrol ping` here
(SLURM_CONF is honoured); otherwise Slurm's figures are reported as not measured (None), never remembered.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
PWSH = str(ROOT / "bin" / "pwsh")
MODULE = ROOT / "module" / "HPC.psd1"


def run_ms(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return (time.perf_counter() - started) * 1000


def interleaved(commands: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median ms of each, the commands taking turns so that a burst of load does not favour one."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, measure in commands.items():
            samples[name].append(measure())
    return {name: round(statistics.median(values), 2) for name, values in samples.items()}


def slurm_live() -> bool:
    if shutil.which("scontrol") is None:
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def job_command(env: dict[str, str], job_id: int, cancel_ids: list[int], repeats: int) -> dict[str, float]:
    """`job view`, `job cancel` and a one-command `job submit` as processes: the compiled `job` (client/job.c)
    next to the Python one (job-py) and the Python floor, and Slurm's when it runs."""
    queue = list(cancel_ids)

    def measured(program: str, *words: str | Callable[[], str]) -> Callable[[], float]:
        return lambda: run_ms([program, *(w if isinstance(w, str) else w() for w in words)], env)
    commands = {"python_floor_ms": measured(str(VENV / "python"), "-I", "-S", "-c", "pass"),
                "process_floor_ms": measured("/bin/true")}  # what any process costs here, under today's load
    for name, program in (("job", str(VENV / "job")), ("job_py", str(VENV / "job-py"))):
        commands[f"{name}_view_ms"] = measured(program, "view", str(job_id))
        commands[f"{name}_cancel_ms"] = measured(program, "cancel", lambda: str(queue.pop()))
        commands[f"{name}_submit_ms"] = measured(program, "submit", "/numcores:1", "true")
    live = slurm_live()
    if live:
        commands |= slurm_job_commands(env, repeats)
    try:
        return interleaved(commands, min(repeats, len(cancel_ids) // 2))  # job and job-py cancel one each
    finally:
        if live:
            subprocess.run(["scancel", f"--name={SLURM_JOB_NAME}"], env=env, capture_output=True, check=False)


SLURM_JOB_NAME = "hpcpack-bench"


def slurm_held(env: dict[str, str], count: int) -> list[str]:
    """`count` held Slurm jobs (-H: nothing runs), all named SLURM_JOB_NAME, submitted a few at a time: what
    Slurm's commands are measured on, as ours are on as many queued jobs."""
    def held(_: int) -> str:
        return subprocess.run(["sbatch", "-H", "--parsable", f"--job-name={SLURM_JOB_NAME}", "--wrap", "true"],
                              env=env, capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(held, range(count)))


def slurm_job_commands(env: dict[str, str], repeats: int) -> dict[str, Callable[[], float]]:
    """Slurm's equivalents on held jobs, cancelled afterwards (by name)."""
    shown, *queue = slurm_held(env, repeats + 1)
    return {"slurm_scontrol_show_job_ms": lambda: run_ms(["scontrol", "show", "job", shown], env),
            "slurm_scancel_ms": lambda: run_ms(["scancel", queue.pop()], env),
            "slurm_sbatch_ms": lambda: run_ms(["sbatch", "-H", f"--job-name={SLURM_JOB_NAME}", "--wrap", "true"],
                                              env)}


def pwsh_start(env: dict[str, str], job_id: int, repeats: int) -> dict[str, float]:
    """A fresh pwsh that imports the module and runs one cmdlet, next to a bare pwsh: what a user pays,
    Python's start and exit included. pwsh keeps one startup profile per user (in XDG_CACHE_HOME) and
    rewrites it at each exit: each command has a cache of its own, warmed by a first run, as a user who
    runs the same script again has, so that neither starts with the other's profile."""
    base = [PWSH, "-NoProfile", "-NonInteractive", "-Command"]
    scripts = {"pwsh_bare_ms": "1",
               "pwsh_hpc_one_cmdlet_ms": f"Import-Module '{MODULE}'; $null = Get-HpcJob -Id {job_id}"}
    with tempfile.TemporaryDirectory(prefix="hpc-bench-cache-") as caches:
        envs = {name: {**env, "XDG_CACHE_HOME": os.path.join(caches, name)} for name in scripts}
        for name, script in scripts.items():
            run_ms([*base, script], envs[name])

        def measured(name: str) -> Callable[[], float]:
            return lambda: run_ms([*base, scripts[name]], envs[name])
        return interleaved({name: measured(name) for name in scripts}, repeats)


def _pwsh_results(env: dict[str, str], script: str) -> dict[str, float]:
    """Runs `script` in a pwsh with the module loaded; it prints `name|milliseconds` lines."""
    out = subprocess.run([PWSH, "-NoProfile", "-NonInteractive", "-Command",
                          f"Import-Module '{MODULE}'; $sw = [Diagnostics.Stopwatch]::new(); {script}"],
                         env=env, capture_output=True, text=True, timeout=900, check=True)
    return {k: float(v) for k, v in (line.split("|") for line in out.stdout.splitlines() if "|" in line)}


def bulk_cancel(env: dict[str, str], rounds: list[tuple[list[int], str]]) -> dict[str, float]:
    """Stop-HpcJob of N queued jobs as a user runs it, in one warm pwsh, until the cmdlet returns (the jobs
    are Canceled then), once per round, each on jobs of its own: `-Id <N ids> -Confirm:$false` on the
    round's ids, then `Get-HpcJob -Name <name> | Stop-HpcJob` on as many jobs named so. Reported: the first
    round (what the session's first bulk stop pays: code run for the first time) and the median of the
    rounds; Slurm's one scancel with N ids, the median of as many rounds, when it runs."""
    count = len(rounds[0][0])
    # Warm: the session has used the module once (Python loaded, connected), as at an interactive prompt.
    script = f"$null = Get-HpcJob -Id {rounds[0][0][0]}; "
    for n, (ids, name) in enumerate(rounds):
        script += (f"$sw.Restart(); Stop-HpcJob -Id {','.join(map(str, ids))} -Confirm:$false *> $null; $sw.Stop(); "
                   f"'id{n}|' + $sw.Elapsed.TotalMilliseconds; $sw.Restart(); "
                   f"Get-HpcJob -Name {name} | Stop-HpcJob -Confirm:$false *> $null; $sw.Stop(); "
                   f"'piped{n}|' + $sw.Elapsed.TotalMilliseconds; ")
    measured = _pwsh_results(env, script)
    results: dict[str, float] = {}
    for kind, key in (("id", f"stop_hpcjob_{count}"), ("piped", f"stop_hpcjob_piped_{count}")):
        samples = [measured[f"{kind}{n}"] for n in range(len(rounds))]
        results |= _per_job(key, statistics.median(samples), count)
        results[f"{key}_first_ms"] = round(samples[0], 2)
    if slurm_live():  # one scancel of as many held (pending) jobs, per round
        scancels = [run_ms(["scancel", *slurm_held(env, count)], env) for _ in rounds]
        results |= _per_job(f"slurm_scancel_{count}", statistics.median(scancels), count)
    return results


def _per_job(key: str, ms: float, count: int) -> dict[str, float]:
    return {f"{key}_ms": round(ms, 2), f"{key}_us_per_job": round(ms * 1000 / count, 1)}


def job_list(env: dict[str, str], repeats: int, count: int = 5000) -> dict[str, float]:
    """`job list` of the `count` queued jobs the caller has made, as a process: the compiled `job`, job-py,
    and squeue over as many held Slurm jobs (cancelled afterwards)."""
    commands: dict[str, Callable[[], float]] = {
        "job_list_ms": lambda: run_ms([str(VENV / "job"), "list"], env),
        "job_py_list_ms": lambda: run_ms([str(VENV / "job-py"), "list"], env)}
    live = slurm_live()
    if live:
        slurm_held(env, count)
        commands["slurm_squeue_ms"] = lambda: run_ms(["squeue"], env)
    try:
        return interleaved(commands, repeats)
    finally:
        if live:
            subprocess.run(["scancel", f"--name={SLURM_JOB_NAME}"], env=env, capture_output=True, check=False)


def listing(env: dict[str, str], repeats: int) -> dict[str, float]:
    """`job list` as processes (job_list), and a warm Get-HpcJob -State Queued."""
    results = job_list(env, repeats)
    results["get_hpcjob_queued_ms"] = round(_pwsh_results(env, (
        f"$t = foreach ($i in 1..{repeats}) {{ $sw.Restart(); $null = Get-HpcJob -State Queued; $sw.Stop(); "
        "$sw.Elapsed.TotalMilliseconds }; [array]::Sort($t); 'median|' + $t[[int]($t.Count / 2)]"))["median"], 2)
    return results


def environment(state: Path) -> dict[str, str]:
    # As a script runs from cron or CI: no terminal, so pwsh writes no terminal escapes.
    return {**os.environ, "HPCPACK_HOME": str(state), "POWERSHELL_TELEMETRY_OPTOUT": "1", "TERM": "dumb"}
