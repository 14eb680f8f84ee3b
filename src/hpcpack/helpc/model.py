"""Step 2: a parsed page -> the command's help model (platyPS v1's rules)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from .markdown import Block, Page, Section
from .text import paragraphs

SECTIONS = ("SYNOPSIS", "SYNTAX", "DESCRIPTION", "EXAMPLES", "PARAMETERS", "INPUTS", "OUTPUTS", "NOTES",
            "RELATED LINKS")
YAML_KEYS = ("type", "parameter sets", "aliases", "accepted values", "applicable", "required", "position",
             "default value", "accept pipeline input", "accept wildcard characters")
COMMON = ("commonparameters", "workflowcommonparameters")
ALL_SETS = "(All)"
_SWITCHES = ("switch", "switchparameter", "system.management.automation.switchparameter")
_LINK = re.compile(r"^\[(?P<text>.*?)\]\((?P<url>.*)\)$")


@dataclass
class ParameterBlock:
    """One yaml block of a parameter: its metadata in the sets it names."""

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
        return [v.strip() for v in self.get("accepted values").split(",") if v.strip()]

    @property
    def aliases(self) -> list[str]:
        return [a.strip() for a in self.get("aliases").split(",") if a.strip()]


@dataclass
class Parameter:
    name: str
    description: list[str]
    blocks: list[ParameterBlock]
    line: int

    @property
    def first(self) -> ParameterBlock:
        return self.blocks[0] if self.blocks else ParameterBlock([], {}, self.line)


@dataclass
class Example:
    title: str
    code: str
    remarks: list[str]


@dataclass
class TypeEntry:
    name: str
    description: list[str]


@dataclass
class Link:
    text: str
    uri: str


@dataclass
class SyntaxItem:
    parameters: list[tuple[Parameter, ParameterBlock]]


@dataclass
class CommandHelp:
    name: str
    help_file: str
    synopsis: list[str] | None
    description: list[str] | None
    syntax: list[SyntaxItem]
    parameters: list[Parameter]
    inputs: list[TypeEntry]
    outputs: list[TypeEntry]
    notes: list[str] | None
    examples: list[Example]
    links: list[Link]
    default_set: str | None = None
    set_names: list[str] = field(default_factory=list)

    @property
    def verb(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def noun(self) -> str:
        return self.name.split("-", 1)[1] if "-" in self.name else ""


def build(page: Page, strict: bool = False) -> CommandHelp:
    """The page's help model. platyPS accepts incomplete pages; `strict` (used for this module's own
    pages) also refuses missing or misordered sections, parameters without metadata, and syntax sets
    that no parameter belongs to."""
    commands = page.root.children
    if not commands or commands[0].level != 1:
        raise page.error(page.root.line, "the page has no '# Command-Name' heading")
    if page.root.blocks:
        raise page.error(page.root.blocks[0].line, "text before the command's heading")
    command = commands[0]
    sections: dict[str, Section] = {}
    for section in command.children:
        name = section.title.upper()
        if name not in SECTIONS:
            raise page.error(section.line, f"Unexpected header name '{section.title}': use one of "
                             + ", ".join(SECTIONS))
        sections[name] = section
    parameters = _parameters(page, sections.get("PARAMETERS"))
    if strict:
        _check_complete(page, command, parameters)
    help_file = page.front_matter.get("external help file", "rename-me-help.xml")
    syntax_section = sections.get("SYNTAX")
    return CommandHelp(
        name=command.title,
        help_file=help_file,
        synopsis=_prose(sections.get("SYNOPSIS")),
        description=_prose(sections.get("DESCRIPTION")),
        syntax=_syntax(page, parameters, syntax_section, "PARAMETERS" in sections),
        parameters=parameters,
        inputs=_types(page, sections.get("INPUTS")),
        outputs=_types(page, sections.get("OUTPUTS")),
        notes=_prose(sections.get("NOTES")),
        examples=_examples(page, sections.get("EXAMPLES")),
        links=_links(page, sections.get("RELATED LINKS"), page.front_matter.get("online version", "")),
        default_set=_default_set(syntax_section),
        set_names=_set_names(parameters),
    )


def _check_complete(page: Page, command: Section, parameters: list[Parameter]) -> None:
    present = [s.title.upper() for s in command.children]
    missing = [name for name in SECTIONS if name not in present]
    if missing:
        raise page.error(command.line, f"{command.title}: missing section(s) {', '.join(missing)}")
    for section, expected in zip(command.children, SECTIONS, strict=False):
        if section.title.upper() != expected:
            raise page.error(section.line, f"section {section.title} is out of order: {expected} comes here "
                             f"(the order is {', '.join(SECTIONS)})")
    for parameter in parameters:
        if not parameter.blocks:
            raise page.error(parameter.line, f"parameter -{parameter.name} has no ```yaml block")
    known = {s.lower() for s in _set_names(parameters)}
    syntax = next(s for s in command.children if s.title.upper() == "SYNTAX")
    for item in syntax.children:
        name = item.title.removesuffix("(Default)").strip()
        if name.lower() not in known and name != ALL_SETS and known:
            raise page.error(item.line, f"syntax set '{name}' has no parameter: no yaml block lists it")


def _prose(section: Section | None) -> list[str] | None:
    """A section's prose as paragraphs; code blocks in it are dropped (the lenient rule)."""
    if section is None:
        return None
    return paragraphs(_join_prose(section.blocks))


def _join_prose(blocks: list[Block]) -> str:
    """The prose blocks of a section as one text, a blank line between them."""
    return "\n\n".join(_trim_blank_lines(b.text) for b in blocks if b.kind == "text")


def _trim_blank_lines(text: str) -> str:
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def _no_loose_text(page: Page, section: Section, first: str) -> None:
    if section.blocks:
        raise page.error(section.blocks[0].line, f"text in {section.title} before the first '{first}' heading")


def _parameters(page: Page, section: Section | None) -> list[Parameter]:
    if section is None:
        return []
    _no_loose_text(page, section, "### -Name")
    result = []
    for child in section.children:
        name = child.title.lstrip("-").strip()
        if name.lower() in COMMON:
            continue
        described: list[str] = []
        blocks: list[ParameterBlock] = []
        for block in child.blocks:
            if block.kind == "code" and block.info.lower() == "yaml":
                blocks.append(_yaml_block(page, block))
            elif blocks:
                raise page.error(block.line, f"parameter -{name}: text after its yaml block")
            elif block.kind == "code":
                described.extend(block.text.split("\n"))
            else:
                described.extend(paragraphs(block.text))
        result.append(Parameter(name, described or [""], blocks, child.line))
    return result


def _yaml_block(page: Page, block: Block) -> ParameterBlock:
    """A parameter's yaml block; values are kept as written (platyPS copies them, quotes included)."""
    try:
        node = yaml.compose(block.text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = block.line + 1 + (mark.line if mark else 0)
        raise page.error(line, f"Invalid yaml: {getattr(e, 'problem', e)}") from None
    if not isinstance(node, yaml.MappingNode):
        raise page.error(block.line + 1, "Invalid yaml: expected 'Key: value' lines")
    values: dict[str, str] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value).strip()
        if key.lower() not in YAML_KEYS:
            raise page.error(block.line + 1 + key_node.start_mark.line, f"Invalid yaml: unknown key '{key}'")
        raw = block.text[value_node.start_mark.index:value_node.end_mark.index]
        values[key.lower()] = raw.strip()
    sets = [s.strip() for s in values["parameter sets"].split(",") if s.strip()] \
        if "parameter sets" in values else [ALL_SETS]
    return ParameterBlock(sets or [ALL_SETS], values, block.line)


def _set_names(parameters: list[Parameter]) -> list[str]:
    names: list[str] = []
    for parameter in parameters:
        for block in parameter.blocks:
            for name in block.sets:
                if name.lower() not in (n.lower() for n in names):
                    names.append(name)
    return names


def _syntax(page: Page, parameters: list[Parameter], section: Section | None,
            has_parameters_section: bool) -> list[SyntaxItem]:
    if not has_parameters_section:
        marked = [c for c in section.children if c.title.endswith("(Default)")] if section else []
        bare = section is not None and not section.children and any(b.kind == "code" for b in section.blocks)
        return [SyntaxItem([]) for _ in range(len(marked) + (1 if bare else 0))]
    names = _set_names(parameters)
    if not names:
        return [SyntaxItem([])]
    if [n.lower() for n in names] == [ALL_SETS.lower()]:
        return [SyntaxItem(_by_position([(p, p.blocks[0]) for p in parameters if p.blocks]))]
    items = []
    for name in names:
        if name.lower() == ALL_SETS.lower():
            continue
        members: list[tuple[Parameter, ParameterBlock]] = []
        for parameter in parameters:
            block = next((b for b in parameter.blocks if name.lower() in (s.lower() for s in b.sets)), None)
            if block is None and parameter.blocks and all(
                    [s.lower() for s in b.sets] == [ALL_SETS.lower()] for b in parameter.blocks):
                block = parameter.blocks[0]
            if block is not None:
                members.append((parameter, block))
        items.append(SyntaxItem(_by_position(members)))
    return items


def _by_position(members: list[tuple[Parameter, ParameterBlock]]) -> list[tuple[Parameter, ParameterBlock]]:
    """platyPS sorts a syntax item by the position text, stably: "0" < "1" < "10" < "2" < "named"."""
    return sorted(members, key=lambda pair: pair[1].position)


def _default_set(section: Section | None) -> str | None:
    if section is None:
        return None
    marked = next((c.title for c in section.children if c.title.endswith("(Default)")), None)
    return marked.removesuffix("(Default)").strip() if marked else None


def _types(page: Page, section: Section | None) -> list[TypeEntry]:
    if section is None:
        return []
    return [TypeEntry(child.title, paragraphs(_join_prose(child.blocks))) for child in section.children]


def _examples(page: Page, section: Section | None) -> list[Example]:
    if section is None:
        return []
    _no_loose_text(page, section, "### Example")
    examples = []
    for child in section.children:
        codes: list[str] = []
        remarks: list[Block] = []
        for block in child.blocks:
            if block.kind == "code":
                if remarks:
                    raise page.error(block.line, f"example '{child.title}': a code block after its remarks "
                                     "(this can occur when there are multiple code blocks in one example)")
                codes.append(block.text)
            elif codes:
                remarks.append(block)
            # prose before the first code block is the introduction, which MAML has no place for
        examples.append(Example(child.title, "\n\n".join(codes), paragraphs(_join_prose(remarks))))
    return examples


def _links(page: Page, section: Section | None, online: str) -> list[Link]:
    links = []
    if section is not None:
        for block in section.blocks:
            if block.kind == "code":
                raise page.error(block.line, "Expect hyperlink, but got a code block")
            for offset, line in enumerate(block.text.split("\n")):
                if not line.strip():
                    continue
                match = _LINK.match(line.strip())
                if match is None:
                    raise page.error(block.line + offset, f"Expect hyperlink, but got {line.strip()!r}")
                links.append(Link(match["text"], match["url"]))
    if online and (not links or links[0].uri != online):
        links.insert(0, Link("Online Version:", online))
    return links
