// The node cmdlets: nodes, their states and history, node groups, the cluster overview. Behaviour is in Python.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsCommon.Get, "HpcNode")]
    [OutputType(typeof(HpcNode))]
    public sealed class GetHpcNodeCommand : HpcCmdlet
    {
        [Parameter(Position = 1)] public string[] Name { get; set; }
        [Parameter] public string[] GroupName { get; set; }
        [Parameter(ValueFromPipeline = true)] public HpcGroup Group { get; set; }
        [Parameter] public ClusterNodeState[] State { get; set; }
        [Parameter] public NodeHealth[] Health { get; set; }
        [Parameter] public NodeHealthState[] HealthState { get; set; }
        [Parameter] public string[] TemplateName { get; set; }
        [Parameter] public string[] Location { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcNode", Arguments());
    }

    [Cmdlet(VerbsCommon.Set, "HpcNodeState", DefaultParameterSetName = "Name", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(HpcNode))]
    public sealed class SetHpcNodeStateCommand : HpcCmdlet
    {
        [Parameter(Mandatory = true)] [ValidateSet("Online", "Offline", "Rejected", IgnoreCase = true)] public string State { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }
        [Parameter] public SwitchParameter Async { get; set; }
        [Parameter(ParameterSetName = "Name", Mandatory = true, Position = 1)] public string[] Name { get; set; }
        [Parameter(ParameterSetName = "Node", Mandatory = true, ValueFromPipeline = true)] public HpcNode[] Node { get; set; }

        private readonly List<string> _piped = new List<string>();

        // Piped nodes are gathered, so that draining many nodes waits for them together, not one by one.
        protected override void ProcessRecord()
        {
            if (ParameterSetName == "Node") _piped.AddRange(Node.Where(n => n != null).Select(n => n.NetBiosName));
            else ConfirmThenEmit("Set-HpcNodeState", Arguments());
        }

        protected override void EndProcessing()
        {
            if (ParameterSetName == "Node" && _piped.Count > 0) ConfirmThenEmit("Set-HpcNodeState", Arguments(("Node", _piped.ToArray())));
        }
    }

    [Cmdlet(VerbsCommon.Get, "HpcNodeStateHistory", DefaultParameterSetName = "Name")]
    [OutputType(typeof(HpcNodeHistory))]
    public sealed class GetHpcNodeStateHistoryCommand : HpcCmdlet
    {
        [Parameter(Mandatory = true, Position = 1)] public DateTime StartDate { get; set; }
        [Parameter(Mandatory = true, Position = 2)] public DateTime EndDate { get; set; }
        [Parameter(ParameterSetName = "Name")] public string[] Name { get; set; }
        [Parameter(ParameterSetName = "Node", ValueFromPipeline = true)] public HpcNode[] Node { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcNodeStateHistory", Arguments());
    }

    [Cmdlet(VerbsCommon.Get, "HpcGroup", DefaultParameterSetName = "Name")]
    [OutputType(typeof(HpcGroup))]
    public sealed class GetHpcGroupCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "Name", Position = 1)] public string[] Name { get; set; }
        [Parameter(ParameterSetName = "Id", Mandatory = true)] [Int32Array] public int[] Id { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcGroup", Arguments());
    }

    [Cmdlet(VerbsCommon.New, "HpcGroup")]
    [OutputType(typeof(HpcGroup))]
    public sealed class NewHpcGroupCommand : HpcCmdlet
    {
        [Parameter(Mandatory = true, Position = 1)] [ValidateLength(1, 64)] public string Name { get; set; }
        [Parameter] public string Description { get; set; }

        protected override void ProcessRecord() => Emit("New-HpcGroup", Arguments());
    }

    [Cmdlet(VerbsCommon.Add, "HpcGroup", DefaultParameterSetName = "Name-NodeName")]
    [OutputType(typeof(void))]
    public sealed class AddHpcGroupCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "Name-NodeName", Mandatory = true, Position = 1)]
        [Parameter(ParameterSetName = "Name-Node", Mandatory = true, Position = 1)]
        public string[] Name { get; set; }

        [Parameter(ParameterSetName = "Id-NodeName", Mandatory = true, Position = 1)]
        [Parameter(ParameterSetName = "Id-Node", Mandatory = true, Position = 1)]
        [Int32Array]
        public int[] Id { get; set; }

        [Parameter(ParameterSetName = "Name-Node", Mandatory = true, ValueFromPipeline = true)]
        [Parameter(ParameterSetName = "Id-Node", Mandatory = true, ValueFromPipeline = true)]
        public HpcNode[] Node { get; set; }

        [Parameter(ParameterSetName = "Name-NodeName", Mandatory = true)]
        [Parameter(ParameterSetName = "Id-NodeName", Mandatory = true)]
        public string[] NodeName { get; set; }

        protected override void ProcessRecord() => Emit("Add-HpcGroup", Arguments());
    }

    [Cmdlet(VerbsCommon.Remove, "HpcGroup", DefaultParameterSetName = "Name", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(void))]
    public sealed class RemoveHpcGroupCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "Name", Mandatory = true, Position = 1)] public string[] Name { get; set; }
        [Parameter(ParameterSetName = "Id", Mandatory = true, Position = 1)] [Int32Array] public int[] Id { get; set; }
        [Parameter(ValueFromPipeline = true)] public HpcNode[] Node { get; set; }
        [Parameter] public string[] NodeName { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Remove-HpcGroup", Arguments());
    }

    [Cmdlet(VerbsCommon.Get, "HpcClusterOverview")]
    [OutputType(typeof(ClusterOverview))]
    public sealed class GetHpcClusterOverviewCommand : HpcCmdlet
    {
        protected override void ProcessRecord() => Emit("Get-HpcClusterOverview", Arguments());
    }
}
