"""The wire protocol between clients and the head node: length-prefixed JSON frames.

A request is {"op": name, "args": {...}, "request_id": "..."}; a reply is {"ok": true, "result": ...} or
{"ok": false, "error": {"error_id", "message", "target"}}. The transport (a Unix socket today)
only moves frames, so another one can replace it without touching either end's logic.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from typing import Any

from ..acyclic import no_cycle_collection
from ..errors import HpcError

HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024  # a reply
MAX_REQUEST = 4 * 1024 * 1024  # a request (the head node reads no more)
PROTOCOL_VERSION = 3  # 2: typed requests, "hello" on connect, request ids; 3: listings cut by size
# A listing's reply ends with the record that passes this many bytes of text, and says so: a page of jobs
# has "more", and lookup_jobs answers only its first ids (at least one); the client asks for the rest.
# Counted in jobs alone, a page of jobs with large environments outgrew a message (MAX_FRAME).
PAGE_BYTES = 16 * 1024 * 1024
MAX_IDS = 10_000  # job ids in one request; clients send longer lists in pages
MAX_ID = 2**31 - 1  # the largest job, task or node ID: HPC Pack's IDs are Int32
MAX_ECHO = 200  # characters of what a request sent that an error about it repeats
# A name get_jobs may stamp each job of a page with (operations.GetJobs.scheduler): short printable ASCII.
MAX_SCHEDULER_NAME = 256
SCHEDULER_NAME = r"^[ -~]*$"
# Operations that change nothing: a client may send them again after a lost connection. The others
# carry a request id, and the head node applies a request id once.
READ_ONLY = frozenset({"hello", "ping", "wait_jobs", "cancel_time_limit", "lookup_jobs", "plan_cancel", "get_jobs",
                       "get_tasks", "history", "get_properties", "get_nodes", "plan_node_state",
                       "node_history", "get_groups", "cluster_overview", "cluster_parameters", "get_environment",
                       "job_history", "get_templates", "map_paths"})


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def encode(message: dict[str, Any], dumps: Callable[[dict[str, Any]], bytes] = _dumps) -> bytes:
    """A frame of `message`, in one piece."""
    return b"".join(frame(message, dumps))


def frame(message: dict[str, Any], dumps: Callable[[dict[str, Any]], bytes] = _dumps) -> tuple[bytes, bytes]:
    """A frame of `message` as its header and its body, written one after the other: a reply of megabytes
    is not copied once more to join them. The head node passes its faster encoder (head.jsontext)."""
    body = dumps(message)
    if len(body) > MAX_FRAME:
        raise HpcError("ProtocolError", f"a message of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(body)), body


def decode(body: bytes | bytearray) -> dict[str, Any]:
    message = loads(body)
    if not isinstance(message, dict):
        raise HpcError("ProtocolError", "a message must be a JSON object")
    return message


def loads(text: bytes | bytearray | memoryview) -> Any:
    """JSON text from the wire (a message, or a page of jobs cut out of one) as Python values; ProtocolError
    when it is not JSON."""
    try:
        with no_cycle_collection():  # (its objects form no cycles: acyclic)
            return json.loads(bytes(text) if isinstance(text, memoryview) else text)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
        # Its text, not its repr: a UnicodeDecodeError's repr holds the whole message, and a 4 MB request
        # of bad bytes was answered with a 20 MB error.
        raise HpcError("ProtocolError", f"malformed message: {type(e).__name__}: {str(e)[:MAX_ECHO]}") from None


def frame_length(header: bytes | bytearray, limit: int = MAX_FRAME) -> int:
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise HpcError("ProtocolError", f"a frame of {length} bytes exceeds the {limit}-byte limit")
    return int(length)


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode(message))


def receive(sock: socket.socket) -> dict[str, Any]:
    return decode(receive_body(sock))


def receive_body(sock: socket.socket) -> bytearray:
    """The next frame's body, not decoded."""
    return _read_exactly(sock, frame_length(_read_exactly(sock, HEADER.size)))


def _read_exactly(sock: socket.socket, size: int) -> bytearray:
    """`size` bytes, read into one buffer (a reply of megabytes is not copied again to join its pieces)."""
    data = bytearray(size)
    view, done = memoryview(data), 0
    while done < size:
        count = sock.recv_into(view[done:])
        if not count:
            raise ConnectionError("the head node closed the connection")
        done += count
    return data


def reply_ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def reply_error(error: HpcError) -> dict[str, Any]:
    return {"ok": False, "error": error.to_wire()}
