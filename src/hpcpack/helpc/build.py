"""Builds a module's help: `python -m hpcpack.helpc.build [options] HELP_DIR MODULE_DIR`.

Command pages (`Verb-Noun.md`, platyPS v1 or v2) become `MODULE_DIR/en-US/<external help file>`;
`about_*.md` topics become `MODULE_DIR/en-US/about_*.help.txt`. Every page is compiled and every
failing page is reported with file and line. By default pages are checked strictly (this module's
own pages) and nothing is written when one fails; --platyps accepts what platyPS accepts and
writes the help of every page that compiles, failing only at the end. With --check nothing is
written: each page is reported, and the command fails when the files on disk are not what the
pages give.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .about import render_about
from .errors import HelpError
from .maml import document, serialize
from .markdown import parse_page
from .model import CommandHelp, build_all

CULTURE = "en-US"
TAGS = ("maml:description", "maml:Description")  # the second as platyPS 0.14.0 wrote parameters
PAGE_FAILED, STALE = 2, 1


def command_pages(folder: Path) -> list[Path]:
    """The pages New-ExternalHelp takes from a folder, in its order (file name, case-insensitive)."""
    pages = [p for p in folder.glob("*-*.md") if not p.name.lower().startswith("about_")]
    return sorted(pages, key=lambda p: p.name.lower())


@dataclass
class PageResult:
    path: Path
    commands: list[CommandHelp] = field(default_factory=list)
    error: HelpError | None = None
    skipped: bool = False  # the module page, used for updatable help only


def compile_each(pages: Iterable[Path], strict: bool = True) -> list[PageResult]:
    """Every page compiled on its own: a page that fails leaves the others unharmed."""
    results = []
    for path in pages:
        try:
            page = parse_page(path)
            skipped = "module guid" in page.front_matter
            results.append(PageResult(path, [] if skipped else build_all(page, strict), skipped=skipped))
        except HelpError as e:
            results.append(PageResult(path, error=e))
    return results


def render(results: Iterable[PageResult], description_tag: str = TAGS[0]) -> dict[str, bytes]:
    """The MAML files of the pages that compiled, grouped by their external help file."""
    groups: dict[str, list[CommandHelp]] = {}
    for result in results:
        for command in result.commands:
            groups.setdefault(command.help_file, []).append(command)
    return {name: serialize(document(commands, description_tag)) for name, commands in groups.items()}


def compile_pages(pages: list[Path], description_tag: str = TAGS[0], strict: bool = True) -> dict[str, bytes]:
    """Pages -> {help file name: MAML bytes}; the first malformed page raises its HelpError.
    `strict=False` accepts what platyPS accepts (incomplete pages), for other modules' pages."""
    results = compile_each(pages, strict)
    for result in results:
        if result.error:
            raise result.error
    return render(results, description_tag)


@dataclass
class Build:
    """What a help folder gives: files to write, and the pages that failed."""

    files: dict[Path, bytes]
    pages: list[PageResult]

    @property
    def errors(self) -> list[HelpError]:
        return [r.error for r in self.pages if r.error]


def outputs(help_dir: Path, module_dir: Path, strict: bool = True, description_tag: str = TAGS[0]) -> Build:
    target = module_dir / CULTURE
    results = compile_each(command_pages(help_dir), strict)
    files = {target / name: data for name, data in render(results, description_tag).items()}
    for about in sorted(help_dir.glob("about_*.md")):
        try:
            files[target / (about.stem + ".help.txt")] = render_about(about).encode("utf-8")
            results.append(PageResult(about))
        except HelpError as e:
            results.append(PageResult(about, error=e))
    return Build(files, results)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpc-help", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="report each page and compare with the files on disk; write nothing")
    parser.add_argument("--platyps", action="store_true",
                        help="accept what platyPS accepts (other modules' pages) and write the help of "
                             "every page that compiles; the default checks pages strictly, all or nothing")
    parser.add_argument("--description-tag", choices=TAGS, default=TAGS[0],
                        help="the parameters' description element; maml:Description as platyPS 0.14.0 wrote it")
    parser.add_argument("help_dir", type=Path)
    parser.add_argument("module_dir", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    build = outputs(args.help_dir, args.module_dir, not args.platyps, args.description_tag)
    if args.check:
        return _check(build, args.help_dir)
    for error in build.errors:
        print(f"hpc-help: {error}", file=sys.stderr)
    if build.errors and not args.platyps:
        print(f"hpc-help: {len(build.errors)} page(s) failed; nothing written", file=sys.stderr)
        return PAGE_FAILED
    for target, data in build.files.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    if build.errors:
        print(f"hpc-help: {len(build.errors)} of {len(build.pages)} page(s) failed; the others' help is "
              "written", file=sys.stderr)
        return PAGE_FAILED
    return 0


def _check(build: Build, help_dir: Path) -> int:
    for result in build.pages:
        if result.error:
            print(f"FAILED {result.path}:{result.error.line}: {result.error.message}")
        elif not result.skipped:
            names = ", ".join(c.name for c in result.commands) or "about topic"
            print(f"ok     {result.path} ({names})")
    stale = [path for path, data in build.files.items() if not path.exists() or path.read_bytes() != data]
    for path in stale:
        print(f"hpc-help: {path} does not match {help_dir}; run 'make help' and commit it", file=sys.stderr)
    if build.errors:
        return PAGE_FAILED
    return STALE if stale else 0


if __name__ == "__main__":
    sys.exit(main())
