"""Step 2: a parsed page -> the help model of each command on it (platyPS v1's rules).

v1 and v2 pages give the same model: v2's ALIASES section has no place in MAML, its parameter
blocks are read by `params`, and its related links may be a bulleted list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .markdown import Block, Page, Section
from .params import ALL_SETS, ParameterBlock, read_blocks
from .text import convert, links, paragraphs, split_paragraphs

SECTIONS = ("SYNOPSIS", "SYNTAX", "DESCRIPTION", "EXAMPLES", "PARAMETERS", "INPUTS", "OUTPUTS", "NOTES",
            "RELATED LINKS")
V2_SECTIONS = ("ALIASES",)
COMMON = ("commonparameters", "workflowcommonparameters")
__all__ = ["ALL_SETS", "CommandHelp", "Example", "Link", "Parameter", "ParameterBlock", "SyntaxItem",
           "TypeEntry", "build", "build_all"]


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
    """The help model of the page's (first) command; see `build_all`."""
    return build_all(page, strict)[0]


def build_all(page: Page, strict: bool = False) -> list[CommandHelp]:
    """The help model of every `# Command-Name` on the page, in order. platyPS accepts incomplete
    pages; `strict` (used for this module's own pages) also refuses text before the first command,
    missing or misordered sections, parameters without metadata, and syntax sets that no
    parameter belongs to."""
    commands = page.root.children
    if not commands:
        raise page.error(page.root.line, "the page has no '# Command-Name' heading")
    if strict and page.root.blocks:
        raise page.error(page.root.blocks[0].line, "text before the command's heading")
    # platyPS keeps one parameter-set table per file: a later command's syntax items also list
    # the parameters of the commands above it.
    seen: list[Parameter] = []
    result = []
    for command in commands:
        help_ = _command(page, command, seen, strict)
        seen += help_.parameters
        result.append(help_)
    return result


def _command(page: Page, command: Section, seen: list[Parameter], strict: bool) -> CommandHelp:
    sections = _sections(page, command)
    parameters = _parameters(page, sections.get("PARAMETERS"))
    if strict:
        _check_complete(page, command, parameters)
    syntax_section = sections.get("SYNTAX")
    return CommandHelp(
        name=command.title,
        help_file=page.front_matter.get("external help file", "rename-me-help.xml"),
        synopsis=_prose(sections.get("SYNOPSIS")),
        description=_prose(sections.get("DESCRIPTION")),
        syntax=_syntax(seen + parameters, syntax_section, "PARAMETERS" in sections),
        parameters=parameters,
        inputs=_types(sections.get("INPUTS")),
        outputs=_types(sections.get("OUTPUTS")),
        notes=_prose(sections.get("NOTES")),
        examples=_examples(page, sections.get("EXAMPLES")),
        links=_links(page, sections.get("RELATED LINKS"), page.online_version),
        default_set=_default_set(syntax_section),
        set_names=_set_names(parameters),
    )


def _order(page: Page) -> tuple[str, ...]:
    """The sections in the order New-MarkdownHelp writes them (v2 adds ALIASES after SYNTAX)."""
    return SECTIONS[:2] + V2_SECTIONS + SECTIONS[2:] if page.is_v2 else SECTIONS


def _sections(page: Page, command: Section) -> dict[str, Section]:
    known = _order(page)
    sections: dict[str, Section] = {}
    for section in command.children:
        name = section.title.upper()
        if name not in known:
            raise page.error(section.line, f"Unexpected header name '{section.title}': use one of "
                             + ", ".join(known))
        sections[name] = section
    return sections


def _check_complete(page: Page, command: Section, parameters: list[Parameter]) -> None:
    order = _order(page)
    present = [s.title.upper() for s in command.children]
    missing = [name for name in order if name not in present]
    if missing:
        raise page.error(command.line, f"{command.title}: missing section(s) {', '.join(missing)}")
    for section, expected in zip(command.children, order, strict=False):
        if section.title.upper() != expected:
            raise page.error(section.line, f"section {section.title} is out of order: {expected} comes here "
                             f"(the order is {', '.join(order)})")
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
    """The prose blocks of a section as one text, a blank line between them. One block is platyPS's
    case and stays as it is; several (around code that the lenient rule drops) are trimmed of blank
    lines first."""
    texts = [b.text for b in blocks if b.kind == "text"]
    return texts[0] if len(texts) == 1 else "\n\n".join(_trim_blank_lines(t) for t in texts)


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
        name = child.title.removeprefix("-")
        if name.lower() in COMMON:
            _no_metadata(page, name, child)
            continue
        described: list[str] = []  # paragraphs and code blocks, a blank line between them
        blocks: list[ParameterBlock] = []
        for block in child.blocks:
            if blocks or (block.kind == "code" and block.info.lower() == "yaml"):
                blocks += _metadata(page, name, block)
            else:
                described.append(block.text if block.kind == "code" else convert(block.text))
        _share_accepted_values(blocks)
        result.append(Parameter(name, split_paragraphs("\n\n".join(described)), blocks, child.line))
    return result


def _share_accepted_values(blocks: list[ParameterBlock]) -> None:
    """platyPS copies a parameter for each further block but keeps one list of accepted values,
    which every block adds to: each block ends up offering the values of all of them."""
    if len(blocks) > 1:
        shared = ", ".join(v for b in blocks for v in b.accepted_values)
        for block in blocks:
            block.values["accepted values"] = shared


def _no_metadata(page: Page, name: str, section: Section) -> None:
    """platyPS skips the text of CommonParameters but not a yaml block there, which it then
    finds where it expects the next parameter's heading."""
    block = next((b for b in section.blocks if b.kind == "code" and b.info.lower() == "yaml"), None)
    if block is not None:
        raise page.error(block.line, f"Expect Heading: {name} has no yaml block")


def _metadata(page: Page, name: str, block: Block) -> list[ParameterBlock]:
    """Every code block from the first ```yaml one on is metadata (platyPS reads them all so)."""
    if block.kind != "code":
        raise page.error(block.line, f"parameter -{name}: text after its yaml block")
    return read_blocks(page, block)


def _set_map(parameter: Parameter) -> dict[str, tuple[str, ParameterBlock]]:
    """platyPS's table of a parameter's sets: set name (any case; spelled as first written) -> the
    block serving it, a later block taking over a set an earlier one named."""
    result: dict[str, tuple[str, ParameterBlock]] = {}
    for block in parameter.blocks:
        for name in block.sets:
            result[name.lower()] = (result.get(name.lower(), (name, block))[0], block)
    return result


def _set_names(parameters: list[Parameter]) -> list[str]:
    names: dict[str, str] = {}
    for parameter in parameters:
        for key, (name, _) in _set_map(parameter).items():
            names.setdefault(key, name)
    return list(names.values())


def _syntax(parameters: list[Parameter], section: Section | None, has_parameters_section: bool) -> list[SyntaxItem]:
    if not has_parameters_section:
        marked = [c for c in section.children if c.title.endswith("(Default)")] if section else []
        bare = section is not None and not section.children and any(b.kind == "code" for b in section.blocks)
        return [SyntaxItem([]) for _ in range(len(marked) + (1 if bare else 0))]
    names = _set_names(parameters)
    if not names:
        return [SyntaxItem([])]
    tables = [(parameter, _set_map(parameter)) for parameter in parameters]
    items = []
    for name in names:
        if name == ALL_SETS and len(names) > 1:
            continue  # (All) has no item of its own; its parameters join every set's (compared as platyPS does)
        members = []
        for parameter, table in tables:
            entry = table.get(name.lower())
            if entry is None and len(table) == 1 and next(iter(table.values()))[0] == ALL_SETS:
                entry = next(iter(table.values()))
            if entry is not None:
                members.append((parameter, entry[1]))
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


def _types(section: Section | None) -> list[TypeEntry]:
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
    result = []
    for block in section.blocks if section is not None else []:
        if block.kind == "code":
            raise page.error(block.line, "Expect hyperlink, but got a code block")
        text = _unbullet(block.text) if page.is_v2 else block.text
        for offset, label, url in links(text):
            if url is None:
                line = block.line + text.count("\n", 0, offset)
                raise page.error(line, f"Expect hyperlink, but got {label!r}")
            result.append(Link(label, url))
    if online and (not result or result[0].uri.lower() != online.lower()):
        result.insert(0, Link("Online Version:", online))
    return result


def _unbullet(text: str) -> str:
    """v2 writes related links as a list: '- [text](url)'."""
    return "\n".join(line.lstrip()[2:] if line.lstrip().startswith(("- ", "* ")) else line
                     for line in text.split("\n"))
