"""The help compiler as platyPS: the kinds of page where it used to differ, a folder with broken
pages, the command line's modes, and v2 pages against their v1 twins.

Each page under tests/data/helpc/kinds/ is ours; its .xml twin is the MAML platyPS v1's
New-ExternalHelp writes for it (worked out from platyPS 0.14's parser and transformer rules).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from hpcpack.helpc.build import command_pages, compile_each, compile_pages, main
from hpcpack.helpc.errors import HelpError
from hpcpack.helpc.markdown import parse_page
from hpcpack.helpc.model import build_all

from .conftest import ROOT

DATA = ROOT / "tests" / "data" / "helpc"
KINDS = DATA / "kinds"
TWINS = DATA / "twins"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "platyps"
NS = {"maml": "http://schemas.microsoft.com/maml/2004/10",
      "command": "http://schemas.microsoft.com/maml/dev/command/2004/10",
      "dev": "http://schemas.microsoft.com/maml/dev/2004/10"}
HELP_FILE = "HpcTest.dll-Help.xml"


def _maml(page: Path) -> bytes:
    return compile_pages([page], strict=False)[HELP_FILE]


def _tree(page: Path) -> etree._Element:
    return etree.fromstring(_maml(page))


def _paras(element: etree._Element, path: str) -> list[str]:
    return [p.text or "" for p in element.findall(path + "/maml:para", NS)]


@pytest.mark.parametrize("page", sorted(p.name for p in KINDS.glob("*.md")))
def test_each_kind_of_page_compiles_to_the_maml_platyps_writes(page: str) -> None:
    assert _maml(KINDS / page) == (KINDS / page).with_suffix(".xml").read_bytes()


def test_parameter_blocks_are_key_value_lines_not_yaml() -> None:
    tree = _tree(KINDS / "Set-HpcThrottle.md")
    defaults = [d.text for d in tree.findall("command:command/command:parameters/command:parameter/"
                                            "dev:defaultValue", NS)]
    assert defaults == ["[Int32]::MaxValue", "[System.IO.FileShare]::Read, Write"]


def test_a_list_item_continued_on_an_indented_line_has_no_trailing_space() -> None:
    paras = _paras(_tree(KINDS / "Get-HpcScope.md"), "command:command/maml:description")
    assert "- Zero means the current" in paras
    assert not [p for p in paras if p.endswith(" ")]


def test_a_list_item_continued_with_emphasis_stays_one_paragraph() -> None:
    paras = _paras(_tree(KINDS / "Get-HpcTaskError.md"), "command:command/maml:description")
    assert paras[2] == "- and in the variable named by the   common parameter -ErrorVariable , if given."
    assert len(paras) == 4


def test_code_in_a_parameter_description_has_empty_paragraphs_around_it() -> None:
    [variables, name] = _tree(KINDS / "New-HpcEnvironment.md").findall(
        "command:command/command:parameters/command:parameter", NS)
    paras = _paras(variables, "maml:description")
    assert paras == ["The variables, as a hashtable:", "", "@{", "    OMP_NUM_THREADS = 4", "",
                     "    SCRATCH = '/scratch/$env:USER'", "}", "", "Later entries win."]
    assert _paras(name, "maml:description") == ["job-env"]  # a code block alone: no empty paragraphs


def test_a_trailing_space_inside_a_paragraph_doubles_the_space() -> None:
    tree = _tree(KINDS / "Rename-HpcJob.md")
    [description] = _paras(tree, "command:command/maml:description")
    assert description.startswith("The new name is a string.  Beginning with version 2")
    assert description.endswith("could not be.\nA line after a hard break.")  # two spaces: a line break


def test_fences_indented_by_up_to_three_spaces_are_fences() -> None:
    data = _maml(KINDS / "Wait-HpcJob.md")
    assert b"\x00" not in data
    tree = etree.fromstring(data)
    [item] = tree.findall("command:command/command:syntax/command:syntaxItem", NS)
    assert [p.findtext("maml:name", namespaces=NS) for p in item.findall("command:parameter", NS)] == \
        ["Id", "Timeout"]
    assert tree.findtext("command:command/command:examples/command:example/dev:code", namespaces=NS) == \
        "Wait-HpcJob -Id 7 -Timeout 60"
    assert _paras(tree, "command:command/maml:alertSet/maml:alert") == ["Waiting does not change the jobs."]


def test_two_commands_in_one_file_both_compile_sharing_platyps_parameter_set_table() -> None:
    commands = _tree(KINDS / "Add-HpcHistory.md").findall("command:command", NS)
    assert [c.findtext("command:details/command:name", namespaces=NS) for c in commands] == \
        ["Add-HpcHistory", "Clear-HpcHistory"]
    items = commands[1].findall("command:syntax/command:syntaxItem", NS)
    # platyPS does not reset its parameter-set table between the commands of one file
    assert [[p.findtext("maml:name", namespaces=NS) for p in i.findall("command:parameter", NS)]
            for i in items] == [["Entry"], ["Before"]]
    for command in commands:
        first = command.find("command:relatedLinks/maml:navigationLink", NS)
        assert first is not None and first.findtext("maml:linkText", namespaces=NS) == "Online Version:"


def test_one_broken_page_does_not_stop_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = DATA / "broken"
    assert main(["--platyps", str(folder), str(tmp_path)]) == 2
    tree = etree.fromstring((tmp_path / "en-US" / HELP_FILE).read_bytes())
    names = [c.findtext("command:details/command:name", namespaces=NS) for c in tree]
    assert names == ["Get-HpcNode", "Set-HpcNode"]
    err = capsys.readouterr().err
    assert f"{folder / 'Get-HpcNodeState.md'}:11: Unexpected header name 'STATE'" in err
    assert f"{folder / 'Set-HpcNodeState.md'}:16: Invalid yaml: unknown key 'Colour'" in err
    assert "2 of 4 page(s) failed" in err


def test_strict_mode_reports_every_broken_page_and_writes_nothing(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(DATA / "broken"), str(tmp_path)]) == 2
    assert not (tmp_path / "en-US").exists()
    err = capsys.readouterr().err
    assert "Get-HpcNodeState.md:11:" in err and "Set-HpcNodeState.md:16:" in err
    assert "nothing written" in err


def test_compile_each_keeps_the_pages_that_compile() -> None:
    results = compile_each(command_pages(DATA / "broken"), strict=False)
    assert [(r.path.name, r.error is None) for r in results] == [
        ("Get-HpcNode.md", True), ("Get-HpcNodeState.md", False), ("Set-HpcNode.md", True),
        ("Set-HpcNodeState.md", False)]
    with pytest.raises(HelpError):
        compile_pages(command_pages(DATA / "broken"), strict=False)


@pytest.mark.parametrize("folder, pages, out, tag", [
    ("pses-vscode-cfb31ca1", "docs", ".", "maml:Description"),
    ("psresourceget-b5d3e4a0", "help", "help", "maml:description"),
])
def test_the_command_line_compiles_foreign_pages_as_platyps(folder: str, pages: str, out: str, tag: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    base = FIXTURES / folder
    args = [str(base / pages), str(base / out)]
    assert main(["--check", "--platyps", "--description-tag", tag, *args]) == 0
    report = capsys.readouterr().out.splitlines()
    assert len(report) == len(command_pages(base / pages))
    assert all(line.startswith("ok ") for line in report)
    if folder == "psresourceget-b5d3e4a0":  # strict mode refuses pages platyPS accepts
        assert main(["--check", *args]) == 2
        assert "FAILED " in capsys.readouterr().out


@pytest.mark.parametrize("page", ["Get-HpcNodeGroup.md", "Remove-HpcNodeGroup.md"])
def test_a_v2_page_gives_the_maml_of_its_v1_twin(page: str) -> None:
    v1, v2 = parse_page(TWINS / "v1" / page), parse_page(TWINS / "v2" / page)
    assert not v1.is_v2 and v2.is_v2
    assert _maml(TWINS / "v2" / page) == _maml(TWINS / "v1" / page)


def test_a_parameter_in_several_sets_offers_the_accepted_values_of_all_its_blocks() -> None:
    for version in ("v1", "v2"):
        [command] = build_all(parse_page(TWINS / version / "Get-HpcNodeGroup.md"))
        scheduler = next(p for p in command.parameters if p.name == "Scheduler")
        assert len(scheduler.blocks) == 2
        assert [b.accepted_values for b in scheduler.blocks] == [["localhost", "headnode"] * 2] * 2


def test_a_module_can_mix_v1_and_v2_pages() -> None:
    mixed = compile_pages([TWINS / "v1" / "Get-HpcNodeGroup.md", TWINS / "v2" / "Remove-HpcNodeGroup.md"],
                          strict=False)
    assert mixed == compile_pages(command_pages(TWINS / "v1"), strict=False)


def test_v2_sections_are_still_checked() -> None:
    page = TWINS / "v2" / "Remove-HpcNodeGroup.md"
    source = page.read_text().replace("## ALIASES", "## ALIAS")
    with pytest.raises(HelpError) as e:
        build_all(parse_page(page, source))
    assert "Unexpected header name 'ALIAS'" in e.value.message


def test_syntax_items_follow_platyps_set_table() -> None:
    items = _tree(KINDS / "Get-HpcPool.md").findall("command:command/command:syntax/command:syntaxItem", NS)
    rows = [[(p.findtext("maml:name", namespaces=NS), p.get("position"), p.get("required"))
             for p in item.findall("command:parameter", NS)] for item in items]
    assert rows == [[("Name", "1", "false"), ("Weight", "named", "true")],  # ByWeight: the later block
                    [("Name", "1", "false"), ("Weight", "2", "false"), ("Share", "named", "false")]]


def test_a_line_starting_with_empty_braces_loses_them_as_in_platyps() -> None:
    [para] = _paras(_tree(KINDS / "Get-HpcPool.md"), "command:command/maml:description")
    assert para.startswith("A pool is written as a hashtablestands for an empty one")


def test_a_yaml_block_under_common_parameters_is_refused_as_platyps_does(tmp_path: Path) -> None:
    page = tmp_path / "Get-X.md"
    page.write_text("# Get-X\n## PARAMETERS\n### CommonParameters\nCommon.\n\n```yaml\nType: String\n```\n")
    with pytest.raises(HelpError) as e:
        compile_pages([page], strict=False)
    assert (e.value.line, e.value.message) == (6, "Expect Heading: CommonParameters has no yaml block")


def test_a_v2_page_may_keep_blocks_v1_wrote(tmp_path: Path) -> None:
    page = TWINS / "v2" / "Remove-HpcNodeGroup.md"
    v1_block = ("```yaml\nType: String\nParameter Sets: (All)\nAliases:\n\nRequired: True\nPosition: 0\n"
                "Default value: None\nAccept pipeline input: True (ByValue)\nAccept wildcard characters: False\n```")
    source = page.read_text()
    start = source.index("```yaml")
    mixed = tmp_path / page.name
    mixed.write_text(source[:start] + v1_block + source[source.index("```\n", start + 3) + 3:])
    assert mixed.read_text().count("ParameterSets:") == 1  # -Name's block is v1's now, -WhatIf's still v2's
    assert _maml(mixed) == _maml(TWINS / "v1" / page.name)


def test_a_yaml_list_in_v1_front_matter_is_read_not_refused(tmp_path: Path) -> None:
    page = tmp_path / "Get-X.md"
    page.write_text("---\nexternal help file: X.dll-Help.xml\naliases:\n  - gx\n  - getx\nschema: 2.0.0\n---\n# Get-X\n")
    assert parse_page(page).front_matter == {"external help file": "X.dll-Help.xml", "aliases": "gx, getx",
                                             "schema": "2.0.0"}
    assert list(compile_pages([page], strict=False)) == ["X.dll-Help.xml"]
