"""Task processes: start one as its owner in its own session, signal all of it, prove it is gone.

Every process of a task carries two markers in its environment (HPCPACK_JOB, HPCPACK_TASK) and
starts in a session of its own. A task's processes are those in its session or carrying its
marker, so children that change process group, or even start a new session, are still found.
The head node is a child subreaper, so orphans are re-parented to it and reaped here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shlex
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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


def start(spec: RunSpec) -> subprocess.Popen[bytes]:
    """Starts the task; raises OSError when it cannot be started at all (bad directory, user)."""
    env = dict(spec.env)
    env[JOB_MARKER] = spec.job_marker
    env[TASK_MARKER] = spec.task_marker
    spec.output_path.parent.mkdir(parents=True, exist_ok=True)
    switch_user = os.geteuid() == 0 and spec.uid != 0
    spec.exit_path.write_bytes(b"")
    if switch_user:
        os.chown(spec.exit_path, spec.uid, spec.gid)
    with open(spec.output_path, "ab") as out:
        return subprocess.Popen(
            ["/bin/sh", "-c", wrapper_script(spec)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=spec.cwd, env=env, start_new_session=True, close_fds=True,
            user=spec.uid if switch_user else None, group=spec.gid if switch_user else None,
            extra_groups=spec.groups if switch_user else None,
        )


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
