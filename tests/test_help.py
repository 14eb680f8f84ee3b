"""The help compiler against real platyPS output, our pages, malformed pages, and Get-Help itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from hpcpack.helpc import metadata
from hpcpack.helpc.build import command_pages, compile_pages, main
from hpcpack.helpc.errors import HelpError
from hpcpack.helpc.markdown import parse_page
from hpcpack.helpc.model import build

from .conftest import MODULE, PWSH, ROOT, run_pwsh

SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures" / "platyps"
SPEC = SHARED / "spec" / "Stop-HpcJob.md"
HELP = ROOT / "help"
MAML = {"maml": "http://schemas.microsoft.com/maml/2004/10",
        "command": "http://schemas.microsoft.com/maml/dev/command/2004/10",
        "dev": "http://schemas.microsoft.com/maml/dev/2004/10"}


@pytest.mark.parametrize("folder, pages, expected, tag", [
    ("pses-vscode-cfb31ca1", "docs", "en-US/Microsoft.PowerShell.EditorServices.VSCode.dll-Help.xml",
     "maml:Description"),  # built by platyPS 0.14.0, which capitalised parameter descriptions
    ("psresourceget-b5d3e4a0", "help", "help/en-US/PowerShellGet.dll-Help.xml", "maml:description"),
])
def test_the_compiler_reproduces_shipped_help_byte_for_byte(folder: str, pages: str, expected: str,
                                                            tag: str) -> None:
    out = compile_pages(command_pages(FIXTURES / folder / pages), tag, strict=False)
    [(name, data)] = out.items()
    assert name == Path(expected).name
    assert data == (FIXTURES / folder / expected).read_bytes()


def _spec_tree() -> etree._Element:
    data = compile_pages([SPEC], strict=True)["CCPPSH.dll-Help.xml"]
    return etree.fromstring(data)


def test_the_spec_page_compiles_to_two_syntax_items_with_the_rules_attributes() -> None:
    tree = _spec_tree()
    items = tree.findall(".//command:syntaxItem", MAML)
    assert len(items) == 2
    names = [[p.findtext("maml:name", namespaces=MAML) for p in item.findall("command:parameter", MAML)]
             for item in items]
    assert names[0] == ["Id", "Force", "Graceful", "Message", "Scheduler", "State", "Confirm", "WhatIf"]
    assert names[1] == ["Force", "Graceful", "Job", "Message", "Scheduler", "State", "Confirm", "WhatIf"]
    params = {p.findtext("maml:name", namespaces=MAML): p
              for p in tree.find(".//command:parameters", MAML).findall("command:parameter", MAML)}
    assert dict(params["Id"].attrib) == {"required": "true", "variableLength": "true", "globbing": "false",
                                        "pipelineInput": "False", "position": "1", "aliases": "none"}
    assert params["Job"].get("pipelineInput") == "True (ByValue)"
    assert params["Confirm"].get("aliases") == "cf" and params["WhatIf"].get("aliases") == "wi"
    assert params["Force"].findtext("dev:defaultValue", namespaces=MAML) == "False"
    assert params["Force"].find("command:parameterValue", MAML).get("required") == "false"
    assert params["Id"].findtext("dev:type/maml:name", namespaces=MAML) == "Int32[]"


def test_the_spec_examples_split_into_code_and_remarks_and_links_are_kept() -> None:
    tree = _spec_tree()
    examples = tree.findall(".//command:example", MAML)
    assert len(examples) == 4
    first = examples[0]
    assert first.findtext("maml:title", namespaces=MAML) == \
        "-" * 17 + " Example 1: Stop a job by ID " + "-" * 17  # (64 - 27 - 2) // 2 dashes a side
    assert first.findtext("dev:code", namespaces=MAML).startswith("PS C:\\>Stop-HpcJob -Id 45 -Message")
    assert first.findtext("dev:remarks/maml:para", namespaces=MAML).startswith("This command cancels the job")
    links = [(link.findtext("maml:linkText", namespaces=MAML), link.findtext("maml:uri", namespaces=MAML))
             for link in tree.findall(".//maml:navigationLink", MAML)]
    assert links[0] == ("Online Version:", "https://learn.microsoft.com/powershell/module/hpc/stop-hpcjob"
                        "?view=windowsserver2012r2-ps&wt.mc_id=ps-gethelp")
    assert ("Submit-HpcJob", "") in links and len(links) == 6


def _commands(code: str) -> list[str]:
    """An example's commands, one per prompt, as platyPS writes them (a prompt may follow a command directly)."""
    code = code.replace("Submit-HpcJob$Job", "Submit-HpcJob\nPS C:\\> $Job")  # the spec's page lost a line break
    return [c.strip() for c in code.replace("\n", "").split("PS C:\\>") if c.strip()]


def test_our_pages_compile_and_carry_every_spec_parameter_and_example() -> None:
    ours = build(parse_page(HELP / "Stop-HpcJob.md"))
    spec = build(parse_page(SPEC))
    assert [p.name for p in ours.parameters] == [p.name for p in spec.parameters]
    assert len(ours.examples) == len(spec.examples) == 4
    # The same commands; the prompts are a Linux pwsh's (PS /home/alice>), not Windows' (PS C:\>).
    for mine, theirs in zip(ours.examples, spec.examples, strict=True):
        assert mine.code.startswith("PS /home/alice> ") and "PS C:" not in mine.code
        assert _commands(mine.code.replace("PS /home/alice> ", "PS C:\\> ")) == _commands(theirs.code)
    assert ours.notes is not None and any("Configuring, Submitted, Validating, Queued or Running" in n
                                          for n in ours.notes)
    assert any("ConfirmImpact is Medium" in n for n in ours.notes)


MALFORMED = {
    "unknown section": ("# Get-X\n## SYNOPSIS\nx\n## ALIASES\nnone\n", 4, "Unexpected header name"),
    # platyPS reads `Key: value` lines, not YAML (`Required: [oops` is a value): a line needs a colon
    "bad yaml": ("# Get-X\n## PARAMETERS\n### -A\nd\n\n```yaml\nType: String\nRequired True\n```\n", 8,
                 "Invalid yaml"),
    "unknown yaml key": ("# Get-X\n## PARAMETERS\n### -A\nd\n\n```yaml\nType: String\nColour: red\n```\n", 8,
                         "unknown key 'Colour'"),
    "text after the yaml block": ("# Get-X\n## PARAMETERS\n### -A\n```yaml\nType: String\n```\nmore\n", 7,
                                  "text after its yaml block"),
    "code after remarks": ("# Get-X\n## EXAMPLES\n### Example 1\n```\na\n```\nremark\n```\nb\n```\n", 8,
                           "code block after its remarks"),
    "not a link": ("# Get-X\n## RELATED LINKS\n- [a](b)\n", 3, "Expect hyperlink"),
    "heading too deep": ("# Get-X\n#### deep\n", 2, "one level too deep"),
    "no command heading": ("## SYNOPSIS\nx\n", 1, "before the page's '# Command-Name' heading"),
    "front matter without colon": ("---\nschema 2.0.0\n---\n# Get-X\n", 2, "without a colon"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_pages_get_a_diagnostic_with_file_and_line(case: str, tmp_path: Path) -> None:
    source, line, message = MALFORMED[case]
    page = tmp_path / "Get-X.md"
    page.write_text(source)
    with pytest.raises(HelpError) as e:
        compile_pages([page], strict=False)
    assert (e.value.path, e.value.line) == (str(page), line)
    assert message in e.value.message


COMPLETE = """# Get-X
## SYNOPSIS
Gets X.
## SYNTAX
### one (Default)
```
Get-X -A <String>
```
## DESCRIPTION
Gets X.
## EXAMPLES
### Example 1
```
Get-X -A a
```
## PARAMETERS
### -A
The A.

```yaml
Type: String
Parameter Sets: one
Required: True
Position: Named
```
## INPUTS
### None
## OUTPUTS
### None
## NOTES
## RELATED LINKS
"""
STRICT = {
    "missing section": (COMPLETE.replace("## NOTES\n", ""), 1, "missing section(s) NOTES"),
    "misordered sections": (COMPLETE.replace("## DESCRIPTION\nGets X.\n", "").replace(
        "## NOTES\n", "## NOTES\n## DESCRIPTION\nGets X.\n"), 9, "out of order: DESCRIPTION comes here"),
    "parameter without yaml": (COMPLETE.replace("```yaml\nType: String\nParameter Sets: one\nRequired: True\n"
                                                "Position: Named\n```\n", ""), 17, "-A has no ```yaml block"),
    "syntax set without parameters": (COMPLETE.replace("## DESCRIPTION", "### two\n```\nGet-X\n```\n## DESCRIPTION"),
                                      9, "syntax set 'two' has no parameter"),
}


@pytest.mark.parametrize("case", STRICT)
def test_our_pages_must_be_complete_and_consistent(case: str, tmp_path: Path) -> None:
    page = tmp_path / "Get-X.md"
    page.write_text(COMPLETE)
    assert compile_pages([page])  # the template itself is fine
    source, line, message = STRICT[case]
    page.write_text(source)
    with pytest.raises(HelpError) as e:
        compile_pages([page])
    assert (e.value.path, e.value.line) == (str(page), line)
    assert message in e.value.message


def test_a_parameter_without_yaml_belongs_to_no_syntax_set(tmp_path: Path) -> None:
    page = tmp_path / "Get-X.md"
    page.write_text("# Get-X\n## PARAMETERS\n### -Loose\nno yaml here\n\n### -A\n```yaml\nType: String\n"
                    "Parameter Sets: one\nPosition: 0\n```\n")
    help_ = build(parse_page(page))
    [item] = help_.syntax
    assert [p.name for p, _ in item.parameters] == ["A"]
    assert [p.name for p in help_.parameters] == ["Loose", "A"]


def test_the_build_writes_nothing_partial_and_check_catches_drift(tmp_path: Path) -> None:
    help_dir, module = tmp_path / "help", tmp_path / "module"
    help_dir.mkdir()
    (help_dir / "Get-Good.md").write_text(COMPLETE.replace("Get-X", "Get-Good"))
    (help_dir / "Get-Bad.md").write_text("# Get-Bad\n## WRONG\n")
    assert main([str(help_dir), str(module)]) == 2
    assert not (module / "en-US").exists()
    (help_dir / "Get-Bad.md").unlink()
    assert main([str(help_dir), str(module)]) == 0
    assert main(["--check", str(help_dir), str(module)]) == 0
    (help_dir / "Get-Good.md").write_text(COMPLETE.replace("Get-X", "Get-Good").replace("Gets X.", "Changed."))
    assert main(["--check", str(help_dir), str(module)]) == 1


def test_the_committed_help_matches_the_pages() -> None:
    assert main(["--check", str(HELP), str(MODULE.parent)]) == 0


def _engine_metadata() -> dict[str, metadata.CommandMetadata]:
    result = subprocess.run([str(PWSH), "-NoProfile", "-NonInteractive", "-File",
                             str(ROOT / "tools" / "command-metadata.ps1")], capture_output=True, text=True,
                            timeout=120, check=True)
    return metadata.parse(result.stdout.splitlines())


def test_every_exported_cmdlet_has_a_page_whose_metadata_matches_get_command() -> None:
    engine = _engine_metadata()
    assert len(engine) >= 11
    for name, command in engine.items():
        page = HELP / f"{name}.md"
        assert page.exists(), f"{name} has no help page"
        help_ = build(parse_page(page))
        documented = {p.name: p for p in help_.parameters}
        assert set(documented) == set(command.parameters), name
        for param in command.parameters:
            expected = metadata.yaml_blocks(command, param)
            blocks = documented[param].blocks
            assert len(blocks) == len(expected), (name, param)
            for block, (sets, meta) in zip(blocks, expected, strict=True):
                assert [s.lower() for s in block.sets] == [s.lower() for s in sets], (name, param)
                assert block.get("type") == meta.type, (name, param)
                assert block.position == meta.position.lower(), (name, param)
                assert block.required == meta.required, (name, param)
                assert block.get("accept pipeline input") == meta.pipeline, (name, param)
                assert tuple(block.aliases) == meta.aliases, (name, param)
                assert tuple(block.accepted_values) == meta.accepted, (name, param)
        if len(command.sets) > 1:
            assert help_.default_set == command.default_set, name


def test_get_help_shows_our_help_through_the_engine() -> None:
    script = r"""
$h = Get-Help Stop-HpcJob
'synopsis|' + $h.Synopsis
'syntax|' + @($h.syntax.syntaxItem).Count
$full = Get-Help Stop-HpcJob -Full
foreach ($p in $full.parameters.parameter) { 'param|' + $p.name + '|' + $p.required + '|' + $p.position + '|' + $p.pipelineInput }
$ex = Get-Help Stop-HpcJob -Examples
'examples|' + @($ex.examples.example).Count
'example1|' + @($ex.examples.example)[0].code
$force = Get-Help Stop-HpcJob -Parameter Force
'force|' + $force.name + '|' + $force.description[0].Text
$about = Get-Help about_HPC
'about|' + ($about -match 'embedded head node')
foreach ($c in (Get-Module HPC).ExportedCmdlets.Keys) { 'has|' + $c + '|' + ((Get-Help $c).Synopsis -ne '' -and (Get-Help $c).Synopsis -notmatch '^\s*' + $c) }
"""
    result = run_pwsh(script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "synopsis|Cancels jobs, or ends them as finished." in lines
    assert "syntax|2" in lines
    assert "param|Id|true|1|False" in lines and "param|Job|true|named|True (ByValue)" in lines
    assert "examples|4" in lines
    assert any(line.startswith("example1|PS /home/alice> Stop-HpcJob -Id 45 -Message") for line in lines)
    assert any(line.startswith("force|Force|Stops the job at once") for line in lines)
    assert "about|True" in lines
    has = [line for line in lines if line.startswith("has|")]
    assert len(has) >= 11 and all(line.endswith("|True") for line in has), has
