"""The task launcher: the only code the head node runs on a user's behalf, and how it stays safe.

The head node starts it ahead of time as `<python> -I -S launch.py` with an empty environment, so no
value a user controls (PATH, LD_*, PYTHON*, BASH_ENV, IFS, ...) reaches it while it is privileged,
and keeps it waiting: a task starts as soon as the head node writes the path of its instructions (a
root-only file) to the launcher's standard input. Then, in this order, it:

1. opens the exit and output files (in the head node's private folder) and joins the task's cgroup,
   still root;
2. becomes the job's owner: supplementary groups, then gid, then uid, and checks that it cannot
   get root back;
3. only then applies what the user chose: enters WorkDir, opens Stdin/Stdout/Stderr, and starts
   `/bin/sh -c <command>` with the task's environment;
4. stays as the task's *wrapper*: a child subreaper, so every process the task starts stays its
   descendant however it escapes its session; it outlives SIGTERM (the grace period belongs to the
   task's program) and, when the program exits, records its exit code and kills what it left.

The exit file holds one line: the program's exit code (-N for death by signal N), or
`error: <reason>` when the task could not be started as asked.

It starts once per task, so it imports only built-in modules (not json, subprocess or signal: they
cost tens of milliseconds), each before the drop: after it, the interpreter may not be able to read
its own files (a Python under a 0700 home). Its instructions are a `marshal` dump.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import marshal
import os
import select
import sys

_PR_SET_CHILD_SUBREAPER = 36
_SIGKILL = 9
_EXIT_ROOM = 64  # bytes reserved in the exit file
_STOPS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
_OUTPUT_KEPT = 4096  # bytes of output the head node keeps (executor.OUTPUT_KEPT); the rest is read and dropped
_REAP_EVERY_MS = 1000  # orphans that exit are reaped at least this often


class StartError(Exception):
    """The task cannot be started as asked; the message is the task's error message."""


def main() -> int:
    for sig in _STOPS:
        _signal.signal(sig, _ignore)  # a handler, not SIG_IGN: the task's program must not inherit it
    # The head node started us with these signals blocked, so that a cancel in the first milliseconds
    # could not kill the wrapper before it had its handlers; one that came meanwhile arrives now.
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _STOPS)
    _become_subreaper()  # escapes stay below the wrapper, never re-parented to the head node
    spec_path = _read_line(0)
    if not spec_path:
        return 0  # the head node stopped without needing us
    with open(spec_path, "rb") as f:
        spec = marshal.load(f)
    os.unlink(spec_path)
    exit_fd = _private_file(spec["exit_path"], os.O_TRUNC)
    _hold(exit_fd)
    os.write(exit_fd, b" " * _EXIT_ROOM)  # room for the exit code now, so a full disk later cannot lose it
    output = _private_file(spec["output_path"], os.O_APPEND)
    # What the task prints (unless it redirects it) comes through a pipe, and only its first
    # _OUTPUT_KEPT bytes reach the head node's folder: a task cannot fill root's disk.
    pipe, sink = os.pipe2(os.O_CLOEXEC)
    for target in (1, 2):
        os.dup2(sink, target)
    os.close(sink)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    try:
        if spec["cgroup"]:
            _join_cgroup(spec["cgroup"])
        _become(spec["uid"], spec["gid"], spec["groups"])
        program = _start(spec)
    except StartError as e:
        _record(exit_fd, f"error: {e}")
        return 126
    devnull = os.open(os.devnull, os.O_WRONLY)
    for target in (1, 2):
        os.dup2(devnull, target)  # the pipe's writers are now the task's processes only
    code = _copy_and_wait(program, pipe, output)
    _record(exit_fd, str(code))
    _kill_leftovers()
    return 0


def _record(fd: int, text: str) -> None:
    """The exit file's one line, written over the room taken at the start."""
    try:  # noqa: SIM105 (contextlib would cost an import per task)
        os.pwrite(fd, f"{text}\n".encode(errors="replace").ljust(_EXIT_ROOM), 0)
    except OSError:
        pass  # nothing more can be done here; the head node takes the wrapper's own status


def _hold(fd: int) -> None:
    """Locks the exit file for as long as the wrapper lives (the kernel drops the lock when it ends, even
    by SIGKILL). A head node that restarted is no longer the wrapper's parent and finds a task by its
    processes; between the program's end and its exit code being written none carries the task's marker,
    and the lock names the wrapper to that head node (executor.lock_holder), to watch and to signal."""
    try:  # noqa: SIM105 (contextlib would cost an import per task)
        os.lockf(fd, os.F_TLOCK, 0)
    except OSError:
        pass  # a file system without locks: the head node goes by the task's processes alone


def _read_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _private_file(path: str, mode: int) -> int:
    """A file of the head node's private folder, never through a link. It stays root's: a file the
    user owned could take a lease that makes the head node block when it reads it."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | mode, 0o600)


def _ignore(signum: int, frame: object) -> None:
    """The wrapper outlives TERM, INT and HUP: it ends when the task's program does."""


def _become_subreaper() -> None:
    import ctypes  # here, while the launcher waits for a task: 10+ ms that no task waits for

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _join_cgroup(path: str) -> None:
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError as e:
        raise StartError(f"The task could not join its cgroup {path}: {e.strerror}.") from None


def _become(uid: int, gid: int, groups: list[int]) -> None:
    """Takes the owner's identity for good (groups, gid, uid), or refuses to go on."""
    if os.geteuid() != 0:
        if os.getuid() != uid:
            raise StartError(f"The head node runs as uid {os.getuid()} and cannot run tasks as uid {uid}.")
        return
    try:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise StartError(f"The task could not take its owner's identity (uid {uid}): {e.strerror}.") from None
    if uid != 0 and _can_regain_root():
        raise StartError("The task could still regain root after dropping its privileges; it was not started.")


def _can_regain_root() -> bool:
    try:
        os.setuid(0)
    except OSError:
        return False
    return True


def _start(spec: dict[str, object]) -> int:
    """WorkDir, redirections and the command, all as the owner; each failure says what and why."""
    _enter(str(spec["cwd"]), bool(spec["cwd_required"]))
    stdin = _open(str(spec["stdin"]), os.O_RDONLY, "standard input") if spec["stdin"] else os.open(os.devnull,
                                                                                                   os.O_RDONLY)
    stdout = _open(str(spec["stdout"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, "standard output") \
        if spec["stdout"] else 1
    stderr = _open(str(spec["stderr"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, "standard error") \
        if spec["stderr"] else stdout
    env = spec["env"]
    assert isinstance(env, dict)
    argv = spec.get("argv") or ["/bin/sh", "-c", str(spec["command"])]
    assert isinstance(argv, list)
    return _spawn(argv, env, (stdin, stdout, stderr))


def _spawn(argv: list[str], env: dict[str, str], fds: tuple[int, int, int]) -> int:
    """fork + exec of argv (/bin/sh -c command, or the srun of a Slurm step); an exec failure (E2BIG, ...)
    comes back through a pipe."""
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, *_STOPS):
                _signal.signal(sig, _signal.SIG_DFL)  # Python ignores SIGPIPE and SIGXFSZ
            _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
            os.execve(argv[0], argv, env)
        except OSError as e:
            os.write(report_w, (e.strerror or str(e)).encode())
        finally:
            os._exit(127)
    os.close(report_w)
    failure = os.read(report_r, 4096)
    os.close(report_r)
    if failure:
        os.waitpid(pid, 0)
        raise StartError(f"The command could not be started: {failure.decode(errors='replace')}.")
    return pid


def _enter(cwd: str, required: bool) -> None:
    """WorkDir must be entered as given; without one, the owner's home or, failing that, /."""
    try:
        os.chdir(cwd)
    except OSError as e:
        if required:
            raise StartError(f"The working directory {cwd} cannot be entered: {e.strerror}.") from None
        os.chdir("/")


def _open(path: str, flags: int, what: str) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StartError(f"The file for {what}, {path}, cannot be opened: {e.strerror}.") from None


def _copy_and_wait(pid: int, pipe: int, output: int) -> int:
    """Copies the task's output (its first _OUTPUT_KEPT bytes) and reaps children (orphans come here
    too) until the program exits; its code, -N for signal N."""
    os.set_blocking(pipe, False)
    poller = select.poll()
    poller.register(pipe, select.POLLIN)
    try:  # noqa: SIM105 (contextlib would cost an import per task)
        poller.register(os.pidfd_open(pid), select.POLLIN)  # wakes when the program exits
    except OSError:
        pass  # (a kernel without pidfd: its exit is seen within _REAP_EVERY_MS)
    kept, open_ = 0, True
    while True:
        poller.poll(_REAP_EVERY_MS)
        if open_:
            open_, kept = _copy(pipe, output, kept)
            if not open_:
                poller.unregister(pipe)
        code = _reap(pid)
        if code is not None:
            if open_:
                _copy(pipe, output, kept)  # what it printed last; what it left behind is killed next
            return code


def _copy(pipe: int, output: int, kept: int) -> tuple[bool, int]:
    """Reads what the pipe has now; keeps what fits. (Whether the pipe is still open, bytes kept.)"""
    while True:
        try:
            data = os.read(pipe, 65536)
        except BlockingIOError:
            return True, kept
        if not data:
            return False, kept
        if kept < _OUTPUT_KEPT:
            try:  # noqa: SIM105 (contextlib would cost an import per task)
                os.write(output, data[:_OUTPUT_KEPT - kept])
            except OSError:
                pass  # a full disk loses output, never the task
            kept += len(data[:_OUTPUT_KEPT - kept])


def _reap(pid: int) -> int | None:
    """Reaps every child that exited; the program's code once it is among them."""
    while True:
        try:
            child, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if child == 0:
            return None
        if child == pid:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _kill_leftovers() -> None:
    """Nothing outlives its task: what the program left behind is killed and reaped."""
    me = os.getpid()
    for _ in range(1000):  # bounded: a fork storm ends when its processes can no longer fork
        for pid in _descendants(me):
            try:  # noqa: SIM105 (contextlib would cost an import per task)
                os.kill(pid, _SIGKILL)
            except OSError:
                pass  # gone already
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            children.setdefault(int(data[data.rfind(b")") + 2:].split()[1]), []).append(int(name))
    found, frontier = [], [root]
    while frontier:
        below = children.get(frontier.pop(), [])
        found.extend(below)
        frontier.extend(below)
    return found

if __name__ == "__main__":
    sys.exit(main())
