"""MUNGE credentials through libmunge (ctypes): the identity of a caller on another machine.

    encode(payload, socket=None, ttl=0, restrict_uid=None) -> "MUNGE:..."   (the caller's own uid and gid)
    decode(credential, socket=None) -> Decoded(uid, gid, payload)          (raises MungeError unless valid)

`socket` is the munged to ask (default: the system's, /run/munge/munge.socket.2). A credential that is
expired, replayed, rewound, forged or made with another key raises MungeError; libmunge missing raises
MungeUnavailable, whose message names the package to install. The library has no header on Debian
(no libmunge-dev), so the few constants used are written here as munge.h defines them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Any

from ..errors import HpcError

LIBRARY = "libmunge.so.2"
INSTALL_HINT = ("install MUNGE (Debian/Ubuntu: 'apt-get install munge libmunge2') and start munged with the "
                "cluster's key")
OPT_TTL = 4  # munge_opt_t
OPT_SOCKET = 8
OPT_UID_RESTRICTION = 9
SUCCESS = 0
EXPIRED, REWOUND, REPLAYED, UNAUTHORIZED = 15, 16, 17, 18  # munge_err_t
SOCKET_ERROR = 6


class MungeError(HpcError):
    """A credential that could not be made or was refused; `code` is libmunge's munge_err_t."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__("AuthenticationFailed", message)
        self.code = code


class MungeUnavailable(MungeError):
    """libmunge is not installed on this machine."""


@dataclass(frozen=True)
class Decoded:
    uid: int
    gid: int
    payload: bytes


_lib: Any = None
_libc: Any = None


def _library() -> Any:
    """libmunge with its prototypes, loaded once; raises MungeUnavailable."""
    global _lib, _libc
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBRARY)
        except OSError:
            raise MungeUnavailable(SOCKET_ERROR, f"MUNGE is not available on this machine ({LIBRARY} not "
                                   f"found): {INSTALL_HINT}.") from None
        p = ctypes.POINTER
        lib.munge_encode.argtypes = [p(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.munge_decode.argtypes = [ctypes.c_char_p, ctypes.c_void_p, p(ctypes.c_void_p), p(ctypes.c_int),
                                     p(ctypes.c_uint), p(ctypes.c_uint)]
        lib.munge_strerror.restype = ctypes.c_char_p
        lib.munge_strerror.argtypes = [ctypes.c_int]
        lib.munge_ctx_create.restype = ctypes.c_void_p
        lib.munge_ctx_destroy.argtypes = [ctypes.c_void_p]
        lib.munge_ctx_strerror.restype = ctypes.c_char_p
        lib.munge_ctx_strerror.argtypes = [ctypes.c_void_p]
        _libc = ctypes.CDLL(ctypes.util.find_library("c"))
        _libc.free.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


class _Context:
    """A munge_ctx_t with the options given, destroyed on exit."""

    def __init__(self, socket: str | None, ttl: int = 0, restrict_uid: int | None = None) -> None:
        self.lib = _library()
        self.ctx = ctypes.c_void_p(self.lib.munge_ctx_create())
        if not self.ctx:
            raise MungeError(5, "MUNGE: out of memory")
        if socket:
            self.lib.munge_ctx_set(self.ctx, ctypes.c_int(OPT_SOCKET), ctypes.c_char_p(socket.encode()))
        if ttl:
            self.lib.munge_ctx_set(self.ctx, ctypes.c_int(OPT_TTL), ctypes.c_int(ttl))
        if restrict_uid is not None:
            self.lib.munge_ctx_set(self.ctx, ctypes.c_int(OPT_UID_RESTRICTION), ctypes.c_uint(restrict_uid))

    def __enter__(self) -> _Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lib.munge_ctx_destroy(self.ctx)

    def error(self, code: int) -> MungeError:
        detail = self.lib.munge_ctx_strerror(self.ctx) or self.lib.munge_strerror(code) or b"unknown error"
        return MungeError(code, detail.decode(errors="replace"))


def encode(payload: bytes, socket: str | None = None, ttl: int = 0, restrict_uid: int | None = None) -> str:
    """A credential for this process's uid and gid carrying `payload` (ttl 0: munged's default, 300 s);
    only `restrict_uid` may decode it when given. Raises MungeError (munged not running: code 6)."""
    with _Context(socket, ttl, restrict_uid) as context:
        credential = ctypes.c_void_p()
        code = context.lib.munge_encode(ctypes.byref(credential), context.ctx, payload, len(payload))
        try:
            if code != SUCCESS:
                raise context.error(code)
            return ctypes.string_at(credential).decode()
        finally:
            _libc.free(credential)


def decode(credential: str, socket: str | None = None) -> Decoded:
    """The uid, gid and payload of a valid credential, checked by this machine's munged (same key).
    Raises MungeError for anything else: invalid, other key, expired (15), rewound (16), replayed (17)."""
    with _Context(socket) as context:
        buffer, length = ctypes.c_void_p(), ctypes.c_int()
        uid, gid = ctypes.c_uint(), ctypes.c_uint()
        code = context.lib.munge_decode(credential.encode(), context.ctx, ctypes.byref(buffer),
                                        ctypes.byref(length), ctypes.byref(uid), ctypes.byref(gid))
        try:
            if code != SUCCESS:  # libmunge still fills uid and payload in for a replay: never use them
                raise context.error(code)
            payload = ctypes.string_at(buffer, length.value) if buffer else b""
            return Decoded(uid.value, gid.value, payload)
        finally:
            _libc.free(buffer)
