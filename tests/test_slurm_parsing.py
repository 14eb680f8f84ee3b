"""How the head node reads Slurm's commands' output, without a cluster: text any Slurm user chose (a job's
name) must not pass for squeue's own lines (the head node, as root, ends or adopts what it finds)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from hpcpack.config import Node
from hpcpack.head import slurm
from hpcpack.identity import Caller
from hpcpack.model.states import JobState

from .conftest import in_process_head_node

# (id, user, state, name) as slurmctld holds them: eve named her own job so that its name prints as a line
# about alice's job 101, named as this head node's holder of job 5.
QUEUE = [(100, "alice", "RUNNING", "hpc-abc-4"),
         (200, "eve", "PENDING", "x\n101|alice|RUNNING|hpc-abc-5\n102|alice|RUNNING|hpc-abc-6"),
         (300, "bob", "RUNNING", "a|b")]


def fake_squeue(args: Sequence[str], user: str = "", stdin: str = "") -> str:
    """squeue -h -o <format>: each job's line, its fields in the format's place, the name as it is."""
    assert args[0] == "squeue"
    form = args[args.index("-o") + 1]
    return "".join(form.replace("%i", str(i)).replace("%u", u).replace("%T", t).replace("%j", n) + "\n"
                   for i, u, t, n in QUEUE)


def test_a_job_name_cannot_forge_squeue_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = slurm.Slurm(None)
    monkeypatch.setattr(engine, "run", fake_squeue)
    found = {h.job_id: h for h in engine.holders()}
    assert sorted(found) == [100, 200, 300]
    assert found[100] == slurm.Holder(100, "alice", "RUNNING", "hpc-abc-4")
    assert found[200].user == "eve" and not found[200].name.startswith("hpc-")
    assert found[300].name == "a|b"


def fake_steps(args: Sequence[str], user: str = "", stdin: str = "") -> str:
    """squeue -h -s -o <format> --jobs=7: job 7's steps; eve's own step 7.3 named to print as job 9's."""
    assert args[:3] == ["squeue", "-h", "-s"] and args[-1] == "--jobs=7"
    form = args[args.index("-o") + 1]
    listed = [("7.batch", "batch"), ("7.extern", "extern"), ("7.0", "hpc-abc-7-1"),
              ("7.3", "x\n9.0 hpc-abc-9-1\n9.batch batch")]
    return "".join(form.replace("%i", i).replace("%j", n) + "\n" for i, n in listed)


def test_a_step_name_cannot_make_the_head_node_signal_another_jobs_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = slurm.Slurm(None)
    sent: list[list[str]] = []

    def run(args: Sequence[str], user: str = "", stdin: str = "") -> str:
        sent.append(list(args))
        return fake_steps(args) if args[0] == "squeue" else ""
    monkeypatch.setattr(engine, "run", run)
    assert sorted(engine.steps(7)) == ["7.0", "7.3"]
    engine.kill_all_steps(7)
    assert sent[-1] == ["scancel", "--signal=KILL", "7.0", "7.3"]


class FakeEngine:
    """Slurm as the allocation phase sees it: these live jobs; what the head node submits is recorded."""

    def __init__(self, live: list[slurm.Holder]) -> None:
        self.live, self.submitted = live, []  # type: list[slurm.Holder], list[str]

    def holders(self, names: Sequence[str] = ()) -> list[slurm.Holder]:
        return [h for h in self.live if not names or h.name in names]

    def submit_holder(self, owner: str, name: str, request: object) -> int:
        self.submitted.append(name)
        return 999

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: {}


def test_another_users_job_named_as_a_holder_does_not_hide_the_real_one(tmp_path: Path) -> None:
    """A holder submitted just before a crash is adopted even when another user (listed after it) named a
    job of their own the same: not a second allocation for the job, its first left holding cores."""
    alice = Caller(uid=1001, gid=1001, name="alice", admin=False)
    for node in in_process_head_node(tmp_path, [Node("N1", 2)]):
        job = node.new_job(alice, {"Name": "j", "NumCores": "2"}, [{"CommandLine": "true"}])
        node.submit_job(alice, job.id)
        node.validate_submitted_jobs()  # Queued; no allocation pass on the node's own cores
        assert node.job(job.id).state == JobState.Queued and not node.job(job.id).slurm_job_id
        name = f"hpc-{node.head_id}-{job.id}"
        engine = FakeEngine([slurm.Holder(40, "alice", "PENDING", name), slurm.Holder(41, "eve", "PENDING", name)])
        node._allocate_on_slurm(engine)
        assert node.job(job.id).slurm_job_id == 40
        assert engine.submitted == []
