"""Remote head node cost: the same work over TCP with MUNGE and over the Unix socket, in the same run.

    .venv/bin/python bench/remote.py [--repeats N]      (also part of `make bench`)

One head node listens on both (TCP on loopback, 127.0.0.1, with a munged of its own); warm Stop-HpcJob -Id x
in one pwsh session through each, and a 1,000-id bulk cancel (one request) through each. Reports medians
and the TCP/Unix ratio; needs root and MUNGE (installed with apt-get when missing, as the tests do).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.conftest import start_head_node  # noqa: E402
from tests.test_remote import ensure_munge, make_key, start_munged  # noqa: E402

from hpcpack.backends.client import Client  # noqa: E402

BULK = 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bulk_cancel_ms(names: dict[str, str], repeats: int) -> dict[str, float]:
    """Median time of one cancel_jobs request for BULK Configuring jobs through each name, taking turns
    (the store grows alike for both, and the head node's work after a cancel falls on each alike)."""
    clients = {key: Client(name) for key, name in names.items()}
    samples: dict[str, list[float]] = {key: [] for key in names}
    for turn in range(repeats):
        order = list(clients.items())
        for key, client in order[::-1] if turn % 2 else order:  # each goes first as often
            ids = [client.call("new_job", spec={"Name": "bulk"})["Id"] for _ in range(BULK)]
            started = time.perf_counter()
            client.call("cancel_jobs", ids=ids)
            samples[key].append((time.perf_counter() - started) * 1000)
    for client in clients.values():
        client.close()
    return {f"bulk_{key}_ms": statistics.median(values) for key, values in samples.items()}


def warm_stop_ms(names: dict[str, str], repeats: int, env: dict[str, str]) -> dict[str, float]:
    """Median warm Stop-HpcJob -Id x through each scheduler name in one pwsh session, taking turns (each goes
    first as often, and the store grows alike for both)."""
    table = "; ".join(f"'{key}' = '{name}'" for key, name in names.items())
    script = f"""Import-Module '{ROOT}/module/HPC.psd1'
$names = [ordered]@{{ {table} }}
$sw = [Diagnostics.Stopwatch]::new()
$ids = @{{}}; $times = @{{}}
foreach ($k in @($names.Keys)) {{
  $null = Get-HpcJob -Id (New-HpcJob -Scheduler $names[$k]).Id -Scheduler $names[$k]
  $ids[$k] = foreach ($i in 1..{repeats}) {{ (New-HpcJob -Name b -Scheduler $names[$k]).Id }}
  $times[$k] = [Collections.Generic.List[double]]::new()
}}
foreach ($i in 0..{repeats - 1}) {{
  $order = @($names.Keys); if ($i % 2) {{ [array]::Reverse($order) }}
  foreach ($k in $order) {{
    $sw.Restart(); Stop-HpcJob -Id $ids[$k][$i] -Scheduler $names[$k]; $sw.Stop()
    $times[$k].Add($sw.Elapsed.TotalMilliseconds)
  }}
}}
foreach ($k in @($names.Keys)) {{ $t = $times[$k].ToArray(); [array]::Sort($t); $k + '|' + $t[[int]($t.Count / 2)] }}
"""
    out = subprocess.run([str(ROOT / "bin" / "pwsh"), "-NoProfile", "-NonInteractive", "-Command", script],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return {k: float(v) for k, v in (line.split("|") for line in out.stdout.splitlines() if "|" in line)}


def connect_ms(names: dict[str, str], repeats: int) -> dict[str, float]:
    """Median time to open a connection (TCP: with its MUNGE credential checked) and get one reply."""
    samples: dict[str, list[float]] = {key: [] for key in names}
    for _ in range(repeats):
        for key, name in names.items():
            started = time.perf_counter()
            client = Client(name)
            client.call("ping")
            samples[key].append((time.perf_counter() - started) * 1000)
            client.close()
    return {f"connect_{key}_ms": statistics.median(values) for key, values in samples.items()}


def remote_bench(repeats: int) -> dict[str, float]:
    """{stop_, bulk_, connect_ x unix_ms, tcp_ms, ratio}; prints them."""
    ensure_munge()
    work = Path(tempfile.mkdtemp(prefix="hpc-bench-remote-"))
    work.chmod(0o755)
    head = None
    try:
        start_munged(work / "munge", make_key(work / "key"))
        sock, port = str(work / "munge" / "munge.sock"), free_port()
        head = start_head_node(work / "state", f'listen: ["127.0.0.1:{port}"]\nmunge_socket: {sock}\n')
        names = {"unix": f"unix:{head.socket}", "tcp": f"127.0.0.1:{port}"}
        env = {**os.environ, "HPCPACK_MUNGE_SOCKET": sock, "POWERSHELL_TELEMETRY_OPTOUT": "1", "TERM": "dumb"}
        os.environ["HPCPACK_MUNGE_SOCKET"] = sock
        results = {f"stop_{k}_ms": v for k, v in warm_stop_ms(names, repeats, env).items()}
        results.update(bulk_cancel_ms(names, max(5, repeats // 8)))
        results.update(connect_ms(names, 100))
    finally:
        if head is not None:
            head.stop()
        pid = work / "munge" / "pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)
    results["stop_ratio"] = results["stop_tcp_ms"] / results["stop_unix_ms"]
    results["bulk_ratio"] = results["bulk_tcp_ms"] / results["bulk_unix_ms"]
    results["connect_ratio"] = results["connect_tcp_ms"] / results["connect_unix_ms"]
    print(f"warm Stop-HpcJob -Id x: TCP+MUNGE {results['stop_tcp_ms']:.2f} ms, Unix socket "
          f"{results['stop_unix_ms']:.2f} ms ({results['stop_ratio']:.2f}x); cancel {BULK} ids in one request: "
          f"TCP+MUNGE {results['bulk_tcp_ms']:.1f} ms, Unix socket {results['bulk_unix_ms']:.1f} ms "
          f"({results['bulk_ratio']:.2f}x); a new connection and one reply: TCP+MUNGE "
          f"{results['connect_tcp_ms']:.2f} ms, Unix socket {results['connect_unix_ms']:.2f} ms "
          f"({results['connect_ratio']:.1f}x)")
    return {k: round(v, 4) for k, v in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=60, help="Stop-HpcJob calls per transport")
    remote_bench(parser.parse_args().repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
