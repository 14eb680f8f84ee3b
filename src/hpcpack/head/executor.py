"""Task processes: start one as its owner in its own session, signal all of it, prove it is gone.

Every process of a task carries two markers in its environment (HPCPACK_JOB, HPCPACK_TASK) and
starts in a session of its own. A task's processes are those in its session or carrying its
marker, so children that change process group, or even start a new session, are still found.
The head node is a child subreaper, so orphans are re-parented to it and reaped here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import marshal
import os
import signal
import stat
import struct
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT_KEPT = 4096
ENVIRON_READ = 4096  # bytes of a process's environment read when looking for task markers
JOB_MARKER = "HPCPACK_JOB"
TASK_MARKER = "HPCPACK_TASK"
_PR_SET_CHILD_SUBREAPER = 36


@dataclass
class RunSpec:
    command: str
    env: dict[str, str]
    cwd: str
    cwd_required: bool
    uid: int
    gid: int
    job_marker: str
    task_marker: str
    output_path: Path
    exit_path: Path
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    groups: list[int] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)  # what runs instead of /bin/sh -c command (a Slurm step)


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


LAUNCHER = Path(__file__).with_name("launch.py")
_STOPS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class Launchers:
    """Starts tasks through launch.py, keeping one launcher started and waiting: Python's start-up is
    most of a task's start time, so the next task need not wait for it."""

    def __init__(self) -> None:
        self._spare: subprocess.Popen[bytes] | None = None

    def start(self, spec: RunSpec, cgroup: Path | None = None) -> subprocess.Popen[bytes]:
        """Hands the task to the waiting launcher (its pid is the task's); raises OSError when that fails."""
        spec.output_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        spec_path = spec.exit_path.with_suffix(".spec")
        _write_private(spec_path, marshal.dumps(_instructions(spec, cgroup)))
        launcher, self._spare = self._spare, None
        for attempt in (1, 2):
            if launcher is None or launcher.poll() is not None:
                launcher = _spawn_launcher()
            try:
                assert launcher.stdin is not None
                launcher.stdin.write(f"{spec_path}\n".encode())
                launcher.stdin.close()
                break
            except OSError:
                if attempt == 2:
                    raise
                launcher = None
        # This task runs now: a spare that cannot be started must not fail it (the next task's start
        # tries again and says why).
        with contextlib.suppress(OSError, StartFailure):
            self.warm()
        assert launcher is not None
        return launcher

    def warm(self) -> None:
        """Starts the next launcher now, so that it is ready when a task needs it."""
        if self._spare is None or self._spare.poll() is not None:
            self._spare = _spawn_launcher()

    def pids(self) -> set[int]:
        return {self._spare.pid} if self._spare is not None else set()

    def close(self) -> None:
        if self._spare is not None:
            assert self._spare.stdin is not None
            self._spare.stdin.close()  # it reads nothing and exits
            with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
                self._spare.wait(5)
            self._spare = None


def _instructions(spec: RunSpec, cgroup: Path | None) -> dict[str, Any]:
    markers = {JOB_MARKER: spec.job_marker, TASK_MARKER: spec.task_marker}
    env = {**markers, **{k: v for k, v in spec.env.items() if k not in markers}}  # markers first: see snapshot
    return {"uid": spec.uid, "gid": spec.gid, "groups": spec.groups, "cgroup": str(cgroup or ""),
            "exit_path": str(spec.exit_path), "output_path": str(spec.output_path), "cwd": spec.cwd,
            "cwd_required": spec.cwd_required, "command": spec.command, "argv": spec.argv, "env": env,
            "stdin": spec.stdin, "stdout": spec.stdout, "stderr": spec.stderr}


class StartFailure(Exception):
    """A task cannot be started; the message says why, for the task's error message."""


def _spawn_launcher() -> subprocess.Popen[bytes]:
    """launch.py: root-owned code by absolute path, an empty environment, its own session; stop signals
    stay blocked until it has its handlers (it unblocks them), so an early cancel cannot kill it."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        return subprocess.Popen([sys.executable, "-I", "-S", str(LAUNCHER)], env={}, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                                start_new_session=True, close_fds=True)
    except FileNotFoundError:
        raise StartFailure(f"the head node's own files are gone ({sys.executable} or {LAUNCHER} no longer "
                           "exists: it was moved or uninstalled while it ran). Stop it ('hpc-headnode --stop', "
                           f"or kill {os.getpid()}); the next command starts the current one, and running jobs "
                           "carry on.") from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Cgroups:
    """A cgroup (v2) for each task, where the machine lets the head node make them (as root): a task's
    processes cannot leave it, whatever they do to their session or environment, and cgroup.kill
    ends them all at once. Where there is none, markers and sessions find the processes."""

    def __init__(self, head_id: str) -> None:
        self.base = _cgroup_base(f"hpcpack-{head_id}")

    def path(self, token: str) -> Path | None:
        return None if self.base is None or not token else self.base / token.split("/", 1)[-1].replace("/", "-")

    def create(self, token: str) -> Path | None:
        path = self.path(token)
        if path is not None:
            path.mkdir(exist_ok=True)
        return path

    def pids(self, token: str) -> list[int]:
        path = self.path(token)
        try:
            return [int(line) for line in (path / "cgroup.procs").read_text().split()] if path else []
        except OSError:
            return []

    def kill(self, token: str) -> None:
        path = self.path(token)
        if path is not None and (path / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (path / "cgroup.kill").write_text("1")

    def remove(self, token: str) -> None:
        path = self.path(token)
        if path is not None:
            with contextlib.suppress(OSError):  # busy while a process is left; removed on a later try
                path.rmdir()

    def close(self) -> None:
        """Removes the head node's cgroup folder when the head node stops with no task inside it."""
        if self.base is not None and self.base.is_dir():
            for child in self.base.iterdir():
                if child.is_dir() and not (child / "cgroup.procs").read_text().strip():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                self.base.rmdir()


def _cgroup_base(name: str) -> Path | None:
    if os.geteuid() != 0:
        return None
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if " - cgroup2 " in line and len(fields) > 4:
            base = Path(fields[4]) / name
            try:
                base.mkdir(exist_ok=True)
            except OSError:
                return None
            return base if os.access(base / "cgroup.procs", os.W_OK) else None
    return None


def read_output(path: Path) -> str:
    """The first OUTPUT_KEPT bytes of a task's output; never blocks (O_NONBLOCK: a lease or a FIFO
    there is someone's trick, and the head node does not wait for it)."""
    return _read_private(path, OUTPUT_KEPT).decode(errors="replace")


def _read_private(path: Path, size: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, size) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


_FLOCK = struct.Struct("@hhqqi4x")  # struct flock (Linux, 64-bit): type, whence, start, length, pid


def lock_holder(path: Path) -> int:
    """The pid of the process that holds the lock on this exit file, 0 when none does: its task's wrapper,
    which takes it before anything else and keeps it until it ends (launch.py, _hold). Only a wrapper can
    open the file (in the head node's private folder), so the pid is proof of which process it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        reply = fcntl.fcntl(fd, fcntl.F_GETLK, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
    except OSError:
        return 0  # a file system without locks
    finally:
        os.close(fd)
    kind, _, _, _, pid = _FLOCK.unpack(reply)
    return pid if kind != fcntl.F_UNLCK and pid > 0 else 0


def is_launcher(pid: int, uid: int) -> bool:
    """Whether `pid` runs launch.py as started by _spawn_launcher, as user `uid` (a wrapper after its drop)."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != uid:
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:4] == [os.fsencode(a) for a in (sys.executable, "-I", "-S", str(LAUNCHER))]
    except OSError:
        return False


def read_result(path: Path) -> tuple[int | None, str]:
    """What the launcher wrote: (exit code, "") or (None, why the task could not start);
    (None, "") when it wrote nothing (it was killed, or never ran)."""
    text = _read_private(path, 65536).decode(errors="replace").strip()
    if text.startswith("error: "):
        return None, text.removeprefix("error: ")
    return (int(text), "") if text.lstrip("-").isdigit() else (None, "")


def exit_code(status: int) -> int:
    """waitpid status -> exit code; death by signal N gives -N."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def reap() -> list[tuple[int, int]]:
    """Collects every exited child (tasks and re-parented orphans) without blocking."""
    exited = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        exited.append((pid, status))
    return exited


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


_BOOT = boot_time()


@dataclass(frozen=True)
class ProcessInfo:
    """One live process: enough to prove whose it is (uid, start time, parent) before signalling it."""

    pid: int
    ppid: int
    session: int
    uid: int      # real uid
    started: float  # epoch seconds (to the boot time's whole second)
    job: str   # value of HPCPACK_JOB, or ""
    task: str  # value of HPCPACK_TASK, or ""


def _process(pid: int) -> ProcessInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        return None
    rest = stat[stat.rfind(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    at = status.find(b"\nUid:")
    uid = int(status[at + 5:].split()[0]) if at >= 0 else -1
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read(ENVIRON_READ)  # the markers come first; a huge environment costs nothing
    except OSError:
        environ = b""
    return ProcessInfo(pid, int(rest[1]), int(rest[3]), uid, _BOOT + int(rest[19]) / _CLOCK_TICKS,
                       _marker(environ, JOB_MARKER), _marker(environ, TASK_MARKER))


def snapshot() -> list[ProcessInfo]:
    """Every live (not zombie) process: one pass over /proc."""
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != me:
            info = _process(int(entry.name))
            if info is not None:
                found.append(info)
    return found


def descendants(processes: list[ProcessInfo], roots: Iterable[int]) -> set[int]:
    """The pids below `roots` in the process tree (the roots themselves not included)."""
    children: dict[int, list[int]] = {}
    for p in processes:
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    frontier = list(roots)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _marker(environ: bytes, name: str) -> str:
    key = b"\0" + name.encode() + b"="
    data = b"\0" + environ
    at = data.find(key)
    if at < 0:
        return ""
    start = at + len(key)
    end = data.find(b"\0", start)
    return data[start:end if end >= 0 else len(data)].decode(errors="replace")


def signal_all(pids: Iterable[int], sig: signal.Signals) -> list[int]:
    """Sends `sig` to each process (never to a process group or session: those ids can be reused by
    anyone); returns the pids that could not be signalled for a reason other than being gone."""
    failed = []
    for pid in pids:
        try:
            if sig == signal.SIGTERM:
                os.kill(pid, signal.SIGCONT)  # a stopped process must be able to act on TERM
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except OSError as e:
            if e.errno != errno.ESRCH:
                failed.append(pid)
    return failed


def job_marker(head_id: str, job_id: int) -> str:
    return f"{head_id}/{job_id}"


def task_marker(head_id: str, job_id: int, task_key: str, attempt: int) -> str:
    return f"{head_id}/{job_id}/{task_key}/{attempt}"


def signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
