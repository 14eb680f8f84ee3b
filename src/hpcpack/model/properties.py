"""Every job and task parameter, declared once: its name (HPC Pack's), its .NET type as the module
declares it, and the property of HpcJob or HpcTask that shows it.

The cmdlets pass exactly these parameters on (`cmdlets.jobs`), `model.jobspec` has one setter for
each (an unknown name is refused, never stored aside), the `job` command's options name them, and
`tests/test_properties.py` checks the C# module's parameters and objects, the help pages and the
`job` command against this table. Source of names and types: hpcpack-facts.md §4.1, §4.2, §9.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parameter:
    name: str                 # the cmdlet parameter (and the job file's attribute, where it has one)
    type: str                 # its .NET type: String, Int32, Boolean, String[], Int32[], DateTime, ...
    shown: str | None         # the HpcJob/HpcTask property that shows its effect (None: refused)
    while_running: bool = False  # Set-HpcJob may change it on a Running job (HPC Pack's list)


# New-HpcJob and Set-HpcJob (JobPropertyCmdlet in dotnet/Shim/JobPropertyParameters.cs).
JOB = (
    Parameter("Name", "String", "Name", True),
    Parameter("Project", "String", "Project", True),
    Parameter("TemplateName", "String", "Template"),
    Parameter("Priority", "String", "Priority", True),
    Parameter("RunTime", "String", "Runtime", True),
    Parameter("NumCores", "String", "MinCores"),
    Parameter("NumSockets", "String", "MinSockets"),
    Parameter("NumNodes", "String", "MinNodes"),
    Parameter("NumGpus", "String", "NumGpus"),
    Parameter("RequestedNodes", "String[]", "RequestedNodes"),
    Parameter("NodeGroups", "String[]", "NodeGroups"),
    Parameter("NodeGroupOp", "String", "NodeGroupOp"),
    Parameter("OrderBy", "String[]", "OrderBy"),
    Parameter("Exclusive", "Boolean", "IsExclusive"),
    Parameter("RunUntilCanceled", "Boolean", "RunUntilCanceled", True),
    Parameter("FailOnTaskFailure", "Boolean", "FailOnTaskFailure"),
    Parameter("FailDependentTasks", "Boolean", "FailDependentTasks"),
    Parameter("MinMemoryPerNode", "Int32", "MinMemory"),
    Parameter("MaxMemoryPerNode", "Int32", "MaxMemory"),
    Parameter("MinCoresPerNode", "Int32", "MinCoresPerNode"),
    Parameter("MaxCoresPerNode", "Int32", "MaxCoresPerNode"),
    Parameter("EstimatedProcessMemory", "Int32", "EstimatedProcessMemory"),
    Parameter("License", "String[]", "SoftwareLicense"),
    Parameter("Progress", "Int32", "Progress", True),
    Parameter("ProgressMessage", "String", "ProgressMessage", True),
    Parameter("NotifyOnStart", "Boolean", "NotifyOnStart"),
    Parameter("NotifyOnCompletion", "Boolean", "NotifyOnCompletion", True),
    Parameter("EmailAddress", "String", "EmailAddress"),
    Parameter("HoldUntil", "DateTime", "HoldUntil"),
    Parameter("SingleNode", "Boolean", "SingleNode"),
    Parameter("JobEnv", "String[]", "EnvironmentVariables", True),
    Parameter("ParentJobIds", "Int32[]", "ParentJobIds"),
    Parameter("TaskExecutionFailureRetryLimit", "Int32", "TaskExecutionFailureRetryLimit"),
    Parameter("ValidExitCodes", "String", "ValidExitCodes"),
    Parameter("CustomProperties", "String[]", "CustomProperties"),
)
# Set-HpcJob only: changes to the excluded nodes.
JOB_CHANGES = (
    Parameter("AddExcludedNodes", "String[]", "ExcludedNodes", True),
    Parameter("RemoveExcludedNodes", "String[]", "ExcludedNodes", True),
    Parameter("ClearExcludedNodes", "SwitchParameter", "ExcludedNodes", True),
)
# Add-HpcTask (dotnet/Shim/JobCommands.cs).
TASK = (
    Parameter("CommandLine", "String", "CommandLine"),
    Parameter("Name", "String", "Name"),
    Parameter("Exclusive", "Boolean", "IsExclusive"),
    Parameter("FailJobOnFailure", "Boolean", "FailJobOnFailure"),
    Parameter("FailJobOnFailureCount", "Int32", "FailJobOnFailureCount"),
    Parameter("Rerunnable", "Boolean", "IsRerunnable"),
    Parameter("RunTime", "String", "RuntimeLimit"),
    Parameter("NumNodes", "String", "MinNodes"),      # whole nodes of the job's; the command starts on the first
    Parameter("NumSockets", "String", "MinSockets"),  # that many sockets' cores on one node
    Parameter("NumCores", "String", "MinCores"),
    Parameter("RequiredNodes", "String[]", "RequiredNodes"),
    Parameter("WorkDir", "String", "WorkDirectory"),
    Parameter("Stdin", "String", "StdInFilePath"),
    Parameter("Stdout", "String", "StdOutFilePath"),
    Parameter("Stderr", "String", "StdErrFilePath"),
    Parameter("ValidExitCodes", "String", "ValidExitCodes"),
    Parameter("Depend", "String[]", "DependsOn"),
    Parameter("CustomProperties", "String[]", "CustomProperties"),
    Parameter("Env", "String[]", "EnvironmentVariables"),
    Parameter("Parametric", "SwitchParameter", "IsParametric"),
    Parameter("Type", "TaskType", "Type"),
    Parameter("Start", "Int32", "StartValue"),
    Parameter("End", "Int32", "EndValue"),
    Parameter("Increment", "Int32", "IncrementValue"),
)

# A job or task file's attributes that no cmdlet parameter sets (kept so that an import exports the same).
JOB_FILE_ONLY = ("AutoCalculatedUnits",)
TASK_FILE_ONLY = ("AutoRequeueCount",)

JOB_NAMES = tuple(p.name for p in (*JOB, *JOB_CHANGES))
TASK_NAMES = tuple(p.name for p in TASK)
RUNNING_CHANGEABLE = frozenset(p.name for p in (*JOB, *JOB_CHANGES) if p.while_running)
