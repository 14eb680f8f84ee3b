"""What the engine says about each cmdlet (from tools/command-metadata.ps1), in the help pages' terms.

Used two ways: to scaffold a page for a new cmdlet (its yaml blocks and syntax), and to check that
every page still says exactly what the real cmdlet does.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

COMMON_TEXT = ("This cmdlet supports the common parameters: -Debug, -ErrorAction, -ErrorVariable, "
               "-InformationAction, -InformationVariable, -OutVariable, -OutBuffer, -PipelineVariable, "
               "-ProgressAction, -Verbose, -WarningAction, and -WarningVariable. For more information, see "
               "[about_CommonParameters](http://go.microsoft.com/fwlink/?LinkID=113216).")


# Where Get-Help -Online finds a cmdlet's page: the manifest's ProjectUri, then help/<page>.
ONLINE_PAGES = "https://example.invalid/hpcpack/help"


@dataclass(frozen=True)
class InSet:
    """A parameter's metadata in one parameter set, as a help page's yaml block states it."""

    type: str
    position: str
    required: bool
    pipeline: str
    aliases: tuple[str, ...]
    accepted: tuple[str, ...]


@dataclass
class CommandMetadata:
    name: str
    default_set: str = ""
    sets: list[str] = field(default_factory=list)
    parameters: dict[str, dict[str, InSet]] = field(default_factory=dict)  # name -> set -> metadata

    def syntax(self, set_name: str) -> str:
        members = [(name, sets[set_name]) for name, sets in self.parameters.items() if set_name in sets]
        positional = sorted((m for m in members if m[1].position != "Named"), key=lambda m: int(m[1].position))
        named = sorted((m for m in members if m[1].position == "Named" and m[0] not in ("WhatIf", "Confirm")),
                       key=lambda m: not m[1].required)
        tail = [m for m in members if m[0] in ("WhatIf", "Confirm")]
        parts = [self.name]
        for name, meta in [*positional, *named, *sorted(tail, key=lambda m: m[0] != "WhatIf")]:
            switch = meta.type == "SwitchParameter"
            text = f"-{name}" if switch else f"-{name} <{meta.type}>"
            if meta.position != "Named":
                text = f"[-{name}] <{meta.type}>"
            parts.append(text if meta.required else f"[{text}]")
        parts.append("[<CommonParameters>]")
        return " ".join(parts)


def parse(lines: list[str]) -> dict[str, CommandMetadata]:
    commands: dict[str, CommandMetadata] = {}
    for line in lines:
        if line.count("|") != 9:
            continue
        name, set_name, default, param, type_name, position, mandatory, pipeline, aliases, accepted = line.split("|")
        command = commands.setdefault(name, CommandMetadata(name))
        if set_name not in command.sets:
            command.sets.append(set_name)
        if default == "True":
            command.default_set = set_name
        command.parameters.setdefault(param, {})[set_name] = InSet(
            type_name, position, mandatory == "True", pipeline,
            tuple(a for a in aliases.split(",") if a), tuple(v for v in accepted.split(",") if v))
    return commands


def yaml_blocks(command: CommandMetadata, param: str) -> list[tuple[list[str], InSet]]:
    """One block per distinct metadata, listing the sets it holds in; '(All)' when it holds in all."""
    groups: list[tuple[list[str], InSet]] = []
    for set_name, meta in command.parameters[param].items():
        for sets, existing in groups:
            if existing == meta:
                sets.append(set_name)
                break
        else:
            groups.append(([set_name], meta))
    if len(groups) == 1 and len(groups[0][0]) == len(command.sets):
        return [(["(All)"], groups[0][1])]
    return groups


def render_yaml(sets: list[str], meta: InSet) -> str:
    default = "False" if meta.type == "SwitchParameter" and meta.aliases in (("wi",), ("cf",)) else "None"
    lines = [f"Type: {meta.type}", f"Parameter Sets: {', '.join(sets)}", f"Aliases: {','.join(meta.aliases)}".rstrip()]
    if meta.accepted:
        lines.append(f"Accepted values: {', '.join(meta.accepted)}")
    lines += ["", f"Required: {meta.required}", f"Position: {meta.position}", f"Default value: {default}",
              f"Accept pipeline input: {meta.pipeline}", "Accept wildcard characters: False"]
    return "```yaml\n" + "\n".join(lines) + "\n```"


def page_order(command: CommandMetadata) -> list[str]:
    """Parameters as New-MarkdownHelp orders them: alphabetical, then Confirm and WhatIf."""
    names = sorted((p for p in command.parameters if p not in ("WhatIf", "Confirm")), key=str.lower)
    return names + [p for p in ("Confirm", "WhatIf") if p in command.parameters]


def scaffold(command: CommandMetadata) -> str:
    """A new page for a cmdlet: every fact from the engine, every piece of prose still to write."""
    out = ["---", "external help file: CCPPSH.dll-Help.xml", "Module Name: HPC",
           f"online version: {ONLINE_PAGES}/{command.name}.md", "schema: 2.0.0", "---", "",
           f"# {command.name}", "", "## SYNOPSIS", "TODO", "", "## SYNTAX", ""]
    for set_name in command.sets:
        marker = " (Default)" if set_name == command.default_set and len(command.sets) > 1 else ""
        title = "(All)" if set_name == "(All)" else set_name
        out += [f"### {title}{marker}", "```", command.syntax(set_name), "```", ""]
    out += ["## DESCRIPTION", "TODO", "", "## EXAMPLES", "", "### Example 1: TODO", "```", "PS C:\\> TODO", "```",
            "", "TODO", "", "## PARAMETERS", ""]
    for param in page_order(command):
        out += [f"### -{param}", "TODO", ""]
        for sets, meta in yaml_blocks(command, param):
            out += [render_yaml(sets, meta), ""]
    out += ["### CommonParameters", COMMON_TEXT, "", "## INPUTS", "", "### None", "", "## OUTPUTS", "", "### None",
            "", "## NOTES", "", "## RELATED LINKS", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Writes help pages for cmdlets that have none yet.")
    parser.add_argument("metadata", type=Path, help="output of tools/command-metadata.ps1")
    parser.add_argument("help_dir", type=Path)
    args = parser.parse_args(argv)
    for name, command in parse(args.metadata.read_text().splitlines()).items():
        page = args.help_dir / f"{name}.md"
        if not page.exists():
            page.write_text(scaffold(command))
            print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
