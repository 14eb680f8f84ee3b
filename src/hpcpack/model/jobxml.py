"""HPC Pack's job XML (Export-HpcJob, New-HpcJob -JobFile): read safely, write as HPC Pack does.

Reading refuses DTDs and entities outright (no external entities, no expansion bombs) and turns
every malformed file into an InvalidJobFile error. Task dependencies are HPC Pack's group graph
(`Dependencies/Parent/Child`), translated to and from dependencies by task name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, SubElement, indent, tostring

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from ..errors import HpcError
from .objects import PARAMETRIC_SWEEP

NAMESPACE = "http://schemas.microsoft.com/HPCS2008R2/scheduler/"
MAX_FILE = 16 * 1024 * 1024
UNITS = {"Core": "Cores", "Socket": "Sockets", "Node": "Nodes"}
# Job attribute -> New-HpcJob parameter (booleans and numbers are converted by the head node).
JOB_ATTRIBUTES = {
    "Name": "Name", "Project": "Project", "JobTemplate": "TemplateName", "Priority": "Priority",
    "RunUntilCanceled": "RunUntilCanceled", "IsExclusive": "Exclusive", "FailOnTaskFailure": "FailOnTaskFailure",
    "JobValidExitCodes": "ValidExitCodes", "Progress": "Progress", "ProgressMessage": "ProgressMessage",
    "TaskExecutionFailureRetryLimit": "TaskExecutionFailureRetryLimit",
}
# Job attribute -> (New-HpcJob parameter, HpcJob property) for the properties a job file carries as
# they are shown (lists comma-separated, booleans lower-case).
RECORDED_ATTRIBUTES = {
    "NodeGroupOp": ("NodeGroupOp", "NodeGroupOp"),
    "OrderBy": ("OrderBy", "OrderBy"),
    "NotifyOnStart": ("NotifyOnStart", "NotifyOnStart"),
    "NotifyOnCompletion": ("NotifyOnCompletion", "NotifyOnCompletion"),
    "SingleNode": ("SingleNode", "SingleNode"),
    "EstimatedProcessMemory": ("EstimatedProcessMemory", "EstimatedProcessMemory"),
    "SoftwareLicense": ("License", "SoftwareLicense"),
    "MinMemory": ("MinMemoryPerNode", "MinMemory"),
    "MaxMemory": ("MaxMemoryPerNode", "MaxMemory"),
    "MinCoresPerNode": ("MinCoresPerNode", "MinCoresPerNode"),
    "MaxCoresPerNode": ("MaxCoresPerNode", "MaxCoresPerNode"),
    "EmailAddress": ("EmailAddress", "EmailAddress"),
    "FailDependentTasks": ("FailDependentTasks", "FailDependentTasks"),
    "HoldUntil": ("HoldUntil", "HoldUntil"),
}
# HPC Pack job attributes with no meaning on this cluster (SOA services, pools, grow/shrink): read and
# left aside, as about_HPC says; any other attribute is refused by the head node, never stored aside.
IGNORED_ATTRIBUTES = {"Pool", "ServiceName", "NumberOfCalls", "CanGrow", "CanShrink", "HasGrown", "HasShrunk",
                      "Preemptable", "CanPreempt", "ClientSource", "EndpointAddresses", "ExcludedNodes",
                      "ComputedMinCores", "ComputedMaxCores", "ComputedMinSockets", "ComputedMaxSockets",
                      "ComputedMinNodes", "ComputedMaxNodes", "PlannedCoreCount", "TargetResourceCount"}
# Attributes that describe one export, not the job to create.
RUN_ATTRIBUTES = {"Version", "Id", "State", "PreviousState", "CreateTime", "SubmitTime", "StartTime", "EndTime",
                  "ChangeTime", "Owner", "UserName", "RequeueCount", "AutoRequeueCount", "PendingReason",
                  "FailureReason", "RequestCancel", "ErrorCode", "ErrorParams", "ErrorMessage", "JobType",
                  "AutoCalculateMax", "AutoCalculateMin", "UnitType", "RuntimeSeconds", "ParentJobIds",
                  "NodeGroups", "RequestedNodes", "MinCores", "MaxCores", "MinSockets", "MaxSockets", "MinNodes",
                  "MaxNodes", "HasRuntime"}
TASK_ATTRIBUTES = {
    "CommandLine": "CommandLine", "Name": "Name", "Type": "Type", "WorkDirectory": "WorkDir",
    "StdInFilePath": "Stdin", "StdOutFilePath": "Stdout", "StdErrFilePath": "Stderr", "IsRerunnable": "Rerunnable",
    "FailJobOnFailure": "FailJobOnFailure", "IsExclusive": "Exclusive", "AutoRequeueCount": "AutoRequeueCount",
    "FailJobOnFailureCount": "FailJobOnFailureCount",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(path: str) -> Element:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE:
            raise HpcError("InvalidJobFile", f"{path} is larger than {MAX_FILE} bytes; it is not a job file.", path)
        data = file.read_bytes()
    except OSError as e:
        raise HpcError("InvalidJobFile", f"Cannot read the job file {path}: {e.strerror}.", path) from None
    return parse_xml(data, path, "job files")


def parse_xml(data: bytes, path: str, what: str) -> Element:
    """XML from a user's file, with no DTD, entity or external reference (defusedxml); InvalidJobFile else."""
    try:
        root: Element = safe_xml.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise HpcError("InvalidJobFile", f"{path} is refused: {e.__class__.__name__} ({what} may not use "
                       "DTDs or entities).", path) from None
    except safe_xml.ParseError as e:
        raise HpcError("InvalidJobFile", f"{path} is not well-formed XML: {e}.", path) from None
    return root


def read_job_file(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A job file -> (New-HpcJob parameters, Add-HpcTask parameters per task, in task order)."""
    root = _parse(path)
    if _local(root.tag) != "Job":
        raise HpcError("InvalidJobFile", f"{path} is not a job file: its root element is <{_local(root.tag)}>, "
                       "not <Job>.", path)
    attributes = dict(root.attrib)
    spec: dict[str, Any] = {JOB_ATTRIBUTES[k]: v for k, v in attributes.items() if k in JOB_ATTRIBUTES}
    spec.update(_unit_request(attributes))
    if attributes.get("RuntimeSeconds", "").lstrip("-").isdigit() and int(attributes["RuntimeSeconds"]) > 0:
        spec["RunTime"] = str(int(attributes["RuntimeSeconds"]) // 60)
    for attribute, parameter in (("ParentJobIds", "ParentJobIds"), ("NodeGroups", "NodeGroups"),
                                 ("RequestedNodes", "RequestedNodes")):
        if attributes.get(attribute):
            spec[parameter] = [v.strip() for v in attributes[attribute].split(",") if v.strip()]
    for attribute, (parameter, _) in RECORDED_ATTRIBUTES.items():
        if attributes.get(attribute) not in (None, ""):
            value = attributes[attribute]
            spec[parameter] = _date_value(value) if attribute == "HoldUntil" else value
    known = JOB_ATTRIBUTES.keys() | RUN_ATTRIBUTES | RECORDED_ATTRIBUTES.keys() | IGNORED_ATTRIBUTES
    spec.update({k: v for k, v in attributes.items() if k not in known and not k.startswith("{")})
    environment = _environment(root)
    if environment:
        spec["JobEnv"] = [f"{k}={v}" for k, v in environment.items()]
    return spec, _tasks(root, path)


def read_task_file(path: str) -> list[dict[str, Any]]:
    """A task file (Export-HpcTask) or a job file -> Add-HpcTask parameters for each task in it."""
    root = _parse(path)
    if _local(root.tag) == "Task":
        wrapper = Element("Job")
        tasks = SubElement(wrapper, "Tasks")
        tasks.append(root)
        root = wrapper
    return _tasks(root, path)


def _unit_request(attributes: dict[str, str]) -> dict[str, str]:
    unit = attributes.get("UnitType", "Core")
    plural = UNITS.get(unit)
    if plural is None:
        return {}
    auto_min = attributes.get("AutoCalculateMin", "false").lower() == "true"
    auto_max = attributes.get("AutoCalculateMax", "false").lower() == "true"
    low = "*" if auto_min else attributes.get(f"Min{plural}")
    high = "*" if auto_max else attributes.get(f"Max{plural}")
    if low is None or high is None:
        return {}
    if auto_min and auto_max:
        # Both calculated from the tasks at validation: the job keeps its unit and the values the file shows.
        shown = (attributes.get(f"Min{plural}", ""), attributes.get(f"Max{plural}", ""))
        return {"AutoCalculatedUnits": f"{unit}:{shown[0]}-{shown[1]}"} if all(v.isdigit() for v in shown) else {}
    return {f"Num{plural}": f"{low}-{high}"}


def _environment(element: Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for container in element:
        if _local(container.tag) != "EnvironmentVariables":
            continue
        for variable in container:
            name = variable.get("Name") or _child_text(variable, "Name")
            value = variable.get("Value") if variable.get("Value") is not None else _child_text(variable, "Value")
            if name:
                found[name] = value or ""
    return found


def _child_text(element: Element, name: str) -> str:
    return next(((c.text or "") for c in element if _local(c.tag) == name), "")


def _tasks(root: Element, path: str) -> list[dict[str, Any]]:
    parents: dict[str, list[str]] = {}
    for container in root:
        if _local(container.tag) == "Dependencies":
            for parent in container:
                for child in parent:
                    parents.setdefault(child.get("GroupId", ""), []).append(parent.get("GroupId", ""))
    elements = [t for c in root if _local(c.tag) == "Tasks" for t in c if _local(t.tag) == "Task"]
    elements.sort(key=lambda t: _int(t, "NiceId", 0, path))
    names: dict[str, str] = {}
    for task in elements:
        if not task.get("CommandLine"):
            raise HpcError("InvalidJobFile", f"{path}: task {task.get('NiceId', '?')} has no CommandLine.", path)
        names[task.get("GroupId", "")] = task.get("Name") or f"Task{task.get('NiceId', '')}"
    specs = []
    needed = {g for groups in parents.values() for g in groups}
    for task in elements:
        attributes = dict(task.attrib)
        spec: dict[str, Any] = {TASK_ATTRIBUTES[k]: v for k, v in attributes.items() if k in TASK_ATTRIBUTES}
        group = attributes.get("GroupId", "")
        if group in needed and not attributes.get("Name"):
            spec["Name"] = names[group]  # others depend on it, and dependencies go by name here
        depends = [names[g] for g in parents.get(group, []) if g in names]
        if depends:
            spec["Depend"] = depends
        unit = attributes.get("UnitType", "Core")
        plural = UNITS.get(unit)
        if plural is None:
            raise HpcError("InvalidJobFile", f"{path}: task {attributes.get('NiceId', '?')} has UnitType=\"{unit}\"; "
                           "use Core, Socket or Node.", path)
        low = attributes.get(f"Min{plural}")
        if low:
            spec[f"Num{plural}"] = f"{low}-{attributes.get(f'Max{plural}', low)}"
        if attributes.get("Type") == PARAMETRIC_SWEEP or attributes.get("IsParametric") == "true":
            spec.update(Type=PARAMETRIC_SWEEP, Start=_int(task, "StartValue", 1, path),
                        End=_int(task, "EndValue", 1, path), Increment=_int(task, "IncrementValue", 1, path))
        environment = _environment(task)
        if environment:
            spec["Env"] = [f"{k}={v}" for k, v in environment.items()]
        specs.append(spec)
    return specs


def _int(element: Element, name: str, default: int, path: str) -> int:
    """An integer attribute, or InvalidJobFile naming it (never a raw ValueError)."""
    text = (element.get(name) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise HpcError("InvalidJobFile", f"{path}: {name}=\"{text}\" on <{_local(element.tag)}> is not a whole "
                       "number.", path) from None


def _date(iso: str | None) -> str | None:
    """HPC Pack writes dates in the exporting machine's culture; en-US is what its own files show."""
    if not iso:
        return None
    moment = datetime.fromisoformat(iso).astimezone()
    return f"{moment.month}/{moment.day}/{moment.year} {moment.strftime('%I').lstrip('0')}:{moment:%M:%S %p}"


def _bool(value: Any) -> str:
    return "true" if value else "false"


def _recorded(value: Any) -> str | None:
    """A shown property as a job file attribute; None (left out) when it is unset."""
    if value in (None, "", 0, False, []):
        return None
    if isinstance(value, bool):
        return _bool(value)
    if isinstance(value, list):
        return ",".join(map(str, value))
    return _date(value) if isinstance(value, str) and value[:4].isdigit() and "T" in value else str(value)


def _date_value(text: str) -> str:
    """A job file's date (en-US culture, as HPC Pack writes it, or ISO 8601) -> ISO 8601."""
    for form in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S"):
        try:
            return datetime.strptime(text, form).astimezone().isoformat()
        except ValueError:
            continue
    return text


def write_job_file(job: dict[str, Any], tasks: list[dict[str, Any]]) -> bytes:
    """A job (its HpcJob record and its tasks' HpcTask records, sweeps unexpanded) -> job XML."""
    unit = job["UnitType"] if job["UnitType"] in UNITS else "Core"
    attributes: dict[str, str | None] = {
        "Version": "3.000", "Id": str(job["Id"]), "State": job["State"], "CreateTime": _date(job["CreateTime"]),
        "SubmitTime": _date(job["SubmitTime"]), "StartTime": _date(job["StartTime"]),
        "EndTime": _date(job["EndTime"]), "Name": job["Name"], "IsExclusive": _bool(job["IsExclusive"]),
        "RunUntilCanceled": _bool(job["RunUntilCanceled"]), "UnitType": unit, "Owner": job["Owner"],
        "UserName": job["UserName"], "Project": job["Project"], "JobType": "Batch", "JobTemplate": job["Template"],
        "Priority": job["Priority"], "RequeueCount": str(job["RequeueCount"]), "PendingReason": "None",
        "RequestCancel": job["RequestCancel"], "ErrorMessage": job["ErrorMessage"],
        "AutoCalculateMax": _bool(job["AutoCalculateMax"]), "AutoCalculateMin": _bool(job["AutoCalculateMin"]),
        "FailOnTaskFailure": _bool(job["FailOnTaskFailure"]), "Progress": str(job["Progress"]),
        "ProgressMessage": job["ProgressMessage"], f"Min{UNITS[unit]}": str(job[f"Min{UNITS[unit]}"]),
        f"Max{UNITS[unit]}": str(job[f"Max{UNITS[unit]}"]), "JobValidExitCodes": job["ValidExitCodes"] or None,
        "ParentJobIds": ",".join(map(str, job["ParentJobIds"])), "NodeGroups": job["NodeGroups"] or None,
        "RequestedNodes": ",".join(job["RequestedNodes"]) or None,
        "RuntimeSeconds": str(job["Runtime"]) if job["Runtime"] > 0 else None,
        "TaskExecutionFailureRetryLimit": str(job["TaskExecutionFailureRetryLimit"]),
    }
    attributes.update({k: str(v) for k, v in (job.get("Extra") or {}).items()})
    attributes.update({attribute: _recorded(job.get(shown)) for attribute, (_, shown) in RECORDED_ATTRIBUTES.items()})
    root = Element("Job", {k: v for k, v in attributes.items() if v is not None})
    root.set("xmlns", NAMESPACE)
    groups = {t["TaskId"]: str(1000 + t["TaskId"]) for t in tasks}
    by_name = {t["Name"]: t for t in tasks if t["Name"]}
    dependencies = SubElement(root, "Dependencies")
    edges: dict[str, list[str]] = {}
    for task in tasks:
        for name in task["DependsOn"]:
            if name in by_name:
                edges.setdefault(groups[by_name[name]["TaskId"]], []).append(groups[task["TaskId"]])
    for parent, children in edges.items():
        node = SubElement(dependencies, "Parent", {"GroupId": parent})
        for child in children:
            SubElement(node, "Child", {"GroupId": child})
    container = SubElement(root, "Tasks")
    for task in tasks:
        element = SubElement(container, "Task", _task_attributes(job, task, groups[task["TaskId"]]))
        if task["EnvironmentVariables"]:
            _write_environment(element, task["EnvironmentVariables"])
    if job["EnvironmentVariables"]:
        _write_environment(root, job["EnvironmentVariables"])
    indent(root, space="    ")
    body = tostring(root, encoding="unicode", short_empty_elements=True)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")


def _task_attributes(job: dict[str, Any], task: dict[str, Any], group: str) -> dict[str, str]:
    unit = str(task.get("UnitType")) if task.get("UnitType") in UNITS else "Core"
    plural = UNITS[unit]
    attributes = {
        "Version": "3.000", "Id": str(task["TaskId"]), "ParentJobId": str(job["Id"]), "State": task["State"],
        "UnitType": unit, "NiceId": str(task["TaskId"]), "CommandLine": task["CommandLine"],
        "RequeueCount": str(task["RequeueCount"]), "PendingReason": "None", "StartValue": str(task["StartValue"]),
        "EndValue": str(task["EndValue"]), "IncrementValue": str(task["IncrementValue"]), "GroupId": group,
        "Name": task["Name"], "MinCores": str(task["MinCores"]), "MaxCores": str(task["MaxCores"]),
        "Type": task["Type"], "IsRerunnable": _bool(task["IsRerunnable"]),
        "IsParametric": _bool(task["IsParametric"]), "WorkDirectory": task["WorkDirectory"],
        "StdInFilePath": task["StdInFilePath"], "StdOutFilePath": task["StdOutFilePath"],
        "StdErrFilePath": task["StdErrFilePath"],
        "FailJobOnFailure": _bool(task.get("FailJobOnFailure")),
        "AutoRequeueCount": str(task.get("AutoRequeueCount", 0)),
        "IsExclusive": _bool(task.get("IsExclusive")),
    }
    if unit != "Core":
        attributes[f"Min{plural}"] = str(task.get(f"Min{plural}", 1))
        attributes[f"Max{plural}"] = str(task.get(f"Max{plural}", 1))
    if task.get("FailJobOnFailureCount"):
        attributes["FailJobOnFailureCount"] = str(task["FailJobOnFailureCount"])
    return {k: v for k, v in attributes.items() if v != ""}


def write_task_file(job: dict[str, Any], task: dict[str, Any]) -> bytes:
    """One task (Export-HpcTask) -> task XML: a <Task> element as in a job file, which Add-HpcTask -TaskFile
    reads back."""
    element = Element("Task", _task_attributes(job, task, str(1000 + task["TaskId"])))
    element.set("xmlns", NAMESPACE)
    if task["EnvironmentVariables"]:
        _write_environment(element, task["EnvironmentVariables"])
    indent(element, space="    ")
    body = tostring(element, encoding="unicode", short_empty_elements=True)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")


def _write_environment(parent: Element, variables: dict[str, str]) -> None:
    container = SubElement(parent, "EnvironmentVariables")
    for name, value in variables.items():
        variable = SubElement(container, "Variable")
        SubElement(variable, "Name").text = name
        SubElement(variable, "Value").text = value
