"""The compiled `job` (client/job.c) against the Python one, `job-py`, on a real head node: for every command
it does itself, the same words and environment give the same stdout, stderr and exit status; what it does
not do is handed to job-py before anything is sent (issue 12)."""

from __future__ import annotations

import os
import pty
import signal
import struct
import subprocess
import sys
from fcntl import ioctl
from pathlib import Path
from termios import TIOCSWINSZ
from typing import Any

import pytest

from hpcpack.backends.client import Client

from .conftest import ROOT, SYSTEM_PYTHON, HeadNodeProcess, job_processes, wait_until
from .jobs import job, make_job, tasks, wait_state

BIN = Path(sys.executable).parent
JOB, JOB_PY = BIN / "job", BIN / "job-py"

pytestmark = pytest.mark.skipif(JOB.is_symlink() or not JOB.exists(), reason="no compiled job client: "
                                "'make build' needs a C compiler and cJSON (apt-get install libcjson-dev)")


def run(program: Path | str, head: HeadNodeProcess, *words: str, env: dict[str, str] | None = None,
        user: str | None = None) -> tuple[int, str, str]:
    command = [str(program), *words]
    if user is not None:  # root's venv Python is root's alone: job-py is the system Python on the source
        if program == JOB_PY:
            command = [SYSTEM_PYTHON, "-m", "hpcpack.cli", *words]
        command = ["runuser", "-u", user, "--", "env", "-i", f"HOME=/home/{user}", "PATH=/usr/bin:/bin",
                   f"PYTHONPATH={ROOT / 'src'}", f"CCP_SCHEDULER=unix:{head.socket}", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env or head.env(), timeout=60, cwd="/tmp")
    return done.returncode, done.stdout, done.stderr


def same(head: HeadNodeProcess, *words: str, **kwargs: object) -> tuple[int, str, str]:
    """Runs both with the same words; they must print and end alike. Only for what changes nothing."""
    compiled = run(JOB, head, *words, **kwargs)  # type: ignore[arg-type]
    assert compiled == run(JOB_PY, head, *words, **kwargs), words  # type: ignore[arg-type]
    return compiled


def submitted(result: tuple[int, str, str]) -> int:
    assert result[0] == 0 and result[1].startswith("Job has been submitted. ID: "), result
    return int(result[1].split("ID: ")[1].rstrip(".\n"))


def held(client: Client, command: str = "true", **spec: Any) -> int:
    """A queued job that stays so (HoldUntil far ahead): its lines do not change while both print them."""
    return make_job(client, command, NumCores="1", HoldUntil="2099-01-01T00:00:00+00:00", **spec)


def test_view_and_list_print_what_python_prints(head: HeadNodeProcess, client: Client) -> None:
    assert same(head, "list")[1].count("\n") == 2  # the header and its rule: no job yet
    finished = submitted(run(JOB, head, "submit", "/numcores:1", "echo", "done"))
    failed = submitted(run(JOB, head, "submit", "exit", "3"))
    queued = [held(client), held(client, "sleep 1")]
    configuring = make_job(client, "true", submit=False, Name="a-rather-long-name-that-a-table-must-cut")
    wait_state(client, finished, "Finished")
    wait_state(client, failed, "Failed")
    for job_id in (finished, failed, *queued, configuring):
        assert same(head, "view", str(job_id))[0] == 0
    for zone in ("Asia/Kolkata", "America/St_Johns", "EST5EDT"):  # times in the caller's time zone
        assert same(head, "view", str(finished), env={**head.env(), "TZ": zone})[0] == 0
    assert same(head, "view", "999")[:2] == (1, "")
    shown = same(head, "LIST")[1]
    assert [line.split()[0] for line in shown.splitlines()[2:]] == [str(i) for i in queued]
    job_ids = [int(line.split()[0]) for line in same(head, "list", "/all")[1].splitlines()[2:]]
    assert configuring in job_ids  # handed over: /all is job-py's


def test_list_fits_the_terminal_as_python_does(head: HeadNodeProcess, client: Client) -> None:
    for _ in range(3):
        held(client)
    held(client, Name="x" * 80)
    for columns, variable in ((80, None), (132, None), (67, None), (80, "100")):
        shown = [at_terminal(program, head, columns, variable) for program in (JOB, JOB_PY)]
        assert shown[0] == shown[1] and "\u2026" in shown[0], (columns, shown)
        assert len(shown[0].splitlines()[1]) == int(variable or columns)  # the rule: the whole width


def at_terminal(program: Path, head: HeadNodeProcess, columns: int, variable: str | None) -> str:
    """`job list` at a terminal of that width (a pseudo-terminal, as a person's), COLUMNS set or not."""
    leader, follower = pty.openpty()
    ioctl(follower, TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in head.env().items() if k not in ("COLUMNS", "LINES")}
    if variable is not None:
        env["COLUMNS"] = variable
    process = subprocess.Popen([str(program), "list"], stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed: all is read
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(60) == 0
    return output.decode()


def test_submit_runs_the_command_line_as_one_task(head: HeadNodeProcess, client: Client, shared_tmp: Path) -> None:
    out = shared_tmp / "ran.txt"
    job_id = submitted(run(JOB, head, "submit", "/NumCores:1", "echo", "ran", "as", "one", ">", str(out)))
    record = wait_state(client, job_id, "Finished")
    assert (record["MinCores"], record["MaxCores"]) == (1, 1)
    assert [t["CommandLine"] for t in tasks(client, job_id).values()] == [f"echo ran as one > {out}"]
    assert out.read_text() == "ran as one\n"
    python = submitted(run(JOB_PY, head, "submit", "/NumCores:1", "echo", "ran", "as", "one", ">", str(out)))
    assert {k: v for k, v in job(client, python).items() if k in ("MinCores", "MaxCores", "Name", "Priority")} == \
        {k: v for k, v in record.items() if k in ("MinCores", "MaxCores", "Name", "Priority")}


def test_cancel_leaves_the_job_canceled_as_python_does(head: HeadNodeProcess, client: Client) -> None:
    outcomes = []
    for program in (JOB, JOB_PY):
        job_id = submitted(run(program, head, "submit", "sleep", "300"))
        wait_state(client, job_id, "Running")
        wait_until(lambda job_id=job_id: job_processes(head.state_dir, job_id))
        done = run(program, head, "cancel", str(job_id), "/message:make room", "/force")
        outcomes.append(tuple(str(part).replace(str(job_id), "N") for part in done))
        record = job(client, job_id)
        assert record["State"] == "Canceled" and "make room" in record["ErrorMessage"]
        assert not job_processes(head.state_dir, job_id)
    assert outcomes[0] == outcomes[1] == ("0", "Job N canceled.\n", "")
    ended = wait_state(client, submitted(run(JOB, head, "submit", "true")), "Finished")["Id"]
    refused = same(head, "cancel", str(ended))
    assert refused[0] == 1 and refused[2].startswith("job: ")
    assert same(head, "cancel", "999")[0] == 1


def test_graceful_cancel_does_not_wait(head: HeadNodeProcess, client: Client) -> None:
    outcomes = []
    for program in (JOB, JOB_PY):
        job_id = submitted(run(program, head, "submit", "sleep", "300"))
        wait_state(client, job_id, "Running")
        done = run(program, head, "cancel", str(job_id), "/GRACEFUL")
        outcomes.append(tuple(str(part).replace(str(job_id), "N") for part in done))
        client.call("cancel_jobs", ids=[job_id], force=True)
    assert outcomes[0] == outcomes[1] == ("0", "Job N will be canceled when its running tasks end.\n", "")


def test_ctrl_c_ends_the_waiting_not_the_cancel_as_python_does(head: HeadNodeProcess, client: Client) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 30})
    outcomes = []
    for program in (JOB, JOB_PY):
        job_id = submitted(run(program, head, "submit", "trap '' TERM; while true; do sleep 0.05; done"))
        wait_state(client, job_id, "Running")
        wait_until(lambda job_id=job_id: job_processes(head.state_dir, job_id))
        waiting = subprocess.Popen([str(program), "cancel", str(job_id)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=head.env())
        wait_state(client, job_id, "Canceling")
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=20)
        outcomes.append((waiting.returncode, out, err.replace(str(job_id), "N")))
        assert job(client, job_id)["State"] == "Canceling"
        client.call("cancel_jobs", ids=[job_id], force=True)
        wait_state(client, job_id, "Canceled")
    assert outcomes[0] == outcomes[1] == \
        (130, "", "job cancel: stopped waiting; the head node goes on cancelling job N.\n")


def test_errors_of_the_head_node_are_pythons(head: HeadNodeProcess, client: Client) -> None:
    for words in (("submit", "/numcores:many", "true"), ("submit", "/numcores:4-1", "true")):
        refused = same(head, *words)
        assert refused[0] == 1 and refused[2].startswith("job: "), refused
    assert client.call("get_jobs", state="All") == []  # the job and its task are made together, or not at all


def test_what_it_does_not_do_goes_to_python_unsent(head: HeadNodeProcess, client: Client) -> None:
    job_id = held(client)
    for words in ((), ("view",), ("view", "x"), ("view", str(job_id), "/detailed"), ("list", "/format:list"),
                  ("submit", "/?"), ("cancel", "/?"), ("listtasks", str(job_id)), ("submit", "/numcores:1"),
                  ("cancel", str(job_id), "/force", "/graceful"), ("cancel", str(job_id), "/forse"),
                  ("submit", "/jobname:x", str(job_id)), ("bogus",)):
        same(head, *words)
    for words in (("view", "2147483648"), ("cancel", "0"), ("cancel", "2147483648")):  # no job can have these
        refused = same(head, *words)
        assert refused[0] == 2 and "is not a job ID" in refused[2], refused
    assert job(client, job_id)["State"] == "Queued"
    # with /scheduler: the cancel is Python's alone, done once: a second one would be refused
    done = run(JOB, head, "cancel", str(job_id), f"/scheduler:unix:{head.socket}")
    assert done == (0, f"Job {job_id} canceled.\n", ""), done
    made = run(JOB, head, "submit", "/jobname:handed", "echo", "hi")  # an option it does not know
    assert job(client, submitted(made))["Name"] == "handed"
    assert len(client.call("get_jobs", state="All")) == 2


def test_a_head_node_it_cannot_reach_is_pythons_to_report(head: HeadNodeProcess) -> None:
    for scheduler in (f"unix:{head.state_dir}/nothing.sock", "nosuchhost.invalid", "localhost,elsewhere"):
        env = {**head.env(), "CCP_SCHEDULER": scheduler}
        same(head, "list", env=env)
        same(head, "view", "1", env=env)


def test_another_users_job_is_refused_as_python_refuses_it(head: HeadNodeProcess, client: Client,
                                                           users: dict[str, object]) -> None:
    theirs = held(client)
    refused = same(head, "cancel", str(theirs), user="hpcalice")
    assert refused[0] == 1 and refused[2].startswith("job: "), refused
    assert job(client, theirs)["State"] == "Queued"
    same(head, "view", str(theirs), user="hpcalice")
    mine = submitted(run(JOB, head, "submit", "sleep", "300", user="hpcalice"))
    assert job(client, mine)["Owner"] == "hpcalice"
    assert same(head, "list", user="hpcalice")[1].count("hpcalice") == 1
    assert run(JOB, head, "cancel", str(mine), user="hpcalice") == (0, f"Job {mine} canceled.\n", "")


def fake_head_node(path: Path, replies: list[Any]) -> Any:
    """A socket at `path` that answers each request with the next of `replies` (after hello's), then hangs
    up: a head node that says what the test wants. Returns the server socket, to close afterwards."""
    import json
    import socket
    import threading

    from hpcpack import __version__ as version
    from hpcpack.wire.protocol import PROTOCOL_VERSION

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            for reply in ({"protocol": PROTOCOL_VERSION, "version": version}, *replies):
                header = connection.recv(4, socket.MSG_WAITALL)
                if len(header) < 4:  # the client is gone
                    return
                connection.recv(struct.unpack(">I", header)[0], socket.MSG_WAITALL)
                body = json.dumps({"ok": True, "result": reply}).encode()
                connection.sendall(struct.pack(">I", len(body)) + body)

    threading.Thread(target=serve, daemon=True).start()
    return server


def run_against(path: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(JOB), *words], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "CCP_SCHEDULER": f"unix:{path}"})


def test_numbers_out_of_range_in_a_reply_are_not_taken_for_ids(tmp_path: Path) -> None:
    """A reply's number beyond a 64-bit integer (1e300) was cast to one (undefined behaviour in C): job
    submit said it submitted job -9223372036854775808. Now such a reply is one it does not understand."""
    server = fake_head_node(tmp_path / "fake.sock", [{"Id": 1e300}, [{"id": 1}]])
    done = run_against(tmp_path / "fake.sock", "submit", "echo", "hi")
    server.close()
    assert (done.returncode, done.stdout) == (1, ""), done
    assert "a reply it does not understand" in done.stderr


def test_a_jobs_text_in_an_error_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    """After a change the compiled job cannot hand over to Python: a job's ErrorMessage (anyone's text) in
    its error was written raw, escape sequences and all. It is escaped as show._visible escapes it."""
    hostile = "ended\x1b]0;PWN\x07\r\nFAKE\u009b2J done"
    server = fake_head_node(tmp_path / "fake.sock", [
        [{"id": 7}], 30, {"7": "Failed"}, [{"id": 7, "job": {"Id": 7, "State": "Failed", "ErrorMessage": hostile}}]])
    done = run_against(tmp_path / "fake.sock", "cancel", "7")
    server.close()
    assert done.returncode == 1, done
    assert done.stderr == "job: Job 7 ended Failed, not Canceled: ended\\x1b]0;PWN\\x07\\r\\nFAKE\\x9b2J done\n"
    from hpcpack.cli.show import _visible
    assert done.stderr == f"job: Job 7 ended Failed, not Canceled: {_visible(hostile)}\n"


def test_jobs_and_tasks_past_a_page_print_what_python_prints(head: HeadNodeProcess, client: Client) -> None:
    """Replies are cut where their text fills protocol.PAGE_BYTES: `job view` of a job whose tasks pass it
    said that the reply exceeded the limit of a message (helper 42), and so would `job list` of such jobs."""
    wide = client.call("new_job", spec={"Name": "wide"})["Id"]
    for n in range(200):  # 200 command lines that JSON writes six times as long: 72 MB of text
        client.call("add_task", job_id=wide, spec={"CommandLine": "echo " + "\x01" * 60_000, "Name": f"t{n}"})
    big = [client.call("new_job", spec={"Name": f"big{i}", "JobEnv": [f"V{n}={'x' * 50_000}" for n in range(60)]})["Id"]
           for i in range(20)]  # 60 MB of environments, 70 MB with their records
    code, out, err = same(head, "view", str(wide))
    assert code == 0 and "200 (200 Configuring)" in out, (out, err)
    code, out, err = same(head, "list", "/all")
    assert code == 0 and all(f"big{i}" in out for i in range(20)) and str(big[-1]) in out, err
