"""Job cmdlets: New-, Add-HpcTask, Submit-, Get-, Set-, Stop-HpcJob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .registry import Args, Record, command, each, error, job_target, per_item, plan, wait_until_ended

# Parameters that New-HpcJob and Set-HpcJob pass on as job properties.
JOB_PROPERTIES = (
    "Name", "Project", "TemplateName", "Priority", "RunTime", "NumCores", "NumSockets", "NumNodes", "NumGpus",
    "RequestedNodes", "NodeGroups", "NodeGroupOp", "OrderBy", "Exclusive", "RunUntilCanceled",
    "FailOnTaskFailure", "FailDependentTasks", "MinMemoryPerNode", "MaxMemoryPerNode", "MinCoresPerNode",
    "MaxCoresPerNode", "EstimatedProcessMemory", "License", "Progress", "ProgressMessage", "NotifyOnStart",
    "NotifyOnCompletion", "EmailAddress", "HoldUntil", "SingleNode", "JobEnv", "ParentJobIds",
    "TaskExecutionFailureRetryLimit", "ValidExitCodes", "CustomProperties", "AddExcludedNodes",
    "RemoveExcludedNodes", "ClearExcludedNodes",
)
TASK_PROPERTIES = (
    "CommandLine", "Name", "Exclusive", "FailJobOnFailure", "FailJobOnFailureCount", "Rerunnable", "RunTime",
    "NumNodes", "NumSockets", "NumCores", "RequiredNodes", "WorkDir", "Stdin", "Stdout", "Stderr",
    "ValidExitCodes", "Depend", "CustomProperties", "Env", "Parametric", "Type", "Start", "End", "Increment",
)


def _job_ids(args: Args) -> list[int]:
    """The jobs to act on: those the user confirmed, else -Id, -Job (a job arrives as its id) or -JobId."""
    return args.ints("Confirmed") or args.ints("Id") or args.ints("Job") or args.ints("JobId")


def _lookup_plans(args: Args, describe: Any) -> list[Record]:
    out: list[Record] = []
    for entry in args.client().call("lookup_jobs", ids=_job_ids(args)):
        if "error" in entry:
            out.extend(per_item([entry]))
        else:
            job = entry["job"]
            out.append(plan(job_target(job), describe(job), job["Id"]))
    return out


@command("Stop-HpcJob:plan")
def stop_job_plan(args: Args) -> list[Record]:
    results = args.client().call("plan_cancel", ids=_job_ids(args), message=args.get("Message"),
                                 state=args.get("State"), force=args.flag("Force"), graceful=args.flag("Graceful"))
    out: list[Record] = []
    for entry in results:
        if "error" in entry:
            out.extend(per_item([entry]))
        else:
            out.append(plan(job_target(entry["job"]), entry["action"], entry["id"]))
    return out


@command("Stop-HpcJob")
def stop_job(args: Args) -> list[Record]:
    """Cancels the jobs; waits for their final state unless graceful (HPC Pack's client does the same)."""
    client = args.client()
    finish = str(args.get("State") or "").lower() == "finished"
    results = client.call("cancel_jobs", ids=_job_ids(args), message=args.get("Message"), state=args.get("State"),
                          force=args.flag("Force"), graceful=args.flag("Graceful"))
    out = [r for r in per_item(results) if "__error__" in r]
    accepted = [r["id"] for r in results if "error" not in r]
    if accepted and not args.flag("Graceful"):
        expected = "Finished" if finish else "Canceled"
        final = wait_until_ended(args, accepted)
        for job_id in accepted:
            state = final.get(str(job_id))
            if state != expected:
                out.append(_incomplete(client, job_id, state, expected))
    return out


def _incomplete(client: Any, job_id: int, state: str | None, expected: str) -> Record:
    job = client.call("get_jobs", ids=[job_id])[0]
    if state in ("Canceling", "Finishing"):
        return error("CancelIncomplete", f"Job {job_id} did not reach {expected} in time; it is still {state}. "
                     f"{job['ErrorMessage']}", job_id)
    return error("CancelFailed", f"Job {job_id} ended {state}, not {expected}: {job['ErrorMessage']}", job_id)


@command("New-HpcJob:plan")
def new_job_plan(args: Args) -> list[Record]:
    name = args.get("Name") or ""
    return [plan(f"New job{' ' + repr(name) if name else ''}", "New-HpcJob", 0)]


@command("New-HpcJob")
def new_job(args: Args) -> list[Record]:
    client = args.client()
    spec = args.pick(*JOB_PROPERTIES)
    if args.has("JobFile"):
        from ..model.jobxml import read_job_file
        file_spec, tasks = read_job_file(str(args.get("JobFile")))
        file_spec.update(spec)
        return [client.call("new_job", spec=file_spec, tasks=tasks)]  # all of it, or nothing
    if args.has("Job"):
        return [client.call("copy_job", id=args.ints("Job")[0], spec=spec)]
    return [client.call("new_job", spec=spec)]


@command("Add-HpcTask:plan")
def add_task_plan(args: Args) -> list[Record]:
    return _lookup_plans(args, lambda job: f"Add-HpcTask: {args.get('CommandLine') or 'task from file'}")


@command("Add-HpcTask")
def add_task(args: Args) -> list[Record]:
    client = args.client()
    specs = [args.pick(*TASK_PROPERTIES)]
    if args.has("TaskFile"):
        from ..model.jobxml import read_task_file
        specs = [{**task, **specs[0]} for task in read_task_file(str(args.get("TaskFile")))]
    return each(_job_ids(args), lambda job_id: [t for spec in specs
                                                 for t in client.call("add_task", job_id=job_id, spec=spec)])


@command("Submit-HpcJob:plan")
def submit_job_plan(args: Args) -> list[Record]:
    def describe(job: Record) -> str:
        return "Submit-HpcJob: requeue" if job["State"] in ("Canceled", "Failed") else "Submit-HpcJob: submit"
    return _lookup_plans(args, describe)


@command("Submit-HpcJob")
def submit_job(args: Args) -> list[Record]:
    return per_item(args.client().call("submit_jobs", ids=_job_ids(args)))


@command("Get-HpcJob")
def get_job(args: Args) -> list[Record]:
    client = args.client()
    if args.has("Id"):
        return per_item(client.call("lookup_jobs", ids=args.ints("Id")))
    state = args.get("State")
    query: dict[str, Any] = {
        "state": state, "owner": args.get("Owner"), "name": args.get("Name"), "project": args.get("Project"),
        "template": args.get("TemplateName"), "begin": args.get("BeginSubmitDate"),
        "end": args.get("EndSubmitDate"), "nodes": args.get("NodeName"),
    }
    if query["begin"] or query["end"] or query["name"] or query["project"] or query["template"] or query["nodes"]:
        query["state"] = state or "All"
    return list(client.call("get_jobs", **query))


@command("Set-HpcJob:plan")
def set_job_plan(args: Args) -> list[Record]:
    changes = ", ".join(k for k in JOB_PROPERTIES if args.has(k)) or "nothing"
    return _lookup_plans(args, lambda job: f"Set-HpcJob: change {changes}")


@command("Set-HpcJob")
def set_job(args: Args) -> list[Record]:
    client = args.client()
    spec = args.pick(*JOB_PROPERTIES)
    return each(_job_ids(args), lambda job_id: [client.call("set_job", id=job_id, spec=spec)])


@command("Export-HpcJob:plan")
def export_job_plan(args: Args) -> list[Record]:
    path = Path(str(args.get("Path")))
    query = f"The file {path} exists. Overwrite it?" if path.exists() else None
    return [{**p, "query": query} if "__error__" not in p else p
            for p in _lookup_plans(args, lambda job: f"Export-HpcJob: write job {job['Id']} to {path}")]


@command("Export-HpcJob")
def export_job(args: Args) -> list[Record]:
    from ..model.jobxml import write_job_file
    client = args.client()
    path = Path(str(args.get("Path")))

    def export(job_id: int) -> list[Record]:
        tasks = client.call("get_tasks", job_id=job_id, expand=False, full=True)  # the owner's or an admin's
        job = client.call("get_jobs", ids=[job_id])[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(write_job_file(job, tasks))
        return []
    return each(_job_ids(args), export)
