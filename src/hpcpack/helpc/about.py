"""about_* topics: markdown -> the plain-text layout Get-Help shows for conceptual help."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .markdown import Section, parse_page
from .text import paragraphs

WIDTH = 80


def render_about(path: Path) -> str:
    page = parse_page(path)
    lines: list[str] = []
    for top in page.root.children:
        lines += ["TOPIC", f"    {top.title}", ""]
        _blocks(top, lines, 4)
        for section in top.children:
            _section(section, lines, 0)
    return "\n".join(lines).rstrip() + "\n"


def _section(section: Section, lines: list[str], depth: int) -> None:
    lines.append(" " * depth + (section.title.upper() if section.level == 2 else section.title))
    _blocks(section, lines, depth + 4)
    for child in section.children:
        _section(child, lines, depth + 4)


def _blocks(section: Section, lines: list[str], indent: int) -> None:
    pad = " " * indent
    for block in section.blocks:
        if block.kind == "code":
            lines += [pad + "    " + line if line else "" for line in block.text.split("\n")]
        else:
            for para in paragraphs(block.text):
                lines += textwrap.wrap(para, WIDTH, initial_indent=pad, subsequent_indent=pad) if para else []
                lines.append("")
            continue
        lines.append("")
