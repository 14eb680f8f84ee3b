// The cluster cmdlets: properties and the job history. Behaviour is in Python.
using System;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsCommon.Get, "HpcClusterProperty")]
    [OutputType(typeof(HpcVariable))]
    public sealed class GetHpcClusterPropertyCommand : HpcCmdlet
    {
        [Parameter(Position = 1)] public string Name { get; set; }
        [Parameter] public SwitchParameter Parameter { get; set; }
        [Parameter] public SwitchParameter Environment { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcClusterProperty", Arguments());
    }

    [Cmdlet(VerbsCommon.Set, "HpcClusterProperty", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class SetHpcClusterPropertyCommand : HpcCmdlet
    {
        [Parameter] [ValidateRange(0, 86400)] public int TaskCancelGracePeriod { get; set; }
        [Parameter] [ValidateRange(0, 86400)] public int NodeReleaseTaskTimeout { get; set; }
        [Parameter] [ValidateRange(0, 3650)] public int TtlCompletedJobs { get; set; }
        [Parameter] [ValidateRange(0, 10000)] public int ExcludedNodesLimit { get; set; }
        [Parameter] public string[] Environment { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Set-HpcClusterProperty", Arguments());
    }

    [Cmdlet(VerbsCommon.Get, "HpcJobHistory", DefaultParameterSetName = "date")]
    [OutputType(typeof(HpcJobHistory), ParameterSetName = new[] { "date" })]
    [OutputType(typeof(HpcJobEvent), ParameterSetName = new[] { "job" })]
    public sealed class GetHpcJobHistoryCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "date", Mandatory = true, Position = 1)] public DateTime StartDate { get; set; }
        [Parameter(ParameterSetName = "date", Mandatory = true, Position = 2)] public DateTime EndDate { get; set; }
        /// <summary>The head node's audit events in the range (HpcJobEvent) instead of one record per ended job.</summary>
        [Parameter(ParameterSetName = "date")] public SwitchParameter Audit { get; set; }
        [Parameter(ParameterSetName = "job", Mandatory = true)] [ArgumentCompleter(typeof(JobIdCompleter))] public int JobId { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcJobHistory", Arguments());
    }
}
