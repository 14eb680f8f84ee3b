"""The command line's words are text: checked once, where bytes from the shell become strings.

Python keeps a byte that is not UTF-8 (a Latin-1 é, say) as a lone surrogate (surrogateescape). Such a
word is refused before anything is parsed or sent, naming the argument, rather than reaching the head
node, which would refuse it too, in the words of its request validation instead of the user's.
"""

from __future__ import annotations

from collections.abc import Sequence


def check_text(words: Sequence[str]) -> str | None:
    """Why the first word that is not valid UTF-8 text is refused (one line), or None when all are."""
    for position, word in enumerate(words, 1):
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            return f"{_name(word, position)} is not valid Unicode text: '{_shown(word)}' is not UTF-8"
    return None


def _name(word: str, position: int) -> str:
    """The option a word sets (/message:..., --message=...), or its position."""
    option = word[:min((i for i in (word.find(":"), word.find("=")) if i > 0), default=0)]
    return f"the option {option}" if option[:1] in ("/", "-") and len(option) > 1 else f"argument {position}"


def _shown(word: str) -> str:
    """The word with each byte that is not text as \\xNN (and other lone surrogates as \\udNNN)."""
    try:
        raw = word.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte became (an argument list given in Python)
        raw = word.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")
