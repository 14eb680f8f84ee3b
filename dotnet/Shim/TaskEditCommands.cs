// Set-HpcTask and Export-HpcTask. Behaviour is in Python (cmdlets/tasks.py).
using System.Management.Automation;
using Microsoft.Hpc.Scheduler.Properties;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsCommon.Set, "HpcTask", DefaultParameterSetName = "task", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
    [OutputType(typeof(HpcTask))]
    public sealed class SetHpcTaskCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "task", Mandatory = true, ValueFromPipeline = true)] public HpcTask Task { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(JobIdCompleter))] public int JobId { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(TaskIdCompleter))] public int TaskId { get; set; }
        [Parameter] public string CommandLine { get; set; }
        [Parameter] public string Name { get; set; }
        [Parameter] public bool Exclusive { get; set; }
        [Parameter] public bool FailJobOnFailure { get; set; }
        [Parameter] public int FailJobOnFailureCount { get; set; }
        [Parameter] public bool Rerunnable { get; set; }
        [Parameter] public string RunTime { get; set; }
        [Parameter] public string NumNodes { get; set; }
        [Parameter] public string NumSockets { get; set; }
        [Parameter] public string NumCores { get; set; }
        [Parameter] public string WorkDir { get; set; }
        [Parameter] public string Stdin { get; set; }
        [Parameter] public string Stdout { get; set; }
        [Parameter] public string Stderr { get; set; }
        [Parameter] public string ValidExitCodes { get; set; }
        [Parameter] public string[] Depend { get; set; }
        [Parameter] public string[] CustomProperties { get; set; }
        [Parameter] public string[] Env { get; set; }
        [Parameter] public bool Parametric { get; set; }
        [Parameter] public TaskType Type { get; set; }
        [Parameter] public int Start { get; set; }
        [Parameter] public int End { get; set; }
        [Parameter] public int Increment { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Set-HpcTask", Arguments());
    }

    [Cmdlet(VerbsData.Export, "HpcTask", DefaultParameterSetName = "task", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class ExportHpcTaskCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "task", Mandatory = true, ValueFromPipeline = true)] public HpcTask Task { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(JobIdCompleter))] public int JobId { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(TaskIdCompleter))] public int TaskId { get; set; }
        [Parameter(Mandatory = true)] public string Path { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Export-HpcTask", Arguments());
    }
}
