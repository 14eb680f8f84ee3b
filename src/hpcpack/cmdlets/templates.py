"""Job template cmdlets: Get-, New-, Remove-, Export-, Import-HpcJobTemplate."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..model import templates
from .registry import Args, Record, command, each, plan


def _names(args: Args) -> list[str]:
    """The templates to act on: those confirmed, else -Name, else -Template (an object arrives as its name)."""
    for key in ("Confirmed", "Name", "Template"):
        value = args.get(key)
        if value:
            return [str(v) for v in (value if isinstance(value, list) else [value])]
    return []


def _wire(template: templates.JobTemplate) -> dict[str, Any]:
    return {"name": template.name, "description": template.description, "users": list(template.users),
            "items": [{k: v for k, v in asdict(i).items() if v is not None} for i in template.items]}


@command("Get-HpcJobTemplate")
def get_job_template(args: Args) -> list[Record]:
    backend = args.backend()
    names = _names(args)
    if not names:
        return backend.get_templates()
    return each(names, lambda name: backend.get_templates(name))


@command("New-HpcJobTemplate:plan")
def new_job_template_plan(args: Args) -> list[Record]:
    name = str(args.get("Name"))
    return [plan(f"Job template '{name}'", "New-HpcJobTemplate", name)]


@command("New-HpcJobTemplate")
def new_job_template(args: Args) -> list[Record]:
    template = templates.from_parameters(str(args.get("Name")), str(args.get("Description") or ""),
                                         dict(args.get("Defaults") or {}), dict(args.get("Ranges") or {}),
                                         [str(u) for u in args.get("User") or []])
    backend = args.backend()
    return each(_names(args), lambda name: [backend.put_template(_wire(template))])


@command("Remove-HpcJobTemplate:plan")
def remove_job_template_plan(args: Args) -> list[Record]:
    return [plan(f"Job template '{name}'", "Remove-HpcJobTemplate", name) for name in _names(args)]


@command("Remove-HpcJobTemplate")
def remove_job_template(args: Args) -> list[Record]:
    backend = args.backend()

    def remove(name: str) -> list[Record]:
        backend.remove_template(name)
        return []
    return each(_names(args), remove)


@command("Export-HpcJobTemplate:plan")
def export_job_template_plan(args: Args) -> list[Record]:
    path = Path(str(args.get("Path")))
    query = f"The file {path} exists. Overwrite it?" if path.exists() else None
    return [{**plan(f"Job template '{name}'", f"Export-HpcJobTemplate: write to {path}", name), "query": query}
            for name in _names(args)]


@command("Export-HpcJobTemplate")
def export_job_template(args: Args) -> list[Record]:
    backend = args.backend()
    path = Path(str(args.get("Path")))

    def export(name: str) -> list[Record]:
        record = backend.get_templates(name)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(templates.write_template_file(record))
        return []
    return each(_names(args), export)


@command("Import-HpcJobTemplate:plan")
def import_job_template_plan(args: Args) -> list[Record]:
    path = str(args.get("Path"))
    template = _read(args)
    exists = any(t["Name"].lower() == template.name.lower() for t in args.backend().get_templates())
    query = f"The job template '{template.name}' exists. Replace it?" if exists else None
    return [{**plan(f"Job template '{template.name}'", f"Import-HpcJobTemplate: from {path}", template.name),
             "query": query}]


def _read(args: Args) -> templates.JobTemplate:
    path = str(args.get("Path"))
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        from ..errors import HpcError
        raise HpcError("InvalidJobFile", f"Cannot read the template file {path}: {e.strerror}.", path) from None
    return templates.read_template_file(data, path, args.get("Name"))


@command("Import-HpcJobTemplate")
def import_job_template(args: Args) -> list[Record]:
    template = _read(args)
    if template.name not in _names(args) and args.has("Confirmed"):
        return []
    # Confirmed: a template that exists was agreed to be replaced (-Force or a yes).
    return [args.backend().put_template(_wire(template), replace=True)]
