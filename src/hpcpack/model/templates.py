"""Job templates (HPC Pack's): defaults and allowed ranges for job properties, and who may use them.

A template is a name, a description, the users and groups who may use it (none listed: everyone) and
items, one per job property: a default (given to a job that did not set the property), a minimum and
maximum (numbers), allowed values (text), Required (the job must set it) and ReadOnly (the job may not
change it from the default). The `Default` template always exists. The head node applies a job's template
when the job is submitted: defaults first, then the checks; a job outside them is refused with the reason.
Template files are HPC Pack's `<JobTemplate>` with `<TemplateItem PropertyName=...>` items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from ..errors import HpcError, invalid_argument
from .jobxml import parse_xml
from .objects import Job
from .params import parse_priority, parse_runtime, priority_name

DEFAULT = "Default"
NAMESPACE = "http://schemas.microsoft.com/HPCS2008R2/scheduler/"
MAX_TEMPLATE_FILE = 1024 * 1024

# HPC Pack property name -> (the job parameter that sets it, kind). Kinds: priority, text, seconds,
# units (Min/Max of cores, sockets, nodes), bool, names (a list of node or group names).
PROPERTIES: dict[str, tuple[str, str]] = {
    "Priority": ("Priority", "priority"),
    "Project": ("Project", "text"),
    "Runtime": ("RunTime", "seconds"),
    "MinCores": ("NumCores", "units"), "MaxCores": ("NumCores", "units"),
    "MinSockets": ("NumSockets", "units"), "MaxSockets": ("NumSockets", "units"),
    "MinNodes": ("NumNodes", "units"), "MaxNodes": ("NumNodes", "units"),
    "IsExclusive": ("Exclusive", "bool"),
    "RunUntilCanceled": ("RunUntilCanceled", "bool"),
    "FailOnTaskFailure": ("FailOnTaskFailure", "bool"),
    "NodeGroups": ("NodeGroups", "names"),
    "RequestedNodes": ("RequestedNodes", "names"),
}
_ALIASES = {"runtime": "Runtime", "runtimeseconds": "Runtime", "exclusive": "IsExclusive",
            **{name.lower(): name for name in PROPERTIES}}


def property_name(text: str) -> str:
    name = _ALIASES.get(text.strip().lower())
    if name is None:
        raise invalid_argument(f"'{text}' is not a job property a template can set; use one of "
                               f"{', '.join(PROPERTIES)}.", text)
    return name


@dataclass
class TemplateItem:
    property: str
    default: str | None = None
    min: int | None = None
    max: int | None = None
    values: list[str] = field(default_factory=list)
    required: bool = False
    read_only: bool = False


@dataclass
class JobTemplate:
    name: str
    description: str = ""
    users: list[str] = field(default_factory=list)  # user names, or "group:<name>"; empty: everyone
    items: list[TemplateItem] = field(default_factory=list)

    def item(self, property: str) -> TemplateItem | None:
        return next((i for i in self.items if i.property == property), None)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, data: dict[str, Any]) -> JobTemplate:
        return cls(name=data["name"], description=data.get("description", ""), users=list(data.get("users", [])),
                   items=[TemplateItem(**i) for i in data.get("items", [])])

    def to_record(self, scheduler: str) -> dict[str, Any]:
        items = []
        for i in self.items:
            allowed = ",".join(i.values) if i.values else (
                f"{'' if i.min is None else i.min}..{'' if i.max is None else i.max}"
                if i.min is not None or i.max is not None else "")
            items.append({"PropertyName": i.property, "Default": i.default or "", "Min": i.min, "Max": i.max,
                          "Values": list(i.values), "Allowed": allowed, "Required": i.required,
                          "ReadOnly": i.read_only})
        return {"__type__": "HpcJobTemplate", "Name": self.name, "Description": self.description,
                "Users": list(self.users), "Items": items, "Scheduler": scheduler}


def default_template() -> JobTemplate:
    return JobTemplate(DEFAULT, "The template every job has unless it names another: no defaults, no limits.")


def check(template: JobTemplate) -> JobTemplate:
    """A template that can be applied: known properties, numbers where numbers are needed, a default within
    its own range."""
    if not template.name.strip() or len(template.name) > 80:
        raise invalid_argument("A template name must be 1 to 80 characters.", "Name")
    seen: set[str] = set()
    for item in template.items:
        item.property = property_name(item.property)
        if item.property in seen:
            raise invalid_argument(f"The template sets {item.property} twice.", item.property)
        seen.add(item.property)
        kind = PROPERTIES[item.property][1]
        if kind == "priority":
            item.values = [priority_name(parse_priority(v)) for v in item.values]
            item.min = None if item.min is None else parse_priority(str(item.min))
            item.max = None if item.max is None else parse_priority(str(item.max))
        if item.default is not None:
            problem = _outside(item, _value(item.property, item.default))
            if problem:
                raise HpcError("JobTemplateViolation", f"Template {template.name}: the default of {item.property} "
                               f"({item.default}) is {problem}.", item.property)
    return template


def _value(property: str, text: Any) -> Any:
    """A template's text for a property -> the value the job holds."""
    kind = PROPERTIES[property][1]
    if kind == "priority":
        return parse_priority(str(text))
    if kind == "seconds":
        text = str(text).strip()
        return int(text) if text.lstrip("-").isdigit() else parse_runtime(text)
    if kind == "units":
        try:
            return int(str(text))
        except ValueError:
            raise invalid_argument(f"{property} must be a whole number, not '{text}'.", property) from None
    if kind == "bool":
        return str(text).strip().lower() in ("true", "1", "$true", "yes")
    if kind == "names":
        return [n.strip() for n in str(text).split(",") if n.strip()]
    return str(text)


def _outside(item: TemplateItem, value: Any) -> str:
    """Why `value` is not allowed by the item, or ""."""
    kind = PROPERTIES[item.property][1]
    if kind == "names":
        allowed = {v.lower() for v in item.values}
        bad = [n for n in value if allowed and n.lower() not in allowed]
        return f"not among the allowed values ({', '.join(item.values)}): {', '.join(bad)}" if bad else ""
    if item.values:
        if kind == "priority":
            ok = priority_name(value) in item.values
            shown = priority_name(value)
        else:
            ok = str(value).lower() in {v.lower() for v in item.values}
            shown = str(value)
        if not ok:
            return f"{shown}, not one of the allowed values ({', '.join(item.values)})"
    if isinstance(value, bool) or not isinstance(value, int):
        return ""
    if kind == "seconds" and value < 0:
        value = 2**31 - 1  # no limit is more than any maximum
    if item.min is not None and value < item.min:
        return f"{_show(item, value)}, below the minimum {_show(item, item.min)}"
    if item.max is not None and value > item.max:
        return f"{_show(item, value)}, above the maximum {_show(item, item.max)}"
    return ""


def _show(item: TemplateItem, value: int) -> str:
    kind = PROPERTIES[item.property][1]
    if kind == "priority":
        return f"{priority_name(value)} ({value})"
    if kind == "seconds":
        return "infinite" if value >= 2**31 - 1 else f"{value} s"
    return str(value)


def may_use(template: JobTemplate, user: str, groups: set[str], admin: bool) -> bool:
    if admin or not template.users:
        return True
    names = {u.lower() for u in template.users}
    return user.lower() in names or any(f"group:{g}".lower() in names for g in groups)


def apply(template: JobTemplate, job: Job, cores: Callable[[Job], tuple[int, int]] | None = None) -> None:
    """Gives the job the template's defaults for what it did not set, then checks every item; raises
    JobTemplateViolation naming the property, the value and the allowed range."""
    given = {p.lower() for p in job.explicit}
    for item in template.items:
        parameter, kind = PROPERTIES[item.property]
        if parameter.lower() in given:
            if item.read_only and item.default is not None and _current(job, item) != _value(item.property,
                                                                                            item.default):
                raise HpcError("JobTemplateViolation", f"Job {job.id} cannot be submitted with template "
                               f"{template.name}: {item.property} is read-only there (always {item.default}).",
                               item.property)
            continue
        if item.default is not None:
            _set(job, item, _value(item.property, item.default))
        elif item.required:
            raise HpcError("JobTemplateViolation", f"Job {job.id} cannot be submitted with template {template.name}: "
                           f"it requires {item.property} ({parameter}) to be set.", item.property)
    calculated = cores(job) if cores is not None else None  # after the defaults: they may set NumCores
    for item in template.items:
        current = _current(job, item, calculated)
        if current is None:
            continue
        problem = _outside(item, current)
        if problem:
            raise HpcError("JobTemplateViolation", f"Job {job.id} cannot be submitted with template {template.name}: "
                           f"{item.property} is {problem}.", item.property)


def _unit(item: TemplateItem) -> tuple[str, str]:
    bound, plural = item.property[:3], item.property[3:]
    return bound, plural[:-1]  # ("Min", "Core")


def _current(job: Job, item: TemplateItem, calculated: tuple[int, int] | None = None) -> Any:
    """The job's value for the item; for cores calculated from its tasks (`*`, no NumCores), the cores
    the scheduler will ask for (`calculated`: min, max), so that a limit cannot be passed by leaving it out."""
    kind = PROPERTIES[item.property][1]
    if kind == "units":
        bound, unit = _unit(item)
        if job.unit_type != unit:
            return None
        value = job.min_units if bound == "Min" else job.max_units
        if value is None and unit == "Core" and calculated is not None:
            return calculated[0] if bound == "Min" else calculated[1]
        return value
    value = getattr(job, _ATTRIBUTES[item.property])
    return None if value in ("", []) else value  # not set: nothing to check (Required says whether it must be)


def _set(job: Job, item: TemplateItem, value: Any) -> None:
    kind = PROPERTIES[item.property][1]
    if kind == "units":
        bound, unit = _unit(item)
        if job.unit_type != unit:
            if any(p.lower() in {"numcores", "numsockets", "numnodes"} for p in job.explicit):
                return  # the job asked in other units: this default is not for it
            job.unit_type, job.min_units, job.max_units, job.shown_units = unit, None, None, []
        if bound == "Min":
            job.min_units = value
        else:
            job.max_units = value
        if job.min_units is not None and job.max_units is not None and job.min_units > job.max_units:
            job.min_units = job.max_units
        return
    setattr(job, _ATTRIBUTES[item.property], list(value) if isinstance(value, list) else value)


_ATTRIBUTES = {"Priority": "priority", "Project": "project", "Runtime": "runtime", "IsExclusive": "exclusive",
               "RunUntilCanceled": "run_until_canceled", "FailOnTaskFailure": "fail_on_task_failure",
               "NodeGroups": "node_groups", "RequestedNodes": "requested_nodes"}


# --- HPC Pack's template files -------------------------------------------------------------------------

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _field(element: Element, name: str) -> str | None:
    """An item's field as an attribute or a child element (HPC Pack's files use both)."""
    if element.get(name) is not None:
        return element.get(name)
    child = next((c for c in element if _local(c.tag) == name), None)
    return None if child is None else (child.text or "")


def read_template_file(data: bytes, path: str, name: str | None = None) -> JobTemplate:
    """HPC Pack's template XML -> a template (named `name`, or as the file names it)."""
    if len(data) > MAX_TEMPLATE_FILE:
        raise HpcError("InvalidJobFile", f"{path} is larger than {MAX_TEMPLATE_FILE} bytes; it is not a template.",
                       path)
    root = parse_xml(data, path, "template files")
    if _local(root.tag) != "JobTemplate":
        raise HpcError("InvalidJobFile", f"{path} is not a job template: its root element is <{_local(root.tag)}>, "
                       "not <JobTemplate>.", path)
    template = JobTemplate(name=name or root.get("Name") or Path(path).stem,
                           description=root.get("Description") or "")
    for element in root:
        tag = _local(element.tag)
        if tag == "User":
            template.users.append((element.text or element.get("Name") or "").strip())
            continue
        if tag != "TemplateItem":
            continue
        prop = _field(element, "PropertyName")
        if not prop:
            raise HpcError("InvalidJobFile", f"{path}: a <TemplateItem> has no PropertyName.", path)
        values = [(c.text or "").strip() for c in element if _local(c.tag) == "Value"]
        values += [(v.text or "").strip() for c in element if _local(c.tag) == "Values" for v in c]
        low, high = _field(element, "Min"), _field(element, "Max")
        try:
            item = TemplateItem(
                property=prop, default=_field(element, "Default"),
                min=int(low) if low not in (None, "") and low.lstrip("-").isdigit() else None,
                max=int(high) if high not in (None, "") and high.lstrip("-").isdigit() else None,
                values=[v for v in values if v],
                required=(_field(element, "Required") or "").lower() == "true",
                read_only=(_field(element, "ReadOnly") or "").lower() == "true")
        except ValueError:
            raise HpcError("InvalidJobFile", f"{path}: item {prop} has a bad number.", path) from None
        if low and item.min is None or high and item.max is None:
            # Priorities are written by name.
            item.min = parse_priority(low) if low else None
            item.max = parse_priority(high) if high else None
        template.items.append(item)
    template.users = [u for u in template.users if u]
    try:
        return check(template)
    except HpcError as e:
        raise HpcError("InvalidJobFile", f"{path}: {e.message}", path) from None


def write_template_file(record: dict[str, Any]) -> bytes:
    """An HpcJobTemplate record -> HPC Pack's template XML (what Import-HpcJobTemplate reads back)."""
    root = Element("JobTemplate", {"Name": record["Name"], "Description": record["Description"] or ""})
    root.set("xmlns", NAMESPACE)
    for item in record["Items"]:
        attributes = {"PropertyName": item["PropertyName"], "Required": "true" if item["Required"] else "false",
                      "ReadOnly": "true" if item["ReadOnly"] else "false"}
        if item["Default"]:
            attributes["Default"] = str(item["Default"])
        for bound in ("Min", "Max"):
            if item[bound] is not None:
                attributes[bound] = (priority_name(item[bound]) if item["PropertyName"] == "Priority"
                                     else str(item[bound]))
        element = SubElement(root, "TemplateItem", attributes)
        for value in item["Values"]:
            SubElement(element, "Value").text = value
    for user in record["Users"]:
        SubElement(root, "User").text = user
    indent(root, space="    ")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="unicode")).encode("utf-8")


def from_parameters(name: str, description: str, defaults: dict[str, Any], ranges: dict[str, Any],
                    users: list[str]) -> JobTemplate:
    """New-HpcJobTemplate's parameters: -Defaults @{Priority='Normal'}, -Ranges @{MaxCores='1-8';
    Priority='Lowest,Normal'} (a range 'min-max' for numbers, a comma list of allowed values for text)."""
    items: dict[str, TemplateItem] = {}
    for key, value in defaults.items():
        prop = property_name(key)
        items.setdefault(prop, TemplateItem(prop)).default = ",".join(value) if isinstance(value, list) else str(value)
    for key, value in ranges.items():
        prop = property_name(key)
        item = items.setdefault(prop, TemplateItem(prop))
        text = ",".join(value) if isinstance(value, list) else str(value)
        kind = PROPERTIES[prop][1]
        low, sep, high = text.partition("-") if kind in ("units", "seconds") else ("", "", "")
        if sep or (kind in ("units", "seconds") and text.strip().isdigit()):
            item.min = int(low) if low.strip() else None
            item.max = int(high) if high.strip() else (item.min if not sep else None)
        else:
            item.values = [v.strip() for v in text.split(",") if v.strip()]
    return check(JobTemplate(name, description, list(users), list(items.values())))
