"""Step 1: a platyPS page -> its front matter and a tree of headings, prose and code blocks.

Blocks are found the way platyPS v1's parser finds them: one scan that, at each point, takes the
nearest of its patterns (ATX and setext headings, ``` code blocks, and the inline spans, which are
skipped here but may hide a fence or heading inside them). Everything between two blocks is one
prose node, blank lines included. v2 pages (`PlatyPS schema version` in the front matter) share
this layout; their front matter is real YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import HelpError
from .text import INLINE, normalize

V2_SCHEMA_KEY = "platyps schema version"


@dataclass
class Block:
    kind: str  # "text" or "code"
    text: str
    line: int  # 1-based, in the page file
    info: str = ""


@dataclass
class Section:
    level: int
    title: str
    line: int
    blocks: list[Block] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)


@dataclass
class Page:
    path: Path
    front_matter: dict[str, str]
    root: Section

    @property
    def is_v2(self) -> bool:
        """A platyPS v2 page (Microsoft.PowerShell.PlatyPS 1.0, schema 2024-05-01)."""
        return V2_SCHEMA_KEY in self.front_matter

    @property
    def online_version(self) -> str:
        return self.front_matter.get("helpuri" if self.is_v2 else "online version", "")

    def error(self, line: int, message: str) -> HelpError:
        return HelpError(self.path, line, message)


def parse_page(path: Path, source: str | None = None) -> Page:
    text = normalize(path.read_text(encoding="utf-8-sig") if source is None else source)
    stripped = text.lstrip()
    offset = text[: len(text) - len(stripped)].count("\n")
    front, body, body_line = _front_matter(path, stripped, offset)
    return Page(path, front, _tree(path, body, body_line))


def _front_matter(path: Path, text: str, offset: int) -> tuple[dict[str, str], str, int]:
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return {}, text, offset + 1
    end = next((n for n, line in enumerate(lines[1:], start=1) if line.startswith("---")), None)
    if end is None:
        raise HelpError(path, offset + 1, "front matter is not closed by a '---' line")
    head = lines[1:end]
    body = "\n".join(lines[end + 1:])
    if any(line.lower().startswith(V2_SCHEMA_KEY) for line in head):
        return _yaml_front_matter(path, head, offset), body, offset + end + 2
    return _simple_front_matter(path, head, offset), body, offset + end + 2


def _simple_front_matter(path: Path, head: list[str], offset: int) -> dict[str, str]:
    """v1 reads `key: value` lines, split at the first colon; a line without one is an error.
    Beyond v1, the items of a YAML list under a key (`aliases:` then `  - rcms`, as PowerShell-Docs
    writes) are read as that key's comma list: no key platyPS uses takes a list."""
    values: dict[str, str] = {}
    key = ""
    for number, line in enumerate(head, start=2):
        if not line.strip():
            continue
        if key and line.lstrip().startswith("- "):
            values[key] = ", ".join(filter(None, [values.get(key, ""), line.lstrip()[2:].strip()]))
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HelpError(path, offset + number, f"front matter line without a colon: {line!r}")
        key = name.strip().lower()
        if value.strip():
            values[key] = value.strip()
    return values


def _yaml_front_matter(path: Path, head: list[str], offset: int) -> dict[str, str]:
    """v2 front matter is YAML; lists become comma lists, as v1 would have written them."""
    try:
        data = yaml.safe_load("\n".join(head)) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise HelpError(path, offset + 2 + (mark.line if mark else 0), f"Invalid front matter: {e}") from None
    if not isinstance(data, dict):
        raise HelpError(path, offset + 2, "Invalid front matter: expected 'key: value' lines")
    values = {}
    for key, value in data.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else "" if value is None else str(value)
        if text.strip():
            values[str(key).strip().lower()] = text.strip()
    return values


# platyPS v1's block patterns, in its order (its \r\n is our \n). A heading must end with a line
# break; a code block opens at any ``` (info: word characters only) and closes at the next ```.
_HASH_HEADING = re.compile(r"(#+) *(.+?) *#*\n+")
_BLOCKS = re.compile(
    r"(?P<heading>\n+(?P<hashes>#+) *(?P<title>.+?) *#*\n+)"
    r"|(?P<underlined>(?P<utitle>.+?) *\n(?P<underline>==+|--+) *\n+)"
    r"|(?P<code>```(?P<info>\w*)\n*(?P<content>(?:.|\n)*?)```\n*)"
    f"|(?P<inline>{INLINE})"
)


@dataclass
class _Node:
    kind: str  # "heading", "code" or "text"
    start: int  # offset in the body where the node's own text starts (for its line number)
    text: str
    level: int = 0
    info: str = ""
    match_start: int = -1  # where its match starts: the text before it ends there

    def __post_init__(self) -> None:
        if self.match_start < 0:
            self.match_start = self.start


def scan(body: str) -> list[_Node]:
    """The page body as platyPS v1 sees it: headings, code blocks and the text between them."""
    nodes: list[_Node] = []
    position = text_start = 0
    while position < len(body):
        node, end = _next_block(body, position)
        if node is None:
            position = end  # an inline span: part of the text
            continue
        if body[text_start:node.match_start].strip():
            nodes.append(_Node("text", text_start, body[text_start:node.match_start]))
        nodes.append(node)
        position = text_start = end
    if body[text_start:].strip():
        nodes.append(_Node("text", text_start, body[text_start:]))
    return nodes


def _next_block(body: str, position: int) -> tuple[_Node | None, int]:
    """The nearest block from `position` and where it ends; (None, end) for an inline span or the
    end of the body."""
    if body[position] == "#":  # platyPS tries its plain '#' heading only where the scan stands
        match = _HASH_HEADING.match(body, position)
        if match:
            return _Node("heading", position, match[2], level=len(match[1])), match.end()
    match = _BLOCKS.search(body, position)
    if match is None:
        return None, len(body)
    if match["heading"]:
        node = _Node("heading", match.start("hashes"), match["title"], level=len(match["hashes"]),
                     match_start=match.start())
        return node, match.end()
    if match["underlined"]:
        level = 1 if match["underline"].startswith("=") else 2
        return _Node("heading", match.start(), match["utitle"], level=level), match.end()
    if match["code"]:
        return _Node("code", match.start(), match["content"].strip(), info=match["info"]), match.end()
    return None, match.end()


def _tree(path: Path, body: str, first_line: int) -> Section:
    root = Section(0, "", first_line)
    stack = [root]
    for node in scan(body):
        line = first_line + body.count("\n", 0, node.start)
        if node.kind != "heading":
            stack[-1].blocks.append(Block(node.kind, node.text, line, node.info))
            continue
        while stack[-1].level >= node.level:
            stack.pop()
        if node.level > stack[-1].level + 1:
            if len(stack) == 1:
                raise HelpError(path, line, f"heading '{node.text}' comes before the page's '# Command-Name' heading")
            raise HelpError(path, line, f"heading '{node.text}' is one level too deep")
        section = Section(node.level, node.text, line)
        stack[-1].children.append(section)
        stack.append(section)
    return root
