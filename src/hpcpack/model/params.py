"""HPC Pack's parameter formats: priorities, `[min-]max` counts, run times, NAME=value lists, sweeps."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import HpcError, invalid_argument

PRIORITY_NAMES = {"lowest": 0, "belownormal": 1000, "normal": 2000, "abovenormal": 3000, "highest": 4000}
_PRIORITY = re.compile(r"^\s*(?P<name>[A-Za-z]+)?\s*(?:(?P<sign>[+-])?\s*(?P<num>\d+))?\s*$")
MAX_NAME = 80
MAX_MESSAGE = 128
INFINITE = -1
# 9999-12-31T00:00Z in POSIX seconds: the latest time every side can show as a date in any time zone
# (a day short of DateTime.MaxValue, which east of Greenwich is in year 10000)
MAX_TIME = 253_402_214_400
INT32_MAX = 2**31 - 1  # HPC Pack's numbers are Int32 (counts, run times in seconds, sweep values)
_MAX_DIGITS = 10  # an Int32's digits: longer numbers are refused before Python converts them


def parse_priority(text: str | int) -> int:
    """'Normal', 'AboveNormal+5', 'Highest-10', '2500' -> 0..4000."""
    match = _PRIORITY.match(str(text))
    if not match or not (match["name"] or match["num"]):
        raise invalid_argument(f"Priority '{text}' is not valid: use 0-4000, a name ({_NAMES}) or Name+N / "
                               "Name-N.", "Priority")
    value = 0
    if match["name"]:
        try:
            value = PRIORITY_NAMES[match["name"].lower()]
        except KeyError:
            raise invalid_argument(f"Priority name '{match['name']}' is unknown: use {_NAMES}, or 0-4000.",
                                   "Priority") from None
        if match["num"] and not match["sign"]:
            raise invalid_argument(f"Priority '{text}' is not valid: write Name+N or Name-N.", "Priority")
    if match["num"]:
        if len(match["num"]) > _MAX_DIGITS:
            raise HpcError("ArgumentOutOfRange", f"Priority '{text}' is outside 0-4000.", "Priority")
        offset = int(match["num"])
        value = value - offset if match["sign"] == "-" else value + offset
    if not 0 <= value <= 4000:
        raise HpcError("ArgumentOutOfRange", f"Priority '{text}' gives {value}, outside 0-4000.", "Priority")
    return value


def priority_name(value: int) -> str:
    """The name HPC Pack shows: the band name when exact, else the number."""
    for name, number in PRIORITY_NAMES.items():
        if number == value:
            return {"belownormal": "BelowNormal", "abovenormal": "AboveNormal"}.get(name, name.capitalize())
    return str(value)


_NAMES = ", ".join(priority_name(v) for v in PRIORITY_NAMES.values())  # for errors: Lowest, ..., Highest


@dataclass(frozen=True)
class Range:
    """A `[min-]max` request; None means `*` (calculated from the tasks)."""

    min: int | None
    max: int | None

    def __str__(self) -> str:
        def show(v: int | None) -> str:
            return "*" if v is None else str(v)
        return show(self.min) if self.min == self.max else f"{show(self.min)}-{show(self.max)}"


def parse_range(text: str | int, what: str, allow_auto: bool = True) -> Range:
    parts = str(text).strip().split("-")
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise invalid_argument(f"{what} '{text}' is not valid: use [min-]max, for example 4 or 1-3.", what)
    values: list[int | None] = []
    for part in parts:
        part = part.strip()
        if part == "*" and allow_auto:
            values.append(None)
        elif part.isdigit() and int(part) > 0:
            if len(part) > _MAX_DIGITS or int(part) > INT32_MAX:
                raise HpcError("ArgumentOutOfRange", f"{what} '{text}': a count must be at most {INT32_MAX}.", what)
            values.append(int(part))
        else:
            raise invalid_argument(f"{what} '{text}' is not valid: each count must be a positive whole number"
                                   + (" or *." if allow_auto else "."), what)
    low, high = (values[0], values[0]) if len(values) == 1 else (values[0], values[1])
    if low is not None and high is not None and low > high:
        raise invalid_argument(f"{what} '{text}' is not valid: the minimum is larger than the maximum.", what)
    return Range(low, high)


def parse_runtime(text: str) -> int:
    """`[[days:]hours:]minutes` or `infinite` -> seconds (-1 for infinite)."""
    text = str(text).strip()
    if text.lower() == "infinite":
        return INFINITE
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise invalid_argument(f"RunTime '{text}' is not valid: use [[days:]hours:]minutes or infinite.", "RunTime")
    if any(len(p) > _MAX_DIGITS for p in parts):
        raise HpcError("ArgumentOutOfRange", f"RunTime '{text}' has a part larger than {INT32_MAX}.", "RunTime")
    numbers = [int(p) for p in parts]
    minutes = numbers[-1]
    hours = numbers[-2] if len(numbers) >= 2 else 0
    days = numbers[-3] if len(numbers) == 3 else 0
    seconds = ((days * 24 + hours) * 60 + minutes) * 60
    if seconds > INT32_MAX:  # HPC Pack keeps RunTime as Int32 seconds: at most 24855:3:14 (days:hours:minutes)
        raise HpcError("ArgumentOutOfRange", f"RunTime '{text}' is longer than the longest run time, 24855:3:14.",
                       "RunTime")
    return seconds


def parse_env(items: list[str] | str | None, what: str) -> dict[str, str | None]:
    """NAME=value items (also comma-joined); `NAME=` unsets (None)."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    result: dict[str, str | None] = {}
    for item in items:
        for pair in str(item).split(","):
            if not pair.strip():
                continue
            name, sep, value = pair.partition("=")
            if not sep or not name.strip():
                raise invalid_argument(f"{what} item '{pair}' is not NAME=value.", what)
            result[name.strip()] = value if value != "" else None
    return result


def check_length(value: str | None, limit: int, what: str) -> str | None:
    if value is not None and len(value) > limit:
        raise HpcError("ArgumentOutOfRange", f"{what} is {len(value)} characters long; the limit is {limit}.", what)
    return value


MAX_SWEEP_STEPS = 1_000_000  # HPC Pack's limit; steps are created as they come near (SWEEP_WINDOW)
SWEEP_WINDOW = 1_000  # a sweep's steps that exist at once beyond those that ended
MAX_JOB_UNITS = 50_000  # tasks and existing steps of one job: one request cannot hold the head node long
MAX_JOB_BYTES = 32 * 1024 * 1024  # the text (commands, paths, environment) of a job's tasks and existing steps
# The text of a job's own properties (its environment most of all): what one request may carry
# (wire.protocol.MAX_REQUEST), so that any job fits in a page of a listing (wire.protocol.PAGE_BYTES). Before,
# Set-HpcJob -JobEnv could grow a job without end, a few megabytes a request, until no listing could hold it.
MAX_JOB_PROPERTY_BYTES = 4 * 1024 * 1024
WINDOW_BYTES = 1024 * 1024  # the text of a sweep's steps that exist at once: a large command means fewer
MAX_COMMAND = 64 * 1024  # characters in a command line, also after a sweep's `*` become numbers


def sweep_count(start: int, end: int, increment: int) -> int:
    """How many steps Start..End by Increment has; refuses what HPC Pack refuses."""
    if increment <= 0:
        raise invalid_argument("Increment must be a positive number.", "Increment")
    if end < start:
        raise invalid_argument(f"End ({end}) must not be less than Start ({start}).", "End")
    count = (end - start) // increment + 1
    if count > MAX_SWEEP_STEPS:
        raise HpcError("ArgumentOutOfRange", f"A sweep of {count:,} steps exceeds the {MAX_SWEEP_STEPS:,} limit.",
                       "End")
    return count


_STARS = re.compile(r"\^\*|\*+")


def substitute_sweep(command: str, index: int) -> str:
    """`*` -> index, `***` -> index padded to 3 digits, `^*` -> a literal star."""
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        return "*" if token == "^*" else str(index).zfill(len(token))
    return _STARS.sub(replace, command)
