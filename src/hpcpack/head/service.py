"""The head node process's set-up around the daemon: its single-instance lock, its state folder's
permissions, its open file limit, and `hpc-headnode --stop`."""

from __future__ import annotations

import fcntl
import os
import resource
import sys
from pathlib import Path

from ..config import HeadNodeConfig
from ..errors import HpcError


def acquire_lock(state_dir: Path) -> int | None:
    """The single-instance lock, held for the life of the process on the database file itself, so
    that deleting a lock file cannot let a second head node in (flock and SQLite's own POSIX locks
    do not interfere). headnode.lock only records the pid, for people."""
    fd = os.open(state_dir / "headnode.db", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    (state_dir / "headnode.lock").write_text(f"{os.getpid()}\n")
    return fd


def secure_state_dir(state_dir: Path, config: HeadNodeConfig, socket_path: Path) -> None:
    """Only the head node's user reads its state: files 0600, folders 0700; the state folder itself is
    0711 when others must reach a shared socket inside it (they can enter it, not list it)."""
    shared = bool(config.socket_mode & 0o077) and socket_path.parent == state_dir
    os.chmod(state_dir, 0o711 if shared else 0o700)
    for path in state_dir.iterdir():
        if path.is_symlink() or path == socket_path:
            continue
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    output = state_dir / "output"
    if output.is_dir():
        for folder in output.iterdir():
            if folder.is_dir() and not folder.is_symlink():
                os.chmod(folder, 0o700)


def raise_open_file_limit() -> None:
    """Every client holds a descriptor: take the hard limit, not the 1,024 a service gets by default."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop_head_node(socket_path: Path) -> int:
    from ..backends.client import Client
    try:
        Client(f"unix:{socket_path}").call("shutdown")
    except HpcError as e:
        print(f"hpc-headnode: {e.message}", file=sys.stderr)
        return 1
    return 0
