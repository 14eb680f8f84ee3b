"""A head node on another machine, over TCP with MUNGE: two machines on one box.

Two network namespaces joined by a veth pair (10.214.0.1, the head node's, and 10.214.0.2, the login
node's, addresses that exist only inside these namespaces), munged with one cluster key on each side
(and a third with another key), the head node in the first namespace, real Unix users in the second
running pwsh and `job` against 10.214.0.1. The test process sees the truth through the head node's Unix
socket. Everything is torn down afterwards, even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hpcpack.backends.client import Client

from .conftest import ROOT, SYSTEM_PYTHON, HeadNodeProcess, _answers, _kill_leftovers, needs_root, user_site, wait_until
from .jobs import add_task, job, task_states, wait_state
from .test_lifecycle import spec_example

pytestmark = needs_root
HEAD_IP, LOGIN_IP = "10.214.0.1", "10.214.0.2"
MUNGED = "/usr/sbin/munged"
APT_TIMEOUT = "120"  # seconds per apt-get step: no network means a clear failure, never a hang


@dataclass
class Cluster:
    """The two machines: namespaces, munged sockets, the head node and a login node's install."""

    tag: str
    root: Path
    head: HeadNodeProcess

    @property
    def login_ns(self) -> str:
        return f"/run/netns/hpct-login-{self.tag}"

    def munge_socket(self, side: str) -> str:
        return str(self.root / side / "munge.sock")

    def env(self, user: str, munge: str = "login") -> list[str]:
        home = f"/home/{user}" if user != "root" else "/root"
        return [f"HOME={home}", "PATH=/usr/bin:/bin", f"HPCPACK_MUNGE_SOCKET={self.munge_socket(munge)}",
                "POWERSHELL_TELEMETRY_OPTOUT=1", f"PYTHONPATH={ROOT / 'src'}"]

    def run(self, user: str, command: list[str], munge: str = "login", extra: tuple[str, ...] = (),
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """`command` as `user` on the login node (its network namespace), with only the given environment;
        at the timeout, the test fails with what the command had written so far."""
        try:
            return subprocess.run(["nsenter", f"--net={self.login_ns}", "--", "runuser", "-u", user, "--", "env",
                                   "-i", *self.env(user, munge), *extra, *command], capture_output=True, text=True,
                                  timeout=timeout, cwd="/tmp")
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{command[0]} timed out after {timeout} s\nstdout:\n{e.stdout!r}\n"
                                 f"stderr:\n{e.stderr!r}") from None

    def pwsh(self, user: str, script: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        module = self.root / "login" / "HPC" / "HPC.psd1"
        return self.run(user, [str(ROOT / "bin" / "pwsh"), "-NoProfile", "-NonInteractive", "-Command",
                               f"Import-Module '{module}'\n{script}"], extra=extra)

    def job(self, user: str, *args: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        python = self.root / "login" / "install" / "venv" / "bin" / "python"
        return self.run(user, [str(python), "-m", "hpcpack.cli", *args], extra=extra)

    def python(self, user: str, code: str, munge: str = "login") -> subprocess.CompletedProcess[str]:
        return self.run(user, [SYSTEM_PYTHON, "-c", code], munge=munge)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def ensure_munge() -> None:
    """MUNGE from Debian's packages, installed here when missing (CI starts from a fresh machine)."""
    if Path(MUNGED).exists() and Path("/usr/lib/x86_64-linux-gnu/libmunge.so.2").exists():
        return
    print("tests/test_remote.py: installing munge and libmunge2 with apt-get (the remote head node tests "
          "need MUNGE)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["timeout", APT_TIMEOUT, "apt-get", "update", "-qq"],
             ["timeout", APT_TIMEOUT, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "munge",
              "libmunge2"]]
    # The package would start the machine's own munged; the tests start theirs, and leave nothing running.
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                pytest.fail(f"could not install MUNGE ({' '.join(step[2:])} exited {result.returncode}: "
                            f"{result.stderr.strip()[-400:]}); install it with 'apt-get install munge libmunge2'")
    finally:
        if ours:
            policy.unlink()


def start_munged(folder: Path, key: Path) -> int:
    """A munged of its own on folder/munge.sock with `key`; returns its pid."""
    folder.mkdir(mode=0o755)
    subprocess.run([MUNGED, f"--socket={folder}/munge.sock", f"--key-file={key}", f"--pid-file={folder}/pid",
                    f"--log-file={folder}/log", f"--seed-file={folder}/seed"], check=True, timeout=30)
    return int((folder / "pid").read_text())


def make_key(path: Path) -> Path:
    path.write_bytes(os.urandom(1024))
    path.chmod(0o600)
    return path


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def join_namespaces(tag: str) -> None:
    """hpct-head-<tag> and hpct-login-<tag>, joined by a veth pair with private addresses."""
    head, login = f"hpct-head-{tag}", f"hpct-login-{tag}"
    ip("netns", "add", head)
    ip("netns", "add", login)
    ip("-n", head, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", login)
    for ns, address in ((head, HEAD_IP), (login, LOGIN_IP)):
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")


def login_install(folder: Path) -> None:
    """What a login node has: the module and a Python every user can read (the system's, with the project
    on a .pth), as 'make install' would set up there."""
    folder.mkdir(mode=0o755)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(folder / "venv")], check=True, timeout=60)
    site = next((folder / "venv" / "lib").glob("python3*/site-packages"))
    # The project and its dependencies (pure Python, or built for this same 3.11 ABI) from the test's venv.
    (site / "hpcpack.pth").write_text(f"{ROOT / 'src'}\n{sysconfig.get_paths()['purelib']}\n")
    shutil.copytree(ROOT / "module", folder / "HPC")
    libpython = subprocess.run([SYSTEM_PYTHON, "-c", "import sysconfig, os; print(os.path.join("
                                "sysconfig.get_config_var('LIBDIR'), sysconfig.get_config_var('INSTSONAME')))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    (folder / "HPC" / "bin" / "python-env.txt").write_text(f"venv={folder / 'venv'}\nlibpython={libpython}\n")
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)


def start_remote_head(root: Path, tag: str) -> HeadNodeProcess:
    state = root / "state"
    state.mkdir(mode=0o755)
    (state / "headnode.yaml").write_text(
        f'listen: ["{HEAD_IP}"]\nmunge_socket: {root / "head" / "munge.sock"}\nsocket_mode: "0666"\n'
        "administrators: [hpcadmin]\nnodes:\n  - {name: NODE1, cores: 4}\n  - {name: NODE2, cores: 4}\n")
    process = subprocess.Popen(["nsenter", f"--net=/run/netns/hpct-head-{tag}", "--", sys.executable, "-m",
                                "hpcpack.head.daemon", "--state-dir", str(state)], stdin=subprocess.DEVNULL,
                               start_new_session=True)
    node = HeadNodeProcess(state, process)
    wait_until(lambda: _answers(node) or process.poll() is not None, 15)
    assert process.poll() is None, f"head node exited with {process.returncode}"
    return node


def tear_down(tag: str, root: Path, head: HeadNodeProcess | None) -> None:
    """Everything the fixture made, whatever state it reached: head node and jobs, munged, namespaces."""
    if head is not None:
        head.stop()
        if (head.state_dir / "headnode.db").exists():
            _kill_leftovers(head.state_dir)
    for pid_file in root.glob("*/pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    for ns in (f"hpct-head-{tag}", f"hpct-login-{tag}"):
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(users: object) -> Iterator[Cluster]:
    ensure_munge()
    tag = str(os.getpid())
    root = Path(tempfile.mkdtemp(prefix="hpct-remote-", dir="/tmp"))
    root.chmod(0o755)
    head = None
    try:
        key = make_key(root / "cluster.key")
        start_munged(root / "head", key)
        start_munged(root / "login", key)
        start_munged(root / "other", make_key(root / "other.key"))  # a munged with another cluster's key
        join_namespaces(tag)
        login_install(root / "login" / "install")
        (root / "login" / "HPC").symlink_to(root / "login" / "install" / "HPC")
        head = start_remote_head(root, tag)
        client = head.client()
        client.call("set_property", values={"TaskCancelGracePeriod": 2, "NodeReleaseTaskTimeout": 5})
        client.close()
        yield Cluster(tag, root, head)
    finally:
        tear_down(tag, root, head)


@pytest.fixture
def server(cluster: Cluster) -> Iterator[Client]:
    """The head node as the test sees it: root, through its Unix socket (not through the network)."""
    c = cluster.head.client()
    yield c
    c.close()


def test_users_run_the_lifecycle_remotely_and_objects_remember_their_head_node(cluster: Cluster,
                                                                               server: Client) -> None:
    script = f"""
$hn = '{HEAD_IP}'
$j = New-HpcJob -Scheduler $hn -Name remote -NumCores 1
$null = $j | Add-HpcTask -CommandLine 'echo one'
$null = Add-HpcTask -Job $j -CommandLine 'sleep 300' -Scheduler $hn
$j = Submit-HpcJob -Job $j -Scheduler $hn
'id|' + $j.Id + '|' + $j.Owner + '|' + $j.Scheduler
Stop-HpcJob -Id $j.Id -Scheduler $hn -WhatIf
'whatif|' + (Get-HpcJob -Id $j.Id -Scheduler $hn).State
$j | Stop-HpcJob -Message 'from the login node'
'stopped|' + (Get-HpcJob -State All -Scheduler $hn | Where-Object Id -eq $j.Id).State
Set-Content Env:CCP_SCHEDULER $hn
'tasks|' + (@(Get-HpcJob -Id $j.Id | Get-HpcTask).Count)
try {{ Get-HpcJobHistory -JobId $j.Id -ErrorAction Stop }} catch {{ 'history|' + $_.FullyQualifiedErrorId }}
'headnode|' + (Get-HpcClusterProperty -Name HeadNode).Value
"""
    out = ok(cluster.pwsh("hpcalice", script))
    fields = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines() if "|" in line}
    job_id = int(fields["id"][0])
    assert fields["id"][1:] == ["hpcalice", HEAD_IP]
    assert "What if" in out and fields["whatif"][0] in ("Queued", "Running")
    assert fields["stopped"] == ["Canceled"]  # Stop-HpcJob waited for the remote job's end
    ended = job(server, job_id)
    assert (ended["State"], ended["Owner"], ended["ErrorMessage"]) == ("Canceled", "hpcalice", "from the login node")
    assert fields["tasks"] == ["2"] and fields["history"][0].startswith("PermissionDenied,")
    assert fields["headnode"] == [f"{HEAD_IP}:5800"]


def test_the_specs_four_examples_run_on_the_remote_head_node(cluster: Cluster, server: Client,
                                                             tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    gate, ready = tmp_path / "gate", tmp_path / "ready"
    last = 0
    while last < 45:  # the examples' ids: 27, 39 and 45 (one core each: 27's second task waits)
        last = server.call("new_job", spec={"Name": "filler", "NumCores": "1"})["Id"]
    assert last == 45, "the examples need job ids 27, 39 and 45 free"
    add_task(server, 27, CommandLine=f"touch {ready}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done")
    add_task(server, 27, CommandLine="echo never")
    add_task(server, 39, CommandLine="trap '' TERM; sleep 300")
    add_task(server, 45, CommandLine="sleep 300")
    server.call("submit_jobs", ids=[27, 39, 45])
    wait_until(lambda: ready.exists() and all(job(server, i)["State"] == "Running" for i in (39, 45)))
    script = "\n".join(f"'example|{n}|' + [datetime]::Now.ToString('HH:mm:ss.fff')\n{spec_example(n)}" for n in (1, 2, 3, 4)) + "\n$Job.Refresh()\n'final|' + $Job.State\n" \
        "'history|' + ((Get-HpcJobHistory -JobId 45 | ForEach-Object { $_.Event }) -join ',')\n" \
        "'grace|' + (Get-HpcClusterProperty -Parameter -Name TaskCancelGracePeriod).Value"
    out = ok(cluster.pwsh("hpcadmin", script, extra=(f"CCP_SCHEDULER={HEAD_IP}",)))
    assert "final|Finished" in out and "history|create,submit,cancel,end" in out and "grace|2" in out
    assert job(server, 45)["ErrorMessage"] == "Clearing space for Job 51, which needs to run immediately."
    assert [job(server, i)["State"] for i in (45, 39)] == ["Canceled", "Canceled"]
    assert job(server, 27)["State"] == "Canceling"
    gate.touch()
    wait_state(server, 27, "Finished")
    assert task_states(server, 27) == {"27.1": "Finished", "27.2": "Canceled"}


def test_the_job_command_and_another_users_cancel_refused_as_locally(cluster: Cluster, server: Client) -> None:
    at = f"/scheduler:{HEAD_IP}"
    out = ok(cluster.job("hpcalice", "new", "/numcores:1", at))
    job_id = int("".join(c for c in out.split(":")[-1] if c.isdigit()))
    ok(cluster.job("hpcalice", "add", str(job_id), at, "sleep", "300"))
    ok(cluster.job("hpcalice", "submit", f"/id:{job_id}", at))
    wait_state(server, job_id, "Running")
    refused = cluster.job("hpcbob", "cancel", str(job_id), at)
    assert refused.returncode != 0 and "hpcbob" in refused.stderr and "permission" in refused.stderr.lower()
    local = cluster.job("hpcbob", "cancel", str(job_id), f"/scheduler:unix:{cluster.head.socket}")
    assert local.returncode == refused.returncode and local.stderr.splitlines()[-1] == refused.stderr.splitlines()[-1]
    assert job(server, job_id)["State"] == "Running"
    view = ok(cluster.job("hpcalice", "view", str(job_id), at))
    assert f"{HEAD_IP}:5800" in view
    ok(cluster.job("hpcadmin", "cancel", str(job_id), "/scheduler:10.214.0.1:1,10.214.0.1"))  # bad, good
    wait_state(server, job_id, "Canceled")


def test_a_list_falls_through_and_an_unreachable_head_node_is_a_per_statement_error(cluster: Cluster) -> None:
    script = f"""
'list|' + (Get-HpcClusterProperty -Name HeadNode -Scheduler '{HEAD_IP}:1','{HEAD_IP}').Value
Get-HpcJob -Id 1 -Scheduler '{HEAD_IP}:1' -ErrorAction SilentlyContinue
'silenced|' + $Error.Count
Stop-HpcJob -Id 1,2 -Scheduler '{HEAD_IP}:1'
'after|' + $Error[0].FullyQualifiedErrorId
try {{ Get-HpcJob -Scheduler https://headnode.example.com -ErrorAction Stop }} catch {{ 'https|' + $_ }}
"""
    out = cluster.pwsh("hpcbob", script)
    lines = {line.split("|")[0]: line.split("|", 1)[1] for line in out.stdout.splitlines() if "|" in line}
    assert lines["list"] == f"{HEAD_IP}:5800"
    assert lines["silenced"] == "1"  # recorded in $Error, nothing shown
    assert lines["after"] == "CannotConnectWithScheduler,Microsoft.ComputeCluster.CCPPSH.StopHpcJobCommand"
    assert "Connection refused" in out.stderr and out.stderr.count("Cannot connect") == 1
    assert "REST front end" in lines["https"] and "MUNGE" in lines["https"]


ATTEMPT = f"""
import json, os, socket, sys, time
from hpcpack.wire import munge, protocol
def cred(nonce, ttl=0):
    return munge.encode(nonce, os.environ["HPCPACK_MUNGE_SOCKET"], ttl=ttl)
def opening():
    s = socket.create_connection(({HEAD_IP!r}, 5800), timeout=10)
    return s, bytes.fromhex(protocol.receive(s)["result"]["nonce"])
def offer(s, credential):
    protocol.send(s, {{"op": "authenticate", "args": {{"munge": credential}}}})
    verdict = protocol.receive(s)
    if verdict.get("ok"):
        protocol.send(s, {{"op": "new_job", "args": {{"spec": {{"Name": "intruder"}}}}, "request_id": "x"}})
        return "served:" + json.dumps(protocol.receive(s))
    try:
        protocol.send(s, {{"op": "ping", "args": {{}}}})
        protocol.receive(s)
        return "refused, then still served"
    except (ConnectionError, OSError):
        return "refused:" + verdict["error"]["message"]
"""


def attempt(cluster: Cluster, code: str, munge: str = "login") -> str:
    return ok(cluster.python("hpcalice", ATTEMPT + code, munge=munge)).strip()


def test_forged_replayed_expired_and_wrong_key_credentials_are_refused(cluster: Cluster, server: Client) -> None:
    before = len(server.call("get_jobs", state="All"))
    forged = attempt(cluster, "s, n = opening(); print(offer(s, 'MUNGE:AAAA:'))")
    assert forged.startswith("refused:") and "MUNGE refused the credential" in forged
    copied = attempt(cluster, "s, n = opening(); t, m = opening(); print(offer(t, cred(n)))")
    assert copied.startswith("refused:") and "another connection" in copied
    replayed = attempt(cluster, "s, n = opening(); c = cred(n); print(offer(s, c)[:7]); "
                                "print(offer(opening()[0], c))")
    assert replayed.splitlines()[0] == "served:" and "Replayed credential" in replayed.splitlines()[1]
    expired = attempt(cluster, "s, n = opening(); c = cred(n, ttl=1); time.sleep(2.2); print(offer(s, c))")
    assert expired.startswith("refused:") and "Expired credential" in expired
    wrong_key = attempt(cluster, "s, n = opening(); print(offer(s, cred(n)))", munge="other")
    assert wrong_key.startswith("refused:") and "same cluster key" in wrong_key
    assert len(server.call("get_jobs", state="All")) == before + 1  # only the one honest connection made a job
    jobs = [j for j in server.call("get_jobs", state="All") if j["Name"] == "intruder"]
    assert [j["Owner"] for j in jobs] == ["hpcalice"]  # the uid came from the credential


def test_a_client_without_munge_is_told_what_to_install(cluster: Cluster) -> None:
    result = cluster.job("hpcalice", "list", f"/scheduler:{HEAD_IP}",
                         extra=("HPCPACK_MUNGE_SOCKET=/nonexistent/munge.sock",))
    assert result.returncode != 0
    assert "apt-get install munge libmunge2" in result.stderr and "/nonexistent/munge.sock" in result.stderr


def test_a_remote_users_connections_are_limited_as_locally(cluster: Cluster) -> None:
    code = ATTEMPT + """
held = []
for i in range(200):
    s, n = opening()
    protocol.send(s, {"op": "authenticate", "args": {"munge": cred(n)}})
    verdict = protocol.receive(s)
    if not verdict.get("ok"):
        print(i, verdict["error"]["error_id"]); break
    held.append(s)
"""
    assert ok(cluster.python("hpcbob", code)).split() == ["128", "TooManyConnections"]


def test_the_local_host_name_reaches_the_local_head_node(head: HeadNodeProcess) -> None:
    env_before = os.environ.get("HPCPACK_HOME")
    os.environ["HPCPACK_HOME"] = str(head.state_dir)
    try:
        client = Client(socket.gethostname())
        assert client.call("ping")["state_dir"] == str(head.state_dir)
        assert client.endpoint is not None and client.endpoint.address is None
        assert client.address == f"unix:{head.socket}"
        client.close()
    finally:
        if env_before is None:
            del os.environ["HPCPACK_HOME"]
        else:
            os.environ["HPCPACK_HOME"] = env_before


def test_a_head_node_not_run_by_root_refuses_to_listen(state_dir: Path, users: object) -> None:
    (state_dir / "headnode.yaml").write_text('listen: ["127.0.0.1:1"]\n')
    os.chown(state_dir, users["hpcalice"].pw_uid, users["hpcalice"].pw_gid)  # type: ignore[index]
    result = subprocess.run(["runuser", "-u", "hpcalice", "--", "env", f"PYTHONPATH={user_site()}:{ROOT / 'src'}",
                             SYSTEM_PYTHON, "-m", "hpcpack.head.daemon", "--state-dir", str(state_dir)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "needs a head node run by root" in result.stderr
    assert not (state_dir / "headnode.db").exists()  # it did not start
