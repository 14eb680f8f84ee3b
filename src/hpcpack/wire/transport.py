"""TCP between a client and a remote head node, opened by MUNGE authentication.

On accept the head node sends a challenge frame, {"ok": true, "result": {"auth": "munge", "nonce": hex}};
the client answers {"op": "authenticate", "args": {"munge": credential}} with a credential its munged made
whose payload is that nonce; the head node decodes it with its own munged (the same cluster key) and
replies {"ok": true, "result": {"user": name}} or an AuthenticationFailed error, then hangs up. The uid and
gid come from the credential alone. A credential copied from another connection carries another nonce;
munged itself refuses one decoded twice (replayed) or too late (expired). After that, frames flow as on
the Unix socket (protocol.py), unencrypted: see about_HPC, "Remote head nodes".
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from ..config import format_address
from ..errors import HpcError
from . import protocol

if TYPE_CHECKING:
    import asyncio

# munge (ctypes, dataclasses) is imported where a remote head node is reached: a local `job` command
# starts faster without it.

CONNECT_TIMEOUT = 5.0  # seconds to reach a head node before trying the next one
AUTH_TIMEOUT = 10.0  # seconds a new connection has to authenticate
CREDENTIAL_TTL = 60  # seconds a client's credential lives (munged's own replay cache covers that window)
NONCE_BYTES = 32


class Unusable(OSError):
    """A scheduler name that cannot be connected to at all (an https:// address)."""


def client_munge_socket() -> str | None:
    """The munged a client asks for its credential: HPCPACK_MUNGE_SOCKET, else the system's."""
    return os.environ.get("HPCPACK_MUNGE_SOCKET") or None


def dial(address: tuple[str, int]) -> socket.socket:
    """A connected, authenticated socket to a remote head node. Raises OSError when it cannot be reached
    (the next head node is then tried), HpcError when MUNGE or the head node refuses."""
    sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(AUTH_TIMEOUT)
        authenticate(sock, format_address(address))
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise


def authenticate(sock: socket.socket, where: str) -> None:
    """The client's half of the opening: answers the challenge with a credential bound to its nonce."""
    challenge = protocol.receive(sock)
    if not challenge.get("ok"):  # refused before any credential (too many connections)
        raise HpcError.from_wire(challenge.get("error") or {"error_id": "ProtocolError", "message": "bad reply"})
    result = challenge.get("result") or {}
    if result.get("auth") != "munge" or not isinstance(result.get("nonce"), str):
        raise HpcError("ProtocolError", f"{where} is not an HPC head node (no MUNGE challenge).")
    from . import munge
    try:
        credential = munge.encode(bytes.fromhex(result["nonce"]), client_munge_socket(), ttl=CREDENTIAL_TTL)
    except munge.MungeError as e:
        raise HpcError("AuthenticationFailed", f"Cannot authenticate to the head node at {where}: MUNGE could "
                       f"not make a credential here ({e.message}); {munge.INSTALL_HINT}.", where) from None
    protocol.send(sock, {"op": "authenticate", "args": {"munge": credential}})
    verdict = protocol.receive(sock)
    if not verdict.get("ok"):
        raise HpcError.from_wire(verdict.get("error") or {"error_id": "ProtocolError", "message": "bad reply"})


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 munge_socket: str | None) -> tuple[int, int]:
    """The head node's half: (uid, gid) of the caller, from a fresh credential bound to this connection.
    Raises HpcError (AuthenticationFailed) for anything else, or on a timeout."""
    import asyncio  # here: the head node has it loaded already, and clients need not load it (30+ ms)
    import secrets  # likewise: a client starts faster without hmac and hashlib

    nonce = secrets.token_bytes(NONCE_BYTES)
    writer.write(protocol.encode(protocol.reply_ok({"auth": "munge", "nonce": nonce.hex()})))
    await writer.drain()
    try:
        header = await asyncio.wait_for(reader.readexactly(protocol.HEADER.size), AUTH_TIMEOUT)
        if protocol.frame_length(header) > 4096:
            raise _refused("the opening message is too long")
        body = await asyncio.wait_for(reader.readexactly(protocol.frame_length(header)), AUTH_TIMEOUT)
    except TimeoutError:
        raise _refused(f"no credential within {AUTH_TIMEOUT:.0f} s") from None
    args = protocol.decode(body).get("args")
    credential = args.get("munge") if isinstance(args, dict) else None
    if not isinstance(credential, str):
        raise _refused("the connection did not open with a MUNGE credential")
    from . import munge
    try:
        decoded = await asyncio.to_thread(munge.decode, credential, munge_socket)
    except munge.MungeError as e:
        key = e.code not in (munge.EXPIRED, munge.REWOUND, munge.REPLAYED)
        raise _refused(f"MUNGE refused the credential: {e.message}", key) from None
    if not secrets.compare_digest(decoded.payload, nonce):
        raise _refused("the credential was made for another connection")
    return decoded.uid, decoded.gid


def _refused(reason: str, key_hint: bool = False) -> HpcError:
    hint = " (the client and the head node need munged running with the same cluster key)" if key_hint else ""
    return HpcError("AuthenticationFailed", f"The head node refused the connection: {reason}. Nothing was "
                    f"done{hint}.")
