"""Talking to a head node: find it, start the local one if none runs, send requests. A remote head node
is reached over TCP with MUNGE authentication (transport.py).

A `Client` keeps one connection and is safe to share between threads (PowerShell runspaces).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import re
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import SOCKET_NAME, SYSTEM_STATE_DIR, Endpoint, resolve
from ..errors import HpcError
from ..model.params import MAX_JOB_UNITS
from ..wire import protocol, transport
from .contract import JobPage

if TYPE_CHECKING:
    import subprocess

START_TIMEOUT = 15.0
_clients: dict[tuple[str, ...], Client] = {}
_clients_lock = threading.Lock()


# The cmdlet call that requests are made for on this thread (the shim sets it): a call that PowerShell no
# longer waits for has its requests abandoned (Client.abandon).
CALL: contextvars.ContextVar[str | None] = contextvars.ContextVar("hpcpack_call", default=None)


def abandon(call: str) -> None:
    """Shuts the connection on which a request of cmdlet call `call` waits for its reply, whichever shared
    client it is: PowerShell stopped waiting for it (see Client.abandon)."""
    with _clients_lock:
        clients = list(_clients.values())
    for client in clients:
        client.abandon(call)


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
        self._holding = threading.Lock()  # over the two below
        self._holder: str | None = None  # the call whose request the connection carries now (CALL)
        self._abandoned = False  # ...and whether PowerShell stopped waiting for it

    def call(self, op: str, **args: Any) -> Any:
        """Sends one operation and returns its result; raises HpcError. A list of more than
        protocol.MAX_IDS ids goes in pages, whose results are joined."""
        ids = args.get("ids")
        if op == "get_jobs" and ids is None and "limit" not in args:
            return self._all_pages(args)
        if op == "get_tasks" and "counted" not in args:
            return self._all_task_pages(args)
        if isinstance(ids, list) and len(ids) > protocol.MAX_IDS:
            pages = [self.call(op, **{**args, "ids": ids[i:i + protocol.MAX_IDS]})
                     for i in range(0, len(ids), protocol.MAX_IDS)]
            return _join(pages)
        result = self._once(op, args)
        while op == "lookup_jobs" and isinstance(ids, list) and isinstance(result, list) and 0 < len(result) < len(ids):
            rest = self._once(op, {**args, "ids": ids[len(result):]})  # answered up to protocol.PAGE_BYTES
            if not isinstance(rest, list) or not rest:
                break
            result += rest
        return result

    def _once(self, op: str, args: dict[str, Any]) -> Any:
        body, endpoint = self._send(op, args)
        result = _result(protocol.decode(body))
        _stamp(result, endpoint.name)
        return result

    def job_page(self, **args: Any) -> JobPage:
        """One page of get_jobs (its filters, `after` and `limit`), with its jobs' JSON text cut out of the
        reply unread: the head node writes each job's Scheduler as this client names it. A page that is not
        as expected is read, and its records are stamped here."""
        name = self._endpoint().name
        stamped = len(name) <= protocol.MAX_SCHEDULER_NAME and _SCHEDULER_NAME.match(name) is not None
        body, endpoint = self._send("get_jobs", {**args, "counted": True, **({"scheduler": name} if stamped else {})})
        page = _counted(body) if stamped and endpoint.name == name else None  # (another head node: read it)
        if page is None:
            result = _result(protocol.decode(body))
            jobs = result.get("jobs") if isinstance(result, dict) else None
            if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
                raise HpcError("ProtocolError", "The head node sent a page of jobs that is not a list of jobs.")
            _stamp(jobs, endpoint.name)
            last = result.get("last")
            page = JobPage(count=len(jobs), last=last if isinstance(last, int) else None, jobs=jobs,
                           more=result.get("more") is True)
        return page

    def _send(self, op: str, args: dict[str, Any]) -> tuple[bytearray, Endpoint]:
        """One request; the reply's body, and the head node that sent it."""
        request: dict[str, Any] = {"op": op, "args": args}
        if op not in protocol.READ_ONLY:
            request["request_id"] = os.urandom(16).hex()  # so that a resend after a lost reply applies once
        with self._lock:
            with self._holding:
                self._holder = CALL.get()
            try:
                body = self._exchange(request)
            finally:
                with self._holding:
                    self._holder, self._abandoned = None, False
            assert self.endpoint is not None
            return body, self.endpoint

    def abandon(self, call: str) -> None:
        """If a request of cmdlet call `call` waits on this connection for its reply, shuts the connection:
        the wait ends, with OperationStopped rather than a resend, and the next request opens another. A
        cmdlet stopped while it waited for a head node that no longer answered kept the connection, and every
        later cmdlet of the session for that head node waited behind it for ever."""
        with self._holding:  # (not the request's reply and the next request's send in between)
            sock = self._sock
            if self._holder == call and sock is not None:
                self._abandoned = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _endpoint(self) -> Endpoint:
        """The head node this client reaches (connecting first if it has not yet)."""
        with self._lock:
            if self._sock is None:
                self._connect()
            assert self.endpoint is not None
            return self.endpoint

    @property
    def address(self) -> str:
        """The head node this client reaches, as a -Scheduler value (connecting first if it has not yet)."""
        endpoint = self._endpoint()
        return endpoint.describe() if endpoint.address is not None else f"unix:{endpoint.socket_path}"

    def _all_pages(self, args: dict[str, Any]) -> list[Any]:
        """get_jobs in pages of up to protocol.MAX_IDS, so that no reply outgrows a frame however many jobs."""
        jobs: list[Any] = []
        page = self.job_page(**args, after=None, limit=protocol.MAX_IDS).following(None)
        jobs += page.records()
        while page.full(protocol.MAX_IDS):
            page = self.job_page(**args, after=page.last, limit=protocol.MAX_IDS).following(page.last)
            jobs += page.records()
        return jobs

    def _all_task_pages(self, args: dict[str, Any]) -> list[Any]:
        """get_tasks in pages, each cut by the head node where its text fills protocol.PAGE_BYTES: one job's
        tasks may hold more text than a message."""
        tasks: list[Any] = []
        after: list[int] | None = None
        while True:
            page = self.call("get_tasks", **args, counted=True, after=after)
            found = page.get("tasks") if isinstance(page, dict) else None
            if not isinstance(found, list):
                raise HpcError("ProtocolError", "The head node sent a page of tasks that is not a list of tasks.")
            last = _task_page_end(found, after, page.get("last"), page.get("more") is True)
            tasks += found
            if len(tasks) > MAX_JOB_UNITS:  # (a head node that never ends the listing)
                raise HpcError("ProtocolError", f"The head node sent more than {MAX_JOB_UNITS:,} tasks of one job.")
            if last is None:
                return tasks
            after = last

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _exchange(self, request: dict[str, Any]) -> bytearray:
        # One resend on a dropped connection (a restarted head node), with the same request id, so a
        # change already applied is not applied twice; never a second send after a reply.
        sent = False
        for attempt in (1, 2):
            try:
                sock = self._sock or self._connect()
            except HpcError as e:
                raise _maybe_applied(e, request) if sent else e from None
            try:
                protocol.send(sock, request)
                sent = True
                return protocol.receive_body(sock)
            except (ConnectionError, OSError) as e:
                sock.close()
                self._sock = None
                if self._abandoned:
                    stopped = HpcError("OperationStopped", "The cmdlet was stopped while it waited for the head node's "
                                       "reply; the connection was closed.")
                    raise _maybe_applied(stopped, request) from None
                if attempt == 2:
                    raise _maybe_applied(HpcError("CannotConnectWithScheduler",
                                                  f"Lost the connection to the head node: {e}."), request) from None
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        errors = []
        for endpoint in self.endpoints:
            try:
                self._sock = self._greet(endpoint, self._open(endpoint))
                self.endpoint = endpoint
                return self._sock
            except OSError as e:
                down = endpoint.state_dir is None and endpoint.socket_path == SYSTEM_STATE_DIR / SOCKET_NAME
                hint = (" (the machine's head node is not running: root starts it, 'systemctl start hpc-headnode', "
                        "or 'hpc-headnode &' where systemd does not run)")
                where = endpoint.name or "localhost"
                where += f" ({endpoint.describe()})" if endpoint.describe() != endpoint.name else ""
                errors.append(f"{where}: {e.strerror or e}" + (hint if down else ""))
        raise HpcError("CannotConnectWithScheduler", "Cannot connect to the head node: " + "; ".join(errors),
                       ",".join(e.name for e in self.endpoints))

    def _greet(self, endpoint: Endpoint, sock: socket.socket) -> socket.socket:
        """Exchanges versions. An embedded head node of another version is stopped and started again
        from this one (its running jobs are adopted); any other head node must speak our protocol."""
        theirs = _hello(sock)
        if theirs == (protocol.PROTOCOL_VERSION, __version__):
            return sock
        if endpoint.state_dir is None:
            sock.close()
            number, version = theirs
            raise HpcError("VersionMismatch", f"The head node at {endpoint.name or endpoint.socket_path} runs "
                           f"version {version or 'unknown'} (protocol {number}); this client is version "
                           f"{__version__} (protocol {protocol.PROTOCOL_VERSION}). Ask its administrator to "
                           "upgrade it.", endpoint.name)
        _stop(sock)
        sock = self._open(endpoint)
        if _hello(sock) != (protocol.PROTOCOL_VERSION, __version__):
            sock.close()
            raise HpcError("VersionMismatch", f"The head node for {endpoint.state_dir} still runs another "
                           "version after a restart.", endpoint.name)
        return sock

    def _open(self, endpoint: Endpoint) -> socket.socket:
        try:
            return _dial(endpoint)
        except (FileNotFoundError, ConnectionRefusedError):
            if endpoint.state_dir is None:
                raise
        process = start_local_head_node(endpoint)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return _dial(endpoint)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                if process.poll() is not None:  # a head node that is stopping still held the lock: again
                    process = start_local_head_node(endpoint)
                time.sleep(0.02)


def _maybe_applied(error: HpcError, request: dict[str, Any]) -> HpcError:
    """`error`, which ended a change sent whole before its reply was lost (the head node stopped or was
    killed meanwhile): it may have been applied, and the user is told so, and how to know, rather than
    left to send it again (as a new request, it would be applied twice: a second job, a second task)."""
    if "request_id" not in request:
        return error  # a question: nothing was changed
    return HpcError(error.error_id, f"{error.message} The request ({request['op']}) was sent before the connection "
                    "was lost, and the head node may have applied it: once it is back, look at the job (job view, "
                    "Get-HpcJob) before you send it again.", error.target)


def _hello(sock: socket.socket) -> tuple[int, str]:
    """(protocol, version) of the head node; a head node from before "hello" is protocol 1."""
    # A head node that refuses this caller says why at once and hangs up: its reason is waiting to be read.
    with contextlib.suppress(BrokenPipeError):
        protocol.send(sock, {"op": "hello", "args": {"protocol": protocol.PROTOCOL_VERSION, "version": __version__}})
    reply = protocol.receive(sock)
    if not reply.get("ok"):
        error = reply.get("error") or {}
        if error.get("error_id") not in (None, "ProtocolError"):
            raise HpcError.from_wire(error)  # it refuses this caller (PermissionDenied, TooManyConnections)
        protocol.send(sock, {"op": "ping", "args": {}})  # it does not know "hello": its version the old way
        reply = protocol.receive(sock)
    result = reply.get("result") or {}
    return int(result.get("protocol", 1)), str(result.get("version", ""))


def _stop(sock: socket.socket) -> None:
    """Asks a head node to stop and waits until it has let go of its socket."""
    try:
        sock.settimeout(START_TIMEOUT)
        protocol.send(sock, {"op": "shutdown", "args": {}})
        protocol.receive(sock)
        while sock.recv(1 << 16):  # it closes the connection as it goes
            pass
    except OSError:
        pass
    finally:
        sock.close()


def _result(reply: dict[str, Any]) -> Any:
    if not reply.get("ok"):
        raise HpcError.from_wire(reply.get("error") or {"error_id": "ProtocolError", "message": "bad reply"})
    return reply.get("result")


# A counted page as the head node writes it (head.jsontext: compact, keys in the order given, "jobs" last), and
# how each of its jobs begins (HpcJob.to_record: "Id" first).
_COUNTED = re.compile(rb'\{"ok":true,"result":\{"count":(\d+),"last":(\d+|null),(?:"more":(true|false),)?"jobs":\[')
_JOB = b'{"__type__":"HpcJob","Id":'
_SCHEDULER_NAME = re.compile(protocol.SCHEDULER_NAME)
_SURROGATE_HEX = frozenset(b"89abcdefABCDEF")  # the third digit of \uD800 to \uDFFF


def _counted(body: bytearray) -> JobPage | None:
    """A counted page with its jobs' text cut out, unread. None for any other reply (a refusal); for a page
    with an escaped surrogate (the head node escapes text it cannot write as UTF-8: text passed on unread
    must be Unicode, and a lone surrogate is not; read, the module's encoder replaces it); and for one
    that is not what it says (its count of jobs, its last one's id): read, its records say it."""
    match = _COUNTED.match(body)
    if match is None or not body.endswith(b"]}}"):
        return None
    if _escapes_surrogate(body):
        return None
    count, last = int(match[1]), None if match[2] == b"null" else int(match[2])
    start, end = match.end() - 1, len(body) - 2  # the jobs' array: looked at and handed on in place, not copied
    if body.count(_JOB, start, end) != count or (last is None) != (count == 0):
        return None
    last_job = body.rfind(_JOB, start, end) + len(_JOB)
    if last is not None and not body.startswith((b"%d," % last, b"%d}" % last), last_job):
        return None
    return JobPage(count=count, last=last, json=memoryview(body)[start:end], more=match[3] == b"true")


def _escapes_surrogate(text: bytearray) -> bool:
    """Whether JSON text holds an escaped surrogate (\\uD800 to \\uDFFF): a "u" after an odd run of backslashes
    (an even one is that many backslashes of text). Looks only at backslashes, found by memchr: a page of
    5 MB without any takes 0.06 ms (a regular expression took 110 ms)."""
    at = text.find(b"\\")
    while at != -1:
        end = at
        while end < len(text) and text[end] == 0x5C:  # the run of backslashes
            end += 1
        if (end - at) % 2 and text[end:end + 2].lower() == b"ud" and end + 2 < len(text) \
                and text[end + 2] in _SURROGATE_HEX:
            return True
        at = text.find(b"\\", end)
    return False


def _task_page_end(tasks: list[Any], after: list[int] | None, last: Any, more: bool) -> list[int] | None:
    """Where the next page of tasks begins ([task id, subtask id]), or None after the last page. ProtocolError
    for a page whose tasks are not in order after `after` and up to `last`: a broken or hostile head node
    must not keep its client paging, nor hand it a task twice."""
    keys: list[Any] = ([after] if after else []) + [[task.get("TaskId"), task.get("SubTaskId")]
                                                     if isinstance(task, dict) else None for task in tasks]
    if (more and (not tasks or last != keys[-1])) or not all(_task_key(key) for key in keys) or any(
            a >= b for a, b in itertools.pairwise(keys)):
        raise HpcError("ProtocolError", f"The head node sent a page of tasks after {after} that is not in order "
                       f"(ending with {last}).")
    return last if more else None


def _task_key(key: Any) -> bool:
    return isinstance(key, list) and len(key) == 2 and all(type(n) is int for n in key)


def _stamp(result: Any, scheduler: str) -> None:
    """Jobs, tasks, nodes and node groups remember the head node they came from as this client reached it,
    so that their methods, and cmdlets they are piped to, act on that head node (a node piped from
    Get-HpcNode -Scheduler to Set-HpcNodeState was set on the default head node)."""
    if isinstance(result, dict) and isinstance(result.get("tasks"), list):  # a page of tasks
        result = result["tasks"]
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, dict):
            record = next((item[key] for key in _ITEM_RECORDS if key in item), item)  # or a verb's answer
            if isinstance(record, dict) and record.get("__type__") in _STAMPED:
                record["Scheduler"] = scheduler


_ITEM_RECORDS = ("job", "node", "group")  # where a verb's answer for one item keeps its record
_STAMPED = frozenset({"HpcJob", "HpcTask", "HpcNode", "HpcGroup"})


def _join(pages: list[Any]) -> Any:
    if all(isinstance(page, dict) for page in pages):
        return {k: v for page in pages for k, v in page.items()}
    return [item for page in pages for item in page]


def _dial(endpoint: Endpoint) -> socket.socket:
    """A connected socket: Unix, or TCP authenticated with MUNGE. Raises OSError when unreachable."""
    if endpoint.problem is not None:
        raise transport.Unusable(endpoint.problem)
    if endpoint.address is not None:
        return transport.dial(endpoint.address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(endpoint.socket_path))
    except OSError:
        sock.close()
        raise
    return sock


def start_local_head_node(endpoint: Endpoint) -> subprocess.Popen[bytes]:
    """Starts the embedded head node in its own session: it outlives the caller (and its pwsh). Its Python
    ignores the user's PYTHON* variables (-E), as the module's own does (PythonBridge): they are meant for the
    user's Python, and PYTHONHOME naming another one ends the start. So that it still runs this client's own
    code (an installed copy, or a checkout on PYTHONPATH), the folder this hpcpack came from leads its path
    when its own path lacks it."""
    import subprocess  # here: only the first client of a stopped head node pays for it

    assert endpoint.state_dir is not None
    endpoint.state_dir.mkdir(parents=True, exist_ok=True)
    home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    launch = ("import sys; home = sys.argv.pop(1); sys.path[:0] = [] if home in sys.path else [home]; "
              "from hpcpack.head.daemon import main; sys.exit(main())")
    return subprocess.Popen(
        [_python(), "-E", "-c", launch, home, "--state-dir", str(endpoint.state_dir),
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
