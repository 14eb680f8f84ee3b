"""Benchmarks: `make bench` (or `.venv/bin/python bench/run.py [--quick]`).

Every figure is reported next to a baseline measured in the same run (a no-op request to the same
head node, an interpreter that imports nothing, a bare pwsh), and next to Slurm's own commands when a
Slurm cluster runs here (bench/clients.py). When Slurm's packages are installed, the tests' two-node
cluster is started for that, and bench/slurm.py compares the Slurm engine with raw Slurm on it. Slurm
figures are never remembered constants: without a cluster they are "not measured". Results also go to
build/bench.json.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench import clients, slurm  # noqa: E402
from bench.remote import remote_bench  # noqa: E402
from bench.store import store_bench  # noqa: E402
from tests.conftest import head_id, start_head_node  # noqa: E402

from hpcpack.backends.client import Client  # noqa: E402
from hpcpack.head import executor  # noqa: E402

CONFIG = "nodes:\n  - {name: NODE1, cores: 64}\n  - {name: NODE2, cores: 64}\n"
BULK_ROUNDS = 3  # bulk cancels of each size, each on jobs of its own: the first, and the median


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


class Bench:
    def __init__(self, quick: bool) -> None:
        self.jobs = 1000 if quick else 10_000
        self.repeats = 10 if quick else 30
        self.state_dir = Path(tempfile.mkdtemp(prefix="hpc-bench-"))
        self.head = start_head_node(self.state_dir, CONFIG)
        self.client = Client(f"unix:{self.head.socket}")
        self.results: dict[str, float] = {}

    def close(self) -> None:
        self.client.close()
        self.head.stop()
        for proc in executor.snapshot():
            if proc.job.startswith(head_id(self.state_dir) + "/"):
                os.kill(proc.pid, 9)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def record(self, name: str, value: float) -> float:
        self.results[name] = round(value, 4)
        return value

    def new_jobs(self, count: int) -> list[int]:
        return [self.client.call("new_job", spec={"Name": "b"})["Id"] for _ in range(count)]

    def run(self) -> None:
        ping = self.record("ping_ms", median_ms([timed(lambda: self.client.call("ping")) for _ in range(500)]))
        print(f"baseline: one no-op request {ping:.3f} ms")
        queued = self.submits(ping)
        self.cancels(ping, queued)
        self.force_cancel()
        self.grace_accuracy()

    def submits(self, ping: float) -> list[int]:
        """Submission alone: a job holding every core keeps the new jobs queued, so none runs meanwhile."""
        blocker = self.client.call("new_job", spec={"Name": "blocker", "NumCores": "128", "RunUntilCanceled": True})
        self.client.call("submit_jobs", ids=[blocker["Id"]])

        def submit_one() -> int:
            job = self.client.call("new_job", spec={"Name": "s"})
            self.client.call("add_task", job_id=job["Id"], spec={"CommandLine": "true"})
            self.client.call("submit_jobs", ids=[job["Id"]])
            return int(job["Id"])
        ids: list[int] = []
        total = timed(lambda: ids.extend(submit_one() for _ in range(self.jobs)))
        each = self.record("submit_ms", total * 1000 / self.jobs)
        print(f"submit {self.jobs} one-task jobs (new, add task, submit: 3 requests): {each:.3f} ms a job "
              f"({each / ping:.1f}x a no-op request)")
        return ids

    def cancels(self, ping: float, queued: list[int]) -> None:
        batched = timed(lambda: self.client.call("cancel_jobs", ids=queued))
        per_job = self.record("cancel_batched_ms", batched * 1000 / len(queued))
        print(f"cancel {len(queued)} queued jobs in one request: {batched:.2f} s, {per_job:.4f} ms a job "
              f"({per_job / ping:.2f}x a no-op request)")
        ids = self.new_jobs(self.jobs)
        self.client.call("submit_jobs", ids=ids)
        each = timed(lambda: [self.client.call("cancel_jobs", ids=[i]) for i in ids])
        per_request = self.record("cancel_each_ms", each * 1000 / self.jobs)
        print(f"cancel {self.jobs} queued jobs one request each: {per_request:.3f} ms a job "
              f"({per_request / ping:.1f}x a no-op request)")
        for job in self.client.call("get_jobs", state="Running"):
            self.client.call("cancel_jobs", ids=[job["Id"]], force=True)

    def _running_job(self, command: str, ready: Path) -> int:
        job = self.client.call("new_job", spec={"Name": "f"})
        self.client.call("add_task", job_id=job["Id"], spec={"CommandLine": command})
        self.client.call("submit_jobs", ids=[job["Id"]])
        deadline = time.monotonic() + 10
        while not ready.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark task did not start")
            time.sleep(0.002)
        return int(job["Id"])

    def _gone(self, job_id: int) -> None:
        marker = f"{head_id(self.state_dir)}/{job_id}"
        while any(p.job == marker for p in executor.snapshot()):
            pass

    def force_cancel(self) -> None:
        samples = []
        for n in range(self.repeats):
            ready = self.state_dir / f"ready-{n}"
            job_id = self._running_job(f"trap '' TERM; sleep 300 & sleep 300 & touch {ready}; wait", ready)
            start = time.perf_counter()
            self.client.call("cancel_jobs", ids=[job_id], force=True)
            self._gone(job_id)
            samples.append(time.perf_counter() - start)
            self.client.call("wait_jobs", ids=[job_id], timeout=10)
        value = self.record("force_to_no_process_ms", median_ms(samples))
        print(f"force cancel of a job that ignores SIGTERM, until no process is left: median {value:.2f} ms "
              f"of {self.repeats} (max {max(samples) * 1000:.2f} ms; goal < 20 ms)")

    def grace_accuracy(self) -> None:
        for grace in (1, 2):
            self.client.call("set_property", values={"TaskCancelGracePeriod": grace})
            delays = []
            for n in range(max(3, self.repeats // 5)):
                ready, term = self.state_dir / f"g{grace}-{n}", self.state_dir / f"t{grace}-{n}"
                command = f"trap 'date +%s.%N > {term}' TERM; touch {ready}; while true; do sleep 0.01; done"
                job_id = self._running_job(command, ready)
                self.client.call("cancel_jobs", ids=[job_id])
                self._gone(job_id)
                killed = time.time()
                delays.append(killed - float(term.read_text()))
            value = self.record(f"sigterm_to_sigkill_s_grace_{grace}", statistics.median(delays))
            print(f"grace period {grace} s: SIGTERM to gone {value:.3f} s (median; "
                  f"{(value - grace) * 1000:+.0f} ms off)")


def pwsh_bench(repeats: int) -> dict[str, float]:
    """Warm Stop-HpcJob and Get-HpcJob round trips in one pwsh (a fresh pwsh's cost: clients_bench)."""
    state = Path(tempfile.mkdtemp(prefix="hpc-bench-ps-"))
    env = clients.environment(state)
    script = f"""
Import-Module '{ROOT}/module/HPC.psd1'
$sw = [Diagnostics.Stopwatch]::new()
$job = New-HpcJob -Name bench
function Median([scriptblock] $block, [int] $n) {{
  $times = foreach ($i in 1..$n) {{ $sw.Restart(); & $block; $sw.Stop(); $sw.Elapsed.TotalMilliseconds }}
  [array]::Sort($times); $times[[int]($times.Count / 2)]
}}
'whatif_ms|' + (Median {{ Stop-HpcJob -Id $job.Id -WhatIf *> $null }} {repeats * 3})
$ids = foreach ($i in 1..{repeats * 3}) {{ (New-HpcJob -Name b).Id }}
$queue = [Collections.Generic.Queue[int]]::new([int[]]$ids)
'stop_ms|' + (Median {{ Stop-HpcJob -Id $queue.Dequeue() }} {repeats * 3})
'get_ms|' + (Median {{ $null = Get-HpcJob -Id $job.Id }} {repeats * 3})
"""
    started = time.perf_counter()
    out = subprocess.run([str(ROOT / "bin" / "pwsh"), "-NoProfile", "-NonInteractive", "-Command", script],
                         capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - started
    subprocess.run([sys.executable, "-m", "hpcpack.head.daemon", "--state-dir", str(state), "--stop"], env=env,
                   capture_output=True)
    shutil.rmtree(state, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    results = {k: float(v) for k, v in (line.split("|") for line in out.stdout.splitlines() if "|" in line)}
    print(f"warm Stop-HpcJob -WhatIf: {results['whatif_ms']:.2f} ms; warm Stop-HpcJob (a Configuring job, "
          f"waits for Canceled): {results['stop_ms']:.2f} ms; warm Get-HpcJob -Id: {results['get_ms']:.2f} ms "
          f"(median; the whole script took {wall:.1f} s)")
    return results


def _ratio(ours: float, baseline: float | None) -> str:
    return "not measured" if baseline is None else f"{baseline:.1f} ms, ours/baseline {ours / baseline:.2f}x"


@contextlib.contextmanager
def _clients_head(prefix: str) -> Iterator[tuple[Client, dict[str, str]]]:
    """A head node of its own for commands run as processes: a client, and the environment that reaches it."""
    state = Path(tempfile.mkdtemp(prefix=prefix))
    head = start_head_node(state, CONFIG)
    client = Client(f"unix:{head.socket}")
    try:
        yield client, {**clients.environment(state), "CCP_SCHEDULER": f"unix:{head.socket}"}
    finally:
        client.close()
        head.stop()
        shutil.rmtree(state, ignore_errors=True)


def clients_bench(quick: bool) -> dict[str, float | None]:
    """Commands, a fresh pwsh, bulk cancels and listings as users run them (bench/clients.py)."""
    with _clients_head("hpc-bench-cl-") as (client, env):
        return _clients_measures(client, env, quick)


def _queued(client: Client, count: int, name: str = "q") -> list[int]:
    """`count` one-task jobs left Queued behind a job that holds every core."""
    if not client.call("get_jobs", state="Running"):
        blocker = client.call("new_job", spec={"Name": "blocker", "NumCores": "128", "RunUntilCanceled": True})
        client.call("submit_jobs", ids=[blocker["Id"]])
    ids = [int(client.call("new_job", spec={"Name": name})["Id"]) for _ in range(count)]
    for job_id in ids:
        client.call("add_task", job_id=job_id, spec={"CommandLine": "true"})
    client.call("submit_jobs", ids=ids)
    return ids


def _clients_measures(client: Client, env: dict[str, str], quick: bool) -> dict[str, float | None]:
    repeats = 7 if quick else 21
    results: dict[str, float | None] = {}
    view = _queued(client, 1)[0]
    results.update(clients.job_command(env, view, _queued(client, 2 * repeats), repeats))
    results.update(clients.pwsh_start(env, view, max(3, repeats // 3)))
    for count in (500, 5000):
        rounds = [(_queued(client, count), f"piped{count}r{n}") for n in range(BULK_ROUNDS)]
        stopped = [i for ids, name in rounds for i in ids + _queued(client, count, name)]
        results.update(clients.bulk_cancel(env, rounds))
        left = [j["Id"] for page in range(0, len(stopped), 10_000)
                for j in client.call("get_jobs", ids=stopped[page:page + 10_000]) if j["State"] != "Canceled"]
        if left:
            raise RuntimeError(f"Stop-HpcJob returned before jobs {left[:10]} were Canceled")
    _queued(client, 5000)
    results.update(clients.listing(env, max(3, repeats // 3)))
    slurm = results.get
    print(job_client_report(results))
    print(f"fresh pwsh, Import-Module HPC and Get-HpcJob -Id: {results['pwsh_hpc_one_cmdlet_ms']:.0f} ms; bare "
          f"pwsh -Command 1: {results['pwsh_bare_ms']:.0f} ms "
          f"({(results['pwsh_hpc_one_cmdlet_ms'] or 0) / (results['pwsh_bare_ms'] or 1):.2f}x; goal 1.3x)")
    for count in (500, 5000):
        scancel = slurm(f"slurm_scancel_{count}_ms")
        goal = f" (goal: {scancel / 10:.0f} ms, a tenth)" if scancel else ""
        print(f"Stop-HpcJob of {count} queued jobs (warm pwsh, median of {BULK_ROUNDS}): -Id <ids> -Confirm:$false "
              f"{results[f'stop_hpcjob_{count}_ms']:.0f} ms "
              f"({results[f'stop_hpcjob_{count}_us_per_job']:.0f} µs a job; the session's first: "
              f"{results[f'stop_hpcjob_{count}_first_ms']:.0f} ms), "
              f"Get-HpcJob | Stop-HpcJob {results[f'stop_hpcjob_piped_{count}_ms']:.0f} ms "
              f"({results[f'stop_hpcjob_piped_{count}_us_per_job']:.0f} µs a job); Slurm's one scancel with "
              f"{count} ids: {_ratio(results[f'stop_hpcjob_{count}_ms'] or 0, scancel)}{goal}")
    print(f"5,000 queued jobs: job list {results['job_list_ms']:.0f} ms, warm Get-HpcJob -State Queued "
          f"{results['get_hpcjob_queued_ms']:.0f} ms; squeue: "
          f"{_ratio(results['get_hpcjob_queued_ms'] or 0, slurm('slurm_squeue_ms'))}")
    for name in ("slurm_scontrol_show_job_ms", "slurm_scancel_ms", "slurm_sbatch_ms", "slurm_scancel_500_ms",
                 "slurm_scancel_5000_ms", "slurm_scancel_500_us_per_job", "slurm_scancel_5000_us_per_job",
                 "slurm_squeue_ms"):
        results.setdefault(name, None)  # recorded as not measured rather than left out
    return results


# (command, the compiled job's figure, Slurm's); job-py's is job_py_<command>_ms.
JOB_CLIENT_FIGURES = (("job view", "job_view_ms", "slurm_scontrol_show_job_ms"),
                      ("job cancel", "job_cancel_ms", "slurm_scancel_ms"),
                      ("job submit /numcores:1 true", "job_submit_ms", "slurm_sbatch_ms"),
                      ("job list (5,000 queued)", "job_list_ms", "slurm_squeue_ms"))


def job_client_report(results: dict[str, float | None]) -> str:
    """The compiled `job` next to job-py, the Python floor and Slurm (issue 12's goal: within 2x of Slurm)."""
    lines = [f"job commands as processes (median ms); python -I -S -c pass: {results['python_floor_ms']:.1f}; "
             f"/bin/true: {results['process_floor_ms']:.1f}"]
    for words, key, slurm_key in JOB_CLIENT_FIGURES:
        ours, python = results[key] or 0, results[key.replace("job_", "job_py_", 1)] or 0
        lines.append(f"  {words}: compiled {ours:.1f}, job-py {python:.1f} ({python / max(ours, 0.01):.1f}x "
                     f"slower); Slurm {_ratio(ours, results.get(slurm_key))}")
    return "\n".join(lines)


def job_client_bench(repeats: int) -> dict[str, float | None]:
    """Only the job commands (bench/run.py --job): view, cancel, submit and list of 5,000 queued jobs."""
    with _clients_head("hpc-bench-job-") as (client, env):
        results: dict[str, float | None] = {}
        results.update(clients.job_command(env, _queued(client, 1)[0], _queued(client, 2 * repeats), repeats))
        _queued(client, 5000)
        results.update(clients.job_list(env, repeats))
        print(job_client_report(results))
        return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 jobs and fewer repeats")
    parser.add_argument("--job", action="store_true", help="only the job commands as processes (issue 12)")
    parser.add_argument("--clients", action="store_true",
                        help="only what users feel (bench/clients.py), next to Slurm's commands when it is installed")
    args = parser.parse_args()
    if args.job:
        job_client_bench(7 if args.quick else 21)
        return 0
    if args.clients:
        with contextlib.ExitStack() as cluster:
            if slurm.available():
                cluster.enter_context(slurm.live_slurm_conf())
            clients_bench(args.quick)
        return 0
    bench = Bench(args.quick)
    try:
        bench.run()
    finally:
        bench.close()
    results: dict[str, float | None] = {**bench.results, **pwsh_bench(5 if args.quick else 15)}
    with contextlib.ExitStack() as cluster:
        if slurm.available():  # one Slurm cluster for Slurm's baselines and the Slurm engine's section
            cluster.enter_context(slurm.live_slurm_conf())
        results.update(clients_bench(args.quick))
        results.update({f"slurm_engine_{k}": v for k, v in slurm.slurm_bench(args.quick).items()})
    results.update({f"remote_{k}": v for k, v in remote_bench(20 if args.quick else 60).items()})
    # A long history: 100,000 and 1,000,000 ended jobs, beside an empty store (bench/store.py).
    results.update(store_bench([0, 100_000] if args.quick else [0, 100_000, 1_000_000]))
    out = ROOT / "build" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
