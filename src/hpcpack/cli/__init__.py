"""`job`: HPC Pack's command line for people and scripts without PowerShell.

    job new [/jobname:N] [/numcores:1-3] [/rununtilcanceled:true] ...   -> Created job, ID: 5
    job add <id> [/name:N] [/type:NodeRelease] [/parametric:1-10[:2]] <command line>
    job submit <id> | /id:<id>
    job cancel <id> [/force] [/graceful] [/message:<text>]
    job finish <id> [/graceful] [/message:<text>]
    job requeue <id>
    job list [/all] [/state:Queued,Running] [/owner:<user>]
    job view <id>
    job listtasks <id>

Options take HPC Pack's /name:value form or --name value / --name=value; every command takes
/scheduler:<name> (default: CCP_SCHEDULER, then the local head node).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from .client import Client, for_scheduler
from .errors import HpcError

FLAGS = {"force", "graceful", "all", "detailed", "help"}
JOB_OPTIONS = {
    "jobname": "Name", "name": "Name", "projectname": "Project", "project": "Project", "jobtemplate": "TemplateName",
    "templatename": "TemplateName", "numcores": "NumCores", "numsockets": "NumSockets", "numnodes": "NumNodes",
    "priority": "Priority", "runtime": "RunTime", "rununtilcanceled": "RunUntilCanceled", "exclusive": "Exclusive",
    "failontaskfailure": "FailOnTaskFailure", "jobenv": "JobEnv", "parentjobids": "ParentJobIds",
    "askednodes": "RequestedNodes", "requestednodes": "RequestedNodes", "validexitcodes": "ValidExitCodes",
    "progress": "Progress", "progressmessage": "ProgressMessage",
}
TASK_OPTIONS = {
    "name": "Name", "numcores": "NumCores", "workdir": "WorkDir", "stdin": "Stdin", "stdout": "Stdout",
    "stderr": "Stderr", "env": "Env", "depend": "Depend", "type": "Type", "rerunnable": "Rerunnable",
    "runtime": "RunTime",
}


class Usage(Exception):
    pass


class Arguments:
    """Positional words and options of one `job` command."""

    def __init__(self, words: list[str]) -> None:
        self.positional: list[str] = []
        self.options: dict[str, list[str]] = {}
        index = 0
        while index < len(words):
            word = words[index]
            if word.startswith("/") and len(word) > 1 and not word.startswith("//"):
                name, _, value = word[1:].partition(":")
                self._add(name, value if _ else None)
            elif word.startswith("--") and len(word) > 2:
                name, eq, value = word[2:].partition("=")
                if not eq and name.lower() not in FLAGS:
                    if index + 1 >= len(words):
                        raise Usage(f"--{name} needs a value")
                    index += 1
                    value = words[index]
                self._add(name, value if (eq or name.lower() not in FLAGS) else None)
            else:
                self.positional.append(word)
            index += 1

    def _add(self, name: str, value: str | None) -> None:
        self.options.setdefault(name.lower(), []).append("true" if value is None else value)

    def flag(self, name: str) -> bool:
        return self.options.get(name, ["false"])[-1].lower() in ("true", "1", "yes")

    def value(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None

    def spec(self, names: dict[str, str], multi: tuple[str, ...] = ()) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        for option, values in self.options.items():
            if option in ("scheduler",):
                continue
            if option not in names:
                raise Usage(f"unknown option /{option}")
            key = names[option]
            spec[key] = values if key in multi else values[-1]
        return spec

    def job_id(self) -> int:
        text = self.value("id") or (self.positional[0] if self.positional else None)
        if text is None:
            raise Usage("a job ID is required")
        try:
            return int(text)
        except ValueError:
            raise Usage(f"'{text}' is not a job ID") from None


def cmd_new(client: Client, args: Arguments) -> int:
    job = client.call("new_job", spec=args.spec(JOB_OPTIONS, ("JobEnv",)))
    print(f"Created job, ID: {job['Id']}")
    return 0


def cmd_add(client: Client, args: Arguments) -> int:
    job_id = args.job_id()
    command = " ".join(args.positional[1:])
    parametric = args.options.pop("parametric", None)
    spec = args.spec(TASK_OPTIONS, ("Env",))
    spec["CommandLine"] = command
    if parametric:
        bounds = parametric[-1].split(":")
        start, _, end = bounds[0].partition("-")
        spec.update(Parametric=True, Start=int(start), End=int(end or start),
                    Increment=int(bounds[1]) if len(bounds) > 1 else 1)
    for task in client.call("add_task", job_id=job_id, spec=spec):
        print(f"Task {task['Id']} added.")
    return 0


def _per_job(results: list[dict[str, Any]], done: str) -> int:
    status = 0
    for entry in results:
        if "error" in entry:
            print(f"job: {entry['error']['message']}", file=sys.stderr)
            status = 1
        else:
            print(done.format(id=entry["id"]))
    return status


def cmd_submit(client: Client, args: Arguments) -> int:
    return _per_job(client.call("submit_jobs", ids=[args.job_id()]), "Job has been submitted. ID: {id}.")


def _stop(client: Client, args: Arguments, finish: bool) -> int:
    job_id = args.job_id()
    graceful = args.flag("graceful")
    results = client.call("cancel_jobs", ids=[job_id], message=args.value("message"), force=args.flag("force"),
                          graceful=graceful, state="Finished" if finish else None)
    verb = "finished" if finish else "canceled"
    if "error" in results[0] or graceful:
        return _per_job(results, f"Job {{id}} will be {verb} when its running tasks end.")
    final = client.call("wait_jobs", ids=[job_id]).get(str(job_id))
    expected = "Finished" if finish else "Canceled"
    if final != expected:
        job = client.call("get_jobs", ids=[job_id])[0]
        print(f"job: job {job_id} is {final}, not {expected}: {job['ErrorMessage']}", file=sys.stderr)
        return 1
    print(f"Job {job_id} {verb}.")
    return 0


def cmd_cancel(client: Client, args: Arguments) -> int:
    return _stop(client, args, finish=False)


def cmd_finish(client: Client, args: Arguments) -> int:
    if args.flag("force"):
        raise Usage("job finish takes /graceful and /message only")
    return _stop(client, args, finish=True)


def cmd_requeue(client: Client, args: Arguments) -> int:
    return _per_job(client.call("submit_jobs", ids=[args.job_id()]), "Job {id} has been requeued.")


def cmd_list(client: Client, args: Arguments) -> int:
    state = "All" if args.flag("all") else args.value("state")
    jobs = client.call("get_jobs", state=state, owner=args.value("owner"))
    rows = [(str(j["Id"]), j["Owner"], j["Name"], j["State"], j["Priority"], (j["SubmitTime"] or "")[:19])
            for j in jobs]
    _table(("Id", "Owner", "Name", "State", "Priority", "Submit Time"), rows)
    return 0


def cmd_view(client: Client, args: Arguments) -> int:
    job = {**client.call("get_jobs", ids=[args.job_id()])[0], "HeadNode": client.address}
    width = max(len(k) for k in job)
    for key, value in job.items():
        if not key.startswith("__"):
            print(f"{key.ljust(width)} : {value}")
    return 0


def cmd_listtasks(client: Client, args: Arguments) -> int:
    tasks = client.call("get_tasks", job_id=args.job_id())
    rows = [(t["Id"], t["Name"], t["State"], "" if t["ExitCode"] is None else str(t["ExitCode"]), t["CommandLine"])
            for t in tasks]
    _table(("Id", "Name", "State", "Exit", "Command Line"), rows)
    return 0


def _table(headers: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


COMMANDS: dict[str, Callable[[Client, Arguments], int]] = {
    "new": cmd_new, "add": cmd_add, "submit": cmd_submit, "cancel": cmd_cancel, "finish": cmd_finish,
    "requeue": cmd_requeue, "list": cmd_list, "view": cmd_view, "listtasks": cmd_listtasks,
}


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if not words or words[0] in ("/?", "-h", "--help", "help") or words[0] not in COMMANDS:
        print(__doc__, file=sys.stderr if words and words[0] not in ("/?", "-h", "--help", "help") else sys.stdout)
        return 0 if words and words[0] in ("/?", "-h", "--help", "help") else 2
    try:
        args = _task_arguments(words[1:]) if words[0] == "add" else Arguments(words[1:])
        client = for_scheduler(args.value("scheduler"))
        return COMMANDS[words[0]](client, args)
    except Usage as e:
        print(f"job {words[0]}: {e} (see 'job --help')", file=sys.stderr)
        return 2
    except HpcError as e:
        print(f"job: {e.message}", file=sys.stderr)
        return 1


def _task_arguments(words: list[str]) -> Arguments:
    """`job add <id> [options] <command line>`: options end where the command line begins."""
    split = 1
    while split < len(words) and (words[split].startswith("/") or words[split].startswith("--")):
        split += 1 if words[split].startswith("/") or "=" in words[split] or \
            words[split][2:].lower() in FLAGS else 2
    args = Arguments(words[:split])
    args.positional += words[split:]
    return args


if __name__ == "__main__":
    sys.exit(main())
