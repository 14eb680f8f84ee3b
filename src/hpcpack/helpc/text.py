"""platyPS v1's conversion of markdown prose into MAML paragraphs.

The rules (from platyPS 0.14 and checked against shipped help files): links become `text (url)`,
emphasis markers go, inline code is plain text (backticks kept), escapes lose their backslash; the text is cut
into plain runs and styled spans, each run trimmed and glued to its neighbours with one space
(but the text after a link follows it directly);
inside a run a line break is a space, a blank line ends a paragraph and each further blank line
adds an empty one, list lines that follow list lines stay apart, and the first plain line after
such a list gets an empty paragraph before it.
"""

from __future__ import annotations

import re

_LINK = r"\[(?P<label>[^\]\n]*)\]\((?P<url>[^\n]*)\)"
_BOLD = r"\*\*(?P<b1>[^\n]+?)\*\*|(?<!\w)__(?P<b2>[^\n]+?)__(?!\w)"
_ITALIC = r"\*(?P<i1>[^*\n]+?)\*|(?<!\w)_(?P<i2>[^_\n]+?)_(?!\w)"
_SPANS = re.compile(f"(?P<link>{_LINK})|(?P<bold>{_BOLD})|(?P<italic>{_ITALIC})")
_ESCAPES = re.compile(r"\\([\[\]()`<>_*\\])")
_LIST_START = ("- ", "* ", "--")


def normalize(source: str) -> str:
    """The preparation platyPS does before parsing: line ends, en dashes."""
    return source.replace("\r\n", "\n").replace("\r", "\n").replace("\u2013", "-")


def paragraphs(markdown: str) -> list[str]:
    """Markdown prose -> the texts of its <maml:para> elements (at least one, maybe empty)."""
    text = ""
    position = 0
    after_link = False
    for match in _SPANS.finditer(markdown):
        text = _glue(text, _plain(markdown[position:match.start()]), after_link)
        text = _glue(text, _span(match), False)
        after_link = bool(match["link"])
        position = match.end()
    text = _glue(text, _plain(markdown[position:]), after_link)
    return text.strip().split("\n")


def _glue(text: str, piece: str, after_link: bool) -> str:
    """One space between pieces, except that the text after a link follows it directly."""
    if not text or not piece:
        return text + piece
    return text + ("" if after_link else " ") + piece


def _span(match: re.Match[str]) -> str:
    if match["link"]:
        label, url = match["label"], match["url"]
        return f"{label} ({url})" if url.strip() else label
    inner = match["b1"] or match["b2"] or match["i1"] or match["i2"] or ""
    return _ESCAPES.sub(r"\1", inner).strip()


def _plain(run: str) -> str:
    return lines_to_paragraphs(_ESCAPES.sub(r"\1", run)).strip()


def lines_to_paragraphs(text: str) -> str:
    """Joins the lines of a plain run; '\\n' in the result separates paragraphs."""
    out: list[str] = []
    started = previous_list = list_mode = False
    blanks = 0
    for line in text.split("\n"):
        if not line.strip():
            blanks += 1
            continue
        is_list = line.startswith(_LIST_START)
        if not started:
            separator = ""
        elif blanks:
            separator = "\n" * blanks
        elif is_list and previous_list:
            separator = "\n"
        else:
            separator = " "
        if list_mode and not is_list:
            separator += "\n"
            list_mode = False
        if is_list and previous_list:
            list_mode = True
        out.append(separator + line.rstrip())
        started, previous_list, blanks = True, is_list, 0
    return "".join(out)
