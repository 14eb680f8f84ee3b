"""The test Slurm cluster is real: two idle nodes, a user's jobs run where asked, cancel leaves no process,
the epilog runs once per node, and a start after a crashed run cleans up and works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .slurm_cluster import BRIDGE, SlurmCluster, ensure_user, pids_in_netns, process_name

USER = "hpcslurm"  # a non-root job owner


@pytest.fixture
def workdir(slurm: SlurmCluster) -> Iterator[Path]:
    """A folder the job owner can write and every node sees (the nodes share the file system); outside
    the cluster's folder, which stop() removes."""
    user = ensure_user(USER)
    path = Path(tempfile.mkdtemp(prefix="slurm-job-"))
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def submit(slurm: SlurmCluster, workdir: Path, script: str, *options: str) -> int:
    """sbatch as USER from the root namespace (as a head node would); returns the job id."""
    path = workdir / "job.sh"
    path.write_text("#!/bin/bash\n" + script)
    out = slurm.run(["sbatch", "--parsable", f"--chdir={workdir}", f"--output={workdir}/slurm-%j.out",
                     *options, str(path)], user=USER, cwd=workdir).stdout
    return int(out.strip().split(";")[0])


def job_field(slurm: SlurmCluster, job: int, name: str) -> str:
    fields = dict(f.split("=", 1) for f in slurm.run(["scontrol", "-o", "show", "job", str(job)]).stdout.split()
                  if "=" in f)
    return fields[name]


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def wait_job_gone(slurm: SlurmCluster, job: int, timeout: float = 30) -> None:
    """Until squeue no longer lists the job: it and its epilogs have finished (COMPLETING is listed).
    Faster than `sbatch --wait`, which polls every 2-10 s."""
    wait_until(lambda: not slurm.run(["squeue", "-h", "-j", str(job)], check=False).stdout.strip(), timeout,
               f"job {job} leaving squeue")


def epilog_runs(slurm: SlurmCluster, job: int) -> list[str]:
    lines = slurm.epilog_log.read_text().splitlines() if slurm.epilog_log.exists() else []
    return sorted(line for line in lines if line.split()[0] == str(job))


def test_two_nodes_idle_each_in_its_namespace(slurm: SlurmCluster) -> None:
    assert slurm.node_states() == {"node1": "idle", "node2": "idle"}
    for node in slurm.nodes:
        text = slurm.run(["scontrol", "-o", "show", "node", node]).stdout
        assert f"NodeAddr={slurm.node_address(node)} " in text and "CPUTot=2 " in text
        assert [process_name(p) for p in pids_in_netns(slurm.netns(node))] == ["slurmd"]


def test_user_job_runs_on_node2(slurm: SlurmCluster, workdir: Path) -> None:
    job = submit(slurm, workdir, 'echo "$SLURMD_NODENAME $(hostname) $(id -un)"\n', "-w", "node2")
    wait_job_gone(slurm, job)
    assert (workdir / f"slurm-{job}.out").read_text() == f"node2 node2 {USER}\n"
    assert job_field(slurm, job, "JobState") == "COMPLETED"
    assert job_field(slurm, job, "UserId").startswith(f"{USER}(")


def test_user_job_runs_on_both_nodes_and_epilog_once_per_node(slurm: SlurmCluster, workdir: Path) -> None:
    job = submit(slurm, workdir, 'srun -l bash -c \'echo "$SLURMD_NODENAME $(hostname) $(id -un)"\'\n',
                 "-N", "2")
    wait_job_gone(slurm, job)
    lines = sorted((workdir / f"slurm-{job}.out").read_text().splitlines())
    assert lines == [f"0: node1 node1 {USER}", f"1: node2 node2 {USER}"]
    assert epilog_runs(slurm, job) == [f"{job} node1 node1", f"{job} node2 node2"]


# Every process ignores TERM (inherited), and two leave the task's process tree: only proctrack/cgroup
# finds them. Each appends its pid to pids.<node>.
TERM_IGNORING_TREE = r"""
trap '' TERM
log="$PWD/pids.$SLURMD_NODENAME"
echo $$ >>"$log"
setsid -f sh -c 'echo $$ >>"$1"; exec sleep 1000' sh "$log"
( sh -c 'echo $$ >>"$1"; exec sleep 1000' sh "$log" & )
while :; do sleep 0.2; done
"""


def test_scancel_kills_a_term_ignoring_tree_on_both_nodes(slurm: SlurmCluster, workdir: Path) -> None:
    (workdir / "tree.sh").write_text(TERM_IGNORING_TREE)
    job = submit(slurm, workdir, f"trap '' TERM\nsrun bash {workdir}/tree.sh\n", "-N", "2")
    logs = [workdir / f"pids.{node}" for node in slurm.nodes]
    wait_until(lambda: all(p.exists() and len(p.read_text().split()) == 3 for p in logs), 30, "task trees started")
    pids = [int(pid) for p in logs for pid in p.read_text().split()]
    uid = ensure_user(USER).pw_uid
    for node, log in zip(slurm.nodes, logs, strict=True):
        cgroup = f"/slurm_{node}/uid_{uid}/job_{job}/step_0"
        for pid in log.read_text().split():
            assert f"freezer:{cgroup}\n" in Path(f"/proc/{pid}/cgroup").read_text()

    started = time.monotonic()
    slurm.run(["scancel", str(job)], user=USER)
    wait_until(lambda: not any(process_name(pid) for pid in pids), 15, "every process of the job gone")
    assert 4 < time.monotonic() - started < 10  # they ignored TERM: SIGKILL after KillWait=5
    wait_job_gone(slurm, job)
    assert job_field(slurm, job, "JobState") == "CANCELLED"
    assert epilog_runs(slurm, job) == [f"{job} node1 node1", f"{job} node2 node2"]


def machine_has_leftovers(slurm: SlurmCluster) -> list[str]:
    """What a cluster leaves behind while it runs: daemons, namespaces, bridge, files, cgroups."""
    found = [str(ns) for ns in map(slurm.netns, slurm.nodes) if ns.exists()]
    found += [f"process {pid} {process_name(pid)}" for node in slurm.nodes for pid in pids_in_netns(slurm.netns(node))]
    found += [p for p in (f"/sys/class/net/{BRIDGE}", str(slurm.base)) if Path(p).exists()]
    found += [str(p) for node in slurm.nodes for p in Path("/sys/fs/cgroup").glob(f"*/slurm_{node}")]
    found += [f"slurmctld {pid}" for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
              if process_name(pid) == "slurmctld" and str(slurm.slurm_conf) in Path(f"/proc/{pid}/cmdline").read_text()]
    return found


def test_stop_leaves_the_machine_clean_and_start_works_again(slurm: SlurmCluster, workdir: Path) -> None:
    submit(slurm, workdir, "sleep 1000\n", "-N", "2")  # a running job creates the nodes' cgroups
    wait_until(lambda: list(Path("/sys/fs/cgroup/freezer").glob("slurm_node*/uid_*")), 30, "job cgroups")
    slurm.stop()
    assert machine_has_leftovers(slurm) == []
    slurm.start()
    assert slurm.node_states() == {"node1": "idle", "node2": "idle"}


def test_start_after_a_crashed_run(slurm: SlurmCluster, workdir: Path) -> None:
    """The owner of a running cluster is SIGKILLed; the next start removes what it left and works."""
    submit(slurm, workdir, "sleep 1000\n", "-N", "2")
    slurm.stop()
    crash = ("import os, sys; sys.path.insert(0, sys.argv[1]); from slurm_cluster import SlurmCluster\n"
             "SlurmCluster().start(); os.kill(os.getpid(), 9)")
    result = subprocess.run([sys.executable, "-c", crash, str(Path(__file__).parent)], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr
    assert machine_has_leftovers(slurm)  # the crashed cluster's daemons and namespaces are still there
    slurm.start()
    assert slurm.node_states() == {"node1": "idle", "node2": "idle"}
    job = submit(slurm, workdir, "hostname\n", "-w", "node1")
    wait_job_gone(slurm, job)
    assert (workdir / f"slurm-{job}.out").read_text() == "node1\n"
