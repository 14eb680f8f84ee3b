"""Builds the module's help: `python -m hpcpack.helpc.build [--check] HELP_DIR MODULE_DIR`.

Command pages (`Verb-Noun.md`) become `MODULE_DIR/en-US/<external help file>`; `about_*.md`
topics become `MODULE_DIR/en-US/about_*.help.txt`. With --check nothing is written: the command
fails when the files on disk are not what the pages give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .about import render_about
from .errors import HelpError
from .maml import document, serialize
from .markdown import parse_page
from .model import CommandHelp, build

CULTURE = "en-US"


def command_pages(folder: Path) -> list[Path]:
    """The pages New-ExternalHelp takes from a folder, in its order (file name, case-insensitive)."""
    pages = [p for p in folder.glob("*-*.md") if not p.name.lower().startswith("about_")]
    return sorted(pages, key=lambda p: p.name.lower())


def compile_pages(pages: list[Path], description_tag: str = "maml:description",
                  strict: bool = True) -> dict[str, bytes]:
    """Pages -> {help file name: MAML bytes}. Any malformed page raises HelpError; nothing is partial.
    `strict=False` accepts what platyPS accepts (incomplete pages), for other modules' pages."""
    groups: dict[str, list[CommandHelp]] = {}
    for path in pages:
        page = parse_page(path)
        if "module guid" in page.front_matter:
            continue  # the module page: used for updatable help only
        command = build(page, strict)
        groups.setdefault(command.help_file, []).append(command)
    return {name: serialize(document(commands, description_tag)) for name, commands in groups.items()}


def outputs(help_dir: Path, module_dir: Path) -> dict[Path, bytes]:
    target = module_dir / CULTURE
    files = {target / name: data for name, data in compile_pages(command_pages(help_dir)).items()}
    for about in sorted(help_dir.glob("about_*.md")):
        files[target / (about.stem + ".help.txt")] = render_about(about).encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hpc-help", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("help_dir", type=Path)
    parser.add_argument("module_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        files = outputs(args.help_dir, args.module_dir)
    except HelpError as e:
        print(f"hpc-help: {e}", file=sys.stderr)
        return 2
    if args.check:
        stale = [str(path) for path, data in files.items() if not path.exists() or path.read_bytes() != data]
        for path in stale:
            print(f"hpc-help: {path} does not match {args.help_dir}; run 'make help' and commit it", file=sys.stderr)
        return 1 if stale else 0
    for target, data in files.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
