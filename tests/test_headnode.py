"""The head node's logic in-process (real store, real processes), for states a daemon passes too fast
to catch from outside and for time-driven rules (run-time limits, time to live)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcpack.config import HeadNodeConfig, Node
from hpcpack.errors import HpcError
from hpcpack.head import executor
from hpcpack.head.headnode import HeadNode
from hpcpack.head.store import JobQuery, StaleState
from hpcpack.identity import Caller
from hpcpack.model.objects import Job
from hpcpack.model.states import JobState, TaskState
from hpcpack.model.stop import StopOptions

from .conftest import in_process_head_node, wait_until

ROOT_CALLER = Caller(uid=0, gid=0, name="root", admin=True)
ALICE = Caller(uid=os.geteuid(), gid=os.getegid(), name="alice", admin=False)


@pytest.fixture
def head(tmp_path: Path) -> Iterator[HeadNode]:
    yield from in_process_head_node(tmp_path, [Node("N1", 2)])


def run_until(head: HeadNode, predicate: object, timeout: float = 10) -> None:
    wait_until(lambda: (head.step(), predicate())[1], timeout)  # type: ignore[operator]


def test_submitted_and_validating_jobs_can_be_canceled(head: HeadNode) -> None:
    job = head.new_job(ROOT_CALLER, {"Name": "s"})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": "true"})
    head.submit_job(ROOT_CALLER, job.id)
    assert job.state == JobState.Submitted
    head.cancel_job(ROOT_CALLER, job.id, StopOptions(message="early"))
    assert job.state == JobState.Canceled and job.error_message == "early"
    other = head.new_job(ROOT_CALLER, {})
    head.add_task(ROOT_CALLER, other.id, {"CommandLine": "true"})  # a job with no tasks is refused (JobHasNoTasks)
    head.submit_job(ROOT_CALLER, other.id)
    head._move(other, "validate")  # what the validation step does first
    head.commit(other)
    head.cancel_job(ROOT_CALLER, other.id, StopOptions())
    assert other.state == JobState.Canceled


def test_a_cancel_racing_a_completion_has_one_winner(head: HeadNode) -> None:
    job = head.new_job(ROOT_CALLER, {})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": "true"})
    head.submit_job(ROOT_CALLER, job.id)
    run_until(head, lambda: job.state == JobState.Finished)
    with pytest.raises(HpcError) as e:
        head.cancel_job(ROOT_CALLER, job.id, StopOptions())
    assert e.value.error_id == "InvalidCancelJobState"
    assert job.state == JobState.Finished
    assert head.store.load_jobs()[0].state == JobState.Finished


def test_only_the_owner_or_an_administrator_may_change_a_job(head: HeadNode) -> None:
    job = head.new_job(ROOT_CALLER, {})
    for action in (lambda: head.cancel_job(ALICE, job.id, StopOptions()),
                   lambda: head.submit_job(ALICE, job.id),
                   lambda: head.set_job(ALICE, job.id, {"Name": "x"}),
                   lambda: head.add_task(ALICE, job.id, {"CommandLine": "true"})):
        with pytest.raises(HpcError) as e:
            action()
        assert e.value.error_id == "PermissionDenied"
    assert job.state == JobState.Configuring and job.name == "" and not job.tasks


def test_a_job_past_its_run_time_is_canceled(head: HeadNode) -> None:
    job = head.new_job(ROOT_CALLER, {"RunTime": "1"})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": "sleep 300"})
    head.submit_job(ROOT_CALLER, job.id)
    run_until(head, lambda: job.tasks[0].state == TaskState.Running)
    assert job.start_time is not None
    job.start_time -= 61  # as if it had started a minute ago
    run_until(head, lambda: job.state == JobState.Canceled)
    assert "run-time limit of 1 minute" in job.error_message
    assert job.tasks[0].state == TaskState.Failed
    events = [r["event"] for r in head.store.history(job.id)]
    assert "run time expired" in events


def test_a_head_node_whose_own_files_are_gone_fails_the_next_start_saying_so_and_keeps_the_running_task(
        head: HeadNode, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a user met after uninstalling, or moving the checkout, under a running head node: the waiting
    # launcher started one more task, which was then failed (its spare could not be started) while it
    # ran on, and every later task failed with a bare FileNotFoundError.
    def job(command: str) -> Job:
        made = head.new_job(ROOT_CALLER, {})
        head.add_task(ROOT_CALLER, made.id, {"CommandLine": command})
        head.submit_job(ROOT_CALLER, made.id)
        return made

    head.launchers.warm()
    monkeypatch.setattr(executor.sys, "executable", "/gone/venv/bin/python")
    first = job("sleep 300")
    run_until(head, lambda: first.tasks[0].state != TaskState.Queued)
    assert first.tasks[0].state == TaskState.Running
    second = job("true")
    run_until(head, lambda: second.state == JobState.Failed)
    assert second.tasks[0].error_message.startswith(
        "The task could not be started: the head node's own files are gone (/gone/venv/bin/python or ")
    assert first.tasks[0].state == TaskState.Running
    head.cancel_job(ROOT_CALLER, first.id, StopOptions(force=True))


def test_after_a_restart_only_a_launcher_holding_its_exit_files_lock_is_taken_for_a_tasks_wrapper(
        head: HeadNode) -> None:
    # Helper 35: under a head node run by a user, that user's own task could lock another task's exit
    # file; the head node then took it for that task's wrapper (kept the task Running, and killed the
    # locker when the task was cancelled).
    job = head.new_job(ROOT_CALLER, {})
    [task] = head.add_task(ROOT_CALLER, job.id, {"CommandLine": "true"})
    exit_file = head._exit_path(task)
    exit_file.parent.mkdir(parents=True, exist_ok=True)
    locker = subprocess.Popen([sys.executable, "-c", "import os, sys, time; fd = os.open(sys.argv[1], os.O_WRONLY "
                               "| os.O_CREAT); os.lockf(fd, os.F_LOCK, 0); print(flush=True); time.sleep(60)",
                               str(exit_file)], stdout=subprocess.PIPE)
    try:
        assert locker.stdout is not None and locker.stdout.readline()
        assert executor.lock_holder(exit_file) == locker.pid
        assert head._locking_wrapper(job, task) == 0
    finally:
        locker.kill()
        locker.wait()
    head.launchers.warm()
    spare = head.launchers.pids().pop()
    assert wait_until(lambda: executor.is_launcher(spare, os.geteuid()))  # (its command line, once exec'd)
    assert not executor.is_launcher(spare, os.geteuid() + 1)


def test_ended_jobs_are_forgotten_after_their_time_to_live_but_their_history_stays(head: HeadNode) -> None:
    old = head.new_job(ROOT_CALLER, {"Name": "old"})
    head.cancel_job(ROOT_CALLER, old.id, StopOptions())
    recent = head.new_job(ROOT_CALLER, {"Name": "recent"})
    head.cancel_job(ROOT_CALLER, recent.id, StopOptions())
    assert old.end_time is not None
    old.end_time = time.time() - 6 * 86400  # past the default five days
    head.store.save_job(old)  # ended jobs are read from the store, so that is where it must look old
    head._next_cleanup = 0.0
    head.step()
    assert old.id not in head.jobs and recent.id in head.jobs
    assert [j.id for j in head.store.load_jobs()] == [recent.id]
    assert [r["event"] for r in head.store.history(old.id)] == ["create", "cancel", "end"]


def test_a_failed_task_fails_the_job_when_asked(head: HeadNode) -> None:
    job = head.new_job(ROOT_CALLER, {"FailOnTaskFailure": True, "NumCores": "2"})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": "exit 2"})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": "sleep 300"})
    head.submit_job(ROOT_CALLER, job.id)
    run_until(head, lambda: job.state == JobState.Failed)
    assert [t.state for t in job.tasks] == [TaskState.Failed, TaskState.Failed]
    assert "exit code 2" in job.error_message


def test_a_held_job_waits_until_its_time(head: HeadNode) -> None:
    from datetime import datetime, timedelta
    job = head.new_job(ROOT_CALLER, {"HoldUntil": (datetime.now() + timedelta(hours=1)).isoformat()})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": "true"})
    head.submit_job(ROOT_CALLER, job.id)
    for _ in range(5):
        head.step()
    assert job.state == JobState.Queued
    job.hold_until = time.time() - 1  # the hour has passed
    run_until(head, lambda: job.state == JobState.Finished)


def test_failed_tasks_are_retried_up_to_the_limit(head: HeadNode, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    job = head.new_job(ROOT_CALLER, {"TaskExecutionFailureRetryLimit": 2})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": f"echo run >> {counter}; exit 1"})
    head.submit_job(ROOT_CALLER, job.id)
    run_until(head, lambda: job.state == JobState.Failed)
    assert counter.read_text().count("run") == 3  # the first run and two retries
    assert job.tasks[0].requeue_count == 2
    assert [r["event"] for r in head.store.history(job.id)].count("task retry") == 2


def test_ended_jobs_leave_memory_but_not_the_store(head: HeadNode, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory holds the jobs that can still change; an ended one is read from SQLite when asked for."""
    from hpcpack.head import core
    job = head.new_job(ROOT_CALLER, {"Name": "done"})
    head.add_task(ROOT_CALLER, job.id, {"CommandLine": "true"})
    head.submit_job(ROOT_CALLER, job.id)
    run_until(head, lambda: job.state == JobState.Finished)
    monkeypatch.setattr(core, "EVICT_AFTER", 0.0)
    head._next_eviction = 0.0
    head.evict_ended_jobs()
    assert job.id not in head.jobs
    listed, cut = head.store.list_jobs(JobQuery(states=(int(JobState.Finished),), limit=10))
    assert [j.name for j in listed] == ["done"] and not cut
    # A question about it (a lookup, a listing by id) reads it without its tasks and does not keep it: a user
    # asking about many ended jobs must not fill memory (helper 42).
    looked_up = head.read_job(job.id)
    assert (looked_up.name, looked_up.tasks, job.id in head.jobs) == ("done", [], False)
    assert looked_up.to_record("x")["FinishedTaskCount"] == 1
    with pytest.raises(HpcError) as refused:  # nor does a cancel, or its plan, that it refuses (helper 44)
        head.cancel_job(ROOT_CALLER, job.id, StopOptions())
    assert refused.value.error_id == "InvalidCancelJobState" and job.id not in head.jobs
    with pytest.raises(HpcError):
        head.describe_cancel(ROOT_CALLER, head.read_job(job.id), StopOptions())
    assert job.id not in head.jobs
    assert head.job(job.id).state == JobState.Finished and job.id in head.jobs  # read back on demand
    again = HeadNode(tmp_path, HeadNodeConfig(nodes=[Node("N1", 2)]))
    try:
        assert again.jobs == {} and again.job(job.id).tasks[0].state == TaskState.Finished
    finally:
        again.close()


def test_a_sweeps_steps_are_created_as_they_come_near_and_all_run(head: HeadNode,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from hpcpack.head import running
    from hpcpack.model import jobspec
    monkeypatch.setattr(jobspec, "SWEEP_WINDOW", 4)
    monkeypatch.setattr(running, "SWEEP_WINDOW", 4)
    job = head.new_job(ROOT_CALLER, {})
    [sweep] = head.add_task(ROOT_CALLER, job.id, {"CommandLine": "echo step *", "Type": "ParametricSweep",
                                                   "Start": 3, "End": 60, "Increment": 3})
    assert (sweep.steps, len(sweep.instances), sweep.pending_steps) == (20, 0, 20)  # the loop makes them
    head.step()
    assert (len(sweep.instances), sweep.pending_steps) == (4, 16)  # a window of them, not all
    head.submit_job(ROOT_CALLER, job.id)
    most = 0
    def done() -> bool:
        nonlocal most
        most = max(most, sum(1 for u in sweep.instances if u.state not in (TaskState.Finished,)))
        return job.state == JobState.Finished
    run_until(head, done, 60)
    assert [u.output.strip() for u in sweep.instances] == [f"step {3 * n}" for n in range(1, 21)]
    assert sweep.shown_state == TaskState.Finished and most <= 4 + 4
    assert len(head.store.load_jobs(job.id)[0].tasks[0].instances) == 20  # every step stored as it came


def test_sweeps_made_by_set_task_or_read_back_from_the_store_still_get_their_steps(head: HeadNode,
                                                                                  tmp_path: Path) -> None:
    """The loop looks only at jobs it knows to have a sweep (not at every active job): a task turned into
    a sweep, and a sweep read back from the store by a restarted head node, are known too."""
    job = head.new_job(ROOT_CALLER, {})
    [task] = head.add_task(ROOT_CALLER, job.id, {"CommandLine": "echo *"})
    head.step()
    head.set_task(ROOT_CALLER, job.id, task.task_id, {"Type": "ParametricSweep", "Start": 1, "End": 6})
    sweep = job.tasks[0]
    assert sweep.parametric and sweep.instances == [] and sweep.pending_steps == 6
    head.step()
    assert len(sweep.instances) == 6
    other = tmp_path / "other"
    first = HeadNode(other, HeadNodeConfig(nodes=[Node("N1", 2)]))
    stored = first.new_job(ROOT_CALLER, {}, [{"CommandLine": "echo *", "Type": "ParametricSweep", "Start": 1,
                                              "End": 5}])
    first.close()  # before any step: no step is created yet
    again = HeadNode(other, HeadNodeConfig(nodes=[Node("N1", 2)]))
    try:
        again.step()
        assert len(again.jobs[stored.id].tasks[0].instances) == 5
    finally:
        again.close()


def test_a_users_kept_replies_stay_bounded_and_a_resend_finds_its_reply(head: HeadNode) -> None:
    from hpcpack.head.store import REPLIES_PER_USER
    for n in range(REPLIES_PER_USER + 300):
        head.store.record_reply(f"1000:cancel_jobs:r{n}", float(n), [{"id": n}])
    head.store.record_reply("1001:cancel_jobs:other", 0.0, [{"id": 0}])  # another user's are not trimmed
    kept = head.store.db.execute("SELECT count(*) FROM applied_requests WHERE key LIKE '1000:%'").fetchone()[0]
    assert kept == REPLIES_PER_USER
    last = REPLIES_PER_USER + 300 - 1
    assert head.store.applied_reply(f"1000:cancel_jobs:r{last}") == [{"id": last}]
    assert head.store.applied_reply("1000:cancel_jobs:r299") is None  # the oldest went first
    assert head.store.applied_reply("1000:cancel_jobs:r300") == [{"id": 300}]
    head.store.record_reply("1000:cancel_jobs:r300", float(last + 1), [{"id": 300}])  # a key kept already
    assert head.store.applied_reply("1000:cancel_jobs:r301") == [{"id": 301}]  # is not counted twice
    assert head.store.applied_reply("1001:cancel_jobs:other") == [{"id": 0}]


def test_ended_jobs_are_found_by_end_time_through_an_index(head: HeadNode) -> None:
    """The hourly cleanup (first run at a start) reads expired jobs by the end-time index, not by reading
    every stored job."""
    where, values = head.store._job_filter(None, [int(s) for s in (JobState.Finished, JobState.Canceled)],
                                           time.time())
    plan = head.store.db.execute(f"EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE {where}", values).fetchall()
    assert any("jobs_by_end_time" in str(row) for row in plan), plan
    job = head.new_job(ROOT_CALLER, {})
    head.cancel_job(ROOT_CALLER, job.id, StopOptions())
    assert [j.id for j in head.store.load_jobs(states=[int(JobState.Canceled)], ended_before=time.time() + 1)] \
        == [job.id]
    assert head.store.load_jobs(states=[int(JobState.Canceled)], ended_before=time.time() - 60) == []


def test_a_bulk_stop_reads_again_only_the_jobs_that_did_not_end_as_asked() -> None:
    """Stop-HpcJob outputs only errors: with records=False, jobs that ended as asked are not read again,
    nor read for a grace period when all have ended at the first look."""
    from hpcpack.backends.contract import Item
    from hpcpack.backends.stopping import stop_jobs
    lookups: list[list[int]] = []

    class Backend:
        def cancel_jobs(self, ids: list[int], options: StopOptions) -> list[Item]:
            return [Item(id=i, record=None, error=HpcError("InvalidJobId", "no") if i == 3 else None) for i in ids]

        def wait_jobs(self, ids: list[int], timeout: float) -> dict[int, str]:
            return {i: "Failed" if i == 2 else "Canceled" for i in ids}

        def cancel_time_limit(self) -> float:
            return 60.0

        def lookup_jobs(self, ids: list[int]) -> list[Item]:
            lookups.append(list(ids))
            return [Item(id=i, record={"Id": i, "ErrorMessage": "it failed"}) for i in ids]

    items = stop_jobs(Backend(), [1, 2, 3], StopOptions(), records=False)  # type: ignore[arg-type]
    assert lookups == [[2]]
    assert [(i.id, i.error.error_id if i.error else None) for i in items] == [
        (1, None), (2, "CancelFailed"), (3, "InvalidJobId")]
    lookups.clear()
    stop_jobs(Backend(), [1, 2], StopOptions())  # type: ignore[arg-type]
    assert lookups == [[1, 2]]


def _queued(head: HeadNode, caller: Caller, spec: dict[str, str] | None = None, command: str = "true") -> Job:
    job = head.new_job(caller, spec or {})
    head.add_task(caller, job.id, {"CommandLine": command})
    head.submit_job(caller, job.id)
    return job


def test_a_bulk_cancel_writes_queued_jobs_together_and_answers_each_job_in_order(head: HeadNode) -> None:
    """cancel_jobs: refusals (another user's job, an ended job, no such job, a repeat) come per job and in
    order, changing nothing; the jobs that never started end Canceled as stored, tasks too, each with its
    cancel and end history rows; a running job among them takes its own way (Canceling)."""
    running = _queued(head, ALICE, {"NumCores": "2"}, "sleep 300")  # holds both cores: the rest stay queued
    run_until(head, lambda: running.state == JobState.Running)
    first, second, third = (_queued(head, ALICE) for _ in range(3))
    others = _queued(head, ROOT_CALLER)
    ended = _queued(head, ALICE)
    run_until(head, lambda: all(j.state == JobState.Queued for j in (first, second, third, others, ended)))
    head.cancel_job(ALICE, ended.id, StopOptions())
    ids = [first.id, others.id, second.id, ended.id, 424242, running.id, first.id, third.id]
    with head.batch():
        outcomes = head.cancel_jobs(ALICE, ids, StopOptions(message="bulk"))
    assert [o.error_id if isinstance(o, HpcError) else (o.id, o.state.name) for o in outcomes] == [
        (first.id, "Canceled"), "PermissionDenied", (second.id, "Canceled"), "InvalidCancelJobState",
        "InvalidJobId", (running.id, "Canceling"), "InvalidCancelJobState", (third.id, "Canceled")]
    stored = {j.id: j for j in head.store.load_jobs() if j.id in ids}
    assert {i: stored[i].state.name for i in (first.id, second.id, third.id, others.id, running.id)} == {
        first.id: "Canceled", second.id: "Canceled", third.id: "Canceled", others.id: "Queued",
        running.id: "Canceling"}
    for job in (first, second, third):
        assert stored[job.id].error_message == "bulk" and stored[job.id].tasks[0].state == TaskState.Canceled
        assert [(r["event"], r["actor"]) for r in head.store.history(job.id)][-2:] == [
            ("cancel", "alice"), ("end", "scheduler")]
    assert [r["event"] for r in head.store.history(others.id)][-1] != "cancel"


def test_gathered_writes_of_a_bulk_cancel_are_kept_all_or_none(head: HeadNode) -> None:
    """A row not as memory has it fails the batch's write (StaleState): none of its jobs is kept canceled."""
    first, second = _queued(head, ROOT_CALLER), _queued(head, ROOT_CALLER)
    before = first.state
    head.store.db.execute("UPDATE jobs SET state=? WHERE id=?", (int(JobState.Running), second.id))
    with pytest.raises(StaleState), head.batch():
        head.cancel_jobs(ROOT_CALLER, [first.id, second.id], StopOptions())
    head.reload([first.id, second.id])
    assert head.store.job_states([first.id]) == {first.id: int(before)}
    assert first.id in {j.id for j in head.in_state(before)}
    assert "cancel" not in [r["event"] for r in head.store.history(first.id)]


def test_the_head_nodes_json_text_is_the_standard_librarys_json_value(tmp_path: Path) -> None:
    """head.jsontext (pydantic-core's encoder) writes the store's rows and the wire's replies: every value
    reads back as the standard library's own text of it, a lone surrogate included (escaped), and a job
    stored with non-ASCII and surrogate text is read back from SQLite as it was."""
    import json

    from hpcpack.head import jsontext
    values: list[object] = [{"a": [1, 2.5, -0.0, 1.5e-7, 10**30, None, True]}, {"u": "é\u2028日本"},
                            {"s": "x\ud800y"}, {"nested": {"k": ["\udfff", {}]}}, {1: "int key"}, "text"]
    for value in values:
        assert json.loads(jsontext.dumps(value)) == json.loads(json.dumps(value))
        assert jsontext.text(value) == jsontext.dumps(value).decode()
    root = Caller(uid=0, gid=0, name="root", admin=True)
    first = HeadNode(tmp_path, HeadNodeConfig(nodes=[Node("N1", 2)]))
    job = first.new_job(root, {"Name": "é日本", "Project": "p\udcff"})
    first.close()
    again = HeadNode(tmp_path, HeadNodeConfig(nodes=[Node("N1", 2)]))
    try:
        stored = again.job(job.id)
        assert (stored.name, stored.project) == ("é日本", "p\udcff")
    finally:
        again.close()
