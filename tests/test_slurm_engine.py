"""A head node with `engine: slurm` runs HPC jobs on a real two-node Slurm cluster with HPC Pack's
semantics: one allocation per job (asked for as its owner), one step per task, HPC Pack's cancel."""

from __future__ import annotations

import json
import pwd
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpcpack.backends.client import Client

from .conftest import HeadNodeProcess, as_user, head_id, slurm_engine_config, start_head_node, wait_until
from .jobs import cancel, job, task_states, tasks, wait_state
from .slurm_cluster import SlurmCluster

OWNER = "hpcalice"
# Every process ignores TERM, one leaves the session (setsid) and one the process tree (double fork):
# only the step's cgroup holds them all. Each writes its pid to {pids}; {ready} gets the Slurm job id.
IGNORE_TREE = ("trap '' TERM; echo $$ >> {pids}; setsid -f sh -c 'echo $$ >> {pids}; exec sleep 1000'; "
               "( sh -c 'echo $$ >> {pids}; exec sleep 1000' & ); sleep 0.2; echo $SLURM_JOB_ID > {ready}; "
               "while :; do sleep 0.05; done")


@pytest.fixture
def head(slurm: SlurmCluster, state_dir: Path, users: dict[str, object]) -> Iterator[HeadNodeProcess]:
    node = start_head_node(state_dir, slurm_engine_config(slurm))
    client = node.client()
    client.call("set_property", values={"TaskCancelGracePeriod": 2, "NodeReleaseTaskTimeout": 5})
    client.close()
    yield node
    node.stop()
    slurm.clear()  # what a failed test left would hold the shared cluster's cores for the next tests


@pytest.fixture
def client(head: HeadNodeProcess) -> Iterator[Client]:
    c = head.client()
    yield c
    c.close()


def user_job(head: HeadNodeProcess, *commands: str, user: str = OWNER, **spec: object) -> int:
    """A job of `user` (a real Unix user, through the socket as that user), submitted."""
    code = (f"j = c.call('new_job', spec={spec!r})\n"
            f"for cmd in {list(commands)!r}: c.call('add_task', job_id=j['Id'], spec={{'CommandLine': cmd}})\n"
            "print(json.dumps(c.call('submit_jobs', ids=[j['Id']])))\nprint(j['Id'])")
    done = as_user(user, head, code)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stdout.splitlines()[0], done.stdout
    return int(done.stdout.split()[-1])


def slurm_job(slurm: SlurmCluster, job_id: int) -> dict[str, str]:
    out = slurm.run(["scontrol", "-o", "show", "job", str(job_id)], check=False).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def test_nodes_are_slurms_and_a_task_runs_as_its_owner_on_a_slurm_node(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client) -> None:
    job_id = user_job(head, "echo $SLURMD_NODENAME $(hostname) $(id -un) $CCP_JOBID $SLURM_JOB_ID")
    done = wait_state(client, job_id, "Finished", "Failed")
    assert done["State"] == "Finished", (done["ErrorMessage"], [(t["ErrorMessage"], t["Output"]) for t in tasks(client, job_id).values()])
    [task] = tasks(client, job_id).values()
    node, host, user, hpc_id, slurm_id = task["Output"].split()
    assert node in slurm.nodes and host == node and user == OWNER and hpc_id == str(job_id)
    assert slurm_job(slurm, int(slurm_id)).get("UserId", "").startswith(f"{OWNER}(")
    assert task["ExitCode"] == 0 and job(client, job_id)["AllocatedNodes"] == []


def alive(pids: list[int]) -> list[int]:
    """The pids that are still live processes (zombies count as gone)."""
    found = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            found.append(pid)
    return found


def step_cgroup_pids(slurm: SlurmCluster, slurm_id: int, user: str = OWNER) -> list[int]:
    """Every process in the job's step cgroups on every node (proctrack/cgroup's record), the holder's
    batch step aside."""
    uid = pwd.getpwnam(user).pw_uid
    pids = []
    for node in slurm.nodes:
        for procs in Path(f"/sys/fs/cgroup/freezer/slurm_{node}/uid_{uid}/job_{slurm_id}").glob("step_*/cgroup.procs"):
            if procs.parent.name != "step_batch":
                pids += [int(p) for p in procs.read_text().split()]
    return pids


@pytest.fixture
def shared(shared_tmp: Path) -> Path:
    return shared_tmp


def running_tree(head: HeadNodeProcess, shared: Path, name: str = "tree", **spec: object) -> tuple[int, int, list[int]]:
    """A job of OWNER whose task is IGNORE_TREE; returns (HPC job id, Slurm job id, the tree's pids)."""
    pids, ready = shared / f"{name}.pids", shared / f"{name}.ready"
    job_id = user_job(head, IGNORE_TREE.format(pids=pids, ready=ready), **spec)
    wait_until(lambda: ready.exists() and ready.read_text().strip(), 20)
    tree = [int(p) for p in pids.read_text().split()]
    assert len(alive(tree)) == 3
    return job_id, int(ready.read_text()), tree


def test_stop_plain_waits_the_grace_period_then_kills_the_tree_and_mirrors_the_message(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared: Path) -> None:
    job_id, slurm_id, tree = running_tree(head, shared)
    started = time.monotonic()
    [answer] = cancel(client, job_id, message="maintenance; rm -rf / $(reboot) 'quoted'")
    assert "error" not in answer, answer
    assert slurm_job(slurm, slurm_id).get("Comment") == "maintenance;"  # scontrol -o splits at spaces
    comment = slurm.run(["squeue", "-h", "-j", str(slurm_id), "-o", "%k"], check=False).stdout.strip()
    assert comment in ("maintenance; rm -rf / $(reboot) 'quoted'", "")  # "" once Slurm let go of it
    wait_until(lambda: not alive(tree), 10)
    gone = time.monotonic() - started
    assert 2.0 <= gone < 3.0, gone  # the head node's 2 s grace period, not Slurm's KillWait (5 s)
    # Canceled once Slurm no longer lists the steps: its proof that their cgroups are empty.
    ended = wait_state(client, job_id, "Canceled")
    assert ended["ErrorMessage"] == "maintenance; rm -rf / $(reboot) 'quoted'"
    assert alive(tree) == [] and step_cgroup_pids(slurm, slurm_id) == []
    assert list(task_states(client, job_id).values()) == ["Failed"]


def test_force_kills_a_term_ignoring_tree_at_once_without_slurms_killwait(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared: Path) -> None:
    job_id, slurm_id, tree = running_tree(head, shared)
    started = time.monotonic()
    cancel(client, job_id, force=True)
    wait_until(lambda: not alive(tree), 5)
    gone = time.monotonic() - started
    ended = wait_state(client, job_id, "Canceled")
    assert gone < 1.0, gone  # the grace period is 2 s and Slurm's KillWait 5 s: neither is waited for
    assert ended["State"] == "Canceled" and step_cgroup_pids(slurm, slurm_id) == []


def test_stop_state_finished_ends_a_run_until_canceled_job_finished(
        head: HeadNodeProcess, client: Client) -> None:
    job_id = user_job(head, "echo Hello World!", RunUntilCanceled=True, NumCores="1-3")
    wait_until(lambda: task_states(client, job_id) == {f"{job_id}.1": "Finished"}, 20)
    assert job(client, job_id)["State"] == "Running"
    cancel(client, job_id, state="Finished")
    assert wait_state(client, job_id, "Finished")["ErrorMessage"] == "Finished by user."


def test_graceful_finish_lets_the_running_step_end_and_starts_no_other(
        head: HeadNodeProcess, client: Client, shared: Path) -> None:
    gate, ready = shared / "gate", shared / "ready"
    job_id = user_job(head, f"echo ready > {ready}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done",
                      "echo second", NumCores="1")
    wait_until(ready.exists, 20)
    cancel(client, job_id, graceful=True, state="Finished")
    time.sleep(0.5)
    assert job(client, job_id)["State"] == "Canceling"
    gate.touch()
    wait_state(client, job_id, "Finished")
    assert task_states(client, job_id) == {f"{job_id}.1": "Finished", f"{job_id}.2": "Canceled"}
    assert tasks(client, job_id)[f"{job_id}.1"]["Output"].strip().endswith("done")


@pytest.mark.parametrize("grace", [0, 1, 2])
def test_grace_periods_are_honoured(slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared: Path,
                                    grace: int) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": grace})
    job_id, slurm_id, tree = running_tree(head, shared)
    started = time.monotonic()
    cancel(client, job_id)
    wait_until(lambda: not alive(tree), grace + 5)
    gone = time.monotonic() - started
    wait_state(client, job_id, "Canceled")
    assert grace <= gone < grace + 1.0, (grace, gone)


def test_node_release_runs_once_per_node_and_not_with_force(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared: Path) -> None:
    ran = {}
    for force in (False, True):
        marker, ready = shared / f"released-{force}", shared / f"ready-{force}"
        code = (f"j = c.call('new_job', spec={{'NumCores': '4'}})\n"
                f"c.call('add_task', job_id=j['Id'], spec={{'Type': 'NodeRelease', "
                f"'CommandLine': 'echo $SLURMD_NODENAME $CCP_JOBID >> {marker}'}})\n"
                f"c.call('add_task', job_id=j['Id'], spec={{'CommandLine': 'echo x > {ready}; sleep 300'}})\n"
                "c.call('submit_jobs', ids=[j['Id']]); print(j['Id'])")
        done = as_user(OWNER, head, code)
        job_id = int(done.stdout.split()[-1])
        wait_until(ready.exists, 20)
        assert sorted(job(client, job_id)["AllocatedNodes"]) == list(slurm.nodes)
        cancel(client, job_id, force=force)
        wait_state(client, job_id, "Canceled")
        ran[force] = sorted(marker.read_text().splitlines()) if marker.exists() else []
    assert ran[False] == [f"{n} {job_id - 1}" for n in slurm.nodes]
    assert ran[True] == []


def test_another_users_cancel_is_refused(head: HeadNodeProcess, client: Client, shared: Path) -> None:
    job_id, _, tree = running_tree(head, shared)
    refused = as_user("hpcbob", head, f"print(json.dumps(c.call('cancel_jobs', ids=[{job_id}])))")
    [answer] = json.loads(refused.stdout)
    assert "PermissionDenied" in json.dumps(answer), answer
    assert job(client, job_id)["State"] == "Running" and len(alive(tree)) == 3
    cancel(client, job_id, force=True)  # by root, an administrator
    wait_state(client, job_id, "Canceled")


def test_the_head_node_killed_mid_cancel_finishes_the_cancel_after_restart(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared: Path) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 3})
    job_id, slurm_id, tree = running_tree(head, shared)
    cancel(client, job_id)
    assert job(client, job_id)["State"] == "Canceling"
    client.close()
    head.kill()
    assert len(alive(tree)) == 3, "the steps outlive the head node"
    restarted = start_head_node(head.state_dir)
    head.process = restarted.process
    client = head.client()
    assert wait_state(client, job_id, "Canceled", timeout=15)["State"] == "Canceled"
    assert alive(tree) == [] and step_cgroup_pids(slurm, slurm_id) == []
    client.close()


def submit_holder_as_head(slurm: SlurmCluster, name: str) -> int:
    """What the head node does for a queued job (sbatch as the owner, under the job's holder name)."""
    out = slurm.run(["sbatch", "--parsable", f"--job-name={name}", "--ntasks=1", "--output=/dev/null",
                     "--error=/dev/null", "--chdir=/", "--wrap=exec sleep infinity"], user=OWNER).stdout
    return int(out.strip().split(";")[0])


def slurm_jobs_named(slurm: SlurmCluster, name: str, states: str = "all") -> dict[int, str]:
    """Slurm job id -> state of every job with this name Slurm still remembers (ended ones too)."""
    out = slurm.run(["squeue", "-h", "--all", f"--states={states}", f"--name={name}", "-o", "%i %T"]).stdout
    return {int(i): state for i, state in (line.split() for line in out.splitlines())}


def test_a_holder_submitted_just_before_a_crash_is_adopted_and_holders_of_no_job_are_ended(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client) -> None:
    prefix = f"hpc-{head_id(head.state_dir)}-"
    ended_id = user_job(head, "true", NumCores="1")
    wait_state(client, ended_id, "Finished")
    # Held for a moment, so that this head node asks Slurm for nothing before it is killed.
    held_until = time.time() + 3
    job_id = user_job(head, "echo $SLURM_JOB_ID", NumCores="1",
                      HoldUntil=datetime.fromtimestamp(held_until, UTC).isoformat())
    assert job(client, job_id)["State"] == "Queued" and slurm_jobs_named(slurm, f"{prefix}{job_id}") == {}
    client.close()
    head.kill()
    # The crash being reproduced: sbatch done as the owner, the id never stored.
    holder = submit_holder_as_head(slurm, f"{prefix}{job_id}")
    strays = [submit_holder_as_head(slurm, f"{prefix}{n}") for n in (ended_id, 999)]
    wait_until(lambda: time.time() > held_until, 10)
    head.process = start_head_node(head.state_dir).process
    client = head.client()
    done = wait_state(client, job_id, "Finished", "Failed", timeout=30)
    [task] = tasks(client, job_id).values()
    assert (done["State"], task["Output"].strip()) == ("Finished", str(holder)), done["ErrorMessage"]
    assert list(slurm_jobs_named(slurm, f"{prefix}{job_id}")) == [holder]  # one allocation, the adopted one
    wait_until(lambda: all(slurm_job(slurm, s).get("JobState") in ("CANCELLED", None) for s in strays), 15)
    client.close()



def test_a_requeued_running_job_ends_its_old_allocation_and_runs_again_on_a_new_one(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client, shared: Path) -> None:
    job_id, old, tree = running_tree(head, shared)
    [answer] = client.call("requeue_jobs", ids=[job_id])
    assert "error" not in answer, answer
    ready = shared / "tree.ready"
    wait_until(lambda: ready.read_text().strip() not in ("", str(old)), 30)
    new = int(ready.read_text())
    name = f"hpc-{head_id(head.state_dir)}-{job_id}"
    wait_until(lambda: slurm_jobs_named(slurm, name, "PD,R,S,CF") == {new: "RUNNING"}, 20)
    assert alive(tree) == []
    cancel(client, job_id, force=True)
    wait_state(client, job_id, "Canceled")

# Every process of the race test's tasks carries this variable (the job's environment), so a leftover
# is found on any node by a scan of /proc, whatever left the process tree.
RACE_MARK = "HPC_RACE_MARK"
RACE_TREE = "trap '' TERM; setsid -f sleep 1000; ( sleep 1000 & ); sleep 1000"


def marked_processes(mark: str) -> list[int]:
    wanted = f"{RACE_MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if wanted in environ.split(b"\0"):
                found.append(int(entry.name))
    return alive(found)


def starting(slurm: SlurmCluster, client: Client, prefix: str, ids: list[int]) -> set[int]:
    """Jobs whose allocation Slurm has granted (the head node may not know yet) or that the head node
    runs (their steps being launched)."""
    granted = {int(name[len(prefix):]) for name in slurm.run(["squeue", "-h", "-t", "R", "-o", "%j"]).stdout.split()
               if name.startswith(prefix)}
    return (granted & set(ids)) | {j["Id"] for j in client.call("get_jobs", ids=ids) if j["State"] != "Queued"}


def cancel_each_as_it_starts(slurm: SlurmCluster, client: Client, prefix: str, ids: list[int]) -> None:
    """Cancels every job the instant its allocation is granted or it is seen Running, some at once and
    some a few ms later so the cancels land at every moment of a launch; every other one with Force."""
    due: dict[int, float] = {}
    deadline = time.monotonic() + 400  # ~90 s on an idle machine: only a hang ends here
    while len(due) < len(ids) or any(at >= 0 for at in due.values()):
        assert time.monotonic() < deadline, f"only {len(due)} of {len(ids)} jobs started"
        for job_id in starting(slurm, client, prefix, ids) - set(due):
            due[job_id] = time.monotonic() + (job_id % 4) * 0.015
        for job_id, at in due.items():
            if 0 <= at <= time.monotonic():
                [answer] = cancel(client, job_id, force=job_id % 2 == 0)
                assert "error" not in answer, answer
                due[job_id] = -1.0


def submit_marked(head: HeadNodeProcess, mark: str, count: int) -> list[int]:
    """`count` one-core jobs of OWNER running RACE_TREE, every process of theirs marked with `mark`."""
    code = (f"ids = [c.call('new_job', spec={{'NumCores': '1', 'JobEnv': [{RACE_MARK + '=' + mark!r}]}})"
            f"['Id'] for _ in range({count})]\n"
            f"for i in ids: c.call('add_task', job_id=i, spec={{'CommandLine': {RACE_TREE!r}}})\n"
            "c.call('submit_jobs', ids=ids); print(json.dumps(ids))")
    done = as_user(OWNER, head, code)
    assert done.returncode == 0, done.stderr
    return [int(i) for i in json.loads(done.stdout)]


def unfinished(client: Client, ids: list[int]) -> list[tuple[int, str, str, dict[str, str]]]:
    """The jobs of `ids` not yet in a final state: id, state, error message and task states."""
    return [(j["Id"], j["State"], j["ErrorMessage"], task_states(client, j["Id"])) for j in client.call("get_jobs", ids=ids)
            if j["State"] not in ("Canceled", "Finished", "Failed")]


@pytest.mark.timeout(600)  # its own deadlines find a hang: 400 s for the starts, 60 s for the ends
def test_jobs_canceled_at_the_instant_of_launch_leave_no_process_on_any_node(
        slurm: SlurmCluster, head: HeadNodeProcess, client: Client) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 1})
    mark = uuid.uuid4().hex
    # The scan must see a running tree: a job left to start shows its shell, srun and three sleeps.
    [probe] = submit_marked(head, mark, 1)
    wait_until(lambda: len(marked_processes(mark)) >= 5, 20)
    cancel(client, probe, force=True)
    wait_state(client, probe, "Canceled")
    ids = submit_marked(head, mark, 100)
    prefix = f"hpc-{head_id(head.state_dir)}-"
    cancel_each_as_it_starts(slurm, client, prefix, ids)
    last_cancel = time.monotonic()
    try:
        wait_until(lambda: not unfinished(client, ids), 60)
        print(f"every job ended {time.monotonic() - last_cancel:.1f} s after the last cancel")
    except AssertionError:
        log = (head.state_dir / "headnode.log").read_text().splitlines()[-200:]
        raise AssertionError(f"jobs not ended: {unfinished(client, ids)[:5]}\n"
                             f"Slurm: {slurm.run(['squeue', '-h', '-s', '-o', '%i %j %T']).stdout}\n"
                             + "\n".join(log)) from None
    assert {j["State"] for j in client.call("get_jobs", ids=ids)} == {"Canceled"}
    print("task states at the end:", Counter(s for i in ids for s in task_states(client, i).values()))
    # Canceled is the head node's word that nothing is left: checked at once, and again once Slurm
    # has let go of every allocation (a step that came late would show then).
    assert marked_processes(mark) == []
    steps = slurm.run(["squeue", "-h", "-s", "-o", "%i %j"]).stdout.splitlines()
    assert [s for s in steps if s.split()[1].startswith(prefix)] == []
    wait_until(lambda: not [n for n in slurm.run(["squeue", "-h", "-o", "%j"]).stdout.split()
                            if n.startswith(prefix)], 60)
    assert marked_processes(mark) == []
