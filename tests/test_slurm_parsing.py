"""How the head node reads Slurm's commands' output, without a cluster: text any Slurm user chose (a job's
name) must not pass for squeue's own lines (the head node, as root, ends or adopts what it finds)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hpcpack.head import slurm

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
    monkeypatch.setattr(engine, "run", lambda args, user="", stdin="": sent.append(list(args)) or
                        (fake_steps(args) if args[0] == "squeue" else ""))
    assert sorted(engine.steps(7)) == ["7.0", "7.3"]
    engine.kill_all_steps(7)
    assert sent[-1] == ["scancel", "--signal=KILL", "7.0", "7.3"]
