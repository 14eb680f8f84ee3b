"""`job`: HPC Pack's `job` command line, for people and scripts without PowerShell.

Each command takes exactly the options HPC Pack's job.exe documents for it (those this head node
supports), in HPC Pack's form /name:value or /name (any case), or GNU's --name=value, --name value
and --name. Anything else is an error; `job <command> /?` (or --help) shows a command's help.
The parsing is argparse's: the words are only translated from HPC Pack's form first (see `_translate`).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from ..backends.contract import Item, JobQuery, StopOptions, TaskQuery
from ..backends.stopping import stop_jobs
from ..errors import HpcError
from ..wire.protocol import MAX_ID
from .arguments import check_text

if TYPE_CHECKING:
    from ..backends.contract import Backend

HELP_WORDS = {"/?", "/help", "-h", "-?", "--help"}
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


class Usage(Exception):
    """The words do not make a valid command: shown with the command's name, exit status 2."""


@dataclass(frozen=True)
class Option:
    """One of HPC Pack's options. `kind`: value, bool (/name or /name:true|false) or list (repeatable)."""

    name: str
    help: str
    kind: str = "value"
    metavar: str = "value"
    key: str = ""  # the job or task property it sets (new, add)


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    syntax: str
    run: Callable[[Backend, argparse.Namespace], int]
    options: tuple[Option, ...] = ()
    job_id: str = "required"  # required, optional (submit: or /id:), none, or task (jobID.taskID[.subtaskID])
    # HPC Pack options this head node does not do: refused by name, with the reason.
    unsupported: dict[str, str] = field(default_factory=dict)
    epilog: str = ""
    tool: str = "job"  # job, or task (HPC Pack's task.exe)

    def option(self, name: str) -> Option | None:
        return next((o for o in (*self.options, SCHEDULER) if o.name == name.lower()), None)


SCHEDULER = Option("scheduler", "head node: a local name, unix:/path/to/headnode.sock, or a remote one (host, "
                   "host:port, IP address; MUNGE); several, comma-separated, are tried in order; default: "
                   "CCP_SCHEDULER, then the local head node", metavar="name")
ON_WINDOWS_ONLY = "it names Windows credentials; tasks run as the job's owner"


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", ""):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not true or false")


def _task_address(text: str) -> tuple[int, int, int]:
    parts = text.split(".")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3) or min(numbers) < 1 or max(numbers) > MAX_ID:
        raise argparse.ArgumentTypeError(f"'{text}' is not a task: write <jobID>.<taskID>[.<subtaskID>]")
    return numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 0


def _job_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a job ID") from None
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"'{text}' is not a job ID")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows options as HPC Pack writes them: /name:<value>, /name[:{true|false}]."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        if action.dest == "help":
            return "/?, -h, --help"
        name = action.option_strings[0][2:]
        if action.nargs == "?":
            return f"/{name}[:{{true|false}}]"
        return f"/{name}:<{action.metavar}>"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required: jobID."):
            raise Usage("a task is required: <jobID>.<taskID>[.<subtaskID>]")
        if message.startswith("the following arguments are required: jobID"):
            raise Usage("a job ID is required")
        raise Usage(message.replace("unrecognized arguments:", "unexpected words:"))


def _parser(command: Command) -> _Parser:
    parser = _Parser(prog=f"{command.tool} {command.name}", usage=command.syntax, description=command.summary,
                     epilog=command.epilog, formatter_class=_Formatter, add_help=False, allow_abbrev=False)
    if command.job_id == "required":
        parser.add_argument("id", type=_job_id, metavar="jobID", help="the job's ID")
    elif command.job_id == "task":
        parser.add_argument("id", type=_task_address, metavar="jobID.taskID[.subtaskID]",
                            help="the task (a parametric sweep's subtask with .subtaskID)")
    elif command.job_id == "optional":
        parser.add_argument("id", type=_job_id, metavar="jobID", nargs="?", help="the job's ID (or /id:<jobID>)")
    for option in (*command.options, SCHEDULER):
        if option.kind == "bool":
            parser.add_argument(f"--{option.name}", type=_bool, nargs="?", const=True, default=None,
                                help=option.help)
        else:
            parser.add_argument(f"--{option.name}", action="append" if option.kind == "list" else "store",
                                dest="id_option" if option.name == "id" else option.name,
                                metavar=option.metavar, help=option.help)
    parser.add_argument("--help", action="help", help="show this help and exit")
    return parser


def _translate(command: Command, word: str) -> str:
    """HPC Pack's /name:value, /name and GNU's --name[=value] -> --name[=value] for argparse, any case;
    an option the command does not take is an error, never dropped."""
    if word.lower() in HELP_WORDS:
        return "--help"
    if word.startswith("--") and len(word) > 2:
        name, eq, value = word[2:].partition("=")
        spelled = "--" + name
    elif word.startswith("/") and len(word) > 1:
        name, eq, value = word[1:].partition(":")
        spelled = "/" + name
    else:
        return word
    if name.lower() in command.unsupported:
        raise Usage(f"{spelled} is not supported here: {command.unsupported[name.lower()]}")
    option = command.option(name)
    if option is None:
        raise Usage(f"unknown option {spelled}")
    return f"--{option.name}" + (f"={value}" if eq else "")


def _split_task_words(command: Command, words: list[str]) -> tuple[list[str], list[str]]:
    """`job add` and `job submit`: (the command's own words, the task's command line). The command line
    begins at the first word after the job ID that is not an option of the command, or after `--` (which
    is dropped). `job submit` takes no job ID with a command line: there the first word that is not an
    option begins the command line, unless it is a number (`job submit 5`, the job ID).
    On Linux a program is named by its path, so a word such as /bin/echo (a second / before any :)
    begins the command line; any other /word that is not one of the command's options is an error."""
    own: list[str] = []
    seen_id = False
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return own, words[index + 1:]
        if word.lower() in HELP_WORDS:
            own.append(word)
        elif word.startswith("/") and len(word) > 1:
            name = word[1:].partition(":")[0]
            if "/" in name and command.option(name) is None:
                if not seen_id and command.job_id == "required":
                    raise Usage("a job ID is required before the command line")
                return own, words[index:]
            own.append(word)
        elif word.startswith("--") and len(word) > 2:
            own.append(word)
            option = command.option(word[2:].partition("=")[0])
            if option is not None and option.kind != "bool" and "=" not in word and index + 1 < len(words):
                index += 1
                own.append(words[index])
        elif not seen_id and (command.job_id == "required" or word.isdigit()):
            own.append(word)
            seen_id = True
        else:
            return own, words[index:]
        index += 1
    return own, []


def _spec(options: Sequence[Option], args: argparse.Namespace) -> dict[str, Any]:
    """The job or task properties these options set, under their PowerShell names."""
    spec: dict[str, Any] = {}
    for option in options:
        value = getattr(args, option.name)
        if option.key and value is not None:
            spec[option.key] = ("true" if value else "false") if isinstance(value, bool) else value
    return spec


# -- the commands ------------------------------------------------------------------------------------


def cmd_new(backend: Backend, args: argparse.Namespace) -> int:
    job = backend.new_job(_job_spec(args))
    print(f"Created job, ID: {job['Id']}")
    return 0


def _job_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The job's properties from `job new`'s options (also those of a one-command `job submit`)."""
    spec = _spec(_NEW_OPTIONS, args)
    if args.holduntil is not None:
        spec["HoldUntil"] = _hold_until(args.holduntil)
    for option, low, high in (("corespernode", "MinCoresPerNode", "MaxCoresPerNode"),
                              ("memorypernode", "MinMemoryPerNode", "MaxMemoryPerNode")):
        text = getattr(args, option)
        if text is not None:
            first, _, last = text.partition("-")
            spec[low] = first
            if last:
                spec[high] = last
    return spec


def _hold_until(text: str) -> str:
    """HPC Pack's /holduntil: a date and time, or a number of minutes from now."""
    if text.isdigit():
        return (datetime.now(UTC) + timedelta(minutes=int(text))).isoformat()
    try:
        return datetime.fromisoformat(text).astimezone(UTC).isoformat()
    except ValueError:
        raise Usage(f"/holduntil:{text} is neither minutes nor a date and time (2026-12-31T18:00)") from None


def cmd_add(backend: Backend, args: argparse.Namespace) -> int:
    spec = _spec(_ADD_OPTIONS, args)
    spec["CommandLine"] = " ".join(args.command_line)
    if not args.command_line:
        raise Usage("a command line is required after the job ID and options")
    if args.parametric:
        bounds = args.parametric.split(":")
        start, _, end = bounds[0].partition("-")
        try:
            spec.update(Parametric=True, Start=int(start), End=int(end or start),
                        Increment=int(bounds[1]) if len(bounds) > 1 else 1)
        except ValueError:
            raise Usage(f"/parametric:{args.parametric} is not <start>-<end>[:<increment>]") from None
    for task in backend.add_task(args.id, spec):
        print(f"Task {task['Id']} added.")
    return 0


def _per_job(items: list[Item], done: str) -> int:
    """One line per job: `done` for those that went through, the error for the others (exit status 1)."""
    status = 0
    for item in items:
        if item.error is not None:
            print(f"job: {_visible(item.error.message)}", file=sys.stderr)
            status = 1
        else:
            print(done.format(id=item.id))
    return status


def cmd_submit(backend: Backend, args: argparse.Namespace) -> int:
    """`job submit <jobID>` submits a job; `job submit [options] <command line>` is HPC Pack's one-command
    form: a new job (job new's options) with one task (the command line and /stdout: and the like), submitted."""
    job_id = args.id or (_job_id_option(args.id_option) if args.id_option else None)
    given = [o.name for o in _SUBMIT_NEW_OPTIONS if getattr(args, o.name) is not None]
    if job_id is not None and (args.command_line or given):
        raise Usage(f"/{given[0]} makes a new job: give a command line, not a job ID" if given
                    else "give a job ID or a command line, not both")
    if job_id is None and not args.command_line:
        raise Usage("a job ID is required: job submit /id:<jobID>, or a command line: job submit <command>")
    if job_id is None:
        task = {**_spec(_SUBMIT_TASK_OPTIONS, args), "CommandLine": " ".join(args.command_line)}
        job_id = backend.new_job(_job_spec(args), [task])["Id"]
    return _per_job(backend.submit_jobs([job_id]), "Job has been submitted. ID: {id}.")


def _job_id_option(text: str) -> int:
    try:
        return _job_id(text)
    except argparse.ArgumentTypeError as e:
        raise Usage(str(e)) from None


def _stop(backend: Backend, args: argparse.Namespace, finish: bool) -> int:
    """`job cancel` and `job finish`: the cmdlets' stop-and-wait (backends.stopping); Ctrl+C ends the
    waiting, not the stop."""
    options = StopOptions.from_parameters(bool(getattr(args, "force", False)), bool(args.graceful),
                                          "Finished" if finish else None, args.message)
    verb = "finished" if finish else "canceled"
    try:
        items = stop_jobs(backend, [args.id], options)
    except KeyboardInterrupt:
        print(f"job {'finish' if finish else 'cancel'}: stopped waiting; the head node goes on "
              f"{'finishing' if finish else 'cancelling'} job {args.id}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _per_job(items, f"Job {{id}} will be {verb} when its running tasks end." if options.graceful
                    else f"Job {{id}} {verb}.")


def cmd_cancel(backend: Backend, args: argparse.Namespace) -> int:
    return _stop(backend, args, finish=False)


def cmd_finish(backend: Backend, args: argparse.Namespace) -> int:
    return _stop(backend, args, finish=True)


def cmd_requeue(backend: Backend, args: argparse.Namespace) -> int:
    return _per_job(backend.requeue_jobs([args.id]), "Job {id} has been requeued.")


def cmd_list(backend: Backend, args: argparse.Namespace) -> int:
    from . import show
    state = args.state or args.status or ("All" if args.all else None)
    user = None if args.user in (None, "*") else args.user
    if state is None and (args.user == "*" or args.jobname or args.project or args.jobtemplate or args.submittime):
        state = "All"  # HPC Pack's default (own Queued and Running jobs) holds only without any filter
    name = args.jobname if args.jobname and "*" not in args.jobname else None
    begin = None
    if args.submittime:
        if not args.submittime.isdigit():
            raise Usage(f"/submittime:{args.submittime} is not a number of days")
        begin = (datetime.now(UTC) - timedelta(days=int(args.submittime))).isoformat()
    jobs = list(backend.query_jobs(JobQuery(state=state, owner=user, name=name, project=args.project,
                                            template=args.jobtemplate, begin=begin, fields=show.LIST_FIELDS)))
    if args.jobname and "*" in args.jobname:
        jobs = [j for j in jobs if fnmatch.fnmatchcase(j["Name"].lower(), args.jobname.lower())]
    show.jobs(jobs, _format(args))
    return 0


def _format(args: argparse.Namespace, default: str = "table") -> str:
    chosen = (args.format or default).lower()
    if chosen not in ("list", "table"):
        raise Usage(f"/format:{args.format} is not list or table")
    return chosen


def _job(backend: Backend, job_id: int) -> dict[str, Any]:
    found = backend.lookup_jobs([job_id])[0]
    if found.error is not None or found.record is None:
        raise found.error or HpcError("InvalidJobId", f"No job {job_id}.", job_id)
    return found.record


def cmd_view(backend: Backend, args: argparse.Namespace) -> int:
    from . import show
    job = _job(backend, args.id)
    tasks = backend.get_tasks(TaskQuery(args.id))
    show.job(job, tasks, backend.name, detailed=bool(args.detailed))
    if args.history and not args.detailed:  # HPC Pack: /detailed overrides /history
        show.history(backend.history(args.id))
    return 0


def cmd_listtasks(backend: Backend, args: argparse.Namespace) -> int:
    from . import show
    tasks = backend.get_tasks(TaskQuery(args.id, expand=bool(args.expand), state=args.state or args.status))
    show.tasks(tasks, _format(args, default="list"))
    return 0


BOOL = "bool"
_NEW_OPTIONS = (
    Option("askednodes", "nodes the job may run on, comma-separated", metavar="node_list", key="RequestedNodes"),
    Option("requestednodes", "the same as /askednodes", metavar="node_list", key="RequestedNodes"),
    Option("exclusive", "no other job runs on the job's nodes", BOOL, key="Exclusive"),
    Option("failontaskfailure", "the job fails as soon as one of its tasks fails", BOOL, key="FailOnTaskFailure"),
    Option("holduntil", "do not start before this date and time, or this many minutes from now",
           metavar="DateTime|minutes"),
    Option("jobenv", "an environment variable for all tasks (repeatable); NAME= unsets it", "list",
           "NAME=value", key="JobEnv"),
    Option("jobname", "the job's name (80 characters at most)", metavar="job_name", key="Name"),
    Option("jobtemplate", "the job template", metavar="job_template_name", key="TemplateName"),
    Option("nodegroup", "node groups, comma-separated", metavar="node_group_list", key="NodeGroups"),
    Option("numcores", "cores: <min>[-<max>], * for as many as the tasks need", metavar="min[-max]",
           key="NumCores"),
    Option("numnodes", "nodes: <min>[-<max>]", metavar="min[-max]", key="NumNodes"),
    Option("numsockets", "sockets: <min>[-<max>]", metavar="min[-max]", key="NumSockets"),
    Option("parentjobids", "jobs that must finish first, comma-separated", metavar="jobID_list",
           key="ParentJobIds"),
    Option("priority", "Lowest, BelowNormal, Normal, AboveNormal, Highest (or 0-4000, Normal+10...)",
           metavar="priority", key="Priority"),
    Option("progress", "progress in percent, 0-100", metavar="percent", key="Progress"),
    Option("progressmsg", "a progress message (80 characters at most)", metavar="message", key="ProgressMessage"),
    Option("projectname", "the job's project", metavar="name", key="Project"),
    Option("runtime", "the run-time limit: [[days:]hours:]minutes or Infinite", metavar="time", key="RunTime"),
    Option("rununtilcanceled", "keep the cores until the job is canceled", BOOL, key="RunUntilCanceled"),
    Option("taskexecutionfailureretrylimit", "requeue a task whose program fails this many times",
           metavar="retry_limit", key="TaskExecutionFailureRetryLimit"),
    Option("validexitcodes", "exit codes that mean success: 0,3..5", metavar="codes", key="ValidExitCodes"),
    Option("corespernode", "only nodes with this many cores: <min>[-<max>]", metavar="min[-max]"),
    Option("memorypernode", "only nodes with this much memory in MB: <min>[-<max>]", metavar="min[-max]"),
    Option("customproperties", "name=value;name2=value2", metavar="properties", key="CustomProperties"),
    Option("estimatedprocessmemory", "MB one process needs (a node runs at most its memory / this)",
           metavar="MB", key="EstimatedProcessMemory"),
    Option("faildependenttasks", "tasks that depend on a failed task fail too", BOOL, key="FailDependentTasks"),
    Option("license", "licenses: name:count,... (count a number or *)", metavar="licenses", key="License"),
    Option("nodegroupop", "Intersect, Uniform or Union", metavar="op", key="NodeGroupOp"),
    Option("orderby", "node preference: Memory, -Memory, Cores, -Cores (primary[,secondary])", metavar="keys",
           key="OrderBy"),
    Option("singlenode", "all the job's cores on one node", BOOL, key="SingleNode"),
    Option("emailaddress", "where notices go (recorded: this head node sends no e-mail)", metavar="address",
           key="EmailAddress"),
    Option("notifyoncompletion", "a notice when the job ends (recorded)", BOOL, key="NotifyOnCompletion"),
    Option("notifyonstart", "a notice when the job starts (recorded)", BOOL, key="NotifyOnStart"),
)
_NEW_UNSUPPORTED = {"numprocessors": "give /numcores", "jobfile": "use New-HpcJob -JobFile in PowerShell"}
_ADD_OPTIONS = (
    Option("depend", "names of tasks that must finish first, comma-separated", metavar="task_name_list",
           key="Depend"),
    Option("env", "an environment variable of the task (repeatable); NAME= unsets it", "list", "NAME=value",
           key="Env"),
    Option("exclusive", "no other task runs on the task's node", BOOL, key="Exclusive"),
    Option("name", "the task's name", metavar="task_name", key="Name"),
    Option("numcores", "cores: <min>[-<max>]", metavar="min[-max]", key="NumCores"),
    Option("parametric", "a parametric sweep: <start>-<end>[:<increment>]; * in the command line is the index",
           metavar="start-end[:increment]"),
    Option("rerunnable", "the task may run again after a failure", BOOL, key="Rerunnable"),
    Option("runtime", "the run-time limit: [[days:]hours:]minutes or Infinite", metavar="time", key="RunTime"),
    Option("stderr", "file for standard error, relative to /workdir", metavar="file", key="Stderr"),
    Option("stdin", "file for standard input, relative to /workdir", metavar="file", key="Stdin"),
    Option("stdout", "file for standard output, relative to /workdir", metavar="file", key="Stdout"),
    Option("type", "Basic, ParametricSweep, NodePrep, NodeRelease or Service", metavar="type_name", key="Type"),
    Option("validexitcodes", "exit codes that mean success: 0,3..5", metavar="codes", key="ValidExitCodes"),
    Option("workdir", "the task's working folder", metavar="folder", key="WorkDir"),
    Option("requirednodes", "the task runs only on these nodes, comma-separated", metavar="node_list",
           key="RequiredNodes"),
)
_ADD_UNSUPPORTED = {"numnodes": "a task takes cores (/numcores)", "numsockets": "a task takes cores (/numcores)",
                    "numprocessors": "a task takes cores (/numcores)",
                    "taskfile": "use Add-HpcTask -TaskFile in PowerShell"}
_MESSAGE = Option("message", "why (128 characters at most); the job's ErrorMessage shows it", metavar="message")
_GRACEFUL = Option("graceful", "let running tasks end by themselves; do not wait", BOOL)
_STATE = Option("state", "states, comma-separated (Queued,Running), or All", metavar="state_list")
_STATUS = Option("status", "the same as /state", metavar="state_list")
_FORMAT = Option("format", "list or table", metavar="list|table")

_COMMAND_LINE = """\
The command line:
  It begins at the first word{after} that is not one of {name}'s options,
  or after --, which ends the options (and is not part of the command line).
  A word such as /bin/echo (an absolute path: a second / before any :) names the
  program and begins the command line; any other /word that is not an option of
  {name} is an error (write the program after -- if its name is a single /word).
  The words are joined with spaces and run by the shell (/bin/sh) in the task's
  working folder; quote what your shell would otherwise expand.

Examples:
"""
COMMAND_LINE_RULE = _COMMAND_LINE.format(after=" after the job ID", name="job add") + """\
  job add 5 /name:hello echo Hello World
  job add 5 /stdout:out-*.txt /parametric:1-10 /usr/bin/printf "%s\\n" '*'
  job add 5 /workdir:/srv/run -- /opt/model/run --steps 10"""
SUBMIT_RULE = _COMMAND_LINE.format(after="", name="job submit") + """\
  job submit 5
  job submit /numcores:4 /jobname:nightly /stdout:out.txt /opt/model/run --steps 10
  job submit -- 42     (a command line that is only a number: after --)"""

# A one-command `job submit`: the job's options are job new's; the task's, these of job add's.
_SUBMIT_TASK_OPTIONS = tuple(o for o in _ADD_OPTIONS if o.name in ("stdout", "stderr", "stdin", "workdir",
                                                                  "rerunnable"))
_SUBMIT_NEW_OPTIONS = (*_NEW_OPTIONS, *_SUBMIT_TASK_OPTIONS)

COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("new", "Creates a job (in the Configuring state) and prints its ID.", "job new [options]", cmd_new,
            _NEW_OPTIONS, job_id="none", unsupported=_NEW_UNSUPPORTED,
            epilog="Example:\n  job new /jobname:nightly /numcores:2-4 /priority:AboveNormal"),
    Command("add", "Adds a task to a job.", "job add <jobID> [options] [--] <command> [<parameters>...]", cmd_add,
            _ADD_OPTIONS, unsupported=_ADD_UNSUPPORTED, epilog=COMMAND_LINE_RULE),
    Command("submit", "Submits a job that is being configured, or a new job of one task: its command line.",
            "job submit /id:<jobID> | <jobID>\n       job submit [job new's options] [/stdout:<file>] [/stderr:<file>] "
            "[/stdin:<file>]\n                  [/workdir:<folder>] [/rerunnable] [--] <command> [<parameters>...]",
            cmd_submit,
            (Option("id", "the job's ID", metavar="jobID"), *_SUBMIT_NEW_OPTIONS), job_id="optional",
            unsupported={"user": ON_WINDOWS_ONLY, "password": ON_WINDOWS_ONLY, **_NEW_UNSUPPORTED,
                         "jobfile": "use New-HpcJob -JobFile and Submit-HpcJob in PowerShell"},
            epilog=SUBMIT_RULE),
    Command("cancel", "Cancels a job that is configuring, queued or running, and waits until it is Canceled.",
            "job cancel <jobID> [/force] [/graceful] [/message:<message>]", cmd_cancel,
            (Option("force", "stop running tasks at once: no grace period, no node release task", BOOL),
             _GRACEFUL, _MESSAGE),
            epilog="Ctrl+C stops the waiting, not the cancel.\n\nExample:\n  job cancel 5 /message:\"make room\""),
    Command("finish", "Ends a running job as Finished (for jobs that run until canceled), and waits.",
            "job finish <jobID> [/graceful] [/message:<message>]", cmd_finish, (_GRACEFUL, _MESSAGE)),
    Command("requeue", "Queues a running, canceled or failed job again; its unfinished tasks run again.",
            "job requeue <jobID>", cmd_requeue),
    Command("list", "Lists jobs: without options, your own queued and running jobs.",
            "job list [/all] [/format:{list|table}] [/jobname:<name>|<prefix>*] [/jobtemplate:<name>]\n"
            "                [/project:<name>] [/state:<state_list>] [/submittime:<days>] [/user:<user>|*]",
            cmd_list,
            (Option("all", "every job of every user, in any state", BOOL), _FORMAT,
             Option("jobname", "jobs of this name; prefix* for names that begin so", metavar="name"),
             Option("jobtemplate", "jobs of this template", metavar="name"),
             Option("project", "jobs of this project", metavar="name"), _STATE, _STATUS,
             Option("submittime", "jobs submitted in the last <days> days", metavar="days"),
             Option("user", "jobs of this user; * for every user", metavar="user")),
            job_id="none", unsupported={"pool": "this head node has no pools"}),
    Command("view", "Shows a job: its state, resources, times and task counts.",
            "job view <jobID> [/detailed[:{true|false}]] [/history[:{true|false}]]", cmd_view,
            (Option("detailed", "every property of the job", BOOL),
             Option("history", "the job's history (administrators)", BOOL))),
    Command("listtasks", "Lists a job's tasks (a parametric sweep as one task unless /expand).",
            "job listtasks <jobID> [/expand] [/format:{list|table}] [/state:<state_list>]", cmd_listtasks,
            (Option("expand", "each subtask of a parametric sweep on its own", BOOL), _FORMAT, _STATE, _STATUS)),
)}


def overview(commands: Mapping[str, Command] | None = None, tool: str = "job") -> str:
    lines = [f"usage: {tool} <command> [<arguments>] [/scheduler:<name>]", "",
             f"HPC Pack's {tool} command. The commands:", ""]
    lines += [f"  {c.name:<10} {c.summary}" for c in (commands or COMMANDS).values()]
    lines += ["", "Options are written /name:value or /name (any case), or --name=value and --name.",
              "Every command takes /scheduler:<name> (default: CCP_SCHEDULER, then the local head node).",
              f"'{tool} <command> /?' (or --help) shows a command's options.", "",
              f"Besides HPC Pack's commands: '{tool} manpage' prints this command's man page, and",
              f"'{tool} completion bash' its bash completion (eval \"$({tool} completion bash)\")."]
    return "\n".join(lines)


def parse(words: Sequence[str], commands: Mapping[str, Command] | None = None,
          tool: str = "job") -> tuple[Command, argparse.Namespace]:
    commands = commands or COMMANDS
    if not words or words[0].lower() in HELP_WORDS | {"help"}:
        topic = words[1] if len(words) > 1 and words[0].lower() == "help" else None
        if topic is not None and topic in commands:
            _parser(commands[topic]).parse_args(["--help"])
        print(overview(commands, tool), file=sys.stdout if words else sys.stderr)
        raise SystemExit(0 if words else EXIT_USAGE)
    if words[0].lower() in ("completion", "manpage"):
        _extra(words, commands, tool)
    command = commands.get(words[0].lower())
    if command is None:
        raise Usage(f"'{words[0]}' is not a {tool} command; they are {', '.join(commands)}")
    rest, command_line = (_split_task_words(command, list(words[1:])) if command.name in ("add", "submit")
                          else (list(words[1:]), []))
    args = _parser(command).parse_args([_translate(command, w) for w in rest])
    args.command_line = command_line
    return command, args


def _extra(words: Sequence[str], commands: Mapping[str, Command], tool: str) -> NoReturn:
    """The Linux additions: `job completion bash` and `job manpage` (and task's)."""
    from . import extras
    if words[0].lower() == "manpage" and len(words) == 1:
        from .. import __version__
        sys.stdout.write(extras.man_page(commands, _parser, overview(commands, tool), __version__, tool))
    elif words[0].lower() == "completion" and words[1:] == ["bash"]:
        sys.stdout.write(extras.bash_completion(commands, tool))
    else:
        raise Usage(f"the Linux additions are '{tool} completion bash' and '{tool} manpage'")
    raise SystemExit(0)


def main(argv: list[str] | None = None, commands: Mapping[str, Command] | None = None, tool: str = "job") -> int:
    words = sys.argv[1:] if argv is None else argv
    name = words[0].lower() if words else ""
    commands = commands or COMMANDS
    try:
        refused = check_text(words)
        if refused:
            raise Usage(refused)
        command, args = parse(words, commands, tool)
        from ..backends.headnode import backend_for
        backend = backend_for(args.scheduler)
        try:
            status = command.run(backend, args)
            sys.stdout.flush()
            return status
        except HpcError as e:
            print(f"{tool}: {_visible(e.message)}", file=sys.stderr)
            return 1
        finally:
            backend.close()
    except Usage as e:
        print(f"{tool} {name}: {e} (see '{tool} {name} /?')" if name in commands else f"{tool}: {e} (see '{tool} /?')",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{tool}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _closed_output()


def _visible(message: str) -> str:
    """An error for stderr: it may quote a job's text (its ErrorMessage, a name), escaped as show does."""
    from .show import _visible as visible
    return visible(message)


def _closed_output() -> int:
    """The reader of our output went away (`job list | head -1`): end quietly, as other tools do.
    Anything still buffered goes nowhere, so that the exit does not fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
