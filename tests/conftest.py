"""Shared fixtures: a real head node per test (own state folder, own socket), real pwsh runs."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hpcpack.backends.client import Client
from hpcpack.head import executor

from .slurm_cluster import SlurmCluster, slurm_cluster_fixture

ROOT = Path(__file__).resolve().parent.parent
PWSH = ROOT / "bin" / "pwsh"
MODULE = ROOT / "module" / "HPC.psd1"
SYSTEM_PYTHON = "/usr/bin/python3"
TEST_USERS = ("hpcalice", "hpcbob", "hpcadmin")
ME = pwd.getpwuid(os.geteuid()).pw_name  # the owner of what the tests create (root in CI)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs as an administrator, other Unix "
                                                         "users or the machine-wide install (run 'sudo make test')")


def resident_mb(pid: int) -> float:
    """The process's resident memory (VmRSS), in MB; 0 for one that has none (ended)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Polls until `predicate()` is truthy; fails the test at the deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


@dataclass
class HeadNodeProcess:
    state_dir: Path
    process: subprocess.Popen[bytes]
    user: str | None = None  # the Unix user it runs as, when not root

    @property
    def socket(self) -> Path:
        return self.state_dir / "headnode.sock"

    def client(self) -> Client:
        return Client(f"unix:{self.socket}")

    def env(self) -> dict[str, str]:
        return {**os.environ, "HPCPACK_HOME": str(self.state_dir), "CCP_SCHEDULER": f"unix:{self.socket}"}

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)



def in_process_head_node(state_dir: Path, nodes: list[Any]) -> Iterator[Any]:
    """The head node's logic in this process (real store, real processes) on these config nodes, with
    a 1 s grace period; afterwards every job still running is force-canceled and waited for."""
    from hpcpack.config import HeadNodeConfig
    from hpcpack.head.headnode import HeadNode
    from hpcpack.identity import Caller
    from hpcpack.model.states import JobState
    from hpcpack.model.stop import StopOptions
    root = Caller(uid=0, gid=0, name="root", admin=True)
    node = HeadNode(state_dir, HeadNodeConfig(nodes=nodes))
    node.set_property(root, "TaskCancelGracePeriod", 1)
    try:
        yield node
    finally:
        for job in node.in_state(JobState.Running, JobState.Canceling):
            node.cancel_job(root, job.id, StopOptions(force=True))
        wait_until(lambda: (node.step(), not node.in_state(JobState.Running, JobState.Canceling))[1], 10)
        node.close()

def start_head_node(state_dir: Path, config: str = "", user: str | None = None) -> HeadNodeProcess:
    """A head node process for `state_dir`: root's, or, with `user`, one running as that Unix user
    (the system Python with the project's dependencies on PYTHONPATH: root's environment may be
    unreachable for other users)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    if config:
        (state_dir / "headnode.yaml").write_text(config)
    python, env, drop = sys.executable, None, {}
    if user is not None:
        account = pwd.getpwnam(user)
        for path in (state_dir, *state_dir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        python, env = SYSTEM_PYTHON, {"PATH": "/usr/bin:/bin", "HOME": account.pw_dir,
                                      "PYTHONPATH": f"{user_site()}:{ROOT / 'src'}"}
        drop = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    process = subprocess.Popen([python, "-m", "hpcpack.head.daemon", "--state-dir", str(state_dir)], env=env,
                               stdin=subprocess.DEVNULL, start_new_session=True, **drop)  # type: ignore[call-overload]
    node = HeadNodeProcess(state_dir, process, user)
    wait_until(lambda: _answers(node) or process.poll() is not None, 15)
    assert process.poll() is None, f"head node exited with {process.returncode}"
    return node


def user_site() -> Path:
    """The head node's dependencies, copied once from this environment to where every user can read them."""
    import importlib.util
    site = Path(tempfile.gettempdir()) / "hpc-test-site"
    if site.exists() and site.lstat().st_uid != 0:  # not ours: never import what someone else put there
        shutil.rmtree(site)
    names = ("pydantic", "pydantic_core", "yaml", "annotated_types", "typing_extensions", "typing_inspection",
             "defusedxml")
    done = site / ".done"
    if not done.exists() or done.read_text() != ",".join(names):  # a copy made for other dependencies: again
        site.mkdir(exist_ok=True)
        for name in names:
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.origin, name
            origin = Path(spec.origin)
            if origin.name == "__init__.py":
                shutil.copytree(origin.parent, site / name, dirs_exist_ok=True)
            else:
                shutil.copy2(origin, site / origin.name)
        for path in [site, *site.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        done.write_text(",".join(names))
    return site


def _answers(node: HeadNodeProcess) -> bool:
    import socket as sockets
    probe = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    try:
        probe.connect(str(node.socket))
        return True
    except OSError:
        return False
    finally:
        probe.close()


DEFAULT_CONFIG = """
nodes:
  - {name: NODE1, cores: 4}
  - {name: NODE2, cores: 4}
socket_mode: "0666"
administrators: [hpcadmin]
"""


def folder_in_tmp(prefix: str, mode: int) -> Iterator[Path]:
    """A fresh folder under /tmp with `mode`, removed afterwards. Not under pytest's tmp_path, which is
    root's alone: other users (the tests' users, a user's head node, its tasks) must reach it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(mode)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    yield from folder_in_tmp("hpc-test-", 0o755)  # users reach the socket inside


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    yield from folder_in_tmp("hpc-shared-", 0o777)  # tasks of any user write here


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 3 MB tmpfs: the state folder of a head node whose disk fills up (mounting needs root)."""
    mount = Path(tempfile.mkdtemp(prefix="hpc-full-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mount)], check=True)
    yield mount / "state"
    subprocess.run(["umount", "-l", str(mount)], check=False)
    mount.rmdir()


def fill_disk(path: Path) -> None:
    """Writes `path` until its file system is full."""
    with open(path, "wb", buffering=0) as f:  # unbuffered: closing it has nothing left to write
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


@pytest.fixture
def head(state_dir: Path) -> Iterator[HeadNodeProcess]:
    yield from running_head_node(state_dir)


def running_head_node(state_dir: Path, user: str | None = None) -> Iterator[HeadNodeProcess]:
    """A test's head node (as root, or as `user`), stopped afterwards with everything it started."""
    node = start_head_node(state_dir, DEFAULT_CONFIG, user)
    client = node.client()
    client.call("set_property", values={"TaskCancelGracePeriod": 2, "NodeReleaseTaskTimeout": 5})
    client.close()
    try:
        yield node
    finally:
        node.stop()
        if (state_dir / "headnode.db").exists():
            _kill_leftovers(state_dir)


def head_id(state_dir: Path) -> str:
    with sqlite3.connect(state_dir / "headnode.db") as db:
        return str(db.execute("SELECT value FROM cluster_properties WHERE name='HeadNodeId'").fetchone()[0])


def job_processes(state_dir: Path, job_id: int | None = None) -> list[int]:
    """Live processes of a job (or of any job) of this head node, found by their markers."""
    prefix = f"{head_id(state_dir)}/" + (f"{job_id}" if job_id is not None else "")
    return [p.pid for p in executor.snapshot()
            if p.job == prefix.rstrip("/") or (job_id is None and p.job.startswith(prefix))]


def pids_running(*argv: bytes) -> list[int]:
    """Live (not zombie) processes whose command line starts with `argv`, sorted."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
                state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if cmdline[:len(argv)] == list(argv) and state != b"Z":
                found.append(int(entry.name))
    return sorted(found)


def _kill_leftovers(state_dir: Path) -> None:
    """Nothing a test started may outlive it, even when the test failed (the test has already said so)."""
    for pid in job_processes(state_dir):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def client(head: HeadNodeProcess) -> Iterator[Client]:
    c = head.client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def users() -> dict[str, pwd.struct_passwd]:
    """Real Unix users for permission tests (the tests run as root, as CI does)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates Unix users and runs their tasks under them (run 'sudo make test')")
    for name in TEST_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    return {name: pwd.getpwnam(name) for name in TEST_USERS}


def as_user(user: str, head: HeadNodeProcess, code: str) -> subprocess.CompletedProcess[str]:
    """Runs Python client code as another Unix user (the system Python: the client needs only stdlib)."""
    return subprocess.run(user_command(user, head, code), capture_output=True, text=True, timeout=60, cwd="/tmp")


def user_command(user: str, head: HeadNodeProcess, code: str) -> list[str]:
    """The command that runs Python client code as `user`, with `c`, a client of `head`."""
    script = f"import sys, json; sys.path.insert(0, {str(ROOT / 'src')!r})\n" \
             f"from hpcpack.backends.client import Client\nfrom hpcpack.errors import HpcError\n" \
             f"c = Client('unix:{head.socket}')\n" + code
    return ["runuser", "-u", user, "--", SYSTEM_PYTHON, "-c", script]


@dataclass
class PwshResult:
    returncode: int
    stdout: str
    stderr: str


def run_pwsh(script: str, env: dict[str, str] | None = None, stdin: str = "", args: tuple[str, ...] = (),
             import_module: bool = True, timeout: float = 120) -> PwshResult:
    """Runs a script in a fresh real pwsh (bin/pwsh) with the HPC module imported."""
    prelude = f"Import-Module '{MODULE}'\n" if import_module else ""
    full = prelude + script
    result = subprocess.run([str(PWSH), "-NoProfile", *args, "-Command", full], input=stdin, capture_output=True,
                            text=True, env={**(env or os.environ), "POWERSHELL_TELEMETRY_OPTOUT": "1"},
                            timeout=timeout)
    return PwshResult(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def pwsh(head: HeadNodeProcess) -> Callable[..., PwshResult]:
    def run(script: str, **kwargs: Any) -> PwshResult:
        return run_pwsh(script, env=head.env(), **kwargs)
    return run


# One real Slurm cluster for the whole session, for every module that needs one (started on first use).
slurm = slurm_cluster_fixture()


def slurm_engine_config(cluster: SlurmCluster) -> str:
    """headnode.yaml of a head node whose execution engine is `cluster`."""
    return (f"engine: slurm\nslurm_conf: {cluster.slurm_conf}\nsocket_mode: \"0666\"\n"
            "administrators: [hpcadmin]\n")


@contextlib.contextmanager
def interrupting_proxy(target: Path, path: Path, trigger: bytes, drop: bool = False) -> Iterator[Path]:
    """A Unix socket at `path` that passes everything on between its clients and the head node at `target`,
    until a request that holds `trigger`: that one is held for ever (a head node that stopped answering),
    or, with `drop`, passed on and its reply not (a head node killed once it has applied it): the proxy then
    hangs up and takes no connection any more."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    stop, triggered = threading.Event(), threading.Event()
    opened: list[socket.socket] = []

    def close() -> None:
        path.unlink(missing_ok=True)  # no connection any more
        for sock in (listener, *opened):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # (a close alone ends no wait in accept or recv on it)
            sock.close()

    def pump(source: socket.socket, sink: socket.socket, requests: bool) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set() and (data := source.recv(1 << 20)):
                if requests and trigger in data:
                    triggered.set()
                    if not drop:
                        stop.wait()
                        return
                elif not requests and triggered.is_set():  # the reply to the dropped request
                    close()
                    return
                sink.sendall(data)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                downstream, _ = listener.accept()
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(str(target))
                opened.extend((downstream, upstream))
                threading.Thread(target=pump, args=(downstream, upstream, True), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, downstream, False), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield path
    finally:
        stop.set()
        close()
