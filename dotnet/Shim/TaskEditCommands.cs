// Set-HpcTask and Export-HpcTask. Behaviour is in Python (cmdlets/tasks.py).
using System.Management.Automation;
using Microsoft.Hpc.Scheduler.Properties;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsCommon.Set, "HpcTask", DefaultParameterSetName = "task", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
    [OutputType(typeof(HpcTask))]
    public sealed class SetHpcTaskCommand : TaskPropertyCmdlet
    {
        [Parameter(ParameterSetName = "task", Mandatory = true, ValueFromPipeline = true)] public HpcTask Task { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(ChangeableJobIdCompleter))] public int JobId { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(TaskIdCompleter))] public int TaskId { get; set; }
        [Parameter] public bool Parametric { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Set-HpcTask", Arguments());
    }

    [Cmdlet(VerbsData.Export, "HpcTask", DefaultParameterSetName = "task", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class ExportHpcTaskCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "task", Mandatory = true, ValueFromPipeline = true)] public HpcTask Task { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(ChangeableJobIdCompleter))] public int JobId { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(TaskIdCompleter))] public int TaskId { get; set; }
        [Parameter(Mandatory = true)] public string Path { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Export-HpcTask", Arguments());
    }
}
