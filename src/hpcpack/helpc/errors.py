"""Diagnostics that point at the page and line that caused them."""

from __future__ import annotations

from pathlib import Path


class HelpError(Exception):
    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message
