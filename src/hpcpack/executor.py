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
import os
import shlex
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT_KEPT = 4096
JOB_MARKER = "HPCPACK_JOB"
TASK_MARKER = "HPCPACK_TASK"
_PR_SET_CHILD_SUBREAPER = 36


@dataclass
class RunSpec:
    command: str
    env: dict[str, str]
    cwd: str
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


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def wrapper_script(spec: RunSpec) -> str:
    """The shell that runs a task: user redirections (opened with the user's rights), then the
    command, then its exit code written to a file so that a restarted head node can still read it."""
    lines = []
    if spec.stdin:
        lines.append(f"exec 0<{shlex.quote(spec.stdin)} || exit 126")
    if spec.stdout:
        lines.append(f"exec 1>>{shlex.quote(spec.stdout)} || exit 126")
    if spec.stderr:
        lines.append(f"exec 2>>{shlex.quote(spec.stderr)} || exit 126")
    elif spec.stdout:
        lines.append("exec 2>&1")
    lines.append(f"/bin/sh -c {shlex.quote(spec.command)}")
    lines.append("rc=$?")
    lines.append(f'echo "$rc" > {shlex.quote(str(spec.exit_path))}')
    lines.append('exit "$rc"')
    return "\n".join(lines)


def start(spec: RunSpec, cgroup: Path | None = None) -> subprocess.Popen[bytes]:
    """Starts the task; raises OSError when it cannot be started at all (bad directory, user)."""
    env = dict(spec.env)
    env[JOB_MARKER] = spec.job_marker
    env[TASK_MARKER] = spec.task_marker
    spec.output_path.parent.mkdir(parents=True, exist_ok=True)
    switch_user = os.geteuid() == 0 and spec.uid != 0
    spec.exit_path.write_bytes(b"")
    if switch_user:
        os.chown(spec.exit_path, spec.uid, spec.gid)
    argv = ["/bin/sh", "-c", wrapper_script(spec)]
    as_user: dict[str, Any] = {}
    if cgroup is not None:
        # Still root, the shell joins the task's cgroup, then becomes the owner and runs the task:
        # nothing of the task can start outside the cgroup.
        drop = ["setpriv", f"--reuid={spec.uid}", f"--regid={spec.gid}", "--init-groups", "--"] if switch_user else []
        argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *drop, *argv]
    elif switch_user:
        as_user = {"user": spec.uid, "group": spec.gid, "extra_groups": spec.groups}
    with open(spec.output_path, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=spec.cwd,
                                env=env, start_new_session=True, close_fds=True, **as_user)


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
        if self.base is not None:
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
    try:
        with open(path, "rb") as f:
            return f.read(OUTPUT_KEPT).decode(errors="replace")
    except OSError:
        return ""


def read_exit_code(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


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


def _stat_fields(pid: int) -> tuple[str, int] | None:
    """(state letter, session id) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[3])


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    session: int
    job: str   # value of HPCPACK_JOB, or ""
    task: str  # value of HPCPACK_TASK, or ""


def snapshot() -> list[ProcessInfo]:
    """Every live (not zombie) process with its session and task markers: one pass over /proc."""
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        stat = _stat_fields(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            environ = b""
        found.append(ProcessInfo(pid, stat[1], _marker(environ, JOB_MARKER), _marker(environ, TASK_MARKER)))
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


def signal_all(pids: Iterable[int], sig: signal.Signals, groups: Iterable[int] = ()) -> list[int]:
    """Sends `sig` to each process group and process; returns the pids that could not be signalled
    for a reason other than already being gone (so a failed signal is never taken for success)."""
    failed = []
    for pgid in groups:
        if pgid > 0:
            try:
                os.killpg(pgid, signal.SIGCONT if sig == signal.SIGTERM else sig)
                if sig == signal.SIGTERM:
                    os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
            except PermissionError:
                failed.append(pgid)
    for pid in pids:
        try:
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
