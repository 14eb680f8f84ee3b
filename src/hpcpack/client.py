"""Talking to a head node: find it, start the local one if none runs, send requests.

A `Client` keeps one connection and is safe to share between threads (PowerShell runspaces).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from . import protocol
from .config import Endpoint, resolve
from .errors import HpcError

START_TIMEOUT = 15.0
_clients: dict[tuple[str, ...], Client] = {}
_clients_lock = threading.Lock()


def for_scheduler(scheduler: list[str] | str | None) -> Client:
    """The shared client for these scheduler names (one connection per process and head node)."""
    names = [scheduler] if isinstance(scheduler, str) else list(scheduler or [])
    key = tuple(names) + (os.environ.get("HPCPACK_HOME", ""),)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = Client(names)
        return client


class Client:
    def __init__(self, scheduler: list[str] | str | None = None) -> None:
        self.endpoints = resolve(scheduler)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.endpoint: Endpoint | None = None

    def call(self, op: str, **args: Any) -> Any:
        with self._lock:
            reply = self._exchange({"op": op, "args": args})
        if not reply.get("ok"):
            raise HpcError.from_wire(reply.get("error") or {"error_id": "ProtocolError", "message": "bad reply"})
        return reply.get("result")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        # One retry on a dropped connection (a restarted head node); never a second send after a reply.
        for attempt in (1, 2):
            sock = self._sock or self._connect()
            try:
                protocol.send(sock, request)
                return protocol.receive(sock)
            except (ConnectionError, OSError) as e:
                sock.close()
                self._sock = None
                if attempt == 2:
                    raise HpcError("CannotConnectWithScheduler",
                                   f"Lost the connection to the head node: {e}.") from None
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        errors = []
        for endpoint in self.endpoints:
            try:
                self._sock = self._open(endpoint)
                self.endpoint = endpoint
                return self._sock
            except OSError as e:
                errors.append(f"{endpoint.name or 'localhost'} ({endpoint.socket_path}): {e.strerror or e}")
        raise HpcError("CannotConnectWithScheduler", "Cannot connect to the head node: " + "; ".join(errors),
                       ",".join(e.name for e in self.endpoints))

    def _open(self, endpoint: Endpoint) -> socket.socket:
        try:
            return _dial(endpoint)
        except (FileNotFoundError, ConnectionRefusedError):
            if endpoint.state_dir is None:
                raise
        start_local_head_node(endpoint)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return _dial(endpoint)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def _dial(endpoint: Endpoint) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(endpoint.socket_path))
    except OSError:
        sock.close()
        raise
    return sock


def start_local_head_node(endpoint: Endpoint) -> None:
    """Starts the embedded head node in its own session: it outlives the caller (and its pwsh)."""
    assert endpoint.state_dir is not None
    endpoint.state_dir.mkdir(parents=True, exist_ok=True)
    subprocess.Popen(
        [_python(), "-m", "hpcpack.daemon", "--state-dir", str(endpoint.state_dir),
         "--socket", str(endpoint.socket_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, cwd="/",
    )


def _python() -> str:
    """The interpreter of this environment (inside pwsh, sys.executable is the venv's python)."""
    exe = sys.executable
    if exe and os.path.basename(exe).startswith("python"):
        return exe
    return os.path.join(sys.prefix, "bin", "python")
