"""Our own pages point Get-Help -Online at the project's help pages."""

from __future__ import annotations

import re

from lxml import etree

from hpcpack.helpc.build import command_pages, compile_pages
from hpcpack.helpc.markdown import parse_page
from hpcpack.helpc.metadata import ONLINE_PAGES, CommandMetadata, scaffold

from .conftest import MODULE, ROOT, run_pwsh

HELP = ROOT / "help"
NS = {"maml": "http://schemas.microsoft.com/maml/2004/10",
      "command": "http://schemas.microsoft.com/maml/dev/command/2004/10"}


def _project_uri() -> str:
    match = re.search(r"ProjectUri\s*=\s*'([^']+)'", MODULE.read_text())
    assert match, "the manifest names the project's address"
    return match[1]


def test_every_command_page_names_its_online_page_under_the_project() -> None:
    pages = command_pages(HELP)
    assert len(pages) >= 11
    for page in pages:
        assert parse_page(page).online_version == f"{_project_uri()}/help/{page.name}", page.name


def test_a_scaffolded_page_names_its_online_page_too() -> None:
    assert f"{_project_uri()}/help" == ONLINE_PAGES
    assert f"online version: {ONLINE_PAGES}/Get-HpcNode.md\n" in scaffold(CommandMetadata("Get-HpcNode"))


def test_the_online_page_is_the_first_related_link() -> None:
    tree = etree.fromstring(compile_pages(command_pages(HELP))["CCPPSH.dll-Help.xml"])
    for command in tree:
        name = command.findtext("command:details/command:name", namespaces=NS)
        first = command.find("command:relatedLinks/maml:navigationLink", NS)
        assert first is not None, name
        assert first.findtext("maml:linkText", namespaces=NS) == "Online Version:"
        assert first.findtext("maml:uri", namespaces=NS) == f"{_project_uri()}/help/{name}.md"


def test_get_help_has_an_online_target_for_every_cmdlet() -> None:
    script = r"""
foreach ($c in (Get-Module HPC).ExportedCmdlets.Keys) {
    $link = @((Get-Help $c -Full).relatedLinks.navigationLink)[0]
    'online|' + $c + '|' + $link.linkText + '|' + $link.uri
}
"""
    result = run_pwsh(script)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("online|")]
    assert len(lines) >= 11
    for line in lines:
        _, name, text, uri = line.split("|")
        assert (text, uri) == ("Online Version:", f"{_project_uri()}/help/{name}.md")
