"""A parameter's metadata blocks (the ```yaml fences under `### -Name`) in both page formats.

platyPS v1 reads its block as `Key: value` lines (split at the first colon, both sides trimmed,
an empty value counting as absent), not as YAML: `Default value: [Int32]::MaxValue` is a value.
v2 writes real YAML with one entry per parameter set; its sets are grouped here into the blocks
v1 would have written (one per distinct metadata), so both formats give the same model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from .markdown import Block, Page

V1_KEYS = ("type", "parameter sets", "aliases", "accepted values", "applicable", "required", "position",
           "default value", "accept pipeline input", "accept wildcard characters")
ALL_SETS = "(All)"
_SWITCHES = ("switch", "switchparameter", "system.management.automation.switchparameter")
_V2_MARK = re.compile(r"^ParameterSets\s*:", re.MULTILINE)


@dataclass
class ParameterBlock:
    """One metadata block of a parameter: its metadata in the sets it names."""

    sets: list[str]
    values: dict[str, str]
    line: int

    def get(self, key: str) -> str:
        return self.values.get(key, "")

    @property
    def type_name(self) -> str:
        raw = self.get("type")
        return "SwitchParameter" if raw.lower() in ("switch", "switchparameter") else raw

    @property
    def is_switch(self) -> bool:
        return self.get("type").lower() in _SWITCHES

    @property
    def position(self) -> str:
        return (self.get("position") or "named").lower()

    @property
    def required(self) -> bool:
        return self.get("required").lower() == "true"

    @property
    def accepted_values(self) -> list[str]:
        return _comma_list(self.get("accepted values"))

    @property
    def aliases(self) -> list[str]:
        return _comma_list(self.get("aliases"))


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def read_blocks(page: Page, block: Block) -> list[ParameterBlock]:
    """A metadata block of either format: v2 pages may still hold blocks v1 wrote (v2 reads them)."""
    v2 = page.is_v2 and _V2_MARK.search(block.text) is not None
    return v2_blocks(page, block) if v2 else [v1_block(page, block)]


def v1_block(page: Page, block: Block) -> ParameterBlock:
    """A v1 block. `Parameter Sets:` written without a value puts the parameter in no set."""
    values: dict[str, str] = {}
    named_sets = False
    for number, raw in enumerate(block.text.split("\n"), start=block.line + 1):
        if not raw.strip():
            continue
        key, sep, value = raw.strip().partition(":")
        if not sep:
            raise page.error(number, f"Invalid yaml: expected simple key-value pairs, got {raw.strip()!r}")
        if key.strip().lower() not in V1_KEYS:
            raise page.error(number, f"Invalid yaml: unknown key '{key.strip()}'")
        named_sets = named_sets or key.strip().lower() == "parameter sets"
        if value.strip():
            values[key.strip().lower()] = value.strip()
    sets = _comma_list(values.get("parameter sets", "")) if named_sets else [ALL_SETS]
    return ParameterBlock(sets, values, block.line)


def v2_blocks(page: Page, block: Block) -> list[ParameterBlock]:
    """A v2 block: shared metadata, then per-set entries; sets with equal entries share a block."""
    data = _yaml(page, block)
    shared = {
        "type": _text(data.get("Type")),
        "aliases": ", ".join(map(_text, data.get("Aliases") or [])),
        "accepted values": ", ".join(map(_text, data.get("AcceptedValues") or [])),
        "default value": _text(data.get("DefaultValue")),
        "accept wildcard characters": _text(bool(data.get("SupportsWildcards"))),
    }
    groups: dict[tuple[str, str, str], list[str]] = {}
    for entry in data.get("ParameterSets") or []:
        if not isinstance(entry, dict):
            raise page.error(block.line + 1, "Invalid yaml: each of ParameterSets needs Name, Position, ...")
        groups.setdefault(_in_set(entry), []).append(_text(entry.get("Name")) or ALL_SETS)
    blocks = []
    for (position, required, pipeline), sets in groups.items():
        values = dict(shared, position=position, required=required)
        values["accept pipeline input"] = pipeline
        values["parameter sets"] = ", ".join(sets)
        blocks.append(ParameterBlock(sets, {k: v for k, v in values.items() if v}, block.line))
    return blocks


def _yaml(page: Page, block: Block) -> dict[str, Any]:
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise page.error(block.line + 1 + (mark.line if mark else 0), f"Invalid yaml: {e}") from None
    if not isinstance(data, dict):
        raise page.error(block.line + 1, "Invalid yaml: expected 'Key: value' lines")
    return data


def _in_set(entry: dict[str, Any]) -> tuple[str, str, str]:
    """Position, Required and Accept pipeline input as v1 spells them."""
    by_value = bool(entry.get("ValueFromPipeline"))
    by_name = bool(entry.get("ValueFromPipelineByPropertyName"))
    kinds = ", ".join(kind for kind, on in (("ByPropertyName", by_name), ("ByValue", by_value)) if on)
    pipeline = f"True ({kinds})" if kinds else "False"
    return _text(entry.get("Position")) or "Named", _text(bool(entry.get("IsRequired"))), pipeline


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()
