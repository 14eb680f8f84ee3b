"""No request, input, crash or limit kills, wedges or fools the head node: real head node processes,
real sockets, real SQLite files, a real full disk, real kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hpcpack import __version__
from hpcpack.backends.client import Client
from hpcpack.errors import MAX_SENT, HpcError
from hpcpack.head.limits import MAX_UNSENT, MAX_UNSENT_PER_USER
from hpcpack.wire import protocol

from .conftest import (
    ROOT,
    HeadNodeProcess,
    as_user,
    fill_disk,
    interrupting_proxy,
    needs_root,
    pids_running,
    resident_mb,
    start_head_node,
    user_command,
    wait_until,
)
from .test_security import ended, job_as, tasks_of

ONE_NODE = 'nodes:\n  - {name: NODE1, cores: 4}\nsocket_mode: "0666"\nadministrators: [hpcadmin]\n'


def raw(head: HeadNodeProcess, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """One frame over a fresh connection, exactly as given (no client-side checks); with `timeout`, a reply
    that does not come within it fails the test."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(head.socket))
        protocol.send(sock, message)
        return protocol.receive(sock)


def answers(head: HeadNodeProcess) -> bool:
    return bool(raw(head, {"op": "ping", "args": {}}).get("ok"))


def history(client: Client, job_id: int, event: str) -> list[dict[str, Any]]:
    return [r for r in client.call("history", job_id=job_id) if r["event"] == event]


def test_a_task_that_cannot_start_fails_alone_and_the_head_node_lives(head: HeadNodeProcess, client: Client,
                                                                      users: dict[str, Any]) -> None:
    too_long = client.call("new_job", spec={})["Id"]
    with pytest.raises(HpcError) as refused:
        client.call("add_task", job_id=too_long, spec={"CommandLine": "echo " + "y" * 140_000})
    assert refused.value.error_id == "InvalidArgument" and "CommandLine" in refused.value.message
    # An environment larger than the kernel lets a program start with: the exec fails, the task says why.
    huge_env = client.call("new_job", spec={"JobEnv": [f"V{i}={'x' * 60_000}" for i in range(60)]})["Id"]
    client.call("add_task", job_id=huge_env, spec={"CommandLine": "true"})
    client.call("submit_jobs", ids=[huge_env])
    assert ended(client, huge_env)["State"] == "Failed"
    assert "could not be started: Argument list too long" in tasks_of(client, huge_env)[0]["ErrorMessage"]
    # A job whose owner's account is gone by the time it starts.
    subprocess.run(["useradd", "--no-create-home", "hpcghost"], check=False)
    ghost = job_as("hpcghost", head, {"HoldUntil": "2999-01-01T00:00:00"}, [{"CommandLine": "true"}])
    subprocess.run(["userdel", "hpcghost"], check=True)
    client.call("set_job", id=ghost, spec={"HoldUntil": "2000-01-01T00:00:00"})
    assert ended(client, ghost)["State"] == "Failed"
    assert "has no account on this machine" in tasks_of(client, ghost)[0]["ErrorMessage"], ended(client, ghost)["ErrorMessage"]
    assert answers(head)
    client.close()
    head.stop()  # and no crash loop: it starts again with these jobs stored
    head.process = start_head_node(head.state_dir).process
    assert answers(head)


def test_a_cancel_message_in_a_foreign_encoding_is_refused_by_the_job_command(head: HeadNodeProcess,
                                                                               client: Client) -> None:
    job_id = client.call("new_job", spec={"NumCores": "1"})["Id"]
    client.call("add_task", job_id=job_id, spec={"CommandLine": "sleep 300"})
    client.call("submit_jobs", ids=[job_id])
    wait_until(lambda: tasks_of(client, job_id)[0]["State"] == "Running")
    latin1 = subprocess.run([sys.executable, "-m", "hpcpack.cli", "cancel", str(job_id), b"/message:caf\xe9",
                             f"/scheduler:unix:{head.socket}"], capture_output=True, timeout=60)
    assert latin1.returncode != 0 and b"message" in latin1.stderr and b"unicode" in latin1.stderr.lower()
    assert client.call("get_jobs", ids=[job_id])[0]["State"] == "Running" and answers(head)
    client.call("cancel_jobs", ids=[job_id], message="café", force=True)
    assert ended(client, job_id)["State"] == "Canceled"
    assert ended(client, job_id)["ErrorMessage"] == "café"


def test_one_user_cannot_exhaust_connections_or_the_open_file_limit(head: HeadNodeProcess, client: Client,
                                                                    users: dict[str, Any]) -> None:
    limits = Path(f"/proc/{head.process.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()  # type: ignore[union-attr]
    assert soft == hard
    held = as_user("hpcalice", head, (
        "import socket, struct\n"
        "socks, refused = [], 0\n"
        "for _ in range(200):\n"
        "    s = socket.socket(socket.AF_UNIX); s.connect(c.endpoints[0].socket_path.as_posix()); socks.append(s)\n"
        "    s.settimeout(0.05)\n"
        "    try:\n"
        "        if s.recv(4): refused += 1\n"
        "    except OSError: pass\n"
        "print(refused)\n"))
    assert held.returncode == 0, held.stderr
    assert int(held.stdout) == 200 - 128  # the 129th and later are refused, with a reason
    assert answers(head)


def test_half_sent_large_requests_hold_a_bounded_share_of_memory(head: HeadNodeProcess, users: dict[str, Any]) -> None:
    """Each of a user's connections announces a 4 MB request and sends all of it but its last byte: the head
    node holds two (a user's share), refuses the others with a reason, and serves the user's small requests
    and everyone else meanwhile; once they close, the share is free again."""
    code = (
        "import select, socket, struct\n"
        f"size = {protocol.MAX_REQUEST}\n"
        "socks = []\n"
        "for _ in range(8):\n"
        "    s = socket.socket(socket.AF_UNIX); s.connect(c.endpoints[0].socket_path.as_posix()); socks.append(s)\n"
        "    s.sendall(struct.pack('!I', size)); s.setblocking(False)\n"
        "    try: s.send(b' ' * (size - 1))\n"
        "    except OSError: pass\n"
        "refused, waiting = [], list(socks)\n"
        "while len(refused) < 6 and waiting:\n"
        "    ready = select.select(waiting, [], [], 10)[0]\n"
        "    if not ready: break\n"
        "    for s in ready:\n"
        "        waiting.remove(s); s.setblocking(True); s.settimeout(10)\n"
        "        refused.append(json.loads(s.recv(1 << 16)[4:])['error']['error_id'])\n"
        "print(json.dumps(refused)); print(c.call('ping')['user'], flush=True)\n"
        "sys.stdin.readline()\n"  # the held ones stay open until the test has looked
        "for s in socks: s.close()\n"
        "import time\n"
        "for _ in range(100):\n"  # (until the head node has seen them close)
        "    try: print(c.call('lookup_jobs', ids=list(range(10**6, 10**6 + 10_000)))[0]['error']['error_id']); break\n"
        "    except HpcError: time.sleep(0.1)\n")
    with subprocess.Popen(user_command("hpcalice", head, code), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, cwd="/tmp") as alice:
        assert alice.stdin is not None and alice.stdout is not None
        refused, user = alice.stdout.readline(), alice.stdout.readline().strip()
        assert answers(head)  # the held requests hold up no one
        alice.stdin.write("\n")
        alice.stdin.close()
        listed = alice.stdout.read().strip()
        assert alice.wait(60) == 0
    assert json.loads(refused) == ["TooMuchUnread"] * 6 and user == "hpcalice" and listed == "InvalidJobId"


def test_replies_nobody_reads_hold_a_bounded_share_of_memory(head: HeadNodeProcess, client: Client,
                                                             users: dict[str, Any]) -> None:
    """Alice asks for an 8 MB listing on each of 40 connections and reads none: the head node keeps replies up
    to her share (MAX_UNSENT_PER_USER), refuses the rest after a short wait with a reason and nothing done,
    serves everyone else meanwhile, and gives the memory back once her connections close. It kept every
    reply before (40 x 8 MB: 590 MB more), and kept that memory after they closed."""
    code = (
        "import select, socket\n"
        "from hpcpack.wire import protocol\n"
        "for i in range(40):\n"
        "    c.call('new_job', spec={'Name': f'big{i}', 'JobEnv': [f'V{n}={\"x\" * 50_000}' for n in range(4)]})\n"
        "print(len(c.call('get_jobs', state='All')), flush=True); sys.stdin.readline()\n"
        "socks = []\n"
        "for _ in range(40):\n"
        "    s = socket.socket(socket.AF_UNIX); s.connect(c.endpoints[0].socket_path.as_posix()); socks.append(s)\n"
        "    s.sendall(protocol.encode({'op': 'get_jobs', 'args': {'state': 'All'}}))\n"
        "import time\n"
        "for _ in range(100):\n"  # answered until her share is full; then refused, after the listings are settled
        "    try: c.call('ping'); time.sleep(0.1)\n"
        "    except HpcError as e: print(e.error_id, flush=True); break\n"
        "else: print('all answered', flush=True)\n"
        "sys.stdin.readline()\n"
        "sizes = []\n"
        "for s in socks:\n"
        "    s.settimeout(30); f = s.makefile('rb')\n"
        "    body = f.read(protocol.frame_length(f.read(protocol.HEADER.size)))\n"
        "    reply = protocol.decode(body)\n"
        "    sizes.append(len(body) if reply['ok'] else reply['error']['error_id'])\n"
        "    f.close(); s.close()\n"
        "print(json.dumps(sizes)); print(c.call('ping')['user'], flush=True)\n")
    pid = head.process.pid
    with subprocess.Popen(user_command("hpcalice", head, code), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, cwd="/tmp") as alice:
        assert alice.stdin is not None and alice.stdout is not None
        assert alice.stdout.readline().strip() == "40"
        time.sleep(1.5)  # idle: what the listing took is given back
        before = resident_mb(pid)
        alice.stdin.write("\n")
        alice.stdin.flush()
        refused = alice.stdout.readline().strip()
        grown = resident_mb(pid) - before
        assert client.call("ping")["user"] == "root"  # everyone else is served meanwhile
        alice.stdin.write("\n")
        alice.stdin.close()
        sizes, user = json.loads(alice.stdout.readline()), alice.stdout.readline().strip()
        assert alice.wait(60) == 0
    assert refused == "TooMuchUnsent" and user == "hpcalice"
    read = [size for size in sizes if size != "TooMuchUnsent"]
    assert len(read) + sizes.count("TooMuchUnsent") == 40 and len(set(read)) == 1
    # Answered until her unread replies reached her share, and no further:
    assert (len(read) - 1) * read[0] < MAX_UNSENT_PER_USER <= len(read) * read[0]
    assert grown < 3 * MAX_UNSENT_PER_USER / 2**20, grown  # (each held reply and the transport's copy of it)
    assert wait_until(lambda: client.call("ping") and resident_mb(pid) - before < 16, 15, 0.1)


def test_bulk_changes_past_a_users_share_of_unread_replies_are_refused_with_nothing_done(
        head: HeadNodeProcess, users: dict[str, Any]) -> None:
    """Alice's 48 connections each submit a job of 2 MB and read nothing. A bulk change lets other requests
    in between its batches and its reply is counted once written, so all passed the check for room before
    any reply was counted, and every reply was kept (helper 40: 100 of 3.6 MB, 360 MB). Her bulk changes
    now take turns, each begun only with room for its reply: her share is kept and no more; the others are
    refused with their jobs left as they were."""
    code = (
        "import select, socket\n"
        "from hpcpack.wire import protocol\n"
        "ids = [c.call('new_job', spec={'Name': f'b{i}', 'RunUntilCanceled': True,\n"
        "                               'JobEnv': [f'V{n}=' + 'x' * 50_000 for n in range(40)]})['Id'] for i in range(48)]\n"
        "socks = []\n"
        "for job_id in ids:\n"
        "    s = socket.socket(socket.AF_UNIX); s.connect(c.endpoints[0].socket_path.as_posix()); socks.append(s)\n"
        "    s.sendall(protocol.encode({'op': 'submit_jobs', 'args': {'ids': [job_id]}}))\n"
        "waiting = list(socks)\n"
        "for _ in range(1200):\n"  # every reply has begun to come before any is read
        "    waiting = [s for s in waiting if s not in select.select(waiting, [], [], 0.1)[0]]\n"
        "    if not waiting: break\n"
        "sizes = []\n"
        "for s in socks:\n"
        "    f = s.makefile('rb'); body = f.read(protocol.frame_length(f.read(protocol.HEADER.size)))\n"
        "    reply = protocol.decode(body)\n"
        "    sizes.append(len(body) if reply['ok'] else reply['error']['error_id'])\n"
        "    f.close(); s.close()\n"
        "print(json.dumps([sizes, [job['State'] for job in c.call('get_jobs', ids=ids, fields=['State'])]]))\n")
    alice = as_user("hpcalice", head, code)
    assert alice.returncode == 0, alice.stderr
    sizes, states = json.loads(alice.stdout)
    read = [size for size in sizes if size != "TooMuchUnsent"]
    assert len(read) + sizes.count("TooMuchUnsent") == 48
    assert sum(read) - max(read) < MAX_UNSENT_PER_USER <= sum(read)  # her share, reached and no further
    assert [state == "Configuring" for state in states] == [size == "TooMuchUnsent" for size in sizes]


@pytest.mark.parametrize("counted", [False, True])
def test_a_reply_past_the_limit_of_a_message_is_refused_before_it_is_written(head: HeadNodeProcess,
                                                                             client: Client, counted: bool) -> None:
    """One job of 200 KB asked for 10,000 times, as a list and as a page: its reply, 2 GB, was written whole
    before its size was found too large, and took 4 GB and 23-45 s of the head node, everyone waiting
    (helpers 40 and 41). Now the list is refused once it passes the limit, and the page ends where its
    text fills a page (protocol.PAGE_BYTES), saying that more follow."""
    job_id = client.call("new_job", spec={"Name": "big", "JobEnv": [f"V{n}={'x' * 1000}" for n in range(200)]})["Id"]
    status = Path(f"/proc/{head.process.pid}/status")
    Path(f"/proc/{head.process.pid}/clear_refs").write_text("5")  # its peak (VmHWM) starts again from here

    def peak_mb() -> float:
        return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:")) / 1024
    before = peak_mb()
    reply = raw(head, {"op": "get_jobs", "args": {"ids": [job_id] * protocol.MAX_IDS, "counted": counted}})
    if counted:
        page = reply["result"]
        assert (page["count"], page["last"], page["more"]) == (len(page["jobs"]), job_id, True), reply["ok"]
        size = len(json.dumps(page["jobs"][0], separators=(",", ":")))
        assert protocol.PAGE_BYTES <= size * page["count"] < protocol.PAGE_BYTES + size
    else:
        assert not reply["ok"] and reply["error"]["error_id"] == "ProtocolError", reply
    assert peak_mb() - before < 8 * protocol.MAX_FRAME / 2**20
    assert client.call("get_jobs", ids=[job_id])[0]["Id"] == job_id


def test_a_change_whose_reply_is_past_the_limit_of_a_message_says_what_it_changed(head: HeadNodeProcess,
                                                                                  client: Client) -> None:
    """360 jobs of 200 KB submitted at once: their records pass the limit of a message. The jobs were
    submitted, and the client was told ProtocolError (helper 41). Now it gets what a resend gets: each
    job's id, or its error, without its record."""
    ids = [client.call("new_job", spec={"Name": f"s{i}", "RunUntilCanceled": True,
                                        "JobEnv": [f"V{n}={'x' * 50_000}" for n in range(4)]})["Id"] for i in range(360)]
    reply = raw(head, {"op": "submit_jobs", "args": {"ids": ids}})
    assert reply["ok"], reply
    assert [item["id"] for item in reply["result"]] == ids and not any("job" in item for item in reply["result"])
    assert "Configuring" not in {job["State"] for job in client.call("get_jobs", ids=ids, fields=["State"])}


def test_users_who_fill_everyones_share_of_unread_replies_do_not_hold_up_the_others(head: HeadNodeProcess,
                                                                                   client: Client,
                                                                                   users: dict[str, Any]) -> None:
    """Three users each ask for two 64 MB replies and read none: together they pass MAX_UNSENT, and root,
    with nothing unread, waited 30 s and was refused (helper 41). A user with nothing unread is answered."""
    code = (
        "import socket\n"
        "from hpcpack.wire import protocol\n"
        "job_id = c.call('new_job', spec={'Name': 'big', 'JobEnv': [f'V{n}=' + 'x' * 50_000 for n in range(4)]})['Id']\n"
        "socks = [socket.socket(socket.AF_UNIX) for _ in range(2)]\n"
        "for s in socks:\n"
        "    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); s.connect(c.endpoints[0].socket_path.as_posix())\n"
        "    s.sendall(protocol.encode({'op': 'get_jobs', 'args': {'ids': [job_id] * 320}}))\n"
        "print('sent', flush=True); sys.stdin.readline()\n")
    pid = head.process.pid
    before = resident_mb(pid)
    with contextlib.ExitStack() as stack:
        hogs = [stack.enter_context(subprocess.Popen(user_command(user, head, code), stdin=subprocess.PIPE,
                                                     stdout=subprocess.PIPE, text=True, cwd="/tmp"))
                for user in ("hpcalice", "hpcbob", "hpcadmin")]
        assert [hog.stdout.readline().strip() for hog in hogs if hog.stdout] == ["sent"] * 3
        assert wait_until(lambda: resident_mb(pid) - before > MAX_UNSENT / 2**20, 60, 0.1)
        assert raw(head, {"op": "ping", "args": {}}, timeout=10)["ok"]  # (root waited 30 s, then was refused)
        for hog in hogs:
            assert hog.stdin is not None
            hog.stdin.close()
            assert hog.wait(60) == 0


def test_id_lists_are_bounded_and_the_client_pages_long_ones(head: HeadNodeProcess, client: Client) -> None:
    reply = raw(head, {"op": "lookup_jobs", "args": {"ids": list(range(1, protocol.MAX_IDS + 2))}})
    assert not reply["ok"] and reply["error"]["error_id"] == "InvalidArgument" and "ids" in reply["error"]["message"]
    results = client.call("lookup_jobs", ids=list(range(1, 25_001)))
    assert len(results) == 25_000 and [r["id"] for r in results] == list(range(1, 25_001))
    assert answers(head)


@pytest.mark.parametrize(("tasks", "job", "reason"), [
    ([{"CommandLine": "true", "Name": "a", "Depend": ["b"]}, {"CommandLine": "true", "Name": "b", "Depend": ["a"]}],
     {}, "form a cycle"),
    ([{"CommandLine": "true", "Name": "a", "Depend": ["a"]}], {}, "cycle, so none of them can start: a -> a"),
    ([{"CommandLine": "true", "Depend": ["nobody"]}], {}, "do not exist: nobody"),
    ([{"CommandLine": "true", "NumCores": "6"}], {}, "needs 6 cores on one node; the largest node has 4"),
    ([{"CommandLine": "true"}], {"NumCores": "64"}, "the cluster has 8"),
    ([{"CommandLine": "true", "NumCores": "3"}], {"NumCores": "1-2"}, "the job may have at most 2"),
])
def test_jobs_that_could_never_run_fail_validation_with_a_reason(state_dir: Path, tasks: list[dict[str, Any]],
                                                                 job: dict[str, Any], reason: str) -> None:
    head = start_head_node(state_dir, ONE_NODE.replace("cores: 4}", "cores: 4}\n  - {name: NODE2, cores: 4}"))
    try:
        client = head.client()
        job_id = client.call("new_job", spec=job)["Id"]
        for task in tasks:
            client.call("add_task", job_id=job_id, spec=task)
        client.call("submit_jobs", ids=[job_id])
        failed = ended(client, job_id, 10)
        assert failed["State"] == "Failed" and reason in failed["ErrorMessage"], failed
        client.close()
    finally:
        head.stop()


def test_refused_changes_change_nothing(head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    job_id = client.call("new_job", spec={})["Id"]
    client.call("add_task", job_id=job_id, spec={"CommandLine": "exit 1"})
    client.call("submit_jobs", ids=[job_id])
    assert ended(client, job_id)["State"] == "Failed"
    with pytest.raises(HpcError, match="requeue the job"):
        client.call("requeue_task", job_id=job_id, task_id=1)
    assert tasks_of(client, job_id)[0]["State"] == "Failed"
    with pytest.raises(HpcError, match="cannot be added"):
        client.call("add_task", job_id=job_id, spec={"CommandLine": "true"})
    assert len(tasks_of(client, job_id)) == 1
    assert "error" not in client.call("submit_jobs", ids=[job_id])[0]  # the job itself requeues fine
    assert ended(client, job_id)["State"] == "Failed" and answers(head)
    before = [j["Id"] for j in client.call("get_jobs", state="All")]
    for attributes, problem in (('NiceId="abc"', 'NiceId="abc"'), ('MinCores="many"', "'many-many' is not valid")):
        path = tmp_path / "job.xml"
        path.write_text(f'<Job Name="bad"><Tasks><Task CommandLine="true" NiceId="1"/>'
                        f'<Task CommandLine="true" {attributes} UnitType="Core"/></Tasks></Job>')
        from hpcpack.model.jobxml import read_job_file
        with pytest.raises(HpcError) as refused:
            spec, task_specs = read_job_file(str(path))
            client.call("new_job", spec=spec, tasks=task_specs)
        assert refused.value.error_id in ("InvalidJobFile", "InvalidArgument") and problem in refused.value.message
    assert [j["Id"] for j in client.call("get_jobs", state="All")] == before  # no half-built job


def test_repeated_cancels_are_applied_and_logged_once_and_escalations_are_recorded(head: HeadNodeProcess,
                                                                                    client: Client) -> None:
    ready = head.state_dir.parent / f"{head.state_dir.name}-ready"
    job_id = client.call("new_job", spec={})["Id"]
    client.call("add_task", job_id=job_id, spec={"CommandLine": f"trap '' TERM; touch {ready}; sleep 300"})
    client.call("submit_jobs", ids=[job_id])
    wait_until(ready.exists)  # the program ignores TERM from here on
    errors: list[Any] = []

    def cancel(**kind: bool) -> None:
        c = head.client()
        errors.extend(r for r in c.call("cancel_jobs", ids=[job_id], **kind) if "error" in r)
        c.close()
    threads = [threading.Thread(target=cancel, kwargs={"graceful": True}) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(3):
        cancel()  # an escalation, then repeats of it (the task ignores TERM: the job stays Canceling)
    cancel(force=True)
    assert errors == [], client.call("history", job_id=job_id)
    assert [len(history(client, job_id, kind)) for kind in ("graceful", "cancel", "force")] == [1, 1, 1]
    assert ended(client, job_id)["State"] == "Canceled"
    ready.unlink()


def test_a_resent_request_is_applied_once(head: HeadNodeProcess, client: Client) -> None:
    request = {"op": "new_job", "args": {"spec": {"Name": "once"}}, "request_id": "abc123"}
    first, second = raw(head, request), raw(head, request)
    assert first == second and first["ok"]
    assert [j["Name"] for j in client.call("get_jobs", state="All")] == ["once"]
    other = raw(head, {**request, "request_id": "abc124"})
    assert other["result"]["Id"] == first["result"]["Id"] + 1


def test_two_head_nodes_never_share_a_state_folder(head: HeadNodeProcess) -> None:
    (head.state_dir / "headnode.lock").unlink()
    second = subprocess.run([sys.executable, "-m", "hpcpack.head.daemon", "--state-dir", str(head.state_dir)],
                            capture_output=True, text=True, timeout=30)
    assert second.returncode == 3 and "already runs" in second.stderr
    assert answers(head)


@needs_root  # mounts a small tmpfs
def test_a_full_disk_refuses_changes_without_acting_and_loses_nothing(small_disk: Path) -> None:
    head = start_head_node(small_disk, ONE_NODE)
    try:
        client = head.client()
        running = client.call("new_job", spec={})["Id"]
        client.call("add_task", job_id=running, spec={"CommandLine": "sleep 3021"})
        quick = client.call("new_job", spec={})["Id"]
        client.call("add_task", job_id=quick, spec={"CommandLine": "sleep 1; exit 0"})
        client.call("submit_jobs", ids=[running, quick])
        wait_until(lambda: all(tasks_of(client, j)[0]["State"] == "Running" for j in (running, quick)))
        [sleeper] = wait_until(lambda: pids_running(b"sleep", b"3021"))  # its program, started
        fill_disk(small_disk / "filler")
        with pytest.raises(HpcError) as refused:
            client.call("cancel_jobs", ids=[running], force=True)
        assert refused.value.error_id == "StorageFailure" and "nothing was changed" in refused.value.message
        assert Path(f"/proc/{sleeper}").exists()  # a refused cancel kills nothing
        time.sleep(1.5)  # the quick task exits while nothing can be written
        assert client.call("get_jobs", ids=[running])[0]["State"] == "Running"  # reads still work
        (small_disk / "filler").unlink()
        assert ended(client, quick)["State"] == "Finished"
        assert tasks_of(client, quick)[0]["ExitCode"] == 0  # recorded once there was room, not "killed"
        client.call("cancel_jobs", ids=[running], force=True)
        assert ended(client, running)["State"] == "Canceled" and answers(head)
        client.close()
    finally:
        head.stop()
        for pid in pids_running(b"sleep", b"3021"):  # a failed run leaves nothing behind either
            os.kill(pid, 9)


@pytest.mark.parametrize("operation", ["cancel", "submit", "requeue"])
def test_kill_9_during_a_bulk_change_loses_nothing_and_duplicates_nothing(state_dir: Path, operation: str) -> None:
    """Many trials: the head node is killed at a random moment of a bulk cancel, submit or requeue of
    120 jobs; after a restart, the client's resend (same request id) finishes it. Every job has had
    the change exactly once, in its history too; no cancel ever left a task killed without its record."""
    rng = random.Random(operation)
    head = start_head_node(state_dir, ONE_NODE)
    try:
        for trial in range(4):
            _bulk_change_killed_midway(head, operation, trial, rng.uniform(0.0, 0.08))
    finally:
        head.stop()


def _bulk_change_killed_midway(head: HeadNodeProcess, operation: str, trial: int, delay: float) -> None:
    client = head.client()
    command = "exit 1" if operation == "requeue" else "sleep 300"
    ids = [client.call("new_job", spec={"NumCores": "1"})["Id"] for _ in range(120)]
    for job_id in ids:
        client.call("add_task", job_id=job_id, spec={"CommandLine": command})
    if operation != "submit":
        client.call("submit_jobs", ids=ids)
        settled = {"cancel": lambda j: j["State"] == "Running", "requeue": lambda j: j["State"] == "Failed"}[operation]
        wanted = 4 if operation == "cancel" else len(ids)
        wait_until(lambda: sum(map(settled, client.call("get_jobs", ids=ids))) == wanted, 60)
    client.close()
    op = "cancel_jobs" if operation == "cancel" else "submit_jobs"
    request = {"op": op, "args": {"ids": ids}, "request_id": f"{operation}{trial}"}
    sender = threading.Thread(target=lambda: _ignore_errors(raw, head, request))
    sender.start()
    time.sleep(delay)
    head.kill()
    sender.join()
    head.process = start_head_node(head.state_dir).process
    assert raw(head, request)["ok"]  # the resend, with the same request id
    client = head.client()
    event = {"cancel": "cancel", "submit": "submit", "requeue": "requeue"}[operation]
    for job_id in ids:
        assert len(history(client, job_id, event)) == 1, (operation, trial, job_id)
        if operation == "cancel":
            assert ended(client, job_id)["State"] == "Canceled"
            units = tasks_of(client, job_id)
            assert all(t["State"] == "Canceled" or "canceled" in t["ErrorMessage"].lower() for t in units), units
    client.call("cancel_jobs", ids=ids, force=True)  # the next trial gets the cores
    for job_id in ids:
        ended(client, job_id)
    client.close()


def _ignore_errors(function: Any, *args: Any) -> None:
    with contextlib.suppress(OSError, HpcError):  # the head node dies under it: that is the point
        function(*args)


def _older_build(tmp: Path) -> Path:
    """This source tree as an older release would be: another version, protocol 1, no "hello"."""
    old = tmp / "old-src"
    shutil.copytree(ROOT / "src" / "hpcpack", old / "hpcpack")
    init = old / "hpcpack" / "__init__.py"
    init.write_text(re.sub(r'__version__ = .*', '__version__ = "0.0.9"', init.read_text()))
    ops = old / "hpcpack" / "wire" / "operations.py"
    ops.write_text(ops.read_text().replace('    "hello": Hello,\n', ""))
    proto = old / "hpcpack" / "wire" / "protocol.py"
    proto.write_text(re.sub(r"PROTOCOL_VERSION = \d+", "PROTOCOL_VERSION = 1", proto.read_text()))
    return old


def test_an_embedded_head_node_of_another_version_is_replaced_and_its_jobs_adopted(tmp_path: Path,
                                                                                    state_dir: Path) -> None:
    old = _older_build(tmp_path)
    env = {**os.environ, "HPCPACK_HOME": str(state_dir), "PYTHONPATH": str(old)}
    env.pop("CCP_SCHEDULER", None)
    ready = tmp_path / "ready"
    made = subprocess.run([sys.executable, "-c", (
        "from hpcpack.backends.client import Client\nc = Client()\n"
        "j = c.call('new_job', spec={})\n"
        f"c.call('add_task', job_id=j['Id'], spec={{'CommandLine': 'touch {ready}; sleep 2; exit 7'}})\n"
        "c.call('submit_jobs', ids=[j['Id']])\nprint(c.call('ping')['pid'])\n")],
        env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    old_pid = int(made.stdout)
    wait_until(ready.exists)
    os.environ["HPCPACK_HOME"] = str(state_dir)
    try:
        client = Client()
        hello = client.call("ping")
        assert hello["version"] == __version__ and hello["pid"] != old_pid
        wait_until(lambda: not Path(f"/proc/{old_pid}").exists())
        job = ended(client, 1)
        assert job["State"] == "Failed" and tasks_of(client, 1)[0]["ExitCode"] == 7  # adopted, run to its end
        client.call("shutdown")
        client.close()
    finally:
        del os.environ["HPCPACK_HOME"]


def test_a_machine_wide_head_node_of_another_version_gives_a_clear_error(tmp_path: Path, state_dir: Path) -> None:
    old = _older_build(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "hpcpack.head.daemon", "--state-dir", str(state_dir)],
                               env={**os.environ, "PYTHONPATH": str(old)}, start_new_session=True)
    try:
        wait_until(lambda: (state_dir / "headnode.sock").exists())
        with pytest.raises(HpcError) as refused:
            Client(f"unix:{state_dir / 'headnode.sock'}").call("get_jobs")
        assert refused.value.error_id == "VersionMismatch"
        assert "0.0.9" in refused.value.message and __version__ in refused.value.message
        assert process.poll() is None  # left running: it is not ours to replace
    finally:
        process.terminate()
        process.wait(10)


def test_random_requests_never_take_the_head_node_down(head: HeadNodeProcess, client: Client) -> None:
    """Bounded fuzzing (hypothesis): well-formed and malformed requests of every operation; after each,
    the head node still answers, and at the end its database is intact and its jobs consistent."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from hpcpack.wire.operations import OPERATIONS

    json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
                               | st.text(max_size=40), lambda inner: st.lists(inner, max_size=4)
                               | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
    keys = st.sampled_from(["ids", "id", "job_id", "task_id", "sub_id", "spec", "message", "state", "force",
                            "graceful", "timeout", "values", "tasks", "expand", "full", "owner"])
    ops = st.sampled_from(sorted(set(OPERATIONS) - {"shutdown", "wait_jobs"})) | st.text(max_size=10)
    requests = st.fixed_dictionaries({"op": ops, "args": st.dictionaries(keys, json_values, max_size=4)})
    sent = {"count": 0}

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests)
    def probe(request: dict[str, Any]) -> None:
        reply = raw(head, request)
        sent["count"] += 1
        assert set(reply) <= {"ok", "result", "error"}
        assert reply["ok"] or reply["error"]["error_id"] != "InternalError", reply
    probe()
    assert sent["count"] >= 400 and answers(head)
    with sqlite3.connect(head.state_dir / "headnode.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for job in client.call("get_jobs", state="All"):
        assert job["State"] in ("Configuring", "Submitted", "Validating", "Queued", "Running", "Canceling",
                                "Finishing", "Finished", "Failed", "Canceled")
        if job["State"] in ("Configuring", "Queued", "Finished", "Failed", "Canceled"):
            assert job["CurrentAllocation"] == 0, job



def test_job_lists_come_in_pages_however_many_jobs_there_are(head: HeadNodeProcess, client: Client,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [client.call("new_job", spec={"Name": f"j{i}"})["Id"] for i in range(10)]
    page = raw(head, {"op": "get_jobs", "args": {"state": "All", "after": 3, "limit": 3}})["result"]
    assert [j["Id"] for j in page] == [4, 5, 6]
    monkeypatch.setattr(protocol, "MAX_IDS", 3)  # the client's page size: four pages for ten jobs
    sent: list[dict[str, Any]] = []
    exchange = client._exchange
    monkeypatch.setattr(client, "_exchange", lambda request: sent.append(request) or exchange(request))
    assert [j["Id"] for j in client.call("get_jobs", state="All")] == ids
    assert [r["args"].get("after") for r in sent] == [None, 3, 6, 9]


def test_a_listing_asks_for_a_small_page_first_and_larger_ones_as_it_is_read(client: Client,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Select-Object -First 10 costs the head node one page of FIRST_PAGE jobs; reading on doubles the pages."""
    from hpcpack.backends.contract import JobQuery
    from hpcpack.backends.headnode import FIRST_PAGE, HeadNodeBackend
    ids = [client.call("new_job", spec={"Name": "p"})["Id"] for _ in range(FIRST_PAGE * 2 + 50)]
    sent: list[dict[str, Any]] = []
    exchange = client._exchange
    monkeypatch.setattr(client, "_exchange", lambda request: sent.append(request["args"]) or exchange(request))
    listing = HeadNodeBackend(client).query_jobs(JobQuery(state="All"))
    assert [next(listing)["Id"] for _ in range(10)] == ids[:10]
    assert [(r["after"], r["limit"]) for r in sent] == [(None, FIRST_PAGE)]
    assert [j["Id"] for j in listing] == ids[10:]
    assert [(r["after"], r["limit"]) for r in sent] == [(None, FIRST_PAGE), (ids[FIRST_PAGE - 1], 2 * FIRST_PAGE)]


def test_the_memory_of_large_frames_goes_back_to_the_system_within_seconds_even_while_busy(
        head: HeadNodeProcess, client: Client) -> None:
    """Large requests cut off mid-body left theirs in a cycle of asyncio's objects: it goes back within
    seconds, though a client keeps the head node busy meanwhile (it pings without pause while the test
    waits). Large replies are let go of once read: a connection kept its last one (and its last request)
    in memory while it stayed idle, so the test's client, idle after its listings, held 8 MB until its
    next request; now what they took goes back while only other connections keep the head node busy."""
    for i in range(40):
        client.call("new_job", spec={"Name": f"big{i}", "JobEnv": [f"V{n}={'x' * 50_000}" for n in range(4)]})
    pid = head.process.pid

    def gives_back(load: Callable[[], None]) -> None:
        time.sleep(1.5)  # idle: what came before is given back
        before = resident_mb(pid)
        load()
        grown = resident_mb(pid) - before
        assert grown > 6, grown  # (else this shows nothing)
        assert wait_until(lambda: client.call("ping") and resident_mb(pid) - before < grown / 2, 15, 0.1)

    def listings() -> None:
        for _ in range(3):
            assert len(client.call("get_jobs", state="All")) == 40  # 8 MB each

    def cut_off_requests() -> None:
        for _ in range(3):
            with contextlib.ExitStack() as stack:
                for _ in range(2):
                    sock = stack.enter_context(socket.socket(socket.AF_UNIX))
                    sock.connect(str(head.socket))
                    sock.sendall(struct.pack("!I", protocol.MAX_REQUEST) + b" " * (protocol.MAX_REQUEST - 1))
                assert answers(head)  # (the bodies have arrived)

    gives_back(cut_off_requests)
    time.sleep(1.5)
    before = resident_mb(pid)
    listings()
    assert wait_until(lambda: answers(head) and resident_mb(pid) - before < 6, 15, 0.1)


@pytest.mark.parametrize(("spec", "field"), [
    ({"ParentJobIds": [10**20]}, "ParentJobIds"),
    ({"Priority": 10**30}, "Priority"),
    ({"Priority": "Normal+" + "9" * 5000}, "Priority"),
    ({"NumCores": "1-99999999999999999999999"}, "NumCores"),
    ({"NumNodes": "2147483648"}, "NumNodes"),
    ({"RunTime": "99999999:0:0"}, "RunTime"),
    ({"RunTime": "24855:3:15"}, "RunTime"),
    ({"TaskExecutionFailureRetryLimit": "9" * 5000}, "TaskExecutionFailureRetryLimit"),
])
def test_numbers_beyond_int32_are_refused_and_scheduling_goes_on(client: Client, spec: dict[str, Any],
                                                                 field: str) -> None:
    with pytest.raises(HpcError) as refused:
        client.call("new_job", spec=spec)
    assert field in refused.value.message
    job_id = client.call("new_job", spec={})["Id"]
    client.call("add_task", job_id=job_id, spec={"CommandLine": "true"})
    client.call("submit_jobs", ids=[job_id])
    assert ended(client, job_id)["State"] == "Finished"


def test_a_million_step_sweep_costs_a_window_of_steps_and_more_is_refused(head: HeadNodeProcess,
                                                                           client: Client) -> None:
    job_id = client.call("new_job", spec={})["Id"]
    with pytest.raises(HpcError) as refused:
        client.call("add_task", job_id=job_id, spec={"CommandLine": "echo *", "Type": "ParametricSweep",
                                                     "Start": 1, "End": 1_000_001})
    assert refused.value.error_id == "ArgumentOutOfRange" and "1,000,000" in refused.value.message
    client.call("add_task", job_id=job_id, spec={"CommandLine": "echo *", "Type": "ParametricSweep",
                                                 "Start": 1, "End": 1_000_000})
    wait_until(lambda: len(tasks_of(client, job_id)) == 1_000)  # the first window; the rest come as steps end
    assert client.call("get_jobs", ids=[job_id])[0]["TaskCount"] == 1_000_000 and answers(head)
    client.call("submit_jobs", ids=[job_id])
    wait_until(lambda: client.call("get_jobs", ids=[job_id])[0]["State"] == "Running")
    client.call("cancel_jobs", ids=[job_id], force=True)
    job = ended(client, job_id)
    assert job["State"] == "Canceled" and job["CanceledTaskCount"] + job["FinishedTaskCount"] + job[
        "FailedTaskCount"] == 1_000_000
    [sweep] = client.call("get_tasks", job_id=job_id, expand=False)
    assert sweep["State"] == "Canceled"


def test_a_request_id_is_bound_to_its_operation(head: HeadNodeProcess, client: Client) -> None:
    made = raw(head, {"op": "new_job", "args": {"spec": {"Name": "a"}}, "request_id": "same1"})
    other = raw(head, {"op": "set_job", "args": {"id": made["result"]["Id"], "spec": {"Name": "b"}},
                       "request_id": "same1"})
    assert other["ok"] and other["result"]["Name"] == "b"  # applied, not the new_job's stored reply


def test_half_sent_and_deeply_nested_frames_are_refused(head: HeadNodeProcess) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(head.socket))
        sock.sendall(protocol.HEADER.pack(protocol.MAX_REQUEST + 1))
        reply = protocol.receive(sock)
    assert reply["error"]["error_id"] == "ProtocolError"
    deep = raw(head, {"op": "new_job", "args": {"spec": {"x": [[[[[[[[[[1]]]]]]]]]]}}})
    assert deep["error"]["error_id"] == "InvalidArgument"
    nested = b"[" * 100_000 + b"]" * 100_000
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(head.socket))
        sock.sendall(protocol.HEADER.pack(len(nested)) + nested)
        assert protocol.receive(sock)["error"]["error_id"] == "ProtocolError"
    assert answers(head)


def _send(head: HeadNodeProcess, message: dict[str, Any]) -> socket.socket:
    """A frame sent on a new connection whose reply is read later (or never)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(head.socket))
    protocol.send(sock, message)
    return sock


def _pings(head: HeadNodeProcess, count: int) -> float:
    start = time.monotonic()
    for _ in range(count):
        assert answers(head)
    return time.monotonic() - start


def test_waits_for_many_ids_cost_the_loop_nothing_and_answer_what_they_can_at_once(head: HeadNodeProcess,
                                                                                      client: Client) -> None:
    active = client.call("new_job", spec={})["Id"]
    done = client.call("new_job", spec={})["Id"]
    client.call("cancel_jobs", ids=[done])
    baseline = _pings(head, 20)
    ids = [active, done, *range(5_000_000, 5_000_000 + protocol.MAX_IDS - 2)]
    waits = [_send(head, {"op": "wait_jobs", "args": {"ids": ids, "timeout": 3600}}) for _ in range(100)]
    # Each pass of the loop used to look up every id of every wait (10,000 SQLite reads per wait).
    assert _pings(head, 20) < 20 * baseline + 5
    gone = [_send(head, {"op": "wait_jobs", "args": {"ids": ids, "timeout": 3600}}) for _ in range(20)]
    for sock in gone:
        sock.close()  # these waits are dropped, and cost nothing once their clients are gone
    client.call("cancel_jobs", ids=[active])
    for sock in waits:
        assert protocol.receive(sock)["result"] == {str(active): "Canceled", str(done): "Canceled"}
        sock.close()
    # A wait for jobs that have all ended, or do not exist, is answered at once.
    assert raw(head, {"op": "wait_jobs", "args": {"ids": ids, "timeout": 3600}})["result"] == {
        str(active): "Canceled", str(done): "Canceled"}
    assert _pings(head, 20) < 20 * baseline + 5


@pytest.mark.parametrize(("sweep", "field"), [
    ({"Start": "-" + "9" * 4000, "End": 1}, "Start"),
    ({"Start": -(2**31) - 1, "End": 1}, "Start"),
    ({"Start": 1, "End": 2**31}, "End"),
    ({"Start": 1, "End": 2, "Increment": 2**31}, "Increment"),
    ({"Start": 1_000_000, "End": 1_000_001, "CommandLine": "* " * 10_000}, "CommandLine"),  # 20 K -> 80 K
    ({"Start": 1_000_000, "End": 1_000_001, "Stdout": "*_" * 60}, "Stdout"),
])
def test_sweep_values_are_int32_and_a_step_is_bounded_once_its_stars_are_numbers(
        client: Client, sweep: dict[str, Any], field: str) -> None:
    job_id = client.call("new_job", spec={})["Id"]
    with pytest.raises(HpcError) as refused:
        client.call("add_task", job_id=job_id, spec={"CommandLine": "echo *", "Type": "ParametricSweep", **sweep})
    assert refused.value.error_id == "ArgumentOutOfRange" and field in refused.value.message + str(
        refused.value.target), refused.value
    assert tasks_of(client, job_id) == []


def test_large_sweep_steps_exist_a_few_at_a_time_and_jobs_are_bounded_in_bytes(head: HeadNodeProcess,
                                                                               client: Client) -> None:
    command = "echo " + "x" * (64 * 1024 - 16) + " *"
    job_id = client.call("new_job", spec={}, tasks=[{"CommandLine": command, "Type": "ParametricSweep",
                                                     "Start": 1, "End": 1_000}])["Id"]
    assert client.call("get_jobs", ids=[job_id])[0]["TaskCount"] == 1_000
    # The request made no step; the loop makes a window of them that holds about a megabyte, not 64.
    steps = wait_until(lambda: tasks_of(client, job_id) or None)
    assert 1 <= len(steps) <= 1024 * 1024 // len(command) and answers(head)
    # A job holds at most 32 MB of such text: about 500 tasks of 64 KB, then adding is refused.
    added = 0
    with pytest.raises(HpcError) as refused:
        while added < 600:
            client.call("add_task", job_id=job_id, spec={"CommandLine": command})
            added += 1
    assert refused.value.error_id == "ArgumentOutOfRange" and "bytes" in refused.value.message
    assert 400 < added < 520 and answers(head)


def test_listing_ended_jobs_pages_in_the_store_and_reads_no_task(state_dir: Path) -> None:
    first = start_head_node(state_dir)
    with contextlib.closing(first.client()) as client:
        ids = [client.call("new_job", spec={"Name": f"e{i}"}, tasks=[{"CommandLine": "true"}] * 3)["Id"]
               for i in range(6)]
        client.call("cancel_jobs", ids=ids)
    first.stop()
    # Tasks that cannot even be parsed: a listing that read them would fail.
    with contextlib.closing(sqlite3.connect(state_dir / "headnode.db")) as db:
        db.execute("UPDATE tasks SET data = 'not json'")
        db.commit()
    head = start_head_node(state_dir)
    try:
        page = raw(head, {"op": "get_jobs", "args": {"state": "Canceled", "after": ids[1], "limit": 2}})["result"]
        assert [(j["Id"], j["TaskCount"], j["CanceledTaskCount"], j["NumberOfTasks"]) for j in page] == [
            (ids[2], 3, 3, 3), (ids[3], 3, 3, 3)]
        named = raw(head, {"op": "get_jobs", "args": {"state": "All", "name": "E4"}})["result"]
        assert [j["Id"] for j in named] == [ids[4]]
    finally:
        head.stop()


def test_the_head_node_keeps_only_the_first_4_kb_of_a_tasks_output(head: HeadNodeProcess, client: Client,
                                                                     state_dir: Path) -> None:
    job_id = client.call("new_job", spec={}, tasks=[
        {"CommandLine": "yes hello | head -c 50000000; echo done >&2; (sleep 0.2; yes late) & exit 3"}])["Id"]
    client.call("submit_jobs", ids=[job_id])
    assert ended(client, job_id)["State"] == "Failed"
    [task] = tasks_of(client, job_id)
    assert task["ExitCode"] == 3 and task["Output"] == "hello\n" * 682 + "hell"
    kept = [p.stat().st_size for p in (state_dir / "output" / str(job_id)).glob("*.out")]
    assert kept == [4096]  # not the 50 MB it printed, nor what its leftover printed


def test_replies_kept_for_resends_are_compact_and_bounded_per_user(head: HeadNodeProcess, state_dir: Path) -> None:
    missing = list(range(7_000_000, 7_000_000 + protocol.MAX_IDS))
    for n in range(1_050):
        reply = raw(head, {"op": "cancel_jobs", "args": {"ids": missing[:2] if n else missing},
                           "request_id": f"r{n}"})
        assert reply["ok"]
    resent = raw(head, {"op": "cancel_jobs", "args": {"ids": missing[:2]}, "request_id": "r1049"})
    assert [r["error"]["error_id"] for r in resent["result"]] == ["InvalidJobId"] * 2
    with contextlib.closing(sqlite3.connect(state_dir / "headnode.db")) as db:
        rows, size = db.execute("SELECT count(*), sum(length(reply)) FROM applied_requests").fetchone()
    assert rows == 1_000 and size < 1_000 * 300  # the 10,000-id reply went with the oldest


def test_an_idle_head_node_copies_its_commits_into_the_database_file(head: HeadNodeProcess, client: Client,
                                                                     tmp_path: Path) -> None:
    # Commits first go to the WAL; once no request has come for a moment, the head node checkpoints it,
    # so that the database file alone (copied without its -wal) holds the latest change.
    job_id = client.call("new_job", spec={"Name": "checkpointed"})["Id"]

    def in_database_file() -> bool:
        copy = tmp_path / "copy.db"
        shutil.copyfile(head.state_dir / "headnode.db", copy)
        db = sqlite3.connect(copy)
        try:
            return db.execute("SELECT count(*) FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] == 1
        except sqlite3.OperationalError:  # not even the tables yet
            return False
        finally:
            db.close()
            copy.unlink()
    assert wait_until(in_database_file, 10)


LATE = "9999-12-31T23:59:59.9999999-12:00"  # DateTime.MaxValue west of Greenwich: in year 10000 in UTC


@pytest.mark.parametrize(("op", "args", "error_id", "target"), [
    ("get_jobs", {"state": "All", "after": 10**4000}, "InvalidArgument", "after"),
    ("get_jobs", {"state": "All", "after": 2**63}, "InvalidArgument", "after"),
    ("hello", {"protocol": 10**4000}, "InvalidArgument", "protocol"),
    ("new_job", {"spec": {"HoldUntil": LATE}}, "ArgumentOutOfRange", "HoldUntil"),
    ("new_job", {"spec": {"HoldUntil": "0001-01-01T00:00:00"}}, "ArgumentOutOfRange", "HoldUntil"),
    ("history", {"start": LATE}, "ArgumentOutOfRange", "StartDate"),
    ("get_jobs", {"begin": 2**50}, "InvalidArgument", "begin"),
    ("get_jobs", {"state": 5}, "InvalidArgument", "state"),
    ("get_jobs", {"state": "Queued\0"}, "InvalidArgument", "state"),
    ("get_jobs", {"state": ["Queued", 5]}, "InvalidArgument", "state.1"),
])
def test_values_out_of_range_are_refused_by_name_and_log_no_traceback(head: HeadNodeProcess, op: str,
                                                                      args: dict[str, Any], error_id: str,
                                                                      target: str) -> None:
    reply = raw(head, {"op": op, "args": args})
    assert not reply["ok"] and reply["error"]["error_id"] == error_id, reply
    assert reply["error"]["target"] == target and "[" not in reply["error"]["message"], reply
    assert "Traceback" not in (head.state_dir / "headnode.log").read_text()
    assert answers(head)


@pytest.mark.parametrize("timeout", [0, 0.5])
def test_a_short_wait_is_answered_at_its_deadline_not_at_the_idle_loops_next_wake(
        head: HeadNodeProcess, client: Client, timeout: float) -> None:
    """0 looks once. Either is answered well before the idle head node's loop wakes by itself (every 5 s):
    that is what Stop-HpcJob's quarter-second waits, which look whether the user pressed Ctrl+C, rely on."""
    job_id = client.call("new_job", spec={})["Id"]  # Configuring: it never ends by itself
    time.sleep(1)  # the loop is asleep, idle
    started = time.monotonic()
    reply = raw(head, {"op": "wait_jobs", "args": {"ids": [job_id], "timeout": timeout}}, timeout=15)
    assert reply == {"ok": True, "result": {str(job_id): "Configuring"}}  # the state it is in now
    assert time.monotonic() - started < 4


def test_a_job_cannot_be_its_own_parent_nor_wait_in_a_cycle_of_parents(head: HeadNodeProcess,
                                                                       client: Client) -> None:
    first = client.call("new_job", spec={"Name": "first"})["Id"]
    second = client.call("new_job", spec={"Name": "second", "ParentJobIds": [first]})["Id"]
    for job_id, parents in ((first, [first]), (first, [second]), (second, [second, first])):
        reply = raw(head, {"op": "set_job", "args": {"id": job_id, "spec": {"ParentJobIds": parents}}})
        assert reply["error"]["error_id"] == "InvalidArgument" and reply["error"]["target"] == "ParentJobIds"
        assert "cycle" in reply["error"]["message"], reply
    assert client.call("get_jobs", ids=[first])[0]["ParentJobIds"] == []  # nothing of the refused change stays
    with pytest.raises(HpcError) as refused:  # its own id, the one the new job gets
        client.call("new_job", spec={"ParentJobIds": [second + 1]})
    assert refused.value.error_id == "InvalidArgument" and "cycle" in refused.value.message
    waiting = client.call("new_job", spec={"ParentJobIds": [second + 2]})["Id"]  # a job not made yet...
    assert waiting == second + 1  # (the refused job used no id)
    with pytest.raises(HpcError) as refused:  # ...which, made now, cannot wait for the job waiting for it
        client.call("new_job", spec={"ParentJobIds": [waiting]})
    assert refused.value.error_id == "InvalidArgument" and "cycle" in refused.value.message
    client.call("add_task", job_id=second, spec={"CommandLine": "true"})
    client.call("add_task", job_id=first, spec={"CommandLine": "true"})
    client.call("submit_jobs", ids=[second, first])
    assert ended(client, second)["State"] == "Finished"


def test_a_change_whose_reply_is_lost_with_the_head_node_says_it_may_have_been_applied(
        head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    """The head node applies a change and dies before its reply (kill -9 mid-request): the client (Python's,
    then the compiled `job`) cannot send it again, and says that the change may have been applied and how to
    know, instead of a bare "Cannot connect" that invites a second submit. A question lost so says nothing
    of the kind."""
    job_id = client.call("new_job", spec={"Name": "before"})["Id"]
    with (interrupting_proxy(head.socket, tmp_path / "p1.sock", b'"op":"set_job"', drop=True) as proxy,
          pytest.raises(HpcError) as lost):
        Client(f"unix:{proxy}").call("set_job", id=job_id, spec={"Name": "after"})
    assert lost.value.error_id == "CannotConnectWithScheduler"
    assert "(set_job) was sent before the connection was lost" in lost.value.message, lost.value.message
    assert "may have applied it" in lost.value.message
    assert client.call("get_jobs", ids=[job_id])[0]["Name"] == "after"  # it had
    with (interrupting_proxy(head.socket, tmp_path / "p2.sock", b'"op":"get_jobs"', drop=True) as proxy,
          pytest.raises(HpcError) as asked):
        Client(f"unix:{proxy}").call("get_jobs", ids=[job_id])
    assert asked.value.error_id == "CannotConnectWithScheduler" and "applied" not in asked.value.message
    with interrupting_proxy(head.socket, tmp_path / "p3.sock", b'"op":"cancel_jobs"', drop=True) as proxy:
        compiled = subprocess.run([str(ROOT / "build" / "bin" / "job"), "cancel", str(job_id)], capture_output=True,
                                  text=True, env={**head.env(), "CCP_SCHEDULER": f"unix:{proxy}"}, timeout=60)
    assert compiled.returncode == 1 and "(cancel_jobs) was sent before the connection was lost" in compiled.stderr
    assert client.call("get_jobs", ids=[job_id])[0]["State"] == "Canceled"  # it had


def test_an_error_does_not_repeat_a_huge_request(head: HeadNodeProcess) -> None:
    """A 4 MB request of bad bytes was answered with a 20 MB error that repeated it (helper 45), and a bad
    JobEnv item without "=" was repeated whole: an error carries at most errors.MAX_SENT characters of it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(head.socket))
        body = b'{"op":"ping","args":{"x":"' + b"\xff" * (protocol.MAX_REQUEST - 40) + b'"}}'
        sock.sendall(protocol.HEADER.pack(len(body)) + body)
        header = sock.recv(protocol.HEADER.size, socket.MSG_WAITALL)
        (size,) = protocol.HEADER.unpack(header)
        reply = protocol.decode(sock.recv(size, socket.MSG_WAITALL))
    assert reply["error"]["error_id"] == "ProtocolError" and size < 2 * MAX_SENT, size
    reply = raw(head, {"op": "new_job", "args": {"spec": {"JobEnv": ["x" * 60_000]}}})  # no "="
    assert reply["error"]["error_id"] == "InvalidArgument" and len(json.dumps(reply)) < 3 * MAX_SENT
    assert answers(head)
