"""Who is calling: learned from the socket's peer credentials, never from the request."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass

from .config import HeadNodeConfig


@dataclass(frozen=True)
class Caller:
    uid: int
    gid: int
    name: str
    admin: bool


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def groups_of(name: str, gid: int) -> set[str]:
    names = {g.gr_name for g in grp.getgrall() if name in g.gr_mem}
    with contextlib.suppress(KeyError):
        names.add(grp.getgrgid(gid).gr_name)
    return names


def identify(uid: int, gid: int, config: HeadNodeConfig) -> Caller:
    name = user_name(uid)
    admin = (uid == 0 or uid == os.geteuid() or name in config.administrators
             or bool(groups_of(name, gid) & config.admin_groups))
    return Caller(uid, gid, name, admin)
