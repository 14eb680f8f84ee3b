"""Job cmdlets: New-, Add-HpcTask, Submit-, Get-, Set-, Stop-HpcJob."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..backends.contract import JobQuery, StopOptions, TaskQuery
from ..backends.stopping import stop_jobs
from ..errors import HpcError
from ..model.properties import JOB_NAMES, TASK_NAMES
from .registry import Answer, Args, Record, command, each, job_target, per_item, plan, plans, waiting

# Parameters New-HpcJob and Set-HpcJob, and Add-HpcTask, pass on: declared once (model.properties).
JOB_PROPERTIES = JOB_NAMES
TASK_PROPERTIES = TASK_NAMES


def _job_ids(args: Args) -> list[int]:
    """The jobs to act on: those the user confirmed, else -Id, -Job (a job arrives as its id) or -JobId."""
    return args.ints("Confirmed") or args.ints("Id") or args.ints("Job") or args.ints("JobId")


def _local_file(args: Args, name: str) -> str:
    """A job or task file to read here: a Windows path mapped by the head node's path map, `\\` as a separator,
    and the extension's case forgiven where the file system is not (model.paths)."""
    from ..model import paths
    path = str(args.get(name))
    if paths.is_windows_path(path):
        path = args.backend().map_paths([path])[0]
    return paths.local_file(path)


def _lookup_plans(args: Args, describe: Callable[[Record], str]) -> list[Record]:
    return plans(args.backend().lookup_jobs(_job_ids(args)), describe)


def _stop_options(args: Args) -> StopOptions:
    return StopOptions.from_parameters(args.flag("Force"), args.flag("Graceful"), args.get("State"),
                                       args.get("Message"))


@command("Stop-HpcJob:plan")
def stop_job_plan(args: Args) -> list[Record]:
    items = args.backend().plan_cancel(_job_ids(args), _stop_options(args))
    return [plan(job_target(i.record), i.action or "", i.id) if i.error is None and i.record is not None
            else per_item([i])[0] for i in items]


@command("Stop-HpcJob")
def stop_job(args: Args) -> list[Record]:
    """Cancels the jobs and waits for their final state unless graceful (backends.stopping); outputs
    only the errors, one per job that was refused or did not end as asked."""
    with waiting(args) as (report, stopped):
        items = stop_jobs(args.backend(), _job_ids(args), _stop_options(args), report, stopped, records=False)
    return per_item([i for i in items if i.error is not None])


@command("New-HpcJob:plan")
def new_job_plan(args: Args) -> list[Record]:
    name = args.get("Name") or ""
    return [plan(f"New job{' ' + repr(name) if name else ''}", "New-HpcJob", 0)]


@command("New-HpcJob")
def new_job(args: Args) -> list[Record]:
    backend = args.backend()
    spec = args.pick(*JOB_PROPERTIES)
    if args.has("JobFile"):
        from ..model.jobxml import read_job_file
        file_spec, tasks = read_job_file(_local_file(args, "JobFile"))
        file_spec.update(spec)
        return [backend.new_job(file_spec, tasks)]  # all of it, or nothing
    if args.has("Job"):
        return [backend.copy_job(args.ints("Job")[0], spec)]
    return [backend.new_job(spec)]


@command("Add-HpcTask:plan")
def add_task_plan(args: Args) -> list[Record]:
    return _lookup_plans(args, lambda job: f"Add-HpcTask: {args.get('CommandLine') or 'task from file'}")


@command("Add-HpcTask")
def add_task(args: Args) -> list[Record]:
    backend = args.backend()
    specs = [args.pick(*TASK_PROPERTIES)]
    if args.has("TaskFile"):
        from ..model.jobxml import read_task_file
        specs = [{**task, **specs[0]} for task in read_task_file(_local_file(args, "TaskFile"))]
    return each(_job_ids(args), lambda job_id: [t for spec in specs for t in backend.add_task(job_id, spec)])


@command("Submit-HpcJob:plan")
def submit_job_plan(args: Args) -> list[Record]:
    def describe(job: Record) -> str:
        return "Submit-HpcJob: requeue" if job["State"] in ("Canceled", "Failed") else "Submit-HpcJob: submit"
    return _lookup_plans(args, describe)


@command("Submit-HpcJob")
def submit_job(args: Args) -> list[Record]:
    return per_item(args.backend().submit_jobs(_job_ids(args)))


@command("Get-HpcJob")
def get_job(args: Args) -> Answer:
    """Jobs by -Id (an error per missing id), or those that match, streamed page by page as the head node
    sent them (the module reads them; Python need not)."""
    backend = args.backend()
    if args.has("Id"):
        return per_item(backend.lookup_jobs(args.ints("Id")))
    query = JobQuery(state=args.get("State"), owner=args.get("Owner"), name=args.get("Name"),
                     project=args.get("Project"), template=args.get("TemplateName"),
                     begin=args.get("BeginSubmitDate"), end=args.get("EndSubmitDate"), nodes=args.get("NodeName"))
    if query.begin or query.end or query.name or query.project or query.template or query.nodes:
        query = replace(query, state=query.state or "All")  # a filter other than owner looks at every state
    return backend.query_job_pages(query)


@command("Set-HpcJob:plan")
def set_job_plan(args: Args) -> list[Record]:
    changes = ", ".join(k for k in JOB_PROPERTIES if args.has(k)) or "nothing"
    return _lookup_plans(args, lambda job: f"Set-HpcJob: change {changes}")


@command("Set-HpcJob")
def set_job(args: Args) -> list[Record]:
    backend = args.backend()
    spec = args.pick(*JOB_PROPERTIES)
    return each(_job_ids(args), lambda job_id: [backend.set_job(job_id, spec)])


@command("Export-HpcJob:plan")
def export_job_plan(args: Args) -> list[Record]:
    path = Path(str(args.get("Path")))
    query = f"The file {path} exists. Overwrite it?" if path.exists() else None
    return [{**p, "query": query} if "__error__" not in p else p
            for p in _lookup_plans(args, lambda job: f"Export-HpcJob: write job {job['Id']} to {path}")]


@command("Export-HpcJob")
def export_job(args: Args) -> list[Record]:
    from ..model.jobxml import write_job_file
    backend = args.backend()
    path = Path(str(args.get("Path")))

    def export(job_id: int) -> list[Record]:
        tasks = backend.get_tasks(TaskQuery(job_id, expand=False, full=True))  # the owner's or an admin's
        found = backend.lookup_jobs([job_id])[0]
        if found.error is not None or found.record is None:
            raise found.error or HpcError("InvalidJobId", f"No job {job_id}.", job_id)
        job = found.record
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(write_job_file(job, tasks))
        return []
    return each(_job_ids(args), export)
