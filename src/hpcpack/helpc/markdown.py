"""Step 1: a platyPS page -> its front matter and a tree of headings, prose and code blocks.

markdown-it-py finds the blocks platyPS knows (ATX and setext headings, fenced code); everything
between two such blocks is one prose node, blank lines included, as in platyPS v1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

from .errors import HelpError
from .text import normalize

_PARSER = MarkdownIt("zero").enable(["heading", "lheading", "fence"])


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
    values: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("---"):
            return values, "\n".join(lines[number:]), offset + number + 1
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise HelpError(path, offset + number, f"front matter line without a colon: {line!r}")
        if value.strip():
            values[key.strip().lower()] = value.strip()
    raise HelpError(path, offset + 1, "front matter is not closed by a '---' line")


# A fence platyPS cannot close stays text: this mark (removed again below) keeps markdown-it from
# opening a fence there too.
_NOT_A_FENCE = "\u0000"


def platyps_fences(lines: list[str]) -> list[str]:
    """Pairs fences the way platyPS v1 does: a block ends at the next line that starts with three
    backticks, even one like ```yaml (whose rest then starts the text after the block), and an
    opening fence with no closing one is plain text."""
    lines = list(lines)
    index = 0
    while index < len(lines):
        if not lines[index].startswith("```"):
            index += 1
            continue
        closing = next((k for k in range(index + 1, len(lines)) if lines[k].startswith("```")), None)
        if closing is None:
            lines[index] = _NOT_A_FENCE + lines[index]
            index += 1
            continue
        rest = lines[closing][3:]
        if rest.strip():
            lines[closing:closing + 1] = ["```", rest]
        index = closing + 1
    return lines


def _tree(path: Path, body: str, first_line: int) -> Section:
    lines = platyps_fences(body.split("\n"))
    body = "\n".join(lines)
    root = Section(0, "", first_line)
    stack = [root]
    tokens = _PARSER.parse(body)
    covered_until = 0  # lines [0, covered_until) belong to blocks already placed

    def add_text(start: int, end: int) -> None:
        chunk = "\n".join(lines[start:end]).replace(_NOT_A_FENCE, "")
        if chunk.strip():
            stack[-1].blocks.append(Block("text", chunk, first_line + start))

    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "heading_open" and token.map:
            start, end = token.map
            add_text(covered_until, start)
            level = int(token.tag[1])
            title = tokens[index + 1].content.strip()
            while stack[-1].level >= level:
                stack.pop()
            if level > stack[-1].level + 1:
                if len(stack) == 1:
                    raise HelpError(path, first_line + start, f"heading '{title}' comes before the page's "
                                    "'# Command-Name' heading")
                raise HelpError(path, first_line + start, f"heading '{title}' is one level too deep")
            section = Section(level, title, first_line + start)
            stack[-1].children.append(section)
            stack.append(section)
            covered_until = end
            index += 3
            continue
        if token.type == "fence" and token.map:
            start, end = token.map
            add_text(covered_until, start)
            stack[-1].blocks.append(Block("code", token.content.strip(), first_line + start, token.info.strip()))
            covered_until = end
        index += 1
    add_text(covered_until, len(lines))
    return root
