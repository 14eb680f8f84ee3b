"""Cancel, exactly as HPC Pack does it, against a real head node and real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcpack.backends.client import Client
from hpcpack.head import executor

from .conftest import (
    HeadNodeProcess,
    as_user,
    job_processes,
    pids_running,
    running_head_node,
    start_head_node,
    wait_until,
)
from .jobs import add_task, cancel, job, make_job, task_states, tasks, wait_state, wait_task_state

TRAP_TERM = "trap 'echo cleaned > {out}; exit 3' TERM; echo ready > {ready}; while true; do sleep 0.05; done"
# Tests of several users: on root's head node alone, the only one that serves more than its own user.
SHARED = pytest.mark.parametrize("head", ["root"], indirect=True, ids=["root head node"])
IGNORE_TERM = "trap '' TERM; echo ready > {ready}; while true; do sleep 0.05; done"
FORKS = ("sh -c 'sleep 300 & sleep 300 & wait' & setsid sh -c 'sleep 300 & wait' & "
         "(sleep 300 &) ; echo ready > {ready}; wait")


@pytest.fixture(params=["root", "hpcalice"], ids=["root head node", "user head node"])
def head(request: pytest.FixtureRequest, state_dir: Path, users: dict[str, object]) -> Iterator[HeadNodeProcess]:
    """The whole cancel suite runs twice: on a root head node (cgroups, tasks as their owners) and on a
    user's own head node (no cgroups: the launcher's subreaper and process proofs must do)."""
    yield from running_head_node(state_dir, None if request.param == "root" else request.param)


@pytest.fixture
def tmp_path(shared_tmp: Path) -> Path:
    """A folder the tasks of either head node can write to (pytest's own is root's alone)."""
    return shared_tmp


def ready_file(tmp: Path, name: str = "ready") -> Path:
    path = tmp / name
    path.parent.chmod(0o777)
    return path


def test_a_job_runs_its_task_and_finishes(client: Client) -> None:
    job_id = make_job(client, "echo hello from $CCP_JOBID.$CCP_TASKID on $COMPUTERNAME")
    assert wait_state(client, job_id, "Finished")["ErrorMessage"] == ""
    [task] = tasks(client, job_id).values()
    assert task["State"] == "Finished"
    assert task["ExitCode"] == 0
    assert task["Output"].strip().startswith(f"hello from {job_id}.1 on NODE")


def test_a_queued_job_leaves_the_queue_and_its_cores_go_to_the_next_job_at_once(
        client: Client, tmp_path: Path) -> None:
    blocker = make_job(client, "sleep 300", NumCores="8")  # the whole cluster
    wait_state(client, blocker, "Running")
    queued = make_job(client, "echo never", NumCores="8")
    follower = make_job(client, "echo next", NumCores="8")
    assert job(client, queued)["State"] == "Queued"
    cancel(client, queued, message="not needed")
    canceled = wait_state(client, queued, "Canceled")
    assert canceled["ErrorMessage"] == "not needed"
    assert task_states(client, queued) == {f"{queued}.1": "Canceled"}
    cancel(client, blocker, force=True)
    wait_state(client, blocker, "Canceled")
    assert wait_state(client, follower, "Finished")["State"] == "Finished"


@pytest.mark.parametrize("state", ["Configuring", "Queued", "Running"])
def test_every_cancelable_state_ends_canceled(client: Client, state: str) -> None:
    if state == "Queued":
        parent = make_job(client, "sleep 300")
        job_id = make_job(client, "sleep 300", ParentJobIds=[parent])  # waits for its parent
    else:
        job_id = make_job(client, "sleep 300", submit=state != "Configuring")
    wait_state(client, job_id, state)
    [result] = cancel(client, job_id)
    assert "error" not in result
    wait_state(client, job_id, "Canceled")
    expected = "Failed" if state == "Running" else "Canceled"
    assert task_states(client, job_id) == {f"{job_id}.1": expected}
    if state == "Queued":
        cancel(client, parent, force=True)


@pytest.mark.parametrize("end", ["Finished", "Failed", "Canceled"])
def test_ended_jobs_cannot_be_canceled_and_the_error_names_the_state(client: Client, end: str) -> None:
    command = {"Finished": "true", "Failed": "exit 4", "Canceled": "sleep 300"}[end]
    job_id = make_job(client, command)
    if end == "Canceled":
        cancel(client, job_id, force=True)
    wait_state(client, job_id, end)
    [result] = cancel(client, job_id)
    assert result["error"]["error_id"] == "InvalidCancelJobState"
    assert f"({end})" in result["error"]["message"]
    assert job(client, job_id)["State"] == end


def test_unknown_job_id_is_reported_per_id_and_others_still_cancel(client: Client) -> None:
    job_id = make_job(client, "sleep 300", submit=False)
    results = cancel(client, 424242, job_id)
    assert results[0]["error"]["error_id"] == "InvalidJobId"
    assert "error" not in results[1]
    assert wait_state(client, job_id, "Canceled")


def test_a_task_that_traps_sigterm_cleans_up_within_the_grace_period(client: Client, tmp_path: Path) -> None:
    out, ready = tmp_path / "cleaned", ready_file(tmp_path)
    job_id = make_job(client, TRAP_TERM.format(out=out, ready=ready))
    wait_until(ready.exists)
    cancel(client, job_id)
    ended = wait_state(client, job_id, "Canceled")
    assert out.read_text().strip() == "cleaned"
    [task] = tasks(client, job_id).values()
    assert task["State"] == "Failed"  # running tasks stopped by a job cancel end Failed (HPC Pack)
    assert ended["ErrorMessage"] == "Canceled by user."


def test_a_task_that_ignores_sigterm_is_killed_when_the_grace_period_ends(client: Client, tmp_path: Path) -> None:
    ready = ready_file(tmp_path)
    job_id = make_job(client, IGNORE_TERM.format(ready=ready))
    wait_until(ready.exists)
    start = time.monotonic()
    cancel(client, job_id)
    assert job(client, job_id)["State"] == "Canceling"
    wait_state(client, job_id, "Canceled")
    elapsed = time.monotonic() - start
    assert 2.0 <= elapsed < 4.0, elapsed  # the test head node's grace period is 2 s


def test_children_grandchildren_and_escaped_sessions_are_all_gone(
        head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    ready = ready_file(tmp_path)
    job_id = make_job(client, FORKS.format(ready=ready))
    wait_until(ready.exists)
    wait_until(lambda: len(job_processes(head.state_dir, job_id)) >= 6)  # the last forks may trail "ready"
    cancel(client, job_id)
    wait_state(client, job_id, "Canceled")
    assert job_processes(head.state_dir, job_id) == []


def test_node_release_runs_on_cancel_and_not_with_force(client: Client, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    ran = {}
    for force in (False, True):
        marker = tmp_path / f"released-{force}"
        job_id = make_job(client, submit=False, NumCores="2")
        add_task(client, job_id, CommandLine=f"echo $COMPUTERNAME >> {marker}", Type="NodeRelease")
        add_task(client, job_id, CommandLine="sleep 300")
        client.call("submit_jobs", ids=[job_id])
        wait_until(lambda j=job_id: "Running" in task_states(client, j).values())
        cancel(client, job_id, force=force)
        wait_state(client, job_id, "Canceled")
        ran[force] = marker.read_text().split() if marker.exists() else []
    assert ran[False] and set(ran[False]) <= {"NODE1", "NODE2"}
    assert ran[True] == []


def test_graceful_lets_the_running_task_finish_and_starts_no_other(client: Client, tmp_path: Path) -> None:
    gate, ready = tmp_path / "gate", ready_file(tmp_path)
    job_id = make_job(client, f"echo ready > {ready}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done",
                      submit=False, NumCores="1")
    add_task(client, job_id, CommandLine="echo second")
    client.call("submit_jobs", ids=[job_id])
    wait_until(ready.exists)
    cancel(client, job_id, graceful=True, state="Finished")
    assert job(client, job_id)["State"] == "Canceling"
    gate.touch()
    wait_state(client, job_id, "Finished")
    states = task_states(client, job_id)
    assert states == {f"{job_id}.1": "Finished", f"{job_id}.2": "Canceled"}
    assert tasks(client, job_id)[f"{job_id}.1"]["Output"].strip().endswith("done")


def test_finish_ends_a_run_until_canceled_job_finished(client: Client) -> None:
    job_id = make_job(client, "echo Hello World!", RunUntilCanceled=True, NumCores="1-3")
    wait_until(lambda: task_states(client, job_id) == {f"{job_id}.1": "Finished"})
    assert job(client, job_id)["State"] == "Running"  # it holds its cores until cancelled
    cancel(client, job_id, state="Finished")
    assert wait_state(client, job_id, "Finished")["ErrorMessage"] == "Finished by user."


def test_a_message_over_128_characters_is_refused_and_changes_nothing(client: Client) -> None:
    from hpcpack.errors import HpcError
    job_id = make_job(client, "sleep 300", submit=False)
    with pytest.raises(HpcError) as e:
        cancel(client, job_id, message="x" * 129)
    assert e.value.error_id == "CancelMessageIsTooLong"
    assert job(client, job_id)["State"] == "Configuring"
    cancel(client, job_id, message="y" * 128)
    assert wait_state(client, job_id, "Canceled")["ErrorMessage"] == "y" * 128


def test_force_and_graceful_together_are_refused(client: Client) -> None:
    from hpcpack.errors import HpcError
    job_id = make_job(client, "sleep 300", submit=False)
    with pytest.raises(HpcError) as e:
        cancel(client, job_id, force=True, graceful=True)
    assert e.value.error_id == "ForcedGracefulConflict"
    assert job(client, job_id)["State"] == "Configuring"


def test_a_repeated_force_request_upgrades_a_graceful_cancel(client: Client, tmp_path: Path) -> None:
    ready = ready_file(tmp_path)
    job_id = make_job(client, IGNORE_TERM.format(ready=ready))
    wait_until(ready.exists)
    cancel(client, job_id, graceful=True)
    assert job(client, job_id)["State"] == "Canceling"
    [again] = cancel(client, job_id, force=True)
    assert "error" not in again
    wait_state(client, job_id, "Canceled", timeout=5)
    history = [r["event"] for r in client.call("history", job_id=job_id)]
    assert history.count("graceful") == 1 and history.count("force") == 1


def test_requeue_keeps_finished_and_explicitly_canceled_tasks_and_queues_the_rest(
        client: Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job_id = make_job(client, submit=False, NumCores="1")
    add_task(client, job_id, CommandLine="echo first")                        # will finish
    add_task(client, job_id, CommandLine="exit 3", Name="bad")                # will fail
    add_task(client, job_id, CommandLine="sleep 300", Depend=["bad2"])        # never runs
    add_task(client, job_id, CommandLine=f"while [ ! -e {gate} ]; do sleep 0.05; done", Name="bad2")
    client.call("submit_jobs", ids=[job_id])
    wait_task_state(client, job_id, f"{job_id}.4", "Running")
    client.call("cancel_task", job_id=job_id, task_id=3)                      # explicitly canceled
    cancel(client, job_id, force=True)
    wait_state(client, job_id, "Canceled")
    before = task_states(client, job_id)
    assert before == {f"{job_id}.1": "Finished", f"{job_id}.2": "Failed", f"{job_id}.3": "Canceled",
                      f"{job_id}.4": "Failed"}
    [result] = client.call("submit_jobs", ids=[job_id])
    assert "error" not in result
    gate.touch()
    wait_until(lambda: job(client, job_id)["State"] in ("Failed", "Finished"))
    after = tasks(client, job_id)
    assert after[f"{job_id}.1"]["RequeueCount"] == 0 and after[f"{job_id}.1"]["State"] == "Finished"
    assert after[f"{job_id}.3"]["State"] == "Canceled" and after[f"{job_id}.3"]["RequeueCount"] == 0
    assert after[f"{job_id}.2"]["RequeueCount"] == 1 and after[f"{job_id}.4"]["RequeueCount"] == 1
    assert after[f"{job_id}.4"]["State"] == "Finished"
    assert job(client, job_id)["RequeueCount"] == 1
    assert "requeue" in [r["event"] for r in client.call("history", job_id=job_id)]


def test_every_cancel_is_in_the_history_with_who_what_and_when(client: Client) -> None:
    job_id = make_job(client, "sleep 300", submit=False)
    before = time.time()
    cancel(client, job_id, message="audit me")
    wait_state(client, job_id, "Canceled")
    [row] = [r for r in client.call("history", job_id=job_id) if r["event"] == "cancel"]
    assert row["actor"] == "root" and row["message"] == "audit me"
    assert before <= row["time"] <= time.time()


@pytest.mark.parametrize("grace", [0, 1, 2])
def test_grace_periods_are_honoured_as_given(client: Client, tmp_path: Path, grace: int) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": grace})
    ready = ready_file(tmp_path)
    job_id = make_job(client, IGNORE_TERM.format(ready=ready))
    wait_until(ready.exists)
    start = time.monotonic()
    cancel(client, job_id)
    wait_state(client, job_id, "Canceled")
    elapsed = time.monotonic() - start
    assert grace <= elapsed < grace + 0.75, (grace, elapsed)


def test_cancel_at_the_instant_a_task_starts_leaves_no_process(head: HeadNodeProcess, client: Client) -> None:
    for _ in range(100):
        job_id = make_job(client, "sh -c 'sleep 300 & sleep 300' & sleep 300", submit=False)
        client.call("submit_jobs", ids=[job_id])
        cancel(client, job_id, force=True)
        client.call("wait_jobs", ids=[job_id], timeout=10)
        assert job(client, job_id)["State"] == "Canceled"
        assert job_processes(head.state_dir, job_id) == []


def test_the_head_node_killed_mid_cancel_finishes_the_cancel_after_restart(
        head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    ready = ready_file(tmp_path)
    canceling = make_job(client, IGNORE_TERM.format(ready=ready))
    waiting = make_job(client, "sleep 300", submit=False)
    wait_until(ready.exists)
    survivor_ready = ready_file(tmp_path, "survivor")
    running = make_job(client, f"echo ready > {survivor_ready}; sleep 1; echo survived")
    wait_until(survivor_ready.exists)
    cancel(client, canceling)
    assert job(client, canceling)["State"] == "Canceling"
    client.close()
    head.kill()
    assert job_processes(head.state_dir, canceling), "the task outlives its head node"
    restarted = start_head_node(head.state_dir, user=head.user)
    head.process = restarted.process
    client = head.client()
    assert wait_state(client, canceling, "Canceled")["State"] == "Canceled"
    assert job_processes(head.state_dir, canceling) == []
    assert job(client, waiting)["State"] == "Configuring"
    finished = wait_state(client, running, "Finished")  # adopted, not killed
    assert finished["State"] == "Finished"
    assert tasks(client, running)[f"{running}.1"]["ExitCode"] == 0
    client.close()


def test_a_task_whose_end_is_not_recorded_yet_when_the_head_node_restarts_ends_as_it_did(
        head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    # Between a task's program ending and its wrapper writing the exit code, no process carries the
    # task's marker. A head node that restarts then must not take the task for killed (it did: "killed
    # by SIGKILL", about one CI run in twenty). The window is held open: the wrapper is stopped.
    ready, go = ready_file(tmp_path), tmp_path / "go"
    job_id = make_job(client, f"echo ready > {ready}; while [ ! -e {go} ]; do sleep 0.05; done; echo done")
    wait_until(ready.exists)
    marked = set(job_processes(head.state_dir, job_id))
    parents = {p.pid: p.ppid for p in executor.snapshot()}
    # (a `sleep` of the loop may have ended between the two looks)
    [wrapper] = {parents[pid] for pid in marked if pid in parents and parents[pid] not in marked}
    os.kill(wrapper, signal.SIGSTOP)
    try:
        go.touch()
        wait_until(lambda: not job_processes(head.state_dir, job_id))  # the program ended, unrecorded
        client.close()
        head.kill()
        head.process = start_head_node(head.state_dir, user=head.user).process
        client = head.client()
        assert job(client, job_id)["State"] == "Running"
    finally:
        os.kill(wrapper, signal.SIGCONT)
    assert wait_state(client, job_id, "Finished")["State"] == "Finished"
    task = tasks(client, job_id)[f"{job_id}.1"]
    assert (task["ExitCode"], task["Output"].split()) == (0, ["done"])
    client.close()


def test_a_wrapper_stopped_before_a_restart_is_found_and_a_forced_cancel_ends_its_task(
        head: HeadNodeProcess, client: Client, tmp_path: Path) -> None:
    # The task stops its own wrapper (it runs as the task's owner): after a restart only the lock on its
    # exit file names that wrapper. Found by it, the task is neither taken for ended nor left for ever.
    job_id = make_job(client, "kill -STOP $PPID; echo stopped")
    exit_file = head.state_dir / "output" / str(job_id) / "1.0.0.rc"
    wrapper = wait_until(lambda: (pid := executor.lock_holder(exit_file)) and process_state(pid) == "T" and pid)
    try:
        wait_until(lambda: not job_processes(head.state_dir, job_id))  # the program ended (a zombie)
        client.close()
        head.kill()
        head.process = start_head_node(head.state_dir, user=head.user).process
        client = head.client()
        assert job(client, job_id)["State"] == "Running"
        cancel(client, job_id, force=True)
        assert wait_state(client, job_id, "Canceled")["State"] == "Canceled"
        assert executor.lock_holder(exit_file) == 0  # the wrapper is gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(wrapper, signal.SIGKILL)
    client.close()


def process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat (R, S, T for stopped, Z...), "" for no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@pytest.mark.parametrize("head", ["hpcalice"], indirect=True, ids=["user head node"])
def test_a_users_own_head_node_serves_that_user_alone_whatever_its_socket_allows(
        head: HeadNodeProcess, users: dict[str, object]) -> None:
    # Its socket is 0666 and hpcadmin one of its administrators (DEFAULT_CONFIG); but it can run tasks
    # only as hpcalice: another user's job would run as her, reading her files (it did).
    attempt = ("try:\n    print(c.call('new_job', spec={'Name': 'x'})['Id'])\n"
               "except HpcError as e:\n    print(e.error_id, e.message)")
    for user in ("hpcbob", "hpcadmin"):
        refused = as_user(user, head, attempt)
        assert refused.stdout.startswith("PermissionDenied This head node runs as hpcalice and can run tasks "
                                         f"only as hpcalice: it serves hpcalice alone, not {user}."), refused
    assert as_user("hpcalice", head, attempt).stdout.strip().isdigit()
    check = head.client()  # root's
    assert [j["Owner"] for j in check.call("get_jobs", state=["All"])] == ["hpcalice"]
    check.close()


@SHARED
def test_another_users_cancel_is_refused_and_an_administrators_accepted(
        head: HeadNodeProcess, users: dict[str, object]) -> None:
    made = as_user("hpcalice", head, "j = c.call('new_job', spec={'Name': 'mine'}); print(j['Id'], j['Owner'])")
    assert made.returncode == 0, made.stderr
    job_id, owner = made.stdout.split()
    assert owner == "hpcalice"
    refused = as_user("hpcbob", head, f"print(json.dumps(c.call('cancel_jobs', ids=[{job_id}])))")
    assert refused.returncode == 0, refused.stderr
    assert '"PermissionDenied"' in refused.stdout
    check = head.client()
    assert job(check, int(job_id))["State"] == "Configuring"
    accepted = as_user("hpcadmin", head, f"print(json.dumps(c.call('cancel_jobs', ids=[{job_id}])))")
    assert '"error"' not in accepted.stdout, accepted.stdout
    assert wait_state(check, int(job_id), "Canceled")
    rows = [r for r in check.call("history", job_id=int(job_id)) if r["event"] == "cancel"]
    assert rows[0]["actor"] == "hpcadmin"
    check.close()


@SHARED
def test_tasks_run_as_the_job_owner_with_hpc_environment(
        head: HeadNodeProcess, users: dict[str, object], tmp_path: Path) -> None:
    code = ("j = c.call('new_job', spec={'Name': 'env'}); "
            "c.call('add_task', job_id=j['Id'], spec={'CommandLine': 'id -un; echo $CCP_JOBID $CCP_TASKID $HOME'}); "
            "c.call('submit_jobs', ids=[j['Id']]); print(j['Id'])")
    made = as_user("hpcbob", head, code)
    assert made.returncode == 0, made.stderr
    job_id = int(made.stdout)
    client = head.client()
    wait_state(client, job_id, "Finished")
    output = tasks(client, job_id)[f"{job_id}.1"]["Output"].split()
    assert output == ["hpcbob", str(job_id), "1", "/home/hpcbob"]
    client.close()


def test_bulk_cancel_of_many_queued_jobs_is_one_request_and_others_are_served(client: Client,
                                                                              head: HeadNodeProcess) -> None:
    ids = [make_job(client, "true", submit=False) for _ in range(1200)]
    other = head.client()
    import threading
    answered: list[float] = []

    def ping() -> None:
        start = time.monotonic()
        other.call("ping")
        answered.append(time.monotonic() - start)

    thread = threading.Thread(target=ping)
    results_holder: list[list[dict[str, object]]] = []
    worker = threading.Thread(target=lambda: results_holder.append(cancel(client, *ids)))
    worker.start()
    thread.start()
    worker.join(60)
    thread.join(60)
    assert len(results_holder[0]) == 1200 and all("error" not in r for r in results_holder[0])
    assert answered, "the other client got no answer"
    states = {j["State"] for j in client.call("get_jobs", ids=ids)}
    assert states == {"Canceled"}
    other.close()


def test_the_state_survives_a_restart(head: HeadNodeProcess, client: Client) -> None:
    job_id = make_job(client, "echo kept", Name="durable")
    wait_state(client, job_id, "Finished")
    client.close()
    head.stop()
    restarted = start_head_node(head.state_dir, user=head.user)
    head.process = restarted.process
    again = head.client()
    assert job(again, job_id)["Name"] == "durable"
    assert tasks(again, job_id)[f"{job_id}.1"]["Output"].strip() == "kept"
    assert os.path.exists(head.state_dir / "headnode.db")
    again.close()


def test_signals_are_not_sent_to_unrelated_processes(client: Client, tmp_path: Path) -> None:
    import subprocess
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        job_id = make_job(client, "sleep 300")
        wait_until(lambda: "Running" in task_states(client, job_id).values())
        cancel(client, job_id, force=True)
        wait_state(client, job_id, "Canceled")
        assert bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


def test_a_process_that_leaves_its_session_and_clears_its_environment_is_still_killed(
        client: Client, tmp_path: Path) -> None:
    """Only the task's cgroup can find it: no marker in its environment, a session of its own."""
    ready = ready_file(tmp_path)
    job_id = make_job(client, f"setsid env -i /bin/sleep 3017 & echo ready > {ready}; wait")
    wait_until(ready.exists)
    escaped = wait_until(lambda: pids_running(b"/bin/sleep", b"3017"))
    cancel(client, job_id, force=True)
    wait_state(client, job_id, "Canceled")
    assert pids_running(b"/bin/sleep", b"3017") == [], escaped





def test_a_process_that_escapes_after_its_shell_exits_is_gone_before_the_job_ends(
        client: Client, tmp_path: Path) -> None:
    """No false success: the task's shell exits at once, leaving an escaped process behind (new session,
    empty environment, a double fork); the job reaches Finished only once nothing of it is left."""
    ready = ready_file(tmp_path)
    job_id = make_job(client, f"(setsid env -i /bin/sleep 3018 &); echo ready > {ready}")
    assert wait_state(client, job_id, "Finished")["State"] == "Finished"
    assert ready.exists() and pids_running(b"/bin/sleep", b"3018") == []


def test_a_forced_cancel_reaches_an_escaped_double_fork(client: Client, tmp_path: Path) -> None:
    ready = ready_file(tmp_path)
    job_id = make_job(client, f"(setsid env -i /bin/sleep 3019 &); echo ready > {ready}; sleep 300")
    wait_until(lambda: ready.exists() and pids_running(b"/bin/sleep", b"3019"))
    cancel(client, job_id, force=True)
    assert wait_state(client, job_id, "Canceled")["State"] == "Canceled"
    assert pids_running(b"/bin/sleep", b"3019") == []


@SHARED
def test_a_mixed_bulk_cancel_answers_each_job_and_cancels_only_what_the_caller_may(
        head: HeadNodeProcess, users: dict[str, object]) -> None:
    # In one request: another user's job (refused), an unknown id, the caller's running job and the
    # caller's jobs queued behind it (never started: ended at once, together).
    made = as_user("hpcalice", head, "j = c.call('new_job', spec={'Name': 'alices'}); print(j['Id'])")
    assert made.returncode == 0, made.stderr
    alices = int(made.stdout)
    code = ("def job(command, **spec):\n"
            "    j = c.call('new_job', spec=spec, tasks=[{'CommandLine': command}])\n"
            "    c.call('submit_jobs', ids=[j['Id']])\n"
            "    return j['Id']\n"
            "running = job('sleep 300', NumCores='8')\n"
            "queued = [job('true') for _ in range(3)]\n"
            f"ids = [queued[0], {alices}, 987654, running, *queued[1:]]\n"
            "print(json.dumps({'running': running, 'queued': queued, 'results': c.call('cancel_jobs', ids=ids)}))")
    out = as_user("hpcbob", head, code)
    assert out.returncode == 0, out.stderr
    answer = __import__("json").loads(out.stdout)
    running, queued, results = answer["running"], answer["queued"], answer["results"]
    assert [r["id"] for r in results] == [queued[0], alices, 987654, running, *queued[1:]]
    errors = {r["id"]: r["error"]["error_id"] for r in results if "error" in r}
    assert errors == {alices: "PermissionDenied", 987654: "InvalidJobId"}
    assert [r["state"] for r in results if r["id"] in queued] == ["Canceled"] * 3
    check = head.client()
    assert job(check, alices)["State"] == "Configuring"
    assert wait_state(check, running, "Canceled")["State"] == "Canceled"
    assert {job(check, i)["State"] for i in queued} == {"Canceled"}
    check.close()
