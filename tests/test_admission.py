"""What a second attack found (second round): no job may hold up the queue or the cluster, and a job
keeps to its template in the queue as at submit. In-process head node, real store, real processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcpack.config import Node
from hpcpack.errors import HpcError
from hpcpack.head import running, scheduler
from hpcpack.head.headnode import HeadNode
from hpcpack.identity import Caller
from hpcpack.model import templates
from hpcpack.model.objects import Job
from hpcpack.model.states import JobState
from hpcpack.model.stop import StopOptions

from .conftest import in_process_head_node, wait_until

ROOT = Caller(uid=0, gid=0, name="root", admin=True)
USER = Caller(uid=os.geteuid(), gid=os.getegid(), name="root", admin=False)  # the owner, not an administrator


@pytest.fixture
def head(tmp_path: Path) -> Iterator[HeadNode]:
    nodes = [Node("NODE1", 4, groups=("ComputeNodes", "G1")), Node("NODE2", 4)]
    yield from in_process_head_node(tmp_path, nodes)


def submitted(head: HeadNode, spec: dict[str, object], command: str = "sleep 30") -> Job:
    job = head.new_job(USER, spec)
    head.add_task(USER, job.id, {"CommandLine": command})
    head.submit_job(USER, job.id)
    wait_until(lambda: (head.step(), job.state not in (JobState.Submitted, JobState.Validating))[1], 10)
    return job


def test_a_job_valid_exit_codes_that_do_not_parse_are_refused_when_set(head: HeadNode) -> None:
    with pytest.raises(HpcError) as refused:
        head.new_job(USER, {"ValidExitCodes": "x"})
    assert refused.value.error_id == "InvalidArgument"


def test_a_fault_while_recording_an_exit_ends_the_job_and_frees_its_cores(head: HeadNode,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> bool:
        raise RuntimeError("recording failed")
    monkeypatch.setattr(running.Running, "_exit_ok", broken)
    job = submitted(head, {"NumCores": "8-8"}, "true")
    # A fault reloads the job from the store: the head node's current object is asked for each time.
    wait_until(lambda: (head.step(), head.job(job.id).state == JobState.Failed)[1], 20)
    failed = head.job(job.id)
    assert failed.allocation == {} and "failed while handling" in failed.error_message
    monkeypatch.undo()
    after = submitted(head, {"NumCores": "8-8"}, "true")  # the cores are free again
    wait_until(lambda: (head.step(), after.state == JobState.Finished)[1], 20)


@pytest.mark.parametrize("spec", [{"NodeGroups": ["G1"], "RequestedNodes": ["NODE2"]},
                                  {"NumCores": "8", "EstimatedProcessMemory": 2**31 - 1}])
def test_a_job_no_node_set_can_ever_serve_fails_validation(head: HeadNode, spec: dict[str, object]) -> None:
    job = submitted(head, spec)
    assert job.state == JobState.Failed and "never" in job.error_message


def test_a_queued_job_cannot_be_changed_into_one_that_can_never_start(head: HeadNode) -> None:
    job = submitted(head, {"HoldUntil": "2999-01-01T00:00:00+00:00"})
    with pytest.raises(HpcError) as refused:
        head.set_job(USER, job.id, {"NumCores": "1000"})
    assert refused.value.error_id == "JobModifyFailed"
    assert head.job(job.id).min_units is None  # nothing of the refused change stayed


def test_a_job_that_can_never_start_does_not_hold_up_the_queue() -> None:
    capacity = {"A": 4, "B": 4}
    stuck = scheduler.Demand(1, 4000, 0.0, 8, 8, caps=(("A", 1), ("B", 1)))  # at most 2 cores, ever
    behind = scheduler.Demand(2, 2000, 1.0, 2, 2)
    assert scheduler.plan(dict(capacity), set(capacity), [stuck, behind], capacity) == {2: {"A": 2}}
    busy = scheduler.Demand(3, 4000, 0.0, 8, 8)  # can start one day: it waits, and so does what follows
    assert scheduler.plan({"A": 4, "B": 0}, {"A"}, [busy, behind], capacity) == {}


def test_a_jobs_template_holds_in_the_queue_and_on_requeue(head: HeadNode) -> None:
    head.put_template(ROOT, templates.from_parameters("Small", "", {}, {"MaxCores": "1-2"}, []), False)
    held = submitted(head, {"TemplateName": "Small", "NumCores": "1-2", "HoldUntil": "2999-01-01T00:00:00+00:00"})
    assert held.state == JobState.Queued
    with pytest.raises(HpcError) as refused:
        head.set_job(USER, held.id, {"NumCores": "8-8"})
    assert refused.value.error_id == "JobTemplateViolation"
    head.cancel_job(USER, held.id, StopOptions())
    head.set_job(USER, held.id, {"NumCores": "8-8"})  # allowed while Canceled...
    with pytest.raises(HpcError) as requeue:
        head.submit_job(USER, held.id)  # ...but it does not enter the queue so
    assert requeue.value.error_id == "JobTemplateViolation"


def test_a_template_limits_the_cores_a_job_gets_from_its_tasks_too(head: HeadNode) -> None:
    """A third attack: a job that gives no NumCores takes its size from its tasks, past MaxCores."""
    head.put_template(ROOT, templates.from_parameters("Small", "", {}, {"MaxCores": "1-2"}, []), False)
    job = head.new_job(USER, {"TemplateName": "Small"})
    head.add_task(USER, job.id, {"CommandLine": "true", "NumCores": "4"})
    with pytest.raises(HpcError) as refused:
        head.submit_job(USER, job.id)
    assert refused.value.error_id == "JobTemplateViolation" and "MaxCores is 4" in refused.value.message
    queued = submitted(head, {"TemplateName": "Small", "HoldUntil": "2999-01-01T00:00:00+00:00"}, "true")
    assert queued.state == JobState.Queued
    with pytest.raises(HpcError) as bigger:  # a bigger task added in the queue is checked as well
        head.add_task(USER, queued.id, {"CommandLine": "true", "NumCores": "2"})
    assert bigger.value.error_id == "JobTemplateViolation"
    assert len(head.job(queued.id).tasks) == 1
