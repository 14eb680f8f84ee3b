"""The pure parts: the transition table, parameter formats, allocation, and the store."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from hpcpack.errors import HpcError
from hpcpack.head import scheduler
from hpcpack.head.store import SCHEMA_VERSION, StaleState, Store
from hpcpack.model import params
from hpcpack.model.objects import Job, Task
from hpcpack.model.states import (
    JOB_CANCELABLE,
    InvalidTransition,
    JobState,
    TaskState,
    job_can,
    job_transition,
    parse_flags,
    task_transition,
)

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("state", list(JobState.__members__.values()))
def test_cancel_is_allowed_exactly_in_hpc_packs_states_plus_a_repeat(state: JobState) -> None:
    if state == JobState.All:
        return
    allowed = state in JOB_CANCELABLE or state == JobState.Canceling
    assert job_can(state, "cancel") == allowed
    if not allowed:
        with pytest.raises(InvalidTransition):
            job_transition(state, "cancel")


def test_external_validation_is_not_cancelable_as_in_hpc_pack() -> None:
    assert not job_can(JobState.ExternalValidation, "cancel")


def test_ended_states_only_leave_by_requeue() -> None:
    for state in (JobState.Finished, JobState.Failed, JobState.Canceled):
        for event in ("submit", "start", "cancel", "complete", "canceled"):
            with pytest.raises(InvalidTransition):
                job_transition(state, event)
    assert job_transition(JobState.Canceled, "requeue") == JobState.Submitted
    with pytest.raises(InvalidTransition):
        job_transition(JobState.Finished, "requeue")


def test_a_task_that_ended_cannot_be_stopped_or_started() -> None:
    for state in (TaskState.Finished, TaskState.Failed, TaskState.Canceled):
        for event in ("start", "stop", "cancel", "exited_ok"):
            with pytest.raises(InvalidTransition):
                task_transition(state, event)


def test_state_values_are_hpc_packs() -> None:
    assert [int(s) for s in (JobState.Configuring, JobState.Queued, JobState.Running, JobState.Canceled,
                             JobState.Canceling, JobState.All)] == [1, 16, 32, 512, 1024, 2047]
    assert int(TaskState.Dispatching) == 16 and int(TaskState.Queued) == 8


def test_flag_lists_parse_as_powershell_converts_them() -> None:
    assert parse_flags(JobState, "Queued, Running") == 48
    assert parse_flags(JobState, ["Queued", "running"]) == 48
    assert parse_flags(JobState, "All") == 2047
    with pytest.raises(ValueError, match="not a JobState"):
        parse_flags(JobState, "Sleeping")


@pytest.mark.parametrize("text, value", [("Normal", 2000), ("AboveNormal+5", 3005), ("Highest-10", 3990),
                                         ("0", 0), ("4000", 4000), ("lowest", 0), (" BelowNormal ", 1000)])
def test_priorities(text: str, value: int) -> None:
    assert params.parse_priority(text) == value


@pytest.mark.parametrize("text", ["4001", "Highest+1", "Lowest-1", "Urgent", "Normal 5", ""])
def test_bad_priorities_are_clear_errors(text: str) -> None:
    with pytest.raises(HpcError) as e:
        params.parse_priority(text)
    assert "Priority" in e.value.message


def test_an_unknown_priority_name_lists_the_names() -> None:
    with pytest.raises(HpcError, match=r"^Priority name 'Urgent' is unknown: use Lowest, BelowNormal, Normal, "
                                       r"AboveNormal, Highest, or 0-4000\.$"):
        params.parse_priority("Urgent")


def test_ranges_runtime_and_environment() -> None:
    assert params.parse_range("1-3", "NumCores") == params.Range(1, 3)
    assert params.parse_range("4", "NumCores") == params.Range(4, 4)
    assert params.parse_range("*-8", "NumCores") == params.Range(None, 8)
    for bad in ("0", "3-1", "1-2-3", "a", "-2", "*"):
        if bad == "*":
            with pytest.raises(HpcError):
                params.parse_range(bad, "NumCores", allow_auto=False)
            continue
        with pytest.raises(HpcError):
            params.parse_range(bad, "NumCores")
    assert params.parse_runtime("30") == 1800
    assert params.parse_runtime("0:0:30") == 1800
    assert params.parse_runtime("1:2:3") == ((24 + 2) * 60 + 3) * 60
    assert params.parse_runtime("Infinite") == -1
    with pytest.raises(HpcError):
        params.parse_runtime("1:2:3:4")
    assert params.parse_env(["A=1,B=2", "C="], "Env") == {"A": "1", "B": "2", "C": None}
    with pytest.raises(HpcError):
        params.parse_env(["nonsense"], "Env")


def test_sweeps_count_and_substitute_like_hpc_pack() -> None:
    assert params.sweep_count(10, 100, 2) == 46
    assert params.substitute_sweep("echo * *** ^*", 7) == "echo 7 007 *"
    with pytest.raises(HpcError):
        params.sweep_count(5, 1, 1)
    with pytest.raises(HpcError):
        params.sweep_count(1, 2_000_000, 1)


def test_allocation_by_priority_then_queue_order_and_no_overtaking() -> None:
    free = {"A": 4, "B": 4}
    queue = [scheduler.Demand(1, 2000, 2.0, 2, 4), scheduler.Demand(2, 3000, 3.0, 1, 1),
             scheduler.Demand(3, 2000, 1.0, 8, 8), scheduler.Demand(4, 1000, 0.0, 1, 1)]
    grants = scheduler.plan(free, {"A", "B"}, queue)
    assert list(grants) == [2]  # job 2 first (priority); job 3 (earlier) needs 8 > 7 free and blocks the rest
    assert free == {"A": 4, "B": 4}
    assert scheduler.plan({"A": 4}, {"A"}, [scheduler.Demand(1, 2000, 1.0, 1, 3)]) == {1: {"A": 3}}
    exclusive = scheduler.plan({"A": 4, "B": 2}, {"B"}, [scheduler.Demand(9, 2000, 1.0, 1, 1, exclusive=True)])
    assert exclusive == {9: {"B": 1}}


def test_an_old_database_always_opens_and_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "headnode.db"
    shutil.copy(DATA / "headnode-v1.db", path)
    store = Store(path)
    assert store.version == SCHEMA_VERSION
    [job] = store.load_jobs()
    assert (job.id, job.name, job.owner, job.state) == (7, "from-v1", "alice", JobState.Running)
    assert [t.command for t in job.tasks] == ["sleep 1"]
    assert store.db.execute("SELECT node, cores FROM allocations").fetchall() == [("NODE1", 2)]
    assert store.history(7)[0]["event"] == "create"
    assert store.allocate_job_id() == 8
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_a_version_7_database_gets_its_end_times_in_their_column(tmp_path: Path) -> None:
    """Migration 8 moves the end time out of the JSON into an indexed column: jobs that ended before the
    upgrade are still found by end time, through the index, and the others have none."""
    from hpcpack.head.store import MIGRATIONS
    path = tmp_path / "headnode.db"
    with sqlite3.connect(path) as db:
        for migration in MIGRATIONS[:7]:
            db.executescript(migration)
        db.execute("PRAGMA user_version = 7")
        for job_id, state, end in ((1, JobState.Canceled, 1000.0), (2, JobState.Queued, None)):
            row = Job(id=job_id, owner="bob", owner_uid=1002).to_row() | {"state": int(state), "end_time": end}
            db.execute("INSERT INTO jobs (id, state, owner, data) VALUES (?, ?, ?, ?)",
                       (job_id, int(state), "bob", json.dumps(row)))
    store = Store(path)
    assert store.version == SCHEMA_VERSION
    assert store.db.execute("SELECT id, end_time FROM jobs ORDER BY id").fetchall() == [(1, 1000.0), (2, None)]
    assert [j.id for j in store.load_jobs(states=[int(JobState.Canceled)], ended_before=1001.0)] == [1]
    assert store.load_jobs(states=[int(JobState.Canceled)], ended_before=999.0) == []
    where, values = store._job_filter(None, [int(JobState.Canceled)], 1001.0)
    plan = store.db.execute(f"EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE {where}", values).fetchall()
    assert any("jobs_by_end_time" in str(row) for row in plan), plan
    store.close()


def test_a_newer_database_is_refused_rather_than_damaged(tmp_path: Path) -> None:
    path = tmp_path / "headnode.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="Upgrade the software"):
        Store(path)


def test_updates_are_compare_and_set(tmp_path: Path) -> None:
    store = Store(tmp_path / "headnode.db")
    job = Job(id=store.allocate_job_id(), owner="bob", owner_uid=1002)
    job.tasks = [Task(job_id=job.id, task_id=1, command="true")]
    store.insert_job(job)
    other = Store(tmp_path / "headnode.db")  # another writer wins the race...
    [theirs] = other.load_jobs()
    theirs.move("submit")
    other.save_job(theirs)
    job.move("cancel")  # ...so this change, made from a stale Configuring, must not land
    with pytest.raises(StaleState):
        store.save_job(job)
    assert store.load_jobs()[0].state == JobState.Submitted
    task = job.tasks[0]
    task.move("submit")
    store.save_task(task)
    stale = Task.from_row(task.to_row())
    stale.state, stale.previous_state = TaskState.Finished, TaskState.Running
    with pytest.raises(StaleState):
        store.save_task(stale)
    store.close()
    other.close()


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "headnode.db")
    job = Job(id=store.allocate_job_id(), owner="bob", owner_uid=1002)
    with pytest.raises(ZeroDivisionError), store.transaction():
        store.insert_job(job)
        raise ZeroDivisionError
    assert store.load_jobs() == []
    store.close()
