// The task cmdlets. Behaviour is in Python.
using System.Management.Automation;
using Microsoft.Hpc.Scheduler.Properties;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsCommon.Get, "HpcTask", DefaultParameterSetName = "id")]
    [OutputType(typeof(HpcTask))]
    public sealed class GetHpcTaskCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(JobIdCompleter))] public int JobId { get; set; }
        [Parameter(ParameterSetName = "job", Mandatory = true, ValueFromPipeline = true)] public HpcJob Job { get; set; }
        [Parameter] [ArgumentCompleter(typeof(TaskIdCompleter))] public int TaskId { get; set; }
        [Parameter] public int SubTaskId { get; set; }
        [Parameter] public TaskState[] State { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcTask", Arguments());
    }

    [Cmdlet(VerbsLifecycle.Stop, "HpcTask", DefaultParameterSetName = "id", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class StopHpcTaskCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(StoppableJobIdCompleter))] public int JobId { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(TaskIdCompleter))] public int TaskId { get; set; }
        [Parameter(ParameterSetName = "id")] public int SubTaskId { get; set; }
        [Parameter(ParameterSetName = "task", Mandatory = true, ValueFromPipeline = true)] public HpcTask Task { get; set; }
        [Parameter] public string Message { get; set; }
        [Parameter] [ValidateSet("Finished")] public string State { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Stop-HpcTask", Arguments());
    }
}
