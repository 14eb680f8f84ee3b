"""Windows paths in migrated scripts: the head node's path map (headnode.yaml `path_map`).

    path_map:
      'C:\\Users\\<user>': /home/<user>
      '\\\\fileserver\\share': /mnt/share

A Windows path (a drive letter `C:\\...` or a UNC path `\\\\server\\share\\...`) is matched against the
rules case-insensitively, `\\` and `/` alike, the longest Windows prefix first; `<user>` stands for one
path component and is put back on the Linux side. The rest of the path follows with `/` separators.
A Windows path no rule maps is an error that names it and the rules (NoPathMapping). Any other path
is taken as it is. The head node maps a task's WorkDir, Stdin, Stdout and Stderr when it starts the
task (and refuses at Add-HpcTask a Windows path no rule maps); job and task files named by a Windows
path are mapped the same way before the client reads them.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import HpcError

Rules = list[tuple[str, str]]
_WINDOWS = re.compile(r"^(?:[A-Za-z]:[\\/]|[A-Za-z]:$|\\\\[^\\/]+)")


def is_windows_path(path: str) -> bool:
    return bool(_WINDOWS.match(path))


def parse_rules(value: object) -> Rules:
    """headnode.yaml's path_map (a mapping, or a list of {windows, linux}) -> rules, longest first."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, list):
        pairs = [(str(item["windows"]), str(item["linux"])) for item in value]
    elif value:
        raise ValueError("path_map must map Windows prefixes to Linux folders")
    for windows, linux in pairs:
        if not is_windows_path(windows):
            raise ValueError(f"path_map: '{windows}' is not a Windows path (C:\\... or \\\\server\\share)")
        if not linux.startswith("/"):
            raise ValueError(f"path_map: '{linux}' (for '{windows}') is not an absolute Linux path")
    return sorted(pairs, key=lambda p: -len(p[0]))


def _parts(path: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", path) if p]


def map_path(path: str, rules: Rules, what: str = "path") -> str:
    """A Windows path -> its Linux path by the rules (NoPathMapping when none applies); others unchanged."""
    if not path or not is_windows_path(path):
        return path
    unc = path.startswith("\\\\")
    parts = _parts(path)
    for windows, linux in rules:
        if windows.startswith("\\\\") != unc:
            continue
        prefix = _parts(windows)
        if len(parts) < len(prefix):
            continue
        captured: dict[str, str] = {}
        for rule_part, part in zip(prefix, parts, strict=False):
            placeholder = re.fullmatch(r"<(\w+)>", rule_part)
            if placeholder:
                captured[placeholder.group(1).lower()] = part
            elif rule_part.lower() != part.lower():
                break
        else:
            target = linux
            for key, part in captured.items():
                target = re.sub(rf"<{key}>", part.replace("\\", "\\\\"), target, flags=re.IGNORECASE)
            rest = parts[len(prefix):]
            return "/".join([target.rstrip("/") or "", *rest]) if rest else target
    known = "; ".join(f"{w} -> {lx}" for w, lx in rules) or "none (headnode.yaml has no path_map)"
    raise HpcError("NoPathMapping", f"The {what} '{path}' is a Windows path and no rule of the head node's path map "
                   f"applies to it. Rules: {known}. Add one to path_map in headnode.yaml (about_HPC, \"Windows "
                   "paths\"), or give a Linux path.", path)


def local_file(path: str) -> str:
    """A file this machine reads (a job or task file): `\\` as a separator (Join-Path $root "JobXml\\1Core.Xml"),
    and when the file is not there, the one whose name differs only in the case of its extension
    (1Core.Xml is 1Core.xml), as on Windows' file system."""
    candidate = Path(path.replace("\\", "/"))
    if candidate.exists() or not candidate.parent.is_dir():
        return str(candidate)
    matches = [p for p in candidate.parent.iterdir()
               if p.stem == candidate.stem and p.suffix.lower() == candidate.suffix.lower()]
    if len(matches) == 1:
        return str(matches[0])
    return str(candidate)
