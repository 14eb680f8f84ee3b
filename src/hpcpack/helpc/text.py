"""platyPS v1's conversion of markdown prose into MAML paragraphs, quirks included.

A prose node is cut into spans by the first of these patterns found from where the scan stands:
a hard break (two spaces before a line break), a link, `**bold**`, `*italic*`, `__bold__`,
`_italic_`; the text between them is a plain span. Every plain or styled span is trimmed, loses
its backslash escapes and has its lines joined (see `_join_lines`); a link keeps its label as
written. Spans are glued with one space around a styled span or link, except that the text
after a link with an address follows `label (address)` directly. A line break in the result
separates paragraphs.
"""

from __future__ import annotations

import re

# platyPS's inline patterns, in its order (also used by the block scanner, which skips them).
# Its "soft break" pattern was meant to be any line break but, as written, matches only a line
# break followed by "{}", and swallows both: "a\n{} b" reads "ab".
INLINE = (r"(?P<hardbreak> {2}\n)"
          r"|(?P<softbreak>\n\{\})"
          r"|(?P<link>\[(?P<label>.+?)\]\((?P<url>.*)\))"
          r"|(?P<bold>\*\*(?P<b1>.+?)\*\*)"
          r"|(?P<italic>\*(?P<i1>.+?)\*)"
          r"|(?P<bold2>(?<![a-zA-Z0-9])__(?P<b2>.+?)__(?![a-zA-Z0-9]))"
          r"|(?P<italic2>(?<![a-zA-Z0-9])_(?P<i2>.+?)_(?![a-zA-Z0-9]))")
_SPANS = re.compile(INLINE)
_ESCAPES = (("\\[", "["), ("\\]", "]"), ("\\(", "("), ("\\)", ")"), ("\\`", "`"), ("\\<", "<"),
            ("\\>", ">"), ("\\_", "_"), ("\\*", "*"), ("\\\\", "\\"))
_LINE = re.compile(r"([^\n]*)(\n|$)")
_LIST_START = ("--", "- ", "* ")
# A hard break is a line break inside a paragraph, not a new one: kept apart until the split.
_HARD_BREAK = "\u000b"


def normalize(source: str) -> str:
    """The preparation platyPS does before parsing: line ends, en dashes."""
    return source.replace("\r\n", "\n").replace("\r", "\n").replace("\u2013", "-")


def paragraphs(markdown: str) -> list[str]:
    """Markdown prose -> the texts of its <maml:para> elements (at least one, maybe empty)."""
    return split_paragraphs(convert(markdown))


def split_paragraphs(text: str) -> list[str]:
    """Converted text -> its paragraphs (a hard break stays inside its paragraph)."""
    return [para.replace(_HARD_BREAK, "\n") for para in text.split("\n")]


def convert(markdown: str) -> str:
    """Markdown prose -> one text whose line breaks separate paragraphs."""
    out: list[str] = []
    position = 0
    previous_special = False
    for match in _SPANS.finditer(markdown):
        previous_special = _append(out, _plain(markdown[position:match.start()]), False, previous_special)
        previous_special = _append_span(out, match, previous_special)
        position = match.end()
    _append(out, _plain(markdown[position:]), False, previous_special)
    return "".join(out)


def _append(out: list[str], text: str | None, special: bool, previous_special: bool) -> bool:
    """Adds one span; a styled span or link gets a space before it, and so does the span after it."""
    if text is None:
        return previous_special
    if (out and special) or previous_special:
        out.append(" ")
    out.append(text)
    return special


def _append_span(out: list[str], match: re.Match[str], previous_special: bool) -> bool:
    if match["softbreak"]:
        return previous_special
    if match["hardbreak"]:
        return _append(out, _HARD_BREAK, False, previous_special)
    if match["link"]:
        _append(out, match["label"], True, previous_special)
        if not match["url"].strip():
            return True
        out.append(f" ({match['url']})")
        return False
    inner = match["b1"] or match["i1"] or match["b2"] or match["i2"] or ""
    return _append(out, _unwind(inner), True, previous_special)


def _plain(run: str) -> str | None:
    """A plain span's text; None for a span of only white space, which platyPS does not keep."""
    return _unwind(run) if run.strip() else None


def _unwind(text: str) -> str:
    """A span's text: trimmed, escapes undone one kind after another (as platyPS does), lines joined."""
    text = text.strip()
    for escaped, plain in _ESCAPES:
        text = text.replace(escaped, plain)
    return _join_lines(text).replace(" \n", "\n").strip()


def _join_lines(text: str) -> str:
    """platyPS's line rule: every line gets a space after it instead of its line break; a blank
    line becomes a paragraph break; a list line (`- `, `* `, `--`) right after another one starts
    a new paragraph, and so does the first other line after such a list. Leading spaces stay."""
    previous = "foo"
    in_list = False

    def line(match: re.Match[str]) -> str:
        nonlocal previous, in_list
        text, previous_line = match[1], previous
        previous = text
        if not text.strip():
            return "\n"
        if previous_line.startswith(_LIST_START) and text.startswith(_LIST_START):
            in_list = True
            return "\n" + text
        if in_list:
            in_list = False
            text = "\n" + text
        return text + " "

    return _LINE.sub(line, text)


def links(markdown: str) -> list[tuple[int, str, str | None]]:
    """The spans of a RELATED LINKS section as (offset, text, url); url is None for a span that is
    not a link (platyPS refuses those), white space between links left out."""
    result: list[tuple[int, str, str | None]] = []
    position = 0
    for match in _SPANS.finditer(markdown):
        _add_plain(result, markdown, position, match.start())
        if match["link"]:
            result.append((match.start(), match["label"], match["url"]))
        elif not (match["hardbreak"] or match["softbreak"]):
            result.append((match.start(), match[0], None))
        position = match.end()
    _add_plain(result, markdown, position, len(markdown))
    return result


def _add_plain(result: list[tuple[int, str, str | None]], markdown: str, start: int, end: int) -> None:
    text = _plain(markdown[start:end])
    if text is not None:
        result.append((start + len(markdown[start:end]) - len(markdown[start:end].lstrip()), text, None))
