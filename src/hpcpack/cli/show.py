"""What `job list`, `job view` and `job listtasks` print: HPC Pack's layouts (a table, or a list of
"Property : value" lines), drawn by rich to fit the terminal, and 80 columns when not at one."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]

# label, width (None: what the others leave), right-aligned. At 80 columns, as squeue: who, what, how far,
# how long, and why it waits (or why it ended).
JOB_COLUMNS = (
    ("Id", 5, True), ("Owner", 8, False), ("Name", None, False), ("State", 11, False), ("Tasks", 7, True),
    ("Elapsed", 9, True), ("Reason", 14, False),
)
TASK_COLUMNS = (
    ("Id", 9, False), ("Name", 10, False), ("State", 9, False), ("Exit", 4, True), ("Node", 8, False),
    ("Elapsed", 8, True), ("Command Line", None, False),
)
# What `job list` shows of each job, in either layout: all the head node sends it (JobQuery.fields).
LIST_FIELDS = ("Id", "Name", "Owner", "State", "Priority", "TaskCount", "FinishedTaskCount", "SubmitTime",
               "StartTime", "EndTime", "PendingReason", "ErrorMessage")
VIEW_FIELDS = ("Id", "Name", "Owner", "State", "Priority", "Project", "Template", "Resources", "AllocatedNodes",
               "Tasks", "PendingReason", "SubmitTime", "StartTime", "EndTime", "Elapsed", "RunUntilCanceled",
               "RequeueCount", "ErrorMessage", "HeadNode")




def _width() -> int:
    """A terminal's width; otherwise (a pipe, a file) 80 columns, so that scripts see stable lines."""
    import shutil  # here: `job view` draws no table, and starts faster without it

    return shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80


def _time(value: str | None) -> str:
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def elapsed(record: Record) -> str:
    """Run time so far (or in all, once ended), as Slurm shows it: [days-]hours:minutes:seconds."""
    if not record.get("StartTime"):
        return ""
    end = datetime.fromisoformat(record["EndTime"]) if record.get("EndTime") else datetime.now(UTC)
    seconds = max(0, int((end - datetime.fromisoformat(record["StartTime"])).total_seconds()))
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600}:{rest // 60 % 60:02}:{rest % 60:02}"
    return f"{days}-{text}" if days else text


def _tasks(job: Record) -> str:
    return f"{job.get('FinishedTaskCount', 0)}/{job.get('TaskCount', job.get('NumberOfTasks', 0))}"


def _reason(job: Record) -> str:
    return str(job.get("PendingReason") or (job.get("ErrorMessage") if job["State"] in ("Failed", "Canceled")
                                             else "") or "")


def _table(columns: Sequence[tuple[str, int | None, bool]], rows: list[list[str]]) -> None:
    lines = _plain_table(columns, rows, _width())
    if lines is None:
        _rich_table(columns, rows)
    else:
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))


def _plain_table(columns: Sequence[tuple[str, int | None, bool]], rows: list[list[str]],
                 width: int) -> list[str] | None:
    """rich's layout of these tables, drawn directly: rich takes ~1 ms a row (a 5,000-job `job list` spent
    90% of its time there). Each cell has one space of padding on its right but the last, columns are
    one space apart, the one column without a width takes the rest. None when rich must draw it: cells
    that are not printable ASCII (wide characters), or a terminal too narrow for the fixed columns."""
    if not all(c.isascii() and c.isprintable() for row in rows for c in row):
        return None
    last = len(columns) - 1
    fixed = sum(w + (i < last) for i, (_, w, _) in enumerate(columns) if w) + last
    sizes = [w or width - fixed - (i < last) for i, (_, w, _) in enumerate(columns)]
    if min(sizes) < 1:
        return None
    rule = " ".join("-" * (size + (i < last)) for i, size in enumerate(sizes))
    return [rule if row is None else " ".join(
        _cell(text, size, right) + " " * (i < last)
        for i, (text, size, (_, _, right)) in enumerate(zip(row, sizes, columns, strict=True)))
        for row in ([c[0] for c in columns], None, *rows)]


def _cell(text: str, size: int, right: bool) -> str:
    if len(text) > size:
        text = text[:size - 1] + "\u2026"
    return text.rjust(size) if right else text.ljust(size)


def _rich_table(columns: Sequence[tuple[str, int | None, bool]], rows: list[list[str]]) -> None:
    # rich is imported here: `job view` and list layouts start faster without it.
    from rich import box
    from rich.console import Console
    from rich.table import Table
    # HPC Pack's tables: a header, a line of dashes under it, no frame; plain ASCII, for pipes and old terminals.
    ruled = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)
    table = Table(box=ruled, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="",
                  expand=True)
    for label, width, right in columns:
        table.add_column(label, width=width, justify="right" if right else "left", no_wrap=True,
                         overflow="ellipsis", ratio=None if width else 1)
    for row in rows:
        table.add_row(*row)
    console = Console(file=io.StringIO(), width=_width(), highlight=False, emoji=False, markup=False,
                      color_system=None)
    with console.capture() as captured:
        console.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _list(blocks: list[list[tuple[str, Any]]]) -> None:
    out = []
    for block in blocks:
        width = max(len(k) for k, _ in block)
        out += [f"{k.ljust(width)} : {'' if v is None else v}".rstrip() for k, v in block] + [""]
    sys.stdout.write("\n".join(out))


def jobs(records: list[Record], layout: str) -> None:
    if layout == "list":
        _list([[("Id", j["Id"]), ("Name", j["Name"]), ("Owner", j["Owner"]), ("State", j["State"]),
                 ("Priority", j["Priority"]), ("Tasks", _tasks(j)), ("SubmitTime", _time(j["SubmitTime"])),
                 ("Elapsed", elapsed(j)), ("Reason", _reason(j))] for j in records])
        return
    _table(JOB_COLUMNS, [[str(j["Id"]), j["Owner"], j["Name"], j["State"], _tasks(j), elapsed(j), _reason(j)]
                         for j in records])


def _resources(job: Record) -> str:
    unit = {"Core": "Cores", "Socket": "Sockets", "Node": "Nodes"}.get(job.get("UnitType", "Core"), "Cores")
    low, high = job.get(f"Min{unit}"), job.get(f"Max{unit}")
    wanted = "*" if job.get("AutoCalculateMax") else (f"{low}-{high}" if low != high else f"{high}")
    return f"{wanted} {unit.lower()}, {job.get('CurrentAllocation', 0)} cores allocated"


def job(record: Record, tasks: list[Record], head_node: str, detailed: bool) -> None:
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["State"]] = counts.get(task["State"], 0) + 1
    derived = {
        "Resources": _resources(record), "AllocatedNodes": ", ".join(record.get("AllocatedNodes") or []),
        "Tasks": f"{len(tasks)} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'})",
        "Elapsed": elapsed(record), "HeadNode": head_node,
        **{k: _time(record.get(k)) for k in ("SubmitTime", "StartTime", "EndTime", "CreateTime", "ChangeTime")},
    }
    if detailed:
        fields = [(k, derived.get(k, v)) for k, v in record.items() if not k.startswith("__")]
        _list([[*fields, ("Tasks", derived["Tasks"]), ("Elapsed", derived["Elapsed"]), ("HeadNode", head_node)]])
    else:
        _list([[(k, derived[k] if k in derived else record.get(k)) for k in VIEW_FIELDS]])


def history(rows: list[Record]) -> None:
    table = [[datetime.fromtimestamp(r["time"]).strftime("%Y-%m-%d %H:%M:%S"), r["event"], r["actor"],
              r["message"] or ""] for r in rows]
    _table((("Time", 19, False), ("Event", 14, False), ("Actor", 10, False), ("Message", None, False)), table)


def tasks(records: list[Record], layout: str) -> None:
    def exit_code(t: Record) -> str:
        return "" if t["ExitCode"] is None else str(t["ExitCode"])
    if layout == "table":
        _table(TASK_COLUMNS, [[t["Id"], t["Name"], t["State"], exit_code(t), ",".join(t["AllocatedNodes"]),
                               elapsed(t), t["CommandLine"]] for t in records])
        return
    _list([[("Id", t["Id"]), ("Name", t["Name"]), ("State", t["State"]), ("Type", t["Type"]),
            ("CommandLine", t["CommandLine"]), ("ExitCode", exit_code(t)),
            ("AllocatedNodes", ",".join(t["AllocatedNodes"])), ("StartTime", _time(t["StartTime"])),
            ("Elapsed", elapsed(t)), ("ErrorMessage", t["ErrorMessage"])] for t in records])
