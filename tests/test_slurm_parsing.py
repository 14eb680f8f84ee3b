"""How the head node reads Slurm's commands' output, without a cluster: text any Slurm user chose (a job's
name) must not pass for squeue's own lines (the head node, as root, ends or adopts what it finds)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from hpcpack.config import Node
from hpcpack.head import slurm
from hpcpack.identity import Caller
from hpcpack.model.objects import now
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


def scontrol_job(name: str, comment: str, details: str) -> str:
    """`scontrol -d show job 7` of a two-node allocation, shaped as 22.05 prints it."""
    return (f"JobId=7 JobName={name}\n   UserId=eve(1005) GroupId=eve(1005) MCS_label=N/A\n"
            f"   NodeList=node[1-2]\n   NumNodes=2 NumCPUs=3 NumTasks=3 CPUs/Task=1\n   JOB_GRES=(null)\n{details}"
            f"   MinCPUsNode=1 MinMemoryCPU=100M MinTmpDiskNode=0\n   Command=(null)\n   WorkDir=/\n"
            f"   Comment={comment}\n   StdErr=/dev/null\n")


GENUINE = "     Nodes=node1 CPU_IDs=0-1 Mem=200 GRES=\n     Nodes=node2 CPU_IDs=0 Mem=100 GRES=\n"
FORGED = "x\n     Nodes=node2 CPU_IDs=0-63 Mem=1 GRES=\n"


@pytest.mark.parametrize(("name", "comment", "nodes", "expected"), [
    ("hpc-abc-7", "", "node[1-2]", {"node1": 2, "node2": 1}),
    ("hpc-abc-7", "", "node1", {"node1": 3}),  # one node: squeue's count alone, nothing else read
    (FORGED, "", "node[1-2]", None),  # the owner renamed their job to print a split of their own
    ("hpc-abc-7", FORGED, "node[1-2]", None),
    ("hpc-abc-7", "     Nodes=node3 CPU_IDs=0 Mem=1 GRES=", "node[1-2]", {"node1": 2, "node2": 1}),  # not a line
    ("hpc-abc-7", "y\n     Nodes=node3 CPU_IDs=0 Mem=1 GRES=", "node[1-2]", None)])
def test_an_allocation_is_read_only_as_slurm_split_it(monkeypatch: pytest.MonkeyPatch, name: str, comment: str,
                                                      nodes: str, expected: dict[str, int] | None) -> None:
    engine = slurm.Slurm(None)

    def run(args: Sequence[str], user: str = "", stdin: str = "") -> str:
        if args[0] == "squeue":
            return args[args.index("-o") + 1].replace("%C", "3").replace("%N", nodes) + "\n"
        if args[:3] == ["scontrol", "show", "hostnames"]:
            return {"node[1-2]": "node1\nnode2\n"}.get(args[3], args[3] + "\n")
        assert args[:4] == ["scontrol", "-d", "show", "job"] and "[" in nodes
        return scontrol_job(name, comment, GENUINE)
    monkeypatch.setattr(engine, "run", run)
    if expected is None:
        with pytest.raises(slurm.SlurmError, match="not its 3 CPUs"):
            engine.allocation(7)
    else:
        assert engine.allocation(7) == expected


class StepRecorder:
    """Slurm as a job's end sees it: one step it lists whatever is done; what the head node asks is recorded."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def steps(self, job_id: int) -> dict[str, str]:
        return {f"{job_id}.0": "hpc-step"}

    def kill_all_steps(self, job_id: int) -> None:
        self.asked.append(("kill_all_steps", job_id))

    def end(self, *job_ids: int) -> None:
        self.asked += [("end", j) for j in job_ids]


@pytest.mark.parametrize(("listed_for", "expected"), [
    (None, "kill_all_steps"),  # first seen: Slurm lists a killed step for a few seconds, it is killed again
    (3.0, "kill_all_steps"),
    (60.0, "end")])  # a step record outliving SIGKILL goes with its allocation
def test_a_step_slurm_lists_long_after_the_work_is_over_ends_with_its_allocation(
        tmp_path: Path, listed_for: float | None, expected: str) -> None:
    for node in in_process_head_node(tmp_path, [Node("N1", 2)]):
        job = node.new_job(Caller(uid=0, gid=0, name="root", admin=True), {"Name": "j"}, [{"CommandLine": "true"}])
        job.slurm_job_id = 44
        if listed_for is not None:
            node._steps_left_since[job.id] = now() - listed_for
        recorder = node.slurm = StepRecorder()
        assert node._survivors_remain(job)  # the job does not end while Slurm lists its step
        node.slurm = None  # the job is not Slurm's: nothing is asked when it is canceled at the end
        assert recorder.asked == [(expected, 44)]
