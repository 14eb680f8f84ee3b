"""What the head node holds in memory is what its database holds, whatever a commit does: real head node
processes, real SQLite files, a real full disk (a small tmpfs)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hpcpack.backends.client import Client
from hpcpack.errors import HpcError
from hpcpack.head.daemon import CHECKPOINT_IDLE
from hpcpack.head.requests import BATCH
from hpcpack.model.states import JobState

from .conftest import HeadNodeProcess, fill_disk, needs_root, start_head_node, wait_until
from .test_robustness import raw

ONE_NODE = "nodes:\n  - {name: NODE1, cores: 4}\n"
Jobs = dict[int, tuple[str, str, int]]  # id -> (name, state, tasks)


def listed(client: Client) -> Jobs:
    """Every job as the head node lists it (`job list /all`, Get-HpcJob -State All), with its task count."""
    jobs = client.call("get_jobs", state="All")
    return {j["Id"]: (j["Name"], j["State"], len(client.call("get_tasks", job_id=j["Id"]))) for j in jobs}


def stored(state_dir: Path) -> Jobs:
    """Every job as the database file has it (read beside the head node, as WAL mode allows)."""
    db = sqlite3.connect(state_dir / "headnode.db")
    try:
        tasks = dict(db.execute("SELECT job_id, count(*) FROM tasks WHERE sub_id = 0 GROUP BY job_id").fetchall())
        return {job_id: (name, JobState(state).name, tasks.get(job_id, 0)) for job_id, state, name in
                db.execute("SELECT id, state, json_extract(data, '$.name') FROM jobs")}
    finally:
        db.close()


@needs_root  # mounts a small tmpfs
def test_changes_a_full_disk_refuses_leave_no_trace_in_memory(small_disk: Path) -> None:
    head = start_head_node(small_disk, ONE_NODE)
    try:
        client = head.client()
        kept = client.call("new_job", spec={"Name": "kept", "HoldUntil": "2099-01-01T00:00:00"})["Id"]
        client.call("add_task", job_id=kept, spec={"CommandLine": "true"})
        idle = client.call("new_job", spec={"Name": "idle"})["Id"]
        before = listed(client)
        assert before == stored(small_disk)
        fill_disk(small_disk / "filler")
        changes: dict[str, Callable[[], Any]] = {
            "new job": lambda: client.call("new_job", spec={"Name": "phantom"}, tasks=[{"CommandLine": "true"}]),
            "copy job": lambda: client.call("copy_job", id=kept, spec={"Name": "copy"}),
            "add task": lambda: client.call("add_task", job_id=kept, spec={"CommandLine": "false"}),
            "set job": lambda: client.call("set_job", id=kept, spec={"Name": "renamed"}),
            "submit": lambda: client.call("submit_jobs", ids=[kept]),
            "cancel": lambda: client.call("cancel_jobs", ids=[idle]),
        }
        for what, change in changes.items():
            with pytest.raises(HpcError) as refused:
                change()
            assert refused.value.error_id == "StorageFailure", what
            assert "nothing was changed" in refused.value.message, what
            assert listed(client) == before == stored(small_disk), what  # no phantom job, task or change
        with pytest.raises(HpcError) as missing:  # what was refused does not exist, and says so
            client.call("set_job", id=idle + 1, spec={"Name": "x"})
        assert missing.value.error_id == "InvalidJobId"
        (small_disk / "filler").unlink()
        for change in changes.values():
            change()
        after = wait_until(lambda: (lambda jobs: jobs if jobs[kept][1] == "Queued" else None)(listed(client)))
        assert after == stored(small_disk)
        assert after == {kept: ("renamed", "Queued", 2), idle: ("idle", "Canceled", 0),  # (held until 2099)
                         idle + 1: ("phantom", "Configuring", 1), idle + 2: ("copy", "Configuring", 1)}
        client.close()
    finally:
        head.stop()


def test_an_idle_head_node_gives_the_space_of_its_wal_back_without_waiting_for_readers(head: HeadNodeProcess,
                                                                                      client: Client) -> None:
    wal = head.state_dir / "headnode.db-wal"
    tasks = [{"CommandLine": f"echo {'x' * 200} {i}"} for i in range(1_000)]
    ids = [client.call("new_job", spec={}, tasks=tasks)["Id"] for _ in range(3)]
    client.call("cancel_jobs", ids=ids)  # a burst of writes: megabytes of WAL
    assert wal.stat().st_size > 1_000_000
    reader = sqlite3.connect(head.state_dir / "headnode.db", isolation_level=None)
    try:
        reader.execute("BEGIN")  # a reader outside (a backup, sqlite3) holds the WAL: nothing waits for it
        assert reader.execute("SELECT count(*) FROM jobs").fetchone()[0] == 3
        deadline = time.monotonic() + 2 * CHECKPOINT_IDLE
        while time.monotonic() < deadline:  # checkpoints are tried while the head node answers at once
            started = time.monotonic()
            client.call("ping")
            assert time.monotonic() - started < 0.5
            time.sleep(CHECKPOINT_IDLE * 1.5)  # idle long enough for a checkpoint between two pings
        assert wal.stat().st_size > 0  # (it can be emptied only once no reader uses it)
    finally:
        reader.close()
    wait_until(lambda: wal.stat().st_size == 0, 10)
    assert client.call("get_jobs", ids=ids)[0]["State"] == "Canceled"  # and the commits are in the database


def test_a_bulk_change_that_fails_midway_answers_per_job_what_was_saved(head: HeadNodeProcess,
                                                                        client: Client) -> None:
    ids = [client.call("new_job", spec={"Name": f"j{i}"})["Id"] for i in range(BATCH + 10)]
    failing = ids[BATCH + 5]  # in the second transaction of the cancel: the first is committed by then
    with sqlite3.connect(head.state_dir / "headnode.db") as db:  # a real write error, for that job's row only
        db.execute(f"CREATE TRIGGER fail BEFORE UPDATE ON jobs WHEN NEW.id = {failing} "
                   "BEGIN SELECT RAISE(ABORT, 'disk I/O error (a test)'); END")
    request = {"op": "cancel_jobs", "args": {"ids": ids}, "request_id": "midway"}
    reply = raw(head, request)
    assert reply["ok"], reply  # not a failure of the whole request: half of it was saved
    answers = reply["result"]
    assert [a.get("state") for a in answers[:BATCH]] == ["Canceled"] * BATCH
    assert {a["error"]["error_id"] for a in answers[BATCH:]} == {"StorageFailure"}
    assert all("nothing was changed" in a["error"]["message"] for a in answers[BATCH:])
    assert listed(client) == stored(head.state_dir)  # what was answered is what is stored, and in memory
    assert [j["State"] for j in client.call("get_jobs", ids=ids[BATCH:])] == ["Configuring"] * 10
    def outcomes(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(a["id"], a.get("state"), a.get("error", {}).get("error_id")) for a in items]
    assert outcomes(raw(head, request)["result"]) == outcomes(answers)  # a resend gets the same answer
    with sqlite3.connect(head.state_dir / "headnode.db") as db:  # now the reply kept for a resend cannot be
        db.execute("DROP TRIGGER fail")
        db.execute("CREATE TRIGGER fail BEFORE INSERT ON applied_requests BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    reply = raw(head, {"op": "cancel_jobs", "args": {"ids": ids[BATCH:]}, "request_id": "unkept"})
    assert [a.get("state") for a in reply["result"]] == ["Canceled"] * 10, reply  # saved, and said so
    assert listed(client) == stored(head.state_dir)


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@needs_root  # mounts a small tmpfs
def test_a_full_disk_makes_the_loop_wait_between_tries_and_say_so_once(small_disk: Path, tmp_path: Path) -> None:
    head = start_head_node(small_disk, ONE_NODE)
    go = tmp_path / "go"
    try:
        client = head.client()
        job_id = client.call("new_job", spec={})["Id"]
        client.call("add_task", job_id=job_id, spec={"CommandLine": f"sh -c 'until [ -e {go} ]; do sleep 0.05; done'"})
        client.call("submit_jobs", ids=[job_id])
        wait_until(lambda: client.call("get_tasks", job_id=job_id)[0]["State"] == "Running")
        log = small_disk / "headnode.log"
        subprocess.run(["fallocate", "--keep-size", "-l", "1M", str(log)], check=True)  # room for the log alone
        fill_disk(small_disk / "filler")
        go.touch()  # the task ends while its end cannot be written
        wait_until(lambda: "cannot write its state" in log.read_text())
        used, start = cpu_seconds(head.process.pid), time.monotonic()
        time.sleep(3)  # a window to measure the loop's CPU over
        busy = (cpu_seconds(head.process.pid) - used) / (time.monotonic() - start)
        assert busy < 0.5, f"the head node used {busy:.0%} of a CPU while the disk was full"
        assert log.read_text().count("cannot write its state") == 1  # once for the whole time it could not
        assert client.call("get_jobs", ids=[job_id])[0]["State"] == "Running"  # not recorded yet
        (small_disk / "filler").unlink()
        job = wait_until(lambda: (lambda j: j if j["State"] == "Finished" else None)(
            client.call("get_jobs", ids=[job_id])[0]))
        assert job["State"] == "Finished" and "writes its state again" in log.read_text()
        client.close()
    finally:
        head.stop()
