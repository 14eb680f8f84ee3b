"""The Backend contract (hpcpack.backends.contract), as every backend must keep it: submit, cancel in
each cancellable state, Force, Graceful and Finished, escalation after the grace period, per-item
errors in order, waits and their deadlines, requeue rules. Only the contract's verbs are used, so
the same tests hold for any backend (conftest.BACKENDS)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hpcpack.backends.contract import Backend, Item, JobQuery, StopOptions, TaskKey, TaskQuery
from hpcpack.backends.stopping import stop_jobs, stop_task
from hpcpack.errors import HpcError

from ..conftest import wait_until
from .conftest import GRACE

IGNORE_TERM = "trap '' TERM; touch {ready}; while true; do sleep 0.05; done"
CLEAN_UP_ON_TERM = "trap 'echo cleaned > {out}; exit 3' TERM; touch {ready}; while true; do sleep 0.05; done"


@pytest.fixture
def tmp(shared_tmp: Path) -> Path:
    return shared_tmp  # tasks (run as their owners) write here


def job_with(backend: Backend, *commands: str, submit: bool = True, **spec: object) -> int:
    job = backend.new_job({"Name": "contract", **spec})
    for command in commands:
        backend.add_task(job["Id"], {"CommandLine": command})
    if submit:
        [item] = backend.submit_jobs([job["Id"]])
        assert item.error is None, item.error
    return int(job["Id"])


def state(backend: Backend, job_id: int) -> str:
    [item] = backend.lookup_jobs([job_id])
    assert item.record is not None, item.error
    return str(item.record["State"])


def running(backend: Backend, job_id: int, ready: Path) -> None:
    """Waits until the job runs and its task has started its program (and set its traps)."""
    wait_until(lambda: ready.exists(), 30)
    assert state(backend, job_id) == "Running"


def record(item: Item) -> dict[str, object]:
    assert item.error is None and item.record is not None, item.error
    return item.record


def test_a_submitted_job_runs_its_tasks_to_finished(backend: Backend) -> None:
    job_id = job_with(backend, "echo one", "echo two")
    assert backend.wait_jobs([job_id], 30) == {job_id: "Finished"}
    tasks = backend.get_tasks(TaskQuery(job_id))
    assert [(t["State"], t["ExitCode"], t["Output"].strip()) for t in tasks] == [
        ("Finished", 0, "one"), ("Finished", 0, "two")]


@pytest.mark.parametrize("where", ["Configuring", "Queued"])
def test_a_job_that_never_ran_is_canceled_at_once_with_its_message(backend: Backend, where: str) -> None:
    # Queued: held for an hour, so it waits in the queue.
    job_id = job_with(backend, "echo never", submit=where == "Queued",
                      HoldUntil="2999-01-01T00:00:00+00:00")
    assert state(backend, job_id) == where
    [item] = stop_jobs(backend, [job_id], StopOptions(message="not needed"))
    job = record(item)
    assert (job["State"], job["ErrorMessage"]) == ("Canceled", "not needed")
    assert [t["State"] for t in backend.get_tasks(TaskQuery(job_id))] == ["Canceled"]


def test_a_running_job_gets_sigterm_and_its_cleanup_runs(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, CLEAN_UP_ON_TERM.format(out=tmp / "out", ready=tmp / "ready"))
    running(backend, job_id, tmp / "ready")
    [item] = stop_jobs(backend, [job_id], StopOptions())
    assert record(item)["State"] == "Canceled"
    assert (tmp / "out").read_text() == "cleaned\n"


def test_a_task_that_ignores_sigterm_is_killed_when_the_grace_period_ends(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, IGNORE_TERM.format(ready=tmp / "ready"))
    running(backend, job_id, tmp / "ready")
    asked = time.time()
    [item] = stop_jobs(backend, [job_id], StopOptions())
    assert record(item)["State"] == "Canceled"
    [task] = backend.get_tasks(TaskQuery(job_id))
    ended = task["EndTime"]
    assert isinstance(ended, str)
    from datetime import datetime
    assert datetime.fromisoformat(ended).timestamp() - asked >= GRACE - 0.05  # not before the grace period


def test_force_kills_at_once_and_still_ends_canceled(backend: Backend, tmp: Path) -> None:
    backend.set_properties({"TaskCancelGracePeriod": 3600})  # only -Force can end it before an hour
    job_id = job_with(backend, IGNORE_TERM.format(ready=tmp / "ready"))
    running(backend, job_id, tmp / "ready")
    [item] = stop_jobs(backend, [job_id], StopOptions(force=True))
    assert record(item)["State"] == "Canceled"


def test_state_finished_ends_a_running_job_finished(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, CLEAN_UP_ON_TERM.format(out=tmp / "out", ready=tmp / "ready"),
                      RunUntilCanceled=True, NumCores="1-1")
    running(backend, job_id, tmp / "ready")
    [item] = stop_jobs(backend, [job_id], StopOptions(finish=True, message="done for today"))
    assert (record(item)["State"], record(item)["ErrorMessage"]) == ("Finished", "done for today")


def test_graceful_starts_nothing_new_and_lets_running_tasks_end(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, f"touch {tmp / 'ready'}; while [ ! -e {tmp / 'go'} ]; do sleep 0.05; done",
                      "echo never started", NumCores="1-1")
    running(backend, job_id, tmp / "ready")
    [item] = stop_jobs(backend, [job_id], StopOptions(graceful=True, finish=True))
    assert item.error is None  # graceful: the call does not wait
    assert state(backend, job_id) in ("Finishing", "Canceling")
    (tmp / "go").touch()
    assert backend.wait_jobs([job_id], 30) == {job_id: "Finished"}
    first, second = backend.get_tasks(TaskQuery(job_id))
    assert (first["State"], first["ExitCode"]) == ("Finished", 0)  # ran to its own end
    assert second["State"] == "Canceled" and second["StartTime"] is None  # never started


def test_a_graceful_cancel_repeated_plain_kills_the_running_tasks(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, IGNORE_TERM.format(ready=tmp / "ready"))
    running(backend, job_id, tmp / "ready")
    stop_jobs(backend, [job_id], StopOptions(graceful=True))
    [item] = stop_jobs(backend, [job_id], StopOptions(force=True))
    assert record(item)["State"] == "Canceled"


def test_many_jobs_answer_per_item_in_the_order_asked(backend: Backend) -> None:
    first = job_with(backend, "echo a", HoldUntil="2999-01-01T00:00:00+00:00")
    done = job_with(backend, "true")
    assert backend.wait_jobs([done], 30) == {done: "Finished"}
    second = job_with(backend, "echo b", HoldUntil="2999-01-01T00:00:00+00:00")
    items = stop_jobs(backend, [second, 999_999, done, first], StopOptions())
    assert [i.id for i in items] == [second, 999_999, done, first]
    assert [i.error.error_id if i.error else record(i)["State"] for i in items] == [
        "Canceled", "InvalidJobId", "InvalidCancelJobState", "Canceled"]


def test_plan_cancel_says_what_would_happen_and_changes_nothing(backend: Backend) -> None:
    job_id = job_with(backend, "echo a", HoldUntil="2999-01-01T00:00:00+00:00")
    [item] = backend.plan_cancel([job_id], StopOptions(finish=True))
    assert item.action is not None and "end Finished" in item.action
    assert state(backend, job_id) == "Queued"


def test_a_wait_returns_the_current_states_when_its_timeout_passes(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, IGNORE_TERM.format(ready=tmp / "ready"))
    running(backend, job_id, tmp / "ready")
    assert backend.wait_jobs([job_id], 0.2) == {job_id: "Running"}
    stop_jobs(backend, [job_id], StopOptions(force=True))


def test_a_caller_that_stops_waiting_leaves_the_cancel_to_finish(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, IGNORE_TERM.format(ready=tmp / "ready"))
    running(backend, job_id, tmp / "ready")
    with pytest.raises(HpcError) as stopped:
        stop_jobs(backend, [job_id], StopOptions(), stopped=lambda: True)
    assert stopped.value.error_id == "OperationStopped"
    assert backend.wait_jobs([job_id], 30) == {job_id: "Canceled"}


def test_stop_options_are_checked_once_with_hpc_packs_errors() -> None:
    for parameters, error_id in (({"state": "Failed"}, "InvalidArgument"),
                                 ({"force": True, "graceful": True}, "ForcedGracefulConflict"),
                                 ({"message": "x" * 129}, "CancelMessageIsTooLong")):
        with pytest.raises(HpcError) as refused:
            StopOptions.from_parameters(**parameters)
        assert refused.value.error_id == error_id
    assert StopOptions.from_parameters(state="finished").final_state == "Finished"


def test_stopping_one_task_leaves_the_job_running(backend: Backend, tmp: Path) -> None:
    job_id = job_with(backend, IGNORE_TERM.format(ready=tmp / "one"), IGNORE_TERM.format(ready=tmp / "two"))
    running(backend, job_id, tmp / "one")
    wait_until(lambda: (tmp / "two").exists(), 30)
    [unit] = stop_task(backend, TaskKey(job_id, 1), StopOptions(force=True))
    assert unit["State"] == "Failed"  # HPC Pack: a task stopped while running is Failed, one never run Canceled
    assert state(backend, job_id) == "Running"
    assert [t["State"] for t in backend.get_tasks(TaskQuery(job_id))] == ["Failed", "Running"]
    stop_jobs(backend, [job_id], StopOptions(force=True))


def test_requeue_queues_canceled_and_failed_jobs_again_and_refuses_the_rest(backend: Backend) -> None:
    canceled = job_with(backend, "echo a", HoldUntil="2999-01-01T00:00:00+00:00")
    stop_jobs(backend, [canceled], StopOptions())
    failed = job_with(backend, "exit 7")
    finished = job_with(backend, "true")
    assert backend.wait_jobs([failed, finished], 30) == {failed: "Failed", finished: "Finished"}
    items = backend.requeue_jobs([canceled, failed, finished])
    assert all(record(i)["State"] in ("Submitted", "Queued") for i in items[:2])
    assert items[2].error is not None and items[2].error.error_id == "InvalidOperation"
    assert backend.wait_jobs([failed], 30) == {failed: "Failed"}  # it ran again, and failed again


def test_query_jobs_filters_by_state_and_owner(backend: Backend) -> None:
    held = job_with(backend, "echo a", HoldUntil="2999-01-01T00:00:00+00:00")
    done = job_with(backend, "true")
    backend.wait_jobs([done], 30)
    queued = [j["Id"] for j in backend.query_jobs(JobQuery(state="Queued"))]
    assert held in queued and done not in queued
    mine = [j["Id"] for j in backend.query_jobs(JobQuery(state="All", owner=backend.ping()["user"]))]
    assert {held, done} <= set(mine)
    assert list(backend.query_jobs(JobQuery(state="All", owner="nobody-at-all"))) == []


def test_under_state_finished_a_task_that_ends_well_is_finished(backend: Backend, tmp: Path) -> None:
    # The spec's example 3 raced here: its task ended by itself just as the stop came, and was Failed.
    job_id = job_with(backend, f"trap 'exit 0' TERM; touch {tmp / 'ready'}; while true; do sleep 0.05; done",
                      RunUntilCanceled=True, NumCores="1-1")
    running(backend, job_id, tmp / "ready")
    [item] = stop_jobs(backend, [job_id], StopOptions(finish=True))
    assert record(item)["State"] == "Finished"
    assert [t["State"] for t in backend.get_tasks(TaskQuery(job_id))] == ["Finished"]
