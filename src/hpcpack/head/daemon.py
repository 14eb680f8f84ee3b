"""The head node process: owns the store, runs the loop, serves clients on a Unix socket and, when
headnode.yaml lists `listen` addresses (root's head node only), on TCP with MUNGE authentication.

    hpc-headnode [--state-dir DIR] [--socket PATH]

One instance per state folder (a lock file decides). It starts on a client's first call when none
is running, or as a system service; it keeps running, with its jobs, after clients go away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import SOCKET_NAME, HeadNodeConfig, default_state_dir
from ..errors import HpcError, storage_failure
from ..identity import Caller, identify, peer_credentials, user_name
from ..model.objects import now
from ..model.states import JobState
from ..wire import protocol, transport
from . import jsontext
from .headnode import HeadNode
from .limits import LARGE_FRAME, FailureLog, Unread, Unsent, return_freed_memory
from .requests import Requests, compact
from .service import acquire_lock, raise_open_file_limit, secure_state_dir, stop_head_node
from .waits import Waiter

log = logging.getLogger("hpcpack.head.headnode")
CANCEL_BATCH = 500  # jobs per transaction in a bulk cancel; the loop serves others between batches
MAX_CONNECTIONS_PER_USER = 128  # open connections of one user (administrators: no limit)
REQUEST_TIMEOUT = 30.0  # seconds a request's frame may take to arrive once its header has
MAX_UNAUTHENTICATED = 64  # TCP connections still opening (a flood of them cannot exhaust descriptors)
WRITE_TIMEOUT = 60.0  # seconds a reply may wait for its client to read it
HANGUP_CHECK = 1.0  # seconds between looks at whether a waiting client is still there
CHECKPOINT_IDLE = 0.5  # seconds without requests before the WAL is checkpointed (Store.checkpoint)
TRIM_LATEST = 5.0  # seconds after a large frame by which the heap is trimmed, idle or not (Daemon._trim_due)
_connection: contextvars.ContextVar[asyncio.StreamReader] = contextvars.ContextVar("connection")


class Daemon:
    def __init__(self, state_dir: Path, socket_path: Path) -> None:
        self.state_dir = state_dir
        self.socket_path = socket_path
        self.config = HeadNodeConfig.load(state_dir)
        self.head = HeadNode(state_dir, self.config)
        self.requests = Requests(self.head, self)
        self.wake = asyncio.Event()
        self.stopping = False
        self.last_activity = time.monotonic()  # a request began, answered, or went on to its next batch
        self.last_checkpoint = self.last_activity
        self.connections: Counter[int] = Counter()  # open connections, by uid
        self.opening = 0  # TCP connections not yet authenticated
        self.conversations: set[asyncio.Task[Any]] = set()  # every open connection's handler
        self.failures = FailureLog()
        self.unread = Unread()
        self.unsent = Unsent()
        self.untrimmed: float | None = None  # when a large frame was first let go of since the last trim

    def poke(self) -> None:
        self.wake.set()

    def touch(self) -> None:
        """A request is being served: no checkpoint now, nor between the requests of one bulk cmdlet."""
        self.last_activity = time.monotonic()

    def _idle_wait(self) -> float:
        """Seconds the loop may sleep: until its next step's work, or until the checkpoint or the heap's
        trim is due."""
        wait = self.head.next_wakeup()
        if self.head.store.unchecked:
            wait = min(wait, max(0.0, self._checkpoint_due() - time.monotonic()))
        if self.untrimmed is not None:
            wait = min(wait, max(0.0, self._trim_due(self.untrimmed) - time.monotonic()))
        return wait

    def _trim_due(self, since: float) -> float:
        """CHECKPOINT_IDLE after the last request, and at the latest TRIM_LATEST after the first large frame
        (`since`): a head node that is never idle, pinged without end, still gives back what a flood took."""
        return min(self.last_activity + CHECKPOINT_IDLE, since + TRIM_LATEST)

    def _checkpoint_due(self) -> float:
        """CHECKPOINT_IDLE after the last request, and after the last checkpoint (steps that write at
        every pass, while jobs run, are not checkpointed after each)."""
        return max(self.last_activity, self.last_checkpoint) + CHECKPOINT_IDLE

    def _checkpoint_when_idle(self) -> None:
        """A checkpoint that fails (a full disk) or that a reader holds up is tried again later; the commits
        are safe in the WAL."""
        if self.head.store.unchecked and time.monotonic() >= self._checkpoint_due():
            try:
                self.head.store.checkpoint()
            except sqlite3.Error as e:
                log.warning("the database could not be checkpointed (%s); trying again later", e)
            self.last_checkpoint = time.monotonic()

    def _freed(self, size: int) -> None:
        """A frame of `size` bytes, read or written, is let go of: a large one is given back soon (_trim_due)."""
        if size > LARGE_FRAME and self.untrimmed is None:
            self.untrimmed = time.monotonic()
            self.poke()  # (the loop may be asleep for longer than that)

    def _trim_when_due(self) -> None:
        """Memory that large frames took goes back to the system once no request has come for a while, or
        TRIM_LATEST after the first (not after each: the next large reply would take fresh pages again)."""
        if self.untrimmed is not None and time.monotonic() >= self._trim_due(self.untrimmed):
            return_freed_memory()
            self.untrimmed = None

    async def until_ended(self, caller: Caller, ids: list[int], timeout: float) -> dict[str, Any]:
        """Resolves when every job is in a final state, or at the deadline (never waits forever), or
        when the client hangs up. Ids of no job and ended jobs are answered here, once (waits.py)."""
        states, pending = self._states_now(ids)
        if not pending:
            return states
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiter = Waiter(caller.uid, pending, states, now() + timeout, future)
        self.head.waits.add(waiter, caller.admin)
        self.poke()  # the loop may be asleep for longer than this wait lasts: it wakes to its deadline
        reader = _connection.get(None)
        while not future.done():
            # A hung-up client's wait goes: asyncio tells a peer's EOF only to a reader, and the
            # connection's next request must stay unread, so its EOF flag is looked at now and then.
            await asyncio.wait({future}, timeout=HANGUP_CHECK)
            if reader is not None and reader.at_eof():
                self.head.waits.finish(waiter, self.head.jobs)
        return future.result()

    def _states_now(self, ids: list[int]) -> tuple[dict[str, str], set[int]]:
        """The jobs that have ended (with their states) and the active ones; active jobs are all in
        memory, so an id not there is an ended job (one query for all of them) or no job."""
        states: dict[str, str] = {}
        pending: set[int] = set()
        elsewhere = []
        for job_id in ids:
            job = self.head.jobs.get(job_id)
            if job is None:
                elsewhere.append(job_id)
            elif job.terminal:
                states[str(job_id)] = str(job.state.name)
            else:
                pending.add(job_id)
        for job_id, state in self.head.store.job_states(elsewhere).items():
            states[str(job_id)] = str(JobState(state).name)
        return states, pending

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        loop.add_signal_handler(signal.SIGCHLD, self.poke)
        if self.socket_path.exists():
            self.socket_path.unlink()
        # TCP first: once the socket exists, every listener does.
        servers = [await asyncio.start_server(self._tracked(self._serve_remote), host, port, reuse_address=True)
                   for host, port in self.config.listen]
        servers.append(await asyncio.start_unix_server(self._tracked(self._serve_client), path=str(self.socket_path)))
        os.chmod(self.socket_path, self.config.socket_mode)
        self.head.recover()
        self.head.launchers.warm()
        log.info("head node %s serving %s%s (pid %d)", self.head.name, self.socket_path,
                 "".join(f", tcp {h}:{p}" for h, p in self.config.listen), os.getpid())
        async with contextlib.AsyncExitStack() as stack:
            for server in servers:
                await stack.enter_async_context(server)
            while not self.stopping:
                self.head.step()
                self.head.waits.resolve(self.head.jobs)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self._idle_wait())
                self.wake.clear()
                self._checkpoint_when_idle()
                self._trim_when_due()
            for server in servers:
                server.close()
            await self._hang_up()
        self.socket_path.unlink(missing_ok=True)
        self.head.close()

    def _stop(self) -> None:
        self.stopping = True
        self.poke()

    def _tracked(self, serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                 ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        """A connection's handler, known to the daemon, so that stopping can end it (_hang_up)."""
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.conversations.add(task)
            try:
                await serve(reader, writer)
            except asyncio.CancelledError:  # the head node stops: its client sees the connection close
                writer.transport.abort()
            finally:
                self.conversations.discard(task)
        return handler

    async def _hang_up(self) -> None:
        """Ends the open connections, each task by itself, before asyncio.run would cancel them: it logs
        every handler it cancels with a traceback (Python 3.11's streams), one per connected client."""
        if self.conversations:
            log.info("stopping: closing %d client connection(s)", len(self.conversations))
        for task in self.conversations:
            task.cancel()
        await asyncio.gather(*self.conversations, return_exceptions=True)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A Unix socket caller: who it is comes from the socket's peer credentials."""
        _, uid, gid = peer_credentials(writer.get_extra_info("socket"))
        await self._admit(identify(uid, gid, self.config), reader, writer, remote=False)

    async def _serve_remote(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A TCP caller: who it is comes from its MUNGE credential (transport.accept), nothing else."""
        if self.opening >= MAX_UNAUTHENTICATED:
            writer.close()
            return
        self.opening += 1
        try:
            uid, gid = await transport.accept(reader, writer, self.config.munge_socket)
        except (HpcError, OSError, asyncio.IncompleteReadError) as e:
            log.warning("refused a TCP connection from %s: %s", writer.get_extra_info("peername"), e)
            if isinstance(e, HpcError):
                writer.write(protocol.encode(protocol.reply_error(e)))
            writer.close()
            return
        finally:
            self.opening -= 1
        await self._admit(identify(uid, gid, self.config), reader, writer, remote=True)

    async def _admit(self, caller: Caller, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     remote: bool) -> None:
        """The same rules for every caller: a per-user connection limit, then the conversation. A remote
        caller is told it is in (its authentication's verdict) before the first request."""
        uid = caller.uid
        refusal = self._refusal(caller)
        if refusal is not None:  # said at once, and the connection closed: a refused caller holds nothing
            writer.write(protocol.encode(protocol.reply_error(refusal)))
            writer.close()
            return
        if remote:
            writer.write(protocol.encode(protocol.reply_ok({"user": caller.name})))
        self.connections[uid] += 1
        try:
            await self._converse(caller, reader, writer)
        finally:
            self.connections[uid] -= 1

    def _refusal(self, caller: Caller) -> HpcError | None:
        """Why this caller is not served at all, if it is not. A head node that is not root can run tasks
        only as its own user, so it serves that user (and root) alone, whatever its socket's mode or its
        list of administrators say: another user's job would run as its owner, with the owner's files."""
        me = os.geteuid()
        if me not in (0, caller.uid) and caller.uid != 0:
            owner = user_name(me)
            return HpcError("PermissionDenied", f"This head node runs as {owner} and can run tasks only as "
                            f"{owner}: it serves {owner} alone, not {caller.name}. A head node for every user of "
                            "the machine runs as root ('make install' as root).")
        if not caller.admin and self.connections[caller.uid] >= MAX_CONNECTIONS_PER_USER:
            return HpcError("TooManyConnections", f"{caller.name} already has {MAX_CONNECTIONS_PER_USER} "
                            "connections open to the head node; close some and try again.")
        return None

    async def _converse(self, caller: Caller, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _connection.set(reader)  # (this task's context: its requests' handlers see their own connection)
        try:
            while await self._exchange(caller, reader, writer):
                pass
        except HpcError as e:  # a malformed frame: say why, then hang up
            writer.write(protocol.encode(protocol.reply_error(e)))
        except (ConnectionError, TimeoutError):
            return  # the client left or stopped reading mid-reply: nothing to tell it (finally closes)
        finally:
            writer.transport.abort() if writer.transport.get_write_buffer_size() else writer.close()

    async def _exchange(self, caller: Caller, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request and its reply; False once the client has gone. Neither outlives it: a connection kept
        its last request and reply (up to 4 MB and 64 MB) in memory while it stayed idle."""
        size = 0
        try:
            header = await reader.readexactly(protocol.HEADER.size)
            # A request is small and arrives at once: a half-sent one must not hold memory.
            size = protocol.frame_length(header, protocol.MAX_REQUEST)
            with self.unread.reserve(caller, size):
                body = await asyncio.wait_for(reader.readexactly(size), REQUEST_TIMEOUT)
                refusal = await self.unsent.room(caller)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as e:
            _let_go(e)
            self._freed(size)
            return False
        await self._reply(caller, writer, protocol.frame(protocol.reply_error(refusal), jsontext.reply) if refusal
                          else await self._answer(caller, body))
        self._freed(size)
        return True

    async def _reply(self, caller: Caller, writer: asyncio.StreamWriter, frame: tuple[bytes, bytes]) -> None:
        """Writes a reply and waits until its client has read it: a client that does not read must not keep
        it in memory for ever (WRITE_TIMEOUT), nor keep more of it than its share (Unsent)."""
        header, reply = frame
        size = len(reply)
        del frame
        try:
            with self.unsent.hold(caller, size):
                # Apart, not with writelines: Python 3.11's joins them, one more copy of the reply.
                writer.write(header)
                writer.write(reply)
                del reply  # what the socket did not take is in the transport's own buffer now
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        finally:
            self._freed(size)  # read or given up, it is let go of

    async def _answer(self, caller: Caller, body: bytes) -> tuple[bytes, bytes]:
        """The request's reply, framed. One past the limit of a message is refused (ProtocolError), but a
        change's is cut to what a resend gets (requests.compact: each job's id and state or error, not its
        record): the change was made, and its client was told it had failed (360 jobs of 200 KB submitted
        at once)."""
        op, message = await self._answered(caller, body)
        try:
            return protocol.frame(message, jsontext.reply)
        except HpcError as e:
            if message["ok"] and op not in protocol.READ_ONLY:
                return protocol.frame(protocol.reply_ok(compact(message["result"])), jsontext.reply)
            return protocol.frame(protocol.reply_error(e), jsontext.reply)

    async def _answered(self, caller: Caller, body: bytes) -> tuple[Any, dict[str, Any]]:
        """The request's operation (None when it could not be read) and its reply."""
        self.touch()
        op = None
        try:
            message = protocol.decode(body)
            op = message.get("op")
            result = await self.requests.handle(caller, op, message.get("args"), message.get("request_id"))
            return op, protocol.reply_ok(result)
        # (Whatever the error, the request's transaction was rolled back, and with it what it changed in
        # memory: Core.forget_uncommitted.)
        except HpcError as e:
            return op, protocol.reply_error(e)
        except sqlite3.Error as e:  # disk full, I/O error: the change was rolled back, and nothing was signalled
            log.error("a request could not be committed: %s", e)
            return op, protocol.reply_error(storage_failure(e))
        except Exception as e:  # a bug must not take the head node down with it
            self.failures.log(e)
            return op, protocol.reply_error(HpcError("InternalError", f"The head node failed: {e!r}"))
        finally:
            self.touch()
            self.poke()


def _let_go(cut_off: BaseException) -> None:
    """What came of a request cut off mid-body is let go of now: asyncio keeps it in the exception (and in the
    frames of its traceback), which a cycle holds (future, exception, traceback, frame, future) until a
    collection of the generation it reached; a flood of cut-off 4 MB requests from one user, with pings to
    keep the head node busy, grew it by 120 MB a second."""
    cut_off.__traceback__ = None
    if isinstance(cut_off, asyncio.IncompleteReadError):
        cut_off.partial = b""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hpc-headnode", description="Run the HPC head node.")
    parser.add_argument("--state-dir", type=Path, default=None, help="state folder (default: HPCPACK_HOME, "
                        "/var/lib/hpcpack once installed for the machine, else ~/.local/state/hpcpack)")
    parser.add_argument("--socket", type=Path, default=None, help="socket path (default: <state-dir>/headnode.sock)")
    parser.add_argument("--stop", action="store_true", help="ask the running head node to stop, then exit")
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    state_dir = (args.state_dir or default_state_dir()).resolve()
    if args.stop:
        return stop_head_node(args.socket or state_dir / SOCKET_NAME)
    os.umask(0o077)  # everything the head node writes is its own (and, for output, the job owner's)
    state_dir.mkdir(parents=True, exist_ok=True)
    socket_path = args.socket or state_dir / SOCKET_NAME
    config = HeadNodeConfig.load(state_dir)
    if config.listen and os.geteuid() != 0:
        print("hpc-headnode: 'listen' in headnode.yaml needs a head node run by root (one for every user of the "
              "cluster); a user's own head node serves its Unix socket only", file=sys.stderr)
        return 2
    secure_state_dir(state_dir, config, socket_path)
    logging.basicConfig(filename=state_dir / "headnode.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    lock = acquire_lock(state_dir)
    if lock is None:
        print(f"hpc-headnode: a head node already runs for {state_dir}", file=sys.stderr)
        return 3
    from .executor import become_subreaper
    become_subreaper()
    raise_open_file_limit()
    daemon = Daemon(state_dir, socket_path)
    asyncio.run(daemon.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
