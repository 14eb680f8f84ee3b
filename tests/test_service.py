"""The head node as a service: it stops cleanly with clients connected. A real head node process, real
clients on its socket, its real log."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from hpcpack.backends.client import Client
from hpcpack.errors import HpcError

from .conftest import start_head_node


def test_stopping_with_clients_connected_closes_them_without_a_traceback(state_dir: Path) -> None:
    head = start_head_node(state_dir)
    try:
        idle = head.client()
        job_id = idle.call("new_job", spec={})["Id"]
        waiting = head.client()
        answer: list[object] = []
        thread = threading.Thread(target=lambda: answer.append(_wait(waiting, job_id)), daemon=True)
        thread.start()
        half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a frame begun, never finished
        half.connect(str(head.socket))
        half.sendall(b"\0\0")
        time.sleep(0.5)  # the wait's request on its way (were it not, its connection is one more idle one)
        stop = subprocess.run([sys.executable, "-m", "hpcpack.head.daemon", "--state-dir", str(state_dir), "--stop"],
                              capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert head.process.wait(15) == 0
        assert half.recv(16) == b""  # each client sees its connection close
        thread.join(15)
        assert answer and isinstance(answer[0], HpcError)
        half.close()
        idle.close()
    finally:
        head.stop()
    log = (state_dir / "headnode.log").read_text()
    after_start = log.split(" serving ", 1)[1].splitlines()[1:]
    assert "Traceback" not in log and "CancelledError" not in log and " ERROR " not in log, log
    assert len(after_start) <= 4, log  # at most one line per connection (there were four, --stop's own included)


def _wait(client: Client, job_id: int) -> object:
    try:
        return client.call("wait_jobs", ids=[job_id], timeout=60)
    except HpcError as e:
        return e
