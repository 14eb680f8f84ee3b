"""What one client may hold of the head node's memory and log, whoever it is: the bytes of requests still
arriving, of replies not yet read, the tracebacks of requests that fail, and freed buffers given back to the
system."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator

from ..errors import HpcError
from ..identity import Caller
from ..wire import protocol

log = logging.getLogger("hpcpack.head.headnode")
SMALL_REQUEST = 64 * 1024  # bytes of a request that Unread does not count (all but bulk ones)
MAX_UNREAD_PER_USER = 2 * protocol.MAX_REQUEST  # bytes of a user's requests still arriving (Unread)
MAX_UNREAD = 16 * protocol.MAX_REQUEST  # the same, for all users together
MAX_UNSENT_PER_USER = protocol.MAX_FRAME  # bytes of a user's replies not yet read, past which they wait (Unsent)
MAX_UNSENT = 4 * protocol.MAX_FRAME  # the same, for all users together
UNSENT_WAIT = 30.0  # seconds a request waits for room for its reply before it is refused (Unsent)
FAILURES_LOGGED = 5  # tracebacks of failed requests logged a minute (FailureLog)
LARGE_FRAME = 256 * 1024  # bytes of a frame after which the heap is trimmed soon after (return_freed_memory)


class Shares:
    """Bytes held of the head node's memory, by user and in all."""

    def __init__(self) -> None:
        self.by_user: Counter[int] = Counter()
        self.total = 0

    @contextlib.contextmanager
    def held(self, caller: Caller, size: int) -> Iterator[None]:
        self.by_user[caller.uid] += size
        self.total += size
        try:
            yield
        finally:
            self.by_user[caller.uid] -= size
            self.total -= size
            if not self.by_user[caller.uid]:
                del self.by_user[caller.uid]


class Unread(Shares):
    """Bytes of the requests whose header has come and that are not answered yet: still arriving, or waiting
    for room for their reply (Unsent), by user and in all. A body is held in memory as it arrives, for up to
    the daemon's REQUEST_TIMEOUT: without a bound, a user's connections announcing MAX_REQUEST each and never
    sending the last byte held 128 x 4 MB. A frame that would take a user (an administrator too: each has
    their own share) past MAX_UNREAD_PER_USER, or everyone past MAX_UNREAD, is refused and its connection
    closed, before any of its body is read."""

    @contextlib.contextmanager
    def reserve(self, caller: Caller, size: int) -> Iterator[None]:
        if size <= SMALL_REQUEST:  # no more than asyncio buffers for any connection anyway
            yield
            return
        if self.by_user[caller.uid] + size > MAX_UNREAD_PER_USER or self.total + size > MAX_UNREAD:
            raise HpcError("TooMuchUnread", f"{caller.name}'s requests still arriving at the head node, or waiting "
                           f"for earlier replies to be read (on other connections), hold {self.by_user[caller.uid]:,} "
                           f"bytes, and this one announces {size:,}: more than the head node holds "
                           f"({MAX_UNREAD_PER_USER:,} bytes a user, {MAX_UNREAD:,} in all). Nothing was done; send "
                           "it again once they are answered.")
        with self.held(caller, size):
            yield


class Unsent(Shares):
    """Bytes of the replies written to connections whose clients have not read them yet, by user and in all.
    The head node keeps such a reply in memory until it is read, or for up to the daemon's WRITE_TIMEOUT:
    without a bound, 40 connections of one user that asked for 8 MB listings and never read them grew it
    by 590 MB. A request of a user whose unread replies reach MAX_UNSENT_PER_USER (an administrator too:
    each has their own share), or of anyone with replies unread while all of them reach MAX_UNSENT, waits
    up to UNSENT_WAIT for them to be read, and is then refused, with nothing done. Its body is held meanwhile
    (Unread counts it). A user with nothing unread is always answered, however large the reply (so each user
    holds at most a share and one reply more). The wait is long enough for
    clients that read large replies at once: 8 processes of one user each listing 62 MB at a time waited up
    to 13.5 s (the head node writes one reply after another), and 5 s refused 3 of their 24 listings."""

    def __init__(self) -> None:
        super().__init__()
        self._freed = asyncio.Event()
        self._turns: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)  # by uid (turn)

    async def room(self, caller: Caller) -> HpcError | None:
        """None once `caller` may be answered; else, after UNSENT_WAIT, why not."""
        deadline = time.monotonic() + UNSENT_WAIT
        while self._full(caller):
            if time.monotonic() >= deadline:
                return self._refusal(caller)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), deadline - time.monotonic())
        return None

    @contextlib.asynccontextmanager
    async def turn(self, caller: Caller) -> AsyncIterator[None]:
        """One bulk change of `caller` at a time, begun only if its reply still has room (else TooMuchUnsent
        at once, nothing done: the request has had its wait). A bulk change lets other requests in between
        its batches, and its reply is counted once it is written: 100 of one user's connections, each
        submitting a job of 3.6 MB, all passed `room` before any reply was counted, and held 360 MB."""
        async with self._turns[caller.uid]:
            if self._full(caller):
                raise self._refusal(caller)
            yield

    def _full(self, caller: Caller) -> bool:
        """Past the caller's share, or past everyone's while the caller has some unread: three users each
        holding their share and one more reply filled MAX_UNSENT, and root was refused with nothing unread."""
        mine = self.by_user[caller.uid]
        return mine >= MAX_UNSENT_PER_USER or (mine > 0 and self.total >= MAX_UNSENT)

    def _refusal(self, caller: Caller) -> HpcError:
        return HpcError("TooMuchUnsent", f"Replies that {caller.name} has not read (on other connections) hold "
                        f"{self.by_user[caller.uid]:,} bytes of the head node's memory ({self.total:,} for all "
                        f"users); it keeps at most {MAX_UNSENT_PER_USER:,} a user and {MAX_UNSENT:,} in all. "
                        "Nothing was done: send it again once they are read, or once the programs that asked "
                        "for them have ended.")

    @contextlib.contextmanager
    def hold(self, caller: Caller, size: int) -> Iterator[None]:
        """`size` bytes of a reply to `caller`, until its client has read them (or the block ends otherwise)."""
        try:
            with self.held(caller, size):
                yield
        finally:
            self._freed.set()  # every waiter looks again; later ones wait for the next release
            self._freed = asyncio.Event()


class FailureLog:
    """Tracebacks of failed requests, at most FAILURES_LOGGED a minute: a user who found a request that fails
    could otherwise fill the disk with them (each is the same bug); how many were left out is logged."""

    def __init__(self) -> None:
        self.window = time.monotonic()
        self.logged = self.left_out = 0

    def log(self, error: Exception) -> None:
        if time.monotonic() - self.window >= 60.0:
            if self.left_out:
                log.error("%d more requests failed in the last minute (their tracebacks were not logged)",
                          self.left_out)
            self.window, self.logged, self.left_out = time.monotonic(), 0, 0
        if self.logged < FAILURES_LOGGED:
            self.logged += 1
            log.error("request failed", exc_info=error)
        else:
            self.left_out += 1


def return_freed_memory() -> None:
    """Frees what only cycles hold, then gives back to the system what the heap holds freed (glibc's
    malloc_trim): called after large frames (LARGE_FRAME), once the head node is idle or a few seconds later
    (daemon.Daemon._trim_due).

    Cycles: a large buffer that a cycle holds waits for a collection of the generation it reached, which an
    idle head node may never make (daemon._let_go frees the one known: a request cut off mid-body). Only
    the young generations are collected (a few ms); the whole heap took 35-60 ms with 5,000 active jobs.

    The heap: glibc serves a large buffer from the heap once one of that size was freed, and a heap keeps
    what is freed: after a flood of half-sent 4 MB requests closed, the head node stayed at 1.2 GB. Mapping
    each large buffer for itself instead (a low M_MMAP_THRESHOLD) gave it back at once, but each reply then
    wrote into fresh pages, each a page fault: Get-HpcJob of 5,000 jobs took 436 ms so, 363 ms with the
    heap kept (medians, taking turns)."""
    gc.collect(1)
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator has rules of its own
        ctypes.CDLL(None).malloc_trim(0)
