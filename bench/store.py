"""A head node whose store holds a long history: `.venv/bin/python bench/store.py [--sizes 0,100000,1000000]`.

For each size: a store with that many ended jobs (written straight into SQLite through head/store.py's
own functions: copies of a real job that ran and ended on a real head node, each with its task and its
history rows, ids in order), then a real head node process started on it:

- restart to first answer: from starting `hpc-headnode` until a no-op request is answered;
- RSS of the head node process, after the queries below;
- `get_jobs` as Get-HpcJob sends it: `-State Running` (one running job) and `-Id` of an old ended job;
- a command (`job view`) issued right after `hpc-headnode --stop`, 10 times: it must always succeed.

The empty store (size 0) is the baseline of the same run. Results go to build/bench.json (merged).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.conftest import resident_mb  # noqa: E402

from hpcpack.backends.client import Client  # noqa: E402
from hpcpack.head.store import Store  # noqa: E402
from hpcpack.model.objects import Job  # noqa: E402

CONFIG = "nodes:\n  - {name: NODE1, cores: 8}\n"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
JOB = str(ROOT / ".venv" / "bin" / "job")
CHUNK = 20_000  # jobs per transaction while filling


def _start(state: Path) -> tuple[subprocess.Popen[bytes], float]:
    """A head node process on `state`, and the seconds until it answered its first request."""
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, "-m", "hpcpack.head.daemon", "--state-dir", str(state)],
                               stdin=subprocess.DEVNULL, start_new_session=True)
    while True:
        try:
            client = Client(f"unix:{state / 'headnode.sock'}")
            client.call("ping")
            client.close()
            return process, time.perf_counter() - started
        except Exception:
            if process.poll() is not None:
                raise RuntimeError(f"the head node exited with {process.returncode}") from None
            if time.perf_counter() - started > 120:
                raise
            time.sleep(0.005)


def _stop(state: Path, process: subprocess.Popen[bytes] | None = None) -> int:
    rc = subprocess.run([PYTHON, "-m", "hpcpack.head.daemon", "--state-dir", str(state), "--stop"],
                        capture_output=True).returncode
    if process is not None:
        process.wait(60)
    return rc


def _ms(client: Client, op: str, repeats: int, **args: Any) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.call(op, **args)
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 3)


def _model_jobs(state: Path) -> tuple[int, int]:
    """On a real head node: a job that ran and ended (the model of the history), and one left running."""
    process, _ = _start(state)
    client = Client(f"unix:{state / 'headnode.sock'}")
    try:
        ended = client.call("new_job", spec={"Name": "history"})["Id"]
        client.call("add_task", job_id=ended, spec={"CommandLine": "true"})
        client.call("submit_jobs", ids=[ended])
        client.call("wait_jobs", ids=[ended], timeout=30)
        running = client.call("new_job", spec={"Name": "active", "RunUntilCanceled": True})["Id"]
        client.call("submit_jobs", ids=[running])
        return int(ended), int(running)
    finally:
        client.close()
        _stop(state, process)


def fill(state: Path, model_id: int, count: int) -> None:
    """`count` copies of the ended job `model_id` with new ids, each with its task and two history rows."""
    store = Store(state / "headnode.db")
    try:
        [model] = store.load_jobs(model_id)
        first = store.allocate_job_id()
        row, task_rows = model.to_row(), [t.to_row() for t in model.units()]
        for start in range(first, first + count, CHUNK):
            with store.transaction():
                for job_id in range(start, min(first + count, start + CHUNK)):
                    job = Job.from_row({**row, "id": job_id})
                    store.insert_job(job)
                    for data in task_rows:
                        store.db.execute("INSERT INTO tasks (job_id, task_id, sub_id, state, data) VALUES (?,?,?,?,?)",
                                         (job_id, data["task_id"], data["sub_id"], data["state"],
                                          json.dumps({**data, "job_id": job_id}, separators=(",", ":"))))
                    store.add_history(job_id, job.submit_time or 0.0, job.owner, "create")
                    store.add_history(job_id, job.end_time or 0.0, "scheduler", "end", "Finished")
        with store.transaction():
            store.db.execute("UPDATE meta SET value=? WHERE key='next_job_id'", (str(first + count),))
    finally:
        store.close()


def measure(size: int, repeats: int) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix=f"hpc-bench-store-{size}-"))
    (state / "headnode.yaml").write_text(CONFIG)
    try:
        model, running = _model_jobs(state)
        filled = time.perf_counter()
        fill(state, model, size)
        filled = time.perf_counter() - filled
        restarts, process = [], None
        for _ in range(3):
            process, seconds = _start(state)
            restarts.append(seconds)
            if len(restarts) < 3:
                _stop(state, process)
        assert process is not None
        client = Client(f"unix:{state / 'headnode.sock'}")
        old = max(1, model)  # the oldest job: an ended one read from the store
        results = {
            "restart_s": round(statistics.median(restarts), 3),
            "get_running_ms": _ms(client, "get_jobs", repeats, state="Running"),
            "get_id_ms": _ms(client, "get_jobs", repeats, ids=[old]),
            "get_id_running_ms": _ms(client, "get_jobs", repeats, ids=[running]),
            "rss_mb": round(resident_mb(process.pid), 1),
        }
        client.close()
        env = {**os.environ, "HPCPACK_HOME": str(state), "CCP_SCHEDULER": ""}
        env.pop("CCP_SCHEDULER")
        ok = 0
        for _ in range(10):  # a command right after --stop: the client starts the head node again
            _stop(state)
            ok += subprocess.run([JOB, "view", str(running)], env=env, capture_output=True).returncode == 0
        results["after_stop_ok_of_10"] = ok
        _stop(state)
        print(f"{size:>9,} ended jobs stored (filled in {filled:.1f} s): restart to first answer "
              f"{results['restart_s'] * 1000:.0f} ms; RSS {results['rss_mb']:.0f} MB; get_jobs -State Running "
              f"{results['get_running_ms']:.2f} ms, -Id <ended> {results['get_id_ms']:.2f} ms, -Id <running> "
              f"{results['get_id_running_ms']:.2f} ms; a command right after --stop: {ok} of 10 succeeded",
              flush=True)
        return {f"store_{size}_{k}": v for k, v in results.items()}
    finally:
        shutil.rmtree(state, ignore_errors=True)


def store_bench(sizes: list[int], repeats: int = 21) -> dict[str, float]:
    results: dict[str, float] = {}
    for size in sizes:
        results.update(measure(size, repeats))
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,100000,1000000", help="stored ended jobs, comma-separated")
    args = parser.parse_args()
    results = store_bench([int(s) for s in args.sizes.split(",")])
    out = ROOT / "build" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    merged = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**merged, **results}, indent=2))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
