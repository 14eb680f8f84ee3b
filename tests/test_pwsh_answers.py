"""What the module does with a head node's answer it cannot read: a listing's pages reach it as the head
node wrote them, unread by Python, so a broken or hostile head node (another machine's, outside our
control: here a socket that answers as one) must end the cmdlet with one clear error, not show wrong objects
or fail with .NET's own exceptions (helper 38)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hpcpack import __version__
from hpcpack.wire import protocol

from .conftest import MODULE, run_pwsh

JOB = b'{"__type__":"HpcJob","Id":1,"Name":"one"}'
Answers = Callable[[int, dict[str, Any]], "bytes | None"]


@contextlib.contextmanager
def head_node_answering(path: Path, page: bytes | None | Answers) -> Iterator[str]:
    """A Unix socket that greets as a head node of this version does and answers every other request with
    `page`, a reply's body exactly as given (None: never), or as `page(connection, request)` gives it
    (connections count from 1). Yields the -Scheduler value that reaches it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    accepted = [0]

    def converse(sock: socket.socket) -> None:
        accepted[0] += 1
        connection = accepted[0]
        with sock, contextlib.suppress(OSError, ConnectionError):
            while True:
                request = protocol.receive(sock)
                if request["op"] == "hello":
                    protocol.send(sock, protocol.reply_ok({"protocol": protocol.PROTOCOL_VERSION,
                                                           "version": __version__}))
                    continue
                answer = page(connection, request) if callable(page) else page
                if answer is not None:
                    sock.sendall(protocol.HEADER.pack(len(answer)) + answer)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=converse, args=(listener.accept()[0],), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"unix:{path}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()


def page(jobs: bytes, count: int = 1, last: int = 1) -> bytes:
    return b'{"ok":true,"result":{"count":%d,"last":%d,"jobs":%s}}' % (count, last, jobs)


@pytest.mark.parametrize("answer, why", [
    (page(b"[" + JOB + b"]garbage]"), "text after the page's jobs"),
    (page(b'[{"__type__":"HpcJob","Id":1,"Name":one}]'), "no JSON"),
    (page(b'[{"__type__":"HpcJob","Id":"one"}]'), "a value its property cannot take"),
    (page(b'[{"__type__":"PythonBridge","Id":1}]'), "a class of the module that is no record"),
    (page(b'[{"__type__":"GetHpcJobCommand","Id":1}]'), "a cmdlet"),
    (page(b'[' + JOB + b',{"__error__":{"error_id":5}}]', count=2), "an error record that is none"),
])
def test_an_answer_the_module_cannot_read_ends_the_cmdlet_with_one_clear_error(tmp_path: Path, answer: bytes,
                                                                               why: str) -> None:
    with head_node_answering(tmp_path / "fake.sock", answer) as scheduler:
        result = run_pwsh("try { Get-HpcJob -State All | ForEach-Object { 'job|' + $_.GetType().Name + '|' + $_.Id } }"
                          " catch { 'error|' + $_.FullyQualifiedErrorId + '|' + $_.CategoryInfo.Category }",
                          env={**os.environ, "CCP_SCHEDULER": scheduler}, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("error|")] == [
        "error|InvalidBackendAnswer,Microsoft.ComputeCluster.CCPPSH.GetHpcJobCommand|InvalidData"], (why, lines)
    assert [line for line in lines if line.startswith("job|")] in ([], ["job|HpcJob|1"]), why  # nothing else


def test_a_page_the_module_can_read_is_shown_as_it_came(tmp_path: Path) -> None:
    """The fake head node above, answering a good page: so the errors there are the answers', not its own."""
    with head_node_answering(tmp_path / "fake.sock", page(b"[" + JOB + b"]")) as scheduler:
        result = run_pwsh("Get-HpcJob -State All | ForEach-Object { 'job|' + $_.Id + '|' + $_.Name + '|' + $_.Scheduler }",
                          env={**os.environ, "CCP_SCHEDULER": scheduler}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("job|")] == ["job|1|one|"]


def test_a_head_node_that_sends_the_same_page_again_ends_the_listing_without_repeating_it(tmp_path: Path) -> None:
    """Helper 39: a head node answering every page with the same full page of 100 jobs made a listing of
    200 objects, each job twice, and no error."""
    jobs = b"[" + b",".join(b'{"__type__":"HpcJob","Id":%d,"Name":"j"}' % i for i in range(1, 101)) + b"]"
    with head_node_answering(tmp_path / "fake.sock", page(jobs, count=100, last=100)) as scheduler:
        result = run_pwsh("try { Get-HpcJob -State All | ForEach-Object { 'job|' + $_.Id } }"
                          " catch { 'error|' + $_.FullyQualifiedErrorId }",
                          env={**os.environ, "CCP_SCHEDULER": scheduler}, timeout=60)
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("job|")] == [f"job|{i}" for i in range(1, 101)]
    assert [line.split(",")[0] for line in lines if line.startswith("error|")] == ["error|ProtocolError"]


def test_a_stop_does_not_wait_for_a_head_node_that_stopped_answering(tmp_path: Path) -> None:
    """Helper 39: PowerShell.Stop() (Ctrl+C) never returned while a cmdlet waited for a head node that had
    stopped answering. The backend gets StopGrace to end its waits and say so; then the cmdlet stops without it."""
    script = ("$ps = [powershell]::Create(); [void]$ps.AddScript(\"Import-Module '$module'; Get-HpcJob -State All\"); "
              "$run = $ps.BeginInvoke(); $deadline = [DateTime]::Now.AddSeconds(20); "
              "while ($ps.InvocationStateInfo.State -eq 'NotStarted' -and [DateTime]::Now -lt $deadline) { Start-Sleep -Milliseconds 50 }; "
              "Start-Sleep -Seconds 2; $ps.Stop(); 'state|' + $ps.InvocationStateInfo.State; "
              # The stopped call still waited on the session's connection, and held it: every later cmdlet of
              # the session for that head node waited behind it, for ever. It is now shut, and they go on.
              "$next = [powershell]::Create(); [void]$next.AddScript(\"Import-Module '$module'; Get-HpcJob -State All\"); "
              "$run = $next.BeginInvoke(); "
              "if ($run.AsyncWaitHandle.WaitOne(20000)) { 'next|' + @($next.EndInvoke($run)).Count } else { 'next|stuck' }")
    listing = page(b"[" + JOB + b"]")
    with head_node_answering(tmp_path / "fake.sock", lambda n, _: None if n == 1 else listing) as scheduler:
        result = run_pwsh(f"$module = '{MODULE}'; " + script, env={**os.environ, "CCP_SCHEDULER": scheduler},
                          import_module=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "state|Stopped" in result.stdout.splitlines() and "next|1" in result.stdout.splitlines(), result.stdout


def test_a_listing_let_go_of_early_does_not_hold_the_session_behind_a_head_node_that_stopped_answering(
        tmp_path: Path) -> None:
    """`Select-Object -First 150` lets go of a listing while its next chunk is being fetched, ahead, from a
    head node that never answers that page. The module does not wait for it, but its request kept the
    session's connection, and the next cmdlet for that head node waited behind it for ever. The request is
    let go of too, and that cmdlet goes on."""
    def answer(connection: int, request: dict[str, Any]) -> bytes | None:
        after, limit = request["args"].get("after") or 0, request["args"]["limit"]
        if after >= 1500:  # the fifth page: never on the first connection, empty (the end) on the others
            return None if connection == 1 else b'{"ok":true,"result":{"count":0,"last":null,"jobs":[]}}'
        jobs = b",".join(JOB.replace(b'"Id":1', b'"Id":%d' % i) for i in range(after + 1, after + limit + 1))
        return page(b"[" + jobs + b"]", count=limit, last=after + limit)
    script = ("@(Get-HpcJob -State All | Select-Object -First 150).Count; "
              "$next = [powershell]::Create(); [void]$next.AddScript(\"Import-Module '$module'; Get-HpcJob -State All\"); "
              "$run = $next.BeginInvoke(); "
              "if ($run.AsyncWaitHandle.WaitOne(20000)) { 'next|' + @($next.EndInvoke($run)).Count } else { 'next|stuck' }")
    with head_node_answering(tmp_path / "fake.sock", answer) as scheduler:
        result = run_pwsh(f"$module = '{MODULE}'; " + script, env={**os.environ, "CCP_SCHEDULER": scheduler}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["150", "next|1500"], result.stdout
