"""The `job` command's options, help, output and signals, against a real head node (issue 16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hpcpack.backends.client import Client
from hpcpack.cli import COMMANDS

from .conftest import HeadNodeProcess, wait_until
from .jobs import job, make_job, tasks, wait_state


def job_cli(head: HeadNodeProcess, *words: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpcpack.cli", *words], capture_output=True, text=True,
                          env=head.env(), timeout=60, **kwargs)  # type: ignore[call-overload]


def running_job(client: Client, command: str = "sleep 300") -> int:
    job_id = make_job(client, command, NumCores="1")
    wait_state(client, job_id, "Running")
    return job_id


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_refuses_unknown_options(head: HeadNodeProcess, name: str) -> None:
    for asked in ("/?", "--help", "/HELP", "-h"):
        shown = job_cli(head, name, asked)
        assert shown.returncode == 0 and shown.stdout.startswith(f"usage: job {name}"), (asked, shown)
        assert "/scheduler:<name>" in shown.stdout and "Traceback" not in shown.stderr
    also_help = job_cli(head, "help", name)
    assert also_help.returncode == 0 and also_help.stdout.startswith(f"usage: job {name}")
    for wrong in ("/forse", "--forse", "/mesage:x"):
        refused = job_cli(head, name, *(["1"] if name not in ("new", "list") else []), wrong,
                          *(["echo", "hi"] if name == "add" else []))
        assert refused.returncode == 2, (wrong, refused)
        assert f"job {name}: unknown option {wrong.split(':')[0]}" in refused.stderr


def test_hpc_pack_options_of_each_command_are_accepted_in_either_form(head: HeadNodeProcess, client: Client) -> None:
    made = job_cli(head, "new", "/JobName:forms", "--numcores=1-2", "--priority", "AboveNormal", "/rununtilcanceled",
                   "/jobenv:A=1", "/jobenv:B=2", "/projectname:p", "/failontaskfailure:false")
    assert made.returncode == 0, made.stderr
    job_id = int(made.stdout.split("ID:")[1])
    record = job(client, job_id)
    assert (record["Name"], record["Priority"], record["Project"], record["MinCores"], record["MaxCores"]) == \
        ("forms", "AboveNormal", "p", 1, 2)
    assert record["RunUntilCanceled"] is True and record["EnvironmentVariables"] == {"A": "1", "B": "2"}
    bad_bool = job_cli(head, "new", "/exclusive:maybe")
    assert bad_bool.returncode == 2 and "'maybe' is not true or false" in bad_bool.stderr
    not_here = job_cli(head, "new", "/numprocessors:2")
    assert not_here.returncode == 2 and "/numprocessors is not supported here" in not_here.stderr
    recorded = job_cli(head, "new", "/emailaddress:a@b.example", "/singlenode", "/corespernode:2-4")
    assert recorded.returncode == 0, recorded.stderr
    shown = job(client, int(recorded.stdout.split("ID:")[1]))
    assert (shown["EmailAddress"], shown["SingleNode"], shown["MinCoresPerNode"], shown["MaxCoresPerNode"]) == \
        ("a@b.example", True, 2, 4)
    assert job_cli(head, "list", "/format:wide").returncode == 2


def test_cancel_takes_one_job_and_never_drops_a_word(head: HeadNodeProcess, client: Client) -> None:
    first, second = running_job(client), running_job(client)
    two = job_cli(head, "cancel", str(first), str(second))
    assert two.returncode == 2 and "unexpected words: " + str(second) in two.stderr
    typo = job_cli(head, "cancel", str(first), "/forse", "/mesage:x")
    assert typo.returncode == 2 and "unknown option /forse" in typo.stderr
    no_id = job_cli(head, "cancel", "/?")
    assert no_id.returncode == 0 and "job ID is required" not in no_id.stderr
    assert job(client, first)["State"] == job(client, second)["State"] == "Running"
    done = job_cli(head, "cancel", str(first), "/FORCE", "/message:why")
    assert done.returncode == 0 and done.stdout == f"Job {first} canceled.\n"
    assert job(client, first)["ErrorMessage"] == "why" and job(client, second)["State"] == "Running"
    not_an_id = job_cli(head, "cancel", "five")
    assert not_an_id.returncode == 2 and "'five' is not a job ID" in not_an_id.stderr


def test_add_names_a_program_by_its_path_and_double_dash_ends_the_options(head: HeadNodeProcess,
                                                                          client: Client) -> None:
    job_id = int(job_cli(head, "new").stdout.split("ID:")[1])
    assert job_cli(head, "add", str(job_id), "/bin/echo", "hi").returncode == 0
    assert job_cli(head, "add", str(job_id), "/name:opt", "/workdir:/tmp", "/usr/bin/printf", "/name:x").returncode == 0
    assert job_cli(head, "add", str(job_id), "--name", "gnu", "--", "/opt", "--steps", "1", "--").returncode == 0
    unknown = job_cli(head, "add", str(job_id), "/forse", "echo")
    assert unknown.returncode == 2 and "unknown option /forse" in unknown.stderr
    nothing = job_cli(head, "add", str(job_id), "/name:x")
    assert nothing.returncode == 2 and "command line is required" in nothing.stderr
    lines = {t["Id"]: (t["Name"], t["CommandLine"], t["WorkDirectory"]) for t in tasks(client, job_id).values()}
    assert lines == {f"{job_id}.1": ("", "/bin/echo hi", ""),
                     f"{job_id}.2": ("opt", "/usr/bin/printf /name:x", "/tmp"),
                     f"{job_id}.3": ("gnu", "/opt --steps 1 --", "")}
    shown = job_cli(head, "add", "/?").stdout
    assert "/bin/echo" in shown and "--, which ends the options" in shown


def test_submit_with_a_command_line_makes_submits_and_runs_a_job_of_one_task(head: HeadNodeProcess, client: Client,
                                                                             shared_tmp: Path) -> None:
    out = shared_tmp / "out.txt"
    done = job_cli(head, "submit", "/numcores:1", "/JobName:one", f"/stdout:{out}", "/bin/echo", "hello", "world")
    assert done.returncode == 0 and done.stdout.startswith("Job has been submitted. ID: "), done.stderr
    job_id = int(done.stdout.split("ID: ")[1].rstrip(".\n"))
    record = wait_state(client, job_id, "Finished")
    assert (record["Name"], record["MinCores"], record["MaxCores"]) == ("one", 1, 1)
    assert [(t["CommandLine"], t["StdOutFilePath"]) for t in tasks(client, job_id).values()] == \
        [("/bin/echo hello world", str(out))]
    assert out.read_text() == "hello world\n"
    numbered = job_cli(head, "submit", "--", "42")
    assert numbered.returncode == 0, numbered.stderr
    assert tasks(client, int(numbered.stdout.split("ID: ")[1].rstrip(".\n")))[f"{job_id + 1}.1"]["CommandLine"] == "42"


def test_submit_takes_a_job_id_or_a_command_line_never_both(head: HeadNodeProcess, client: Client) -> None:
    job_id = make_job(client, "true", submit=False)
    for words, error in (([str(job_id), "echo", "hi"], "give a job ID or a command line, not both"),
                         ([f"/id:{job_id}", "echo"], "give a job ID or a command line, not both"),
                         (["/numcores:1", str(job_id)], "/numcores makes a new job: give a command line"),
                         (["/numcores:1"], "a job ID is required"), (["/numprocessors:1", "echo"], "give /numcores")):
        refused = job_cli(head, "submit", *words)
        assert refused.returncode == 2 and error in refused.stderr, (words, refused)
    assert job(client, job_id)["State"] == "Configuring" and len(client.call("get_jobs", state="All")) == 1
    done = job_cli(head, "submit", str(job_id))
    assert (done.returncode, done.stdout) == (0, f"Job has been submitted. ID: {job_id}.\n"), done.stderr


def test_requeue_uses_the_head_nodes_requeue_for_a_running_job(head: HeadNodeProcess, client: Client) -> None:
    job_id = running_job(client)
    requeued = job_cli(head, "requeue", str(job_id))
    assert requeued.returncode == 0 and requeued.stdout == f"Job {job_id} has been requeued.\n", requeued.stderr
    wait_until(lambda: job(client, job_id)["RequeueCount"] == 1)
    configuring = int(job_cli(head, "new").stdout.split("ID:")[1])
    refused = job_cli(head, "requeue", str(configuring))
    assert refused.returncode == 1 and refused.stderr.startswith("job: ")


def test_a_closed_pipe_ends_quietly(head: HeadNodeProcess, client: Client) -> None:
    for _ in range(3):
        make_job(client, "true", submit=False)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written, as after `| head -1`
    try:
        closed = subprocess.run([sys.executable, "-m", "hpcpack.cli", "list", "/all"], stdout=write,
                                stderr=subprocess.PIPE, text=True, env=head.env(), timeout=60)
    finally:
        os.close(write)
    assert closed.returncode == 141 and closed.stderr == ""
    piped = subprocess.run(f"{sys.executable} -m hpcpack.cli listtasks 1 /format:table | head -1", shell=True,
                           capture_output=True, text=True, env=head.env(), timeout=60)
    assert piped.stdout.startswith("Id") and piped.stderr == ""


def test_ctrl_c_while_a_cancel_waits_says_the_cancel_goes_on(head: HeadNodeProcess, client: Client) -> None:
    client.call("set_property", values={"TaskCancelGracePeriod": 30})
    job_id = running_job(client, "trap '' TERM; while true; do sleep 0.05; done")
    waiting = subprocess.Popen([sys.executable, "-m", "hpcpack.cli", "cancel", str(job_id)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=head.env())
    wait_state(client, job_id, "Canceling")
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=20)
    assert waiting.returncode == 130 and "Traceback" not in err
    assert f"stopped waiting; the head node goes on cancelling job {job_id}." in err
    assert job(client, job_id)["State"] == "Canceling"
    client.call("cancel_jobs", ids=[job_id], force=True)
    wait_state(client, job_id, "Canceled")


def test_list_fits_80_columns_with_progress_elapsed_time_and_why_a_job_waits(head: HeadNodeProcess,
                                                                             client: Client) -> None:
    blocker = make_job(client, "sleep 300", "true", NumCores="8", Name="a-name-much-longer-than-the-column-is")
    wait_until(lambda: job(client, blocker)["FinishedTaskCount"] == 1)
    child = make_job(client, "true", NumCores="1", ParentJobIds=[blocker], Name="child")
    waiting = make_job(client, "true", NumCores="8", Name="big")
    wait_until(lambda: job(client, waiting)["PendingReason"] == "Resources")
    listing = job_cli(head, "list", "/all").stdout.splitlines()
    assert max(len(line) for line in listing) <= 80 and listing[0].split() == \
        ["Id", "Owner", "Name", "State", "Tasks", "Elapsed", "Reason"]
    rows = {line.split()[0]: line for line in listing[2:]}
    assert "1/2" in rows[str(blocker)] and "Running" in rows[str(blocker)] and "a-name-much-l…" in rows[str(blocker)]
    assert rows[str(child)].split()[-2:] == ["Dependency", f"({blocker})"]
    assert rows[str(waiting)].split()[-1] == "Resources"
    assert rows[str(blocker)].split()[-1].count(":") == 2  # elapsed h:mm:ss
    as_list = job_cli(head, "list", "/all", "/format:list").stdout
    assert f"Id         : {child}\n" in as_list and "Reason     : Dependency" in as_list
    mine_by_name = job_cli(head, "list", "/jobname:a-name*").stdout
    assert str(blocker) in mine_by_name and "child" not in mine_by_name
    client.call("cancel_jobs", ids=[blocker, child, waiting], force=True)


def test_view_and_listtasks_show_what_a_person_reads(head: HeadNodeProcess, client: Client) -> None:
    job_id = make_job(client, "true", Name="viewed")
    client.call("add_task", job_id=job_id, spec={"CommandLine": "echo *", "Parametric": True, "Start": 1, "End": 3})
    wait_state(client, job_id, "Finished")
    view = job_cli(head, "view", str(job_id)).stdout
    assert "Name             : viewed\n" in view and "Tasks            : 4 (4 Finished)\n" in view
    assert f"HeadNode         : unix:{head.socket}" in view and "ExpandedPriority" not in view
    assert "ExpandedPriority" in job_cli(head, "view", str(job_id), "/detailed").stdout
    history = job_cli(head, "view", str(job_id), "/history").stdout
    assert "Event" in history and "submit" in history
    one = job_cli(head, "listtasks", str(job_id), "/format:table").stdout
    assert f"{job_id}.2 " in one and f"{job_id}.2.1" not in one
    expanded = job_cli(head, "listtasks", str(job_id), "/expand").stdout
    assert f"Id             : {job_id}.2.3\n" in expanded and "CommandLine    : echo 3\n" in expanded


def test_a_man_page_and_bash_completion_made_from_the_same_tables(head: HeadNodeProcess, client: Client) -> None:
    page = job_cli(head, "manpage")
    assert page.returncode == 0 and page.stdout.startswith(".TH JOB 1 ")
    for name in COMMANDS:
        assert f"\n.SS {name}\n.nf\nusage: job {name}" in page.stdout
    assert "/force[:{true|false}]" in page.stdout and ".SH EXIT STATUS" in page.stdout
    script = job_cli(head, "completion", "bash")
    assert script.returncode == 0 and job_cli(head, "completion", "fish").returncode == 2
    job_id = make_job(client, "true", submit=False)
    bin_dir = os.path.dirname(sys.executable)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        run = subprocess.run(["bash", "-c", script.stdout + f"\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
                              "_hpcpack_job 2>/dev/null; printf '%s\\n' \"${COMPREPLY[@]}\""],
                             capture_output=True, text=True, timeout=60,
                             env={**head.env(), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        return run.stdout.split()
    assert complete("job", "can") == ["cancel"]
    assert complete("job", "cancel", "/f") == ["/force"]
    assert complete("job", "new", "/jobn") == ["/jobname:"]
    assert complete("job", "list", "/f") == ["/format:"]
    assert complete("job", "view", "") == [str(job_id)]


def task_cli(head: HeadNodeProcess, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpcpack.cli.task", *words], capture_output=True, text=True,
                          env=head.env(), timeout=60)


def test_the_task_command_cancels_finishes_requeues_and_shows_one_task(head: HeadNodeProcess,
                                                                        client: Client) -> None:
    from hpcpack.cli.task import COMMANDS as TASK_COMMANDS
    for name in TASK_COMMANDS:
        shown = task_cli(head, name, "/?")
        assert shown.returncode == 0 and shown.stdout.startswith(f"usage: task {name} <jobID>.<taskID>")
        refused = task_cli(head, name, "1.1", "/forse")
        assert refused.returncode == 2 and f"task {name}: unknown option /forse" in refused.stderr
    job_id = make_job(client, "sleep 300", "sleep 300", "sleep 300", NumCores="3", RunUntilCanceled=True)
    wait_until(lambda: all(t["State"] == "Running" for t in tasks(client, job_id).values()))
    assert task_cli(head, "cancel", str(job_id)).returncode == 2
    assert task_cli(head, "cancel", f"{job_id}.1", f"{job_id}.2").returncode == 2
    canceled = task_cli(head, "cancel", f"{job_id}.1", "/force", "/message:wrong input")
    assert canceled.returncode == 0 and canceled.stdout == f"Task {job_id}.1 canceled.\n", canceled.stderr
    first = tasks(client, job_id)[f"{job_id}.1"]
    assert first["State"] in ("Canceled", "Failed") and first["ErrorMessage"] == "wrong input"
    finished = task_cli(head, "finish", f"{job_id}.2")
    assert finished.returncode == 0 and tasks(client, job_id)[f"{job_id}.2"]["State"] == "Finished"
    requeued = task_cli(head, "requeue", f"{job_id}.1")
    assert requeued.returncode == 0 and requeued.stdout == f"Task {job_id}.1 has been requeued.\n"
    wait_until(lambda: tasks(client, job_id)[f"{job_id}.1"]["State"] == "Running")
    view = task_cli(head, "view", f"{job_id}.3").stdout
    assert f"Id             : {job_id}.3\n" in view and "State          : Running\n" in view
    again = task_cli(head, "finish", f"{job_id}.2")
    assert again.returncode == 1 and again.stderr.startswith("task: ")
    assert job(client, job_id)["State"] == "Running"
    client.call("cancel_jobs", ids=[job_id], force=True)
