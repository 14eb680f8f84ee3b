"""A head node many users can trust, attacked as a hostile user would: a root head node with a shared
socket, real Unix users, real processes. Nothing a user sends runs as root, reads another user's data
or signals another user's process; requests of the wrong type change nothing."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import stat
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hpcpack.backends.client import Client
from hpcpack.errors import HpcError

from .conftest import ROOT, SYSTEM_PYTHON, HeadNodeProcess, as_user, pids_running, wait_until

LOADER_VARIABLES = ("PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "IFS", "PYTHONPATH", "PYTHONHOME",
                    "PYTHONSTARTUP", "PYTHONINSPECT")
ENDED = ("Finished", "Failed", "Canceled")


def call_as(user: str, head: HeadNodeProcess, op: str, **args: Any) -> Any:
    """One request as another Unix user; returns the result, or {"error_id": ...} when refused."""
    out = as_user(user, head, textwrap.dedent(f"""
        try:
            print(json.dumps(c.call({op!r}, **json.loads({json.dumps(args)!r}))))
        except HpcError as e:
            print(json.dumps({{"error_id": e.error_id, "message": e.message}}))
        """))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def job_as(user: str, head: HeadNodeProcess, job: dict[str, Any], tasks: list[dict[str, Any]]) -> int:
    """Creates, fills and submits a job as `user`; returns its id."""
    created = call_as(user, head, "new_job", spec=job)
    for task in tasks:
        added = call_as(user, head, "add_task", job_id=created["Id"], spec=task)
        assert isinstance(added, list), added
    submitted = call_as(user, head, "submit_jobs", ids=[created["Id"]])
    assert "error" not in submitted[0], submitted
    return int(created["Id"])


def ended(client: Client, job_id: int, timeout: float = 30) -> dict[str, Any]:
    return wait_until(lambda: (lambda j: j if j["State"] in ENDED else None)(client.call("get_jobs", ids=[job_id])[0]),
                      timeout)


def tasks_of(client: Client, job_id: int) -> list[dict[str, Any]]:
    return list(client.call("get_tasks", job_id=job_id))


@pytest.fixture
def evil(users: dict[str, pwd.struct_passwd], tmp_path: Path) -> Path:
    """hpcalice's trap kit: look-alikes of every program, library and start-up file that privileged code
    might use, each writing the uid it ran as into proof/, then doing the real thing."""
    kit = Path(f"/tmp/hpc-evil-{os.getpid()}-{tmp_path.name}")
    (kit / "bin").mkdir(parents=True)
    (kit / "proof").mkdir()
    for name in ("setpriv", "sh", "bash", "python3", "python", "env", "id", "cat", "runuser", "su", "sudo", "echo"):
        real = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or "/bin/true"
        script = kit / "bin" / name
        script.write_text(f"#!/bin/sh\n/usr/bin/id -u >> {kit}/proof/{name}\nexec {real} \"$@\"\n")
        script.chmod(0o755)
    startup = kit / "startup.sh"
    startup.write_text(f"/usr/bin/id -u >> {kit}/proof/startup\n")
    (kit / "sitecustomize.py").write_text(f"import os\nopen('{kit}/proof/python', 'a').write(str(os.getuid()))\n")
    source = kit / "evil.c"
    source.write_text(textwrap.dedent(f"""
        #include <stdio.h>
        #include <unistd.h>
        __attribute__((constructor)) static void proof(void) {{
            FILE *f = fopen("{kit}/proof/preload", "a");
            if (f) {{ fprintf(f, "%d\\n", (int)getuid()); fclose(f); }}
        }}
        """))
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "the LD_PRELOAD attack needs a C compiler (Debian: build-essential)"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(kit / "evil.so"), str(source)], check=True)
    alice = users["hpcalice"]
    for path in [kit, *kit.rglob("*")]:
        os.chown(path, alice.pw_uid, alice.pw_gid)
    (kit / "proof").chmod(0o777)
    yield kit
    shutil.rmtree(kit, ignore_errors=True)


def hostile_environment(kit: Path) -> dict[str, str]:
    return {"PATH": f"{kit}/bin:/usr/bin:/bin", "LD_PRELOAD": f"{kit}/evil.so", "LD_LIBRARY_PATH": str(kit),
            "BASH_ENV": str(kit / "startup.sh"), "ENV": str(kit / "startup.sh"), "IFS": "/ ",
            "PYTHONPATH": str(kit), "PYTHONHOME": str(kit), "PYTHONSTARTUP": str(kit / "startup.sh"),
            "PYTHONINSPECT": "1"}


def assert_never_root(kit: Path, alice: pwd.struct_passwd) -> None:
    proofs = {p.name: p.read_text().split() for p in (kit / "proof").iterdir()}
    assert not [name for name, uids in proofs.items() if "0" in uids], f"ran as root: {proofs}"
    assert proofs, "the user's own command should have used the kit (as the user)"
    assert all(uid == str(alice.pw_uid) for uids in proofs.values() for uid in uids), proofs


@pytest.mark.parametrize("way", ["Env", "JobEnv", "job add /env", "job XML"])
def test_what_a_user_puts_in_the_environment_never_runs_as_root(head: HeadNodeProcess, client: Client,
                                                                   users: dict[str, pwd.struct_passwd], evil: Path,
                                                                   way: str) -> None:
    alice = users["hpcalice"]
    env = hostile_environment(evil)
    pairs = [f"{k}={v}" for k, v in env.items()]
    command = "id -u > ran-as.txt; python3 -c 'pass'; bash -c true"
    if way == "job add /env":
        job_id = int(call_as("hpcalice", head, "new_job", spec={})["Id"])
        cli = subprocess.run(["runuser", "-u", "hpcalice", "--", "env", f"PYTHONPATH={ROOT / 'src'}", SYSTEM_PYTHON,
                              "-m", "hpcpack.cli", "add", str(job_id), *[f"/env:{p}" for p in pairs],
                              f"/scheduler:unix:{head.socket}", f"/workdir:{evil}", command],
                             capture_output=True, text=True, timeout=60, cwd="/tmp")
        assert cli.returncode == 0, cli.stderr
        assert "error" not in call_as("hpcalice", head, "submit_jobs", ids=[job_id])[0]
    elif way == "job XML":
        job_id = _job_file_as("hpcalice", head, evil, env, command)
    else:
        job_spec = {"JobEnv": pairs} if way == "JobEnv" else {}
        task_spec = {"CommandLine": command, "WorkDir": str(evil), **({"Env": pairs} if way == "Env" else {})}
        job_id = job_as("hpcalice", head, job_spec, [task_spec])
    job = ended(client, job_id)
    task = tasks_of(client, job_id)[0]
    assert job["State"] == "Finished", (job, task)
    assert (evil / "ran-as.txt").read_text().strip() == str(alice.pw_uid)
    assert_never_root(evil, alice)


def _job_file_as(user: str, head: HeadNodeProcess, folder: Path, env: dict[str, str], command: str) -> int:
    """A job file with the environment on its job and its task, read as New-HpcJob -JobFile reads it,
    then created, all of it in one request, and submitted as `user`."""
    from xml.sax.saxutils import quoteattr

    from hpcpack.model.jobxml import read_job_file
    variables = "".join(f"<Variable><Name>{k}</Name><Value>{v}</Value></Variable>" for k, v in env.items())
    path = folder / "job.xml"
    path.write_text(f'<Job Name="from-file"><Tasks><Task CommandLine={quoteattr(command)} WorkDirectory="{folder}">'
                    f"<EnvironmentVariables>{variables}</EnvironmentVariables></Task></Tasks></Job>")
    spec, tasks = read_job_file(str(path))
    assert any("LD_PRELOAD=" in e for e in tasks[0]["Env"]), tasks
    job_id = int(call_as(user, head, "new_job", spec=spec, tasks=tasks)["Id"])
    assert "error" not in call_as(user, head, "submit_jobs", ids=[job_id])[0]
    return job_id


@pytest.fixture
def alice_secret(users: dict[str, pwd.struct_passwd]) -> Path:
    """A file in hpcalice's 0700 home, in a folder she would share if she could."""
    alice = users["hpcalice"]
    home = Path(alice.pw_dir)
    home.chmod(0o700)
    pub = home / "pub"
    pub.mkdir(exist_ok=True)
    secret = pub / "secret.txt"
    secret.write_text("alice-secret-42\n")
    for path in (pub, secret):
        os.chown(path, alice.pw_uid, alice.pw_gid)
    pub.chmod(0o755)
    return secret


def test_workdir_and_redirections_are_used_as_the_owner(head: HeadNodeProcess, client: Client,
                                                        users: dict[str, pwd.struct_passwd], alice_secret: Path,
                                                        tmp_path: Path) -> None:
    bob = users["hpcbob"]
    root_file = Path(f"/var/tmp/hpc-root-owned-{os.getpid()}")
    root_file.write_text("root data\n")
    link = Path(f"/tmp/hpc-bob-link-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(alice_secret)
    os.lchown(link, bob.pw_uid, bob.pw_gid)
    dropped = alice_secret.parent / "bob-was-here"
    attacks = {
        "workdir": ({"CommandLine": "cat secret.txt", "WorkDir": str(alice_secret.parent)}, "working directory"),
        "stdin": ({"CommandLine": "cat", "Stdin": str(alice_secret)}, "standard input"),
        "stdin via symlink": ({"CommandLine": "cat", "Stdin": str(link)}, "standard input"),
        "stdout into a 0700 home": ({"CommandLine": "echo bob", "Stdout": str(dropped)}, "standard output"),
        "stdout over a root file": ({"CommandLine": "echo bob", "Stdout": str(root_file)}, "standard output"),
        "stderr over a root file": ({"CommandLine": "echo bob >&2", "Stderr": str(root_file)}, "standard error"),
    }
    try:
        for name, (spec, what) in attacks.items():
            job_id = job_as("hpcbob", head, {"Name": name}, [spec])
            ended(client, job_id)
            task = tasks_of(client, job_id)[0]
            assert task["State"] == "Failed", (name, task)
            assert what in task["ErrorMessage"] and "Permission denied" in task["ErrorMessage"], (name, task)
            assert "alice-secret" not in task["Output"], name
        assert not dropped.exists()
        assert root_file.read_text() == "root data\n"
    finally:
        root_file.unlink()
        link.unlink()


def test_others_see_the_job_list_but_not_what_can_carry_secrets(head: HeadNodeProcess, client: Client,
                                                                 users: dict[str, pwd.struct_passwd]) -> None:
    job_id = job_as("hpcalice", head, {"Name": "private", "JobEnv": ["DB_PASSWORD=hunter2"]},
                    [{"CommandLine": "echo token-in-output; echo $API_TOKEN", "Env": ["API_TOKEN=t0k3n"]}])
    assert ended(client, job_id)["State"] == "Finished"
    theirs = call_as("hpcbob", head, "get_jobs", ids=[job_id])[0]
    assert theirs["Name"] == "private" and theirs["Owner"] == "hpcalice" and theirs["State"] == "Finished"
    assert theirs["EnvironmentVariables"] == {}
    task = call_as("hpcbob", head, "get_tasks", job_id=job_id)[0]
    assert task["State"] == "Finished" and task["ExitCode"] == 0
    assert (task["CommandLine"], task["Output"], task["EnvironmentVariables"]) == ("", "", {})
    assert call_as("hpcbob", head, "get_tasks", job_id=job_id, full=True)["error_id"] == "PermissionDenied"
    assert call_as("hpcbob", head, "copy_job", id=job_id)["error_id"] == "PermissionDenied"
    assert call_as("hpcbob", head, "history", job_id=job_id)["error_id"] == "PermissionDenied"
    for reader in ("hpcalice", "hpcadmin"):  # the owner and an administrator see everything
        task = call_as(reader, head, "get_tasks", job_id=job_id, full=True)[0]
        assert "t0k3n" in task["Output"] and task["EnvironmentVariables"] == {"API_TOKEN": "t0k3n"}
        assert call_as(reader, head, "get_jobs", ids=[job_id])[0]["EnvironmentVariables"] == {
            "DB_PASSWORD": "hunter2"}


def test_state_files_are_readable_by_the_head_node_only(head: HeadNodeProcess, client: Client,
                                                        users: dict[str, pwd.struct_passwd]) -> None:
    job_id = job_as("hpcalice", head, {}, [{"CommandLine": "echo private output"}])
    assert ended(client, job_id)["State"] == "Finished"
    alice = users["hpcalice"]
    assert stat.S_IMODE(head.state_dir.stat().st_mode) == 0o711  # users reach the socket, cannot list
    for path in head.state_dir.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path == head.socket:
            continue
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        if path.suffix == ".out":  # root's: a file the user owned could carry a lease that blocks the head node
            assert path.stat().st_uid == 0 and alice.pw_uid != 0
    peek = as_user("hpcbob", head, f"import os\nprint(os.listdir({str(head.state_dir)!r}))")
    assert peek.returncode != 0 and "PermissionError" in peek.stderr
    read = as_user("hpcbob", head, f"open({str(head.state_dir / 'headnode.db')!r}).read()")
    assert read.returncode != 0 and "PermissionError" in read.stderr


def _task_pid(state_dir: Path, job_id: int, task_id: int) -> int:
    with sqlite3.connect(state_dir / "headnode.db") as db:
        for (data,) in db.execute("SELECT data FROM tasks WHERE job_id = ?", (job_id,)):
            row = json.loads(data)
            if row.get("task_id") == task_id:
                return int(row["pid"])
    raise AssertionError(f"no task {job_id}.{task_id}")


def _stranger_with_pid(pid: int, user: pwd.struct_passwd) -> int | None:
    """Starts `sleep` as `user`, leading its own session, with exactly this pid (the kernel hands out
    ns_last_pid + 1 next); None when another process took the pid first."""
    Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.execv("/bin/sleep", ["sleep", "300"])
        finally:
            os._exit(127)
    if child != pid:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        return None
    return child


def test_a_strangers_process_with_a_reused_pid_is_never_signalled(head: HeadNodeProcess, client: Client,
                                                                  users: dict[str, pwd.struct_passwd]) -> None:
    for _ in range(10):  # another process of the machine may take the freed pid first: then again
        job_id, ended_pid = _job_with_an_ended_task(head, client)
        stranger = _take_pid(ended_pid, users["hpcbob"])
        if stranger is not None:
            break
        client.call("cancel_jobs", ids=[job_id], force=True)
    assert stranger is not None, "no freed pid could be taken in 10 tries"
    try:
        wait_until(lambda: os.getsid(stranger) == ended_pid)  # what a session-based search would take for the task's
        assert "error" not in client.call("cancel_jobs", ids=[job_id], force=True)[0]
        assert ended(client, job_id)["State"] == "Canceled"
        assert os.waitpid(stranger, os.WNOHANG) == (0, 0)  # still alive: not signalled
    finally:
        os.kill(stranger, signal.SIGKILL)
        os.waitpid(stranger, 0)


def _job_with_an_ended_task(head: HeadNodeProcess, client: Client) -> tuple[int, int]:
    """A running job of hpcalice's whose first task has ended: (job id, the freed pid of that task)."""
    job_id = job_as("hpcalice", head, {}, [{"CommandLine": "true", "Name": "quick"},
                                           {"CommandLine": "sleep 300", "Name": "long"}])
    wait_until(lambda: {t["Name"]: t["State"] for t in tasks_of(client, job_id)} == {"quick": "Finished",
                                                                                      "long": "Running"})
    ended_pid = _task_pid(head.state_dir, job_id, 1)
    wait_until(lambda: not Path(f"/proc/{ended_pid}").exists())
    return job_id, ended_pid


def _take_pid(pid: int, user: pwd.struct_passwd) -> int | None:
    """A stranger's process with exactly this pid, or None once another process holds it."""
    for _ in range(200):
        if Path(f"/proc/{pid}").exists():
            return None
        stranger = _stranger_with_pid(pid, user)
        if stranger is not None:
            return stranger
    return None


@pytest.mark.parametrize(("op", "args", "field"), [
    ("cancel_jobs", {"ids": [1.5]}, "ids"),
    ("cancel_jobs", {"ids": [True]}, "ids"),
    ("cancel_jobs", {"ids": ["1"]}, "ids"),
    ("cancel_jobs", {"ids": 1}, "ids"),
    ("cancel_jobs", {"ids": [1], "message": ["a"]}, "message"),
    ("cancel_jobs", {"ids": [1], "message": {"a": 1}}, "message"),
    ("cancel_jobs", {"ids": [1], "message": "\ud800"}, "message"),
    ("cancel_jobs", {"ids": [1], "force": "yes"}, "force"),
    ("cancel_jobs", {"ids": [1], "extra": 1}, "extra"),
    ("new_job", {"spec": {"Name": "a\0b"}}, "spec"),
    ("add_task", {"job_id": 1, "spec": {"CommandLine": "echo \0"}}, "spec"),
    ("set_job", {"id": 1, "spec": {"JobEnv": ["A=\0"]}}, "spec"),
    ("get_tasks", {"job_id": 1, "task_id": 1.0}, "task_id"),
])
def test_requests_of_the_wrong_type_are_refused_and_change_nothing(head: HeadNodeProcess, client: Client,
                                                                   op: str, args: dict[str, Any], field: str) -> None:
    job = client.call("new_job", spec={"Name": "target"})
    client.call("add_task", job_id=job["Id"], spec={"CommandLine": "sleep 300"})
    assert job["Id"] == 1
    with pytest.raises(HpcError) as refused:
        client.call(op, **args)
    assert refused.value.error_id == "InvalidArgument" and field in refused.value.message
    after = client.call("get_jobs", ids=[1])[0]
    assert (after["State"], after["Name"], after["EnvironmentVariables"]) == ("Configuring", "target", {})
    assert [t["CommandLine"] for t in client.call("get_tasks", job_id=1)] == ["sleep 300"]
    assert [j["Id"] for j in client.call("get_jobs", state="All")] == [1]


LEASE = """
import fcntl, os, signal, sys
signal.signal(signal.SIGIO, signal.SIG_IGN)
try:
    fcntl.fcntl(1, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    print("lease taken", flush=True)
except OSError as e:
    print("lease refused:", e.strerror, flush=True)
if os.fork() == 0:
    os.setsid()
    os.execv("/bin/sleep", ["sleep", "3041"])  # keeps the output file open past the task's end
"""


def test_a_task_cannot_make_the_head_node_wait_on_its_files(head: HeadNodeProcess, client: Client,
                                                            users: dict[str, pwd.struct_passwd], evil: Path) -> None:
    """A write lease on the task's own output would make the head node (root) block for the kernel's
    lease-break time when it reads the output: the output is root's, so no lease can be taken."""
    script = evil / "lease.py"
    script.write_text(LEASE)
    job_id = job_as("hpcalice", head, {}, [{"CommandLine": f"python3 {script}"}])
    assert ended(client, job_id, 20)["State"] == "Finished"
    assert "lease refused" in tasks_of(client, job_id)[0]["Output"]
    assert call_as("hpcbob", head, "ping")["name"]  # and the head node answers everyone


def test_one_users_escaped_process_is_not_killed_when_another_users_task_ends(
        head: HeadNodeProcess, client: Client, users: dict[str, pwd.struct_passwd]) -> None:
    bobs = job_as("hpcbob", head, {}, [{"CommandLine": "(setsid /bin/sleep 3042 &); sleep 600"}])
    escaped = wait_until(lambda: pids_running(b"/bin/sleep", b"3042"))
    alices = job_as("hpcalice", head, {}, [{"CommandLine": "true"}])
    assert ended(client, alices)["State"] == "Finished"
    wait_until(lambda: client.call("get_jobs", ids=[bobs])[0]["State"] == "Running")
    assert pids_running(b"/bin/sleep", b"3042") == escaped  # bob's, alive: alice's task ending touched nothing of his
    client.call("cancel_jobs", ids=[bobs], force=True)
    assert ended(client, bobs)["State"] == "Canceled" and pids_running(b"/bin/sleep", b"3042") == []


def test_a_failed_tasks_private_paths_stay_private(head: HeadNodeProcess, client: Client,
                                                   users: dict[str, pwd.struct_passwd]) -> None:
    job_id = job_as("hpcalice", head, {"FailOnTaskFailure": True},
                    [{"CommandLine": "true", "Stdout": "/nonexistent/TOKEN=s3cr3t/out"}])
    assert ended(client, job_id)["State"] == "Failed"
    assert "s3cr3t" in tasks_of(client, job_id)[0]["ErrorMessage"]  # the owner's (and root's) to see
    assert "s3cr3t" not in call_as("hpcbob", head, "get_tasks", job_id=job_id)[0]["ErrorMessage"]
    assert "s3cr3t" not in call_as("hpcbob", head, "get_jobs", ids=[job_id])[0]["ErrorMessage"]
