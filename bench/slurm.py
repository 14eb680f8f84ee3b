"""Our cmdlets on a head node with `engine: slurm` next to raw Slurm, on the same cluster in the same run.

    .venv/bin/python bench/slurm.py [--quick]     (also part of `make bench` when Slurm's packages are here)

The cluster is the tests' two-node one (tests/slurm_cluster.py), started here and stopped afterwards;
`live_slurm_conf()` gives it to other bench modules. Everything runs as root on both sides, and every
Slurm figure is measured, never remembered:

a) N one-task jobs through New-HpcJob | Add-HpcTask | Submit-HpcJob in a warm pwsh until all are Finished,
   vs N `sbatch --wrap` of the same command until Slurm shows all COMPLETED;
b) N jobs queued behind a job that fills the cluster, canceled by one Stop-HpcJob -Id <N ids> until
   Canceled, vs one `scancel` with N ids until Slurm shows them CANCELLED;
c) Stop-HpcJob -Force of a running task tree that ignores SIGTERM until no process of it is left on any
   node, vs `scancel` of a raw sbatch job running the same tree (KillWait=5).

A ratio is Slurm's time divided by ours: above 1, we are faster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench import clients  # noqa: E402
from tests.conftest import HeadNodeProcess, head_id, start_head_node  # noqa: E402
from tests.slurm_cluster import SLURMCTLD, SLURMD, SlurmCluster  # noqa: E402
from tests.test_slurm_engine import RACE_MARK, marked_processes  # noqa: E402

from hpcpack.backends.client import Client  # noqa: E402

COMMAND = "hostname"
# Ignores SIGTERM; one process leaves the session and one the process tree: only a cgroup holds them all.
TREE = "trap '' TERM; setsid -f sleep 1000; ( sleep 1000 & ); touch {ready}; sleep 1000"
POLL = 0.01  # seconds between two looks at Slurm's queue, on both sides alike
COUNTS = (20, 100)  # jobs submitted, and jobs canceled in one request
MEASURES = [f"{what}_{n}" for n in COUNTS for what in ("submit_until_finished", "cancel_queued")]
MEASURES.append("force_until_no_process")


def available() -> bool:
    """Root, with Slurm's daemons and client installed (the cluster needs namespaces and cgroups)."""
    return os.geteuid() == 0 and all(Path(p).exists() for p in (SLURMCTLD, SLURMD, "/usr/bin/sbatch"))


@contextlib.contextmanager
def live_slurm_conf() -> Iterator[str]:
    """The slurm.conf of the two-node cluster on this machine (its nodes' processes are visible here),
    started on entering and stopped on leaving; while inside, SLURM_CONF in this process's environment
    names it, so the Slurm commands of every bench module reach it. Nested, the running one is reused."""
    cluster = SlurmCluster()
    if os.environ.get("SLURM_CONF") == str(cluster.slurm_conf) and clients.slurm_live():
        yield str(cluster.slurm_conf)
        return
    previous = os.environ.get("SLURM_CONF")
    with cluster:
        os.environ["SLURM_CONF"] = str(cluster.slurm_conf)
        try:
            yield str(cluster.slurm_conf)
        finally:
            if previous is None:
                del os.environ["SLURM_CONF"]
            else:
                os.environ["SLURM_CONF"] = previous


class PwshSession:
    """One warm pwsh (module imported, head node connected) fed a line at a time, as at a prompt."""

    def __init__(self, env: dict[str, str], errors: Path) -> None:
        self._errors: IO[str] = open(errors, "w")  # noqa: SIM115 - kept for the session's life
        self.proc = subprocess.Popen([clients.PWSH, "-NoProfile", "-NonInteractive", "-Command", "-"], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors, env=env)
        self.count = 0
        self.run(f"Import-Module '{clients.MODULE}'; $null = Get-HpcJob -State All")

    def send(self, line: str) -> None:
        """Starts `line` without waiting for it (output() collects what it printed)."""
        assert self.proc.stdin is not None
        self.count += 1
        self.proc.stdin.write(f"try {{ {line} }} finally {{ 'END-{self.count}' }}\n")
        self.proc.stdin.flush()

    def output(self) -> list[str]:
        assert self.proc.stdout is not None
        lines: list[str] = []
        for line in self.proc.stdout:
            if line.strip() == f"END-{self.count}":
                return lines
            lines.append(line.strip())
        raise RuntimeError(f"pwsh ended; see {self._errors.name}")

    def run(self, line: str) -> list[str]:
        self.send(line)
        return self.output()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self._errors.close()


def poll(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(POLL)


class SlurmBench:
    def __init__(self, conf: str) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="hpc-bench-slurm-"))
        self.env = {**os.environ, "SLURM_CONF": conf}
        self.head: HeadNodeProcess = start_head_node(self.state, f"engine: slurm\nslurm_conf: {conf}\n")
        self.client = Client(f"unix:{self.head.socket}")
        self.pwsh = PwshSession({**clients.environment(self.state), "CCP_SCHEDULER": f"unix:{self.head.socket}"},
                                self.state / "pwsh.err")
        self.results: dict[str, float] = {}

    def close(self) -> None:
        self.pwsh.close()
        self.client.close()
        self.head.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    # -- Slurm's side -------------------------------------------------------------------------

    def slurm(self, *args: str) -> str:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, check=True).stdout

    def sbatch(self, command: str, *options: str, mark: str = "") -> int:
        """A raw job; with `mark`, every process of it carries RACE_MARK=mark (sbatch passes its own
        environment on: an --export list would make slurmd build a login environment first)."""
        env = {**self.env, RACE_MARK: mark} if mark else self.env
        out = subprocess.run(["sbatch", "--parsable", "--output=/dev/null", *options, f"--wrap={command}"], env=env,
                             capture_output=True, text=True, check=True).stdout
        return int(out.split(";")[0])

    def slurm_states(self, ids: list[int]) -> list[str]:
        out = self.slurm("squeue", "-h", "-t", "all", f"--jobs={','.join(map(str, ids))}", "-o", "%T")
        return out.split()

    def all_in(self, ids: list[int], state: str) -> bool:
        states = self.slurm_states(ids)
        return len(states) == len(ids) and set(states) == {state}

    # -- ours ---------------------------------------------------------------------------------

    def submit_in_pwsh(self, count: int, command: str) -> list[int]:
        out = self.pwsh.run(f"$ids = foreach ($i in 1..{count}) {{ $j = New-HpcJob -Name bench; "
                            f"$null = $j | Add-HpcTask -CommandLine '{command}'; $null = $j | Submit-HpcJob; $j.Id }}; "
                            "$ids -join ','")
        return [int(i) for i in out[-1].split(",")]

    def wait_ended(self, ids: list[int]) -> None:
        self.client.call("wait_jobs", ids=ids, timeout=600)

    def new_jobs(self, count: int, command: str, env: str = "") -> list[int]:
        spec: dict[str, object] = {"Name": "bench", "NumCores": "1", **({"JobEnv": [env]} if env else {})}
        ids = [int(self.client.call("new_job", spec=spec)["Id"]) for _ in range(count)]
        for job_id in ids:
            self.client.call("add_task", job_id=job_id, spec={"CommandLine": command})
        self.client.call("submit_jobs", ids=ids)
        return ids

    # -- the three measures -------------------------------------------------------------------

    def record(self, name: str, ours: float, slurm: float) -> None:
        self.results.update({f"{name}_ours_ms": round(ours, 1), f"{name}_slurm_ms": round(slurm, 1),
                             f"{name}_ratio": round(slurm / ours, 3)})
        print(f"{name}: ours {ours:.0f} ms, Slurm {slurm:.0f} ms, Slurm/ours {slurm / ours:.2f}")

    def submit_until_done(self, count: int) -> None:
        started = time.perf_counter()
        ids = self.submit_in_pwsh(count, COMMAND)
        self.wait_ended(ids)
        ours = time.perf_counter() - started
        states = {j["State"] for j in self.client.call("get_jobs", ids=ids)}
        assert states == {"Finished"}, states
        started = time.perf_counter()
        raw = [self.sbatch(COMMAND) for _ in range(count)]
        poll(lambda: self.all_in(raw, "COMPLETED"), 600, f"{count} sbatch jobs COMPLETED")
        self.record(f"submit_until_finished_{count}", ours * 1000, (time.perf_counter() - started) * 1000)

    def cancel_queued(self, count: int) -> None:
        """The cluster is full (one raw job holds every CPU), so both sides' jobs wait in Slurm's queue."""
        blocker = self.sbatch("sleep 1000", "--exclusive", "--nodes=2")
        poll(lambda: self.all_in([blocker], "RUNNING"), 30, "the blocker running")
        ids = self.new_jobs(count, COMMAND)
        prefix = f"hpc-{head_id(self.state)}-"
        poll(lambda: sum(n.startswith(prefix) for n in self.slurm("squeue", "-h", "-t", "PD", "-o", "%j").split())
             == count, 120, f"{count} holders pending")
        started = time.perf_counter()
        self.pwsh.run(f"Stop-HpcJob -Id {','.join(map(str, ids))} -Confirm:$false *> $null")
        self.wait_ended(ids)
        ours = time.perf_counter() - started
        raw = [self.sbatch(COMMAND) for _ in range(count)]
        poll(lambda: self.all_in(raw, "PENDING"), 60, f"{count} sbatch jobs pending")
        started = time.perf_counter()
        self.slurm("scancel", *map(str, raw))
        poll(lambda: self.all_in(raw, "CANCELLED"), 60, f"{count} sbatch jobs CANCELLED")
        self.record(f"cancel_queued_{count}", ours * 1000, (time.perf_counter() - started) * 1000)
        self.slurm("scancel", str(blocker))

    def force_until_no_process(self, repeats: int) -> None:
        ours, slurm = [], []
        for n in range(repeats):
            ours.append(self._force_ours(n))
            slurm.append(self._scancel_raw(n))
        self.record("force_until_no_process", statistics.median(ours), statistics.median(slurm))

    def _tree(self, n: int, side: str) -> tuple[str, str, Path]:
        mark, ready = f"{side}-{n}-{os.getpid()}", self.state / f"ready-{side}-{n}"
        return mark, TREE.format(ready=ready), ready

    def _gone_ms(self, mark: str, kill: Callable[[], object]) -> float:
        started = time.perf_counter()
        kill()
        while marked_processes(mark):
            pass
        return (time.perf_counter() - started) * 1000

    def _force_ours(self, n: int) -> float:
        mark, tree, ready = self._tree(n, "ours")
        [job_id] = self.new_jobs(1, tree, env=f"{RACE_MARK}={mark}")
        poll(ready.exists, 60, "our tree started")
        gone = self._gone_ms(mark, lambda: self.pwsh.send(f"Stop-HpcJob -Id {job_id} -Force -Confirm:$false *> $null"))
        self.pwsh.output()
        self.wait_ended([job_id])
        return gone

    def _scancel_raw(self, n: int) -> float:
        mark, tree, ready = self._tree(n, "slurm")
        job_id = self.sbatch(tree, mark=mark)
        poll(ready.exists, 60, "the raw tree started")
        return self._gone_ms(mark, lambda: self.slurm("scancel", str(job_id)))

    def run(self, quick: bool) -> None:
        self.submit_until_done(2)  # warm-up, not kept: slurmctld's first job waits ~3 s
        self.results.clear()
        for count in COUNTS:
            self.submit_until_done(count)
            self.cancel_queued(count)
        self.force_until_no_process(3 if quick else 5)


def slurm_bench(quick: bool) -> dict[str, float | None]:
    """Starts the cluster, measures, stops it; nothing when Slurm is not installed (or not root)."""
    if not available():
        print("Slurm engine vs raw Slurm: not measured (needs root and Slurm's packages)")
        return {f"{name}_{part}": None for name in MEASURES for part in ("ours_ms", "slurm_ms", "ratio")}
    with live_slurm_conf() as conf:
        bench = SlurmBench(conf)
        try:
            bench.run(quick)
        finally:
            bench.close()
    return dict(bench.results)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    print(json.dumps(slurm_bench(parser.parse_args().quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
