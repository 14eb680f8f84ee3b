"""Each cmdlet's engine metadata against HPC Pack's documented surface (reference §3, §4)."""

from __future__ import annotations

import subprocess

import pytest

from hpcpack.helpc import metadata

from .conftest import PWSH, ROOT

# command -> (default set, {(set, parameter): (type, position, mandatory, pipeline)})
REFERENCE: dict[str, tuple[str, dict[tuple[str, str], tuple[str, str, bool, str]]]] = {
    "Stop-HpcJob": ("id", {("id", "Id"): ("Int32[]", "1", True, "False"),
                           ("job", "Job"): ("HpcJob[]", "Named", True, "True (ByValue)"),
                           ("id", "State"): ("String", "Named", False, "False"),
                           ("id", "Force"): ("SwitchParameter", "Named", False, "False"),
                           ("id", "Scheduler"): ("String[]", "Named", False, "False")}),
    "New-HpcJob": ("(All)", {("(All)", "Job"): ("HpcJob", "Named", False, "True (ByValue)"),
                             ("(All)", "JobFile"): ("String", "Named", False, "False"),
                             ("(All)", "Priority"): ("String", "Named", False, "False"),
                             ("(All)", "NumCores"): ("String", "Named", False, "False"),
                             ("(All)", "RunUntilCanceled"): ("Boolean", "Named", False, "False"),
                             ("(All)", "Exclusive"): ("Boolean", "Named", False, "False"),
                             ("(All)", "JobEnv"): ("String[]", "Named", False, "False"),
                             ("(All)", "ParentJobIds"): ("Int32[]", "Named", False, "False"),
                             ("(All)", "HoldUntil"): ("DateTime", "Named", False, "False")}),
    "Add-HpcTask": ("job", {("job", "Job"): ("HpcJob", "Named", True, "True (ByValue)"),
                            ("id", "JobId"): ("Int32", "Named", True, "False"),
                            ("job", "CommandLine"): ("String", "Named", False, "False"),
                            ("job", "Parametric"): ("SwitchParameter", "Named", False, "False"),
                            ("job", "Type"): ("TaskType", "Named", False, "False"),
                            ("id", "Depend"): ("String[]", "Named", False, "False"),
                            ("id", "Rerunnable"): ("Boolean", "Named", False, "False")}),
    "Submit-HpcJob": ("job", {("job", "Job"): ("HpcJob[]", "Named", True, "True (ByValue)"),
                              ("id", "Id"): ("Int32[]", "1", True, "False"),
                              ("id", "Credential"): ("PSCredential", "Named", False, "False")}),
    "Get-HpcJob": ("id", {("id", "Id"): ("Int32", "1", False, "True (ByValue)"),
                          ("id", "State"): ("JobState", "Named", False, "False"),
                          ("id", "Owner"): ("String", "Named", False, "False"),
                          ("id", "BeginSubmitDate"): ("DateTime", "Named", False, "False"),
                          ("nodename", "NodeName"): ("String[]", "Named", True, "False")}),
    "Set-HpcJob": ("id", {("id", "Id"): ("Int32", "1", True, "False"),
                          ("job", "Job"): ("HpcJob", "Named", True, "True (ByValue)"),
                          ("id", "ClearExcludedNodes"): ("SwitchParameter", "Named", False, "False"),
                          ("id", "RunUntilCanceled"): ("Boolean", "Named", False, "False")}),
    "Export-HpcJob": ("job", {("job", "Job"): ("HpcJob", "Named", True, "True (ByValue)"),
                              ("id", "Id"): ("Int32", "1", True, "False"),
                              ("id", "Path"): ("String", "Named", True, "False"),
                              ("id", "Force"): ("SwitchParameter", "Named", False, "False")}),
    "Get-HpcTask": ("id", {("id", "JobId"): ("Int32", "Named", True, "False"),
                           ("job", "Job"): ("HpcJob", "Named", True, "True (ByValue)"),
                           ("id", "TaskId"): ("Int32", "Named", False, "False"),
                           ("id", "State"): ("TaskState[]", "Named", False, "False")}),
    "Stop-HpcTask": ("id", {("id", "JobId"): ("Int32", "Named", True, "False"),
                            ("id", "TaskId"): ("Int32", "Named", True, "False"),
                            ("id", "SubTaskId"): ("Int32", "Named", False, "False"),
                            ("task", "Task"): ("HpcTask", "Named", True, "True (ByValue)"),
                            ("task", "State"): ("String", "Named", False, "False")}),
    "Get-HpcJobHistory": ("date", {("date", "StartDate"): ("DateTime", "1", True, "False"),
                                   ("date", "EndDate"): ("DateTime", "2", True, "False")}),
    # HPC Pack's Set-HpcTask and Export-HpcTask (hpcpack-facts §4.9, §4.10): -Parametric is a Boolean here.
    "Set-HpcTask": ("task", {("task", "Task"): ("HpcTask", "Named", True, "True (ByValue)"),
                             ("id", "JobId"): ("Int32", "Named", True, "False"),
                             ("id", "TaskId"): ("Int32", "Named", True, "False"),
                             ("id", "Parametric"): ("Boolean", "Named", False, "False"),
                             ("task", "NumCores"): ("String", "Named", False, "False")}),
    "Export-HpcTask": ("task", {("task", "Task"): ("HpcTask", "Named", True, "True (ByValue)"),
                                ("id", "JobId"): ("Int32", "Named", True, "False"),
                                ("id", "TaskId"): ("Int32", "Named", True, "False"),
                                ("task", "Path"): ("String", "Named", True, "False"),
                                ("id", "Force"): ("SwitchParameter", "Named", False, "False")}),
    "Get-HpcJobTemplate": ("(All)", {("(All)", "Name"): ("String[]", "0", False, "True (ByValue)")}),
    "Import-HpcJobTemplate": ("(All)", {("(All)", "Path"): ("String", "0", True, "False")}),
}
CHANGERS = {"Stop-HpcJob": "Medium", "Stop-HpcTask": "Medium", "Export-HpcJob": "Medium",
            "Set-HpcClusterProperty": "Medium", "New-HpcJob": "Low", "Add-HpcTask": "Low", "Submit-HpcJob": "Low",
            "Set-HpcJob": "Low", "Set-HpcTask": "Low", "Export-HpcTask": "Medium", "New-HpcJobTemplate": "Low",
            "Remove-HpcJobTemplate": "High", "Export-HpcJobTemplate": "Medium", "Import-HpcJobTemplate": "Medium"}


@pytest.fixture(scope="module")
def engine() -> dict[str, metadata.CommandMetadata]:
    result = subprocess.run([str(PWSH), "-NoProfile", "-NonInteractive", "-File",
                             str(ROOT / "tools" / "command-metadata.ps1")], capture_output=True, text=True,
                            timeout=120, check=True)
    return metadata.parse(result.stdout.splitlines())


@pytest.mark.parametrize("name", REFERENCE)
def test_cmdlet_surface_matches_hpc_pack(engine: dict[str, metadata.CommandMetadata], name: str) -> None:
    default, parameters = REFERENCE[name]
    command = engine[name]
    assert (command.default_set or "(All)") == default
    for (set_name, parameter), (type_name, position, mandatory, pipeline) in parameters.items():
        found = command.parameters[parameter][set_name]
        assert (found.type, found.position, found.required, found.pipeline) == \
            (type_name, position, mandatory, pipeline), (name, set_name, parameter)


def test_state_parameters_accept_only_finished_and_enums_list_their_names(
        engine: dict[str, metadata.CommandMetadata]) -> None:
    assert engine["Stop-HpcJob"].parameters["State"]["id"].accepted == ("Finished",)
    assert engine["Stop-HpcTask"].parameters["State"]["id"].accepted == ("Finished",)
    assert "All" in engine["Get-HpcJob"].parameters["State"]["id"].accepted
    assert engine["Add-HpcTask"].parameters["Type"]["job"].accepted == \
        ("Basic", "ParametricSweep", "NodePrep", "NodeRelease", "Service")


def test_every_changing_cmdlet_supports_whatif_and_confirm(engine: dict[str, metadata.CommandMetadata]) -> None:
    for name in CHANGERS:
        params = engine[name].parameters
        assert "WhatIf" in params and "Confirm" in params, name
    names = ",".join(f"'{n}'" for n in CHANGERS)
    script = (f"Import-Module '{ROOT}/module/HPC.psd1'; foreach ($c in {names}) {{ $c + '|' + "
              "(Get-Command $c).ImplementingType.GetCustomAttributes([Management.Automation.CmdletAttribute], "
              "$false)[0].ConfirmImpact }")
    out = subprocess.run([str(PWSH), "-NoProfile", "-NonInteractive", "-Command", script], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert dict(line.split("|") for line in out.split()) == CHANGERS
    for name in ("Get-HpcJob", "Get-HpcTask", "Get-HpcJobHistory", "Get-HpcClusterProperty"):
        assert "WhatIf" not in engine[name].parameters, name
