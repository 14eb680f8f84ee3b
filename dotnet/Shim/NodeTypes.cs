// Nodes, node groups, their history and the cluster overview, as HPC Pack's module shows them.
using System;
using System.Globalization;

namespace Microsoft.Hpc.Scheduler.Properties
{
    /// <summary>The scheduler API's node states (flags, as HPC Pack's scheduler API has them).</summary>
    [Flags]
    public enum NodeState
    {
        Online = 1, Draining = 2, Offline = 4, All = 7,
    }
}

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>Get-HpcNode -State: a node's state (this head node uses Online, Draining and Offline).</summary>
    public enum ClusterNodeState
    {
        Unknown, Provisioning, Offline, Starting, Online, Draining, Rejected, Removing, NotDeployed, Stopping,
    }

    /// <summary>Get-HpcNode -HealthState: OK, or Transitional while a node drains.</summary>
    public enum NodeHealthState
    {
        OK, Warning, Error, Transitional, Unapproved,
    }

    /// <summary>Get-HpcNode -Health.</summary>
    public enum NodeHealth
    {
        OK, Unreachable, OngoingOperation, DiagnosticFailed, ProvisioningFailed,
    }

    /// <summary>A node of the cluster (headnode.yaml's nodes).</summary>
    public class HpcNode : IHpcRecord
    {
        public int Id { get; set; }
        public string NetBiosName { get; set; }
        public string Name => NetBiosName;
        public string FullyQualifiedDomainName { get; set; }
        public ClusterNodeState State { get; set; }
        public ClusterNodeState NodeState { get; set; }
        public NodeHealthState HealthState { get; set; }
        public NodeHealth NodeHealth { get; set; }
        public string[] Groups { get; set; }
        public int ProcessorCores { get; set; }
        public int SubscribedCores { get; set; }
        public int Sockets { get; set; }
        public int SubscribedSockets { get; set; }
        /// <summary>Memory in MB.</summary>
        public long Memory { get; set; }
        public string Template { get; set; }
        public string Location { get; set; }
        public string Role { get; set; }
        public int JobsRunning { get; set; }
        public int TasksRunning { get; set; }
        public int CoresInUse { get; set; }
        public int IdleCores { get; set; }
        public int[] RunningJobIds { get; set; }
        public bool Reachable { get; set; }
        public string Scheduler { get; set; }

        object IHpcRecord.GetKey() => NetBiosName;

        public override string ToString() => NetBiosName;
    }

    /// <summary>A node group.</summary>
    public class HpcGroup : IHpcRecord
    {
        public int Id { get; set; }
        public string Name { get; set; }
        public string Description { get; set; }
        public int NodeCount { get; set; }
        public string[] Nodes { get; set; }
        public bool Builtin { get; set; }
        public string Scheduler { get; set; }

        object IHpcRecord.GetKey() => Name;

        public override string ToString() => Name;
    }

    /// <summary>One change of a node's state (Get-HpcNodeStateHistory).</summary>
    public class HpcNodeHistory
    {
        public string NodeName { get; set; }
        public DateTime? Time { get; set; }
        public string State { get; set; }
        public string PreviousState { get; set; }
        public string Actor { get; set; }
        public string Reason { get; set; }
    }

    /// <summary>Get-HpcClusterOverview: nodes by state, cores, jobs and tasks by state.</summary>
    public class ClusterOverview
    {
        public string ClusterName { get; set; }
        public string Version { get; set; }
        public string Scheduler { get; set; }
        public int TotalNodeCount { get; set; }
        public int OnlineNodeCount { get; set; }
        public int ReadyNodeCount { get; set; }
        public int DrainingNodeCount { get; set; }
        public int OfflineNodeCount { get; set; }
        public int UnreachableNodeCount { get; set; }
        public int TotalCoreCount { get; set; }
        public int BusyCoreCount { get; set; }
        public int IdleCoreCount { get; set; }
        public int OfflineCoreCount { get; set; }
        public int TotalJobCount { get; set; }
        public int ConfiguringJobCount { get; set; }
        public int SubmittedJobCount { get; set; }
        public int ValidatingJobCount { get; set; }
        public int ExternalValidationJobCount { get; set; }
        public int QueuedJobCount { get; set; }
        public int RunningJobCount { get; set; }
        public int FinishingJobCount { get; set; }
        public int FinishedJobCount { get; set; }
        public int FailedJobCount { get; set; }
        public int CanceledJobCount { get; set; }
        public int CancelingJobCount { get; set; }
        public int TotalTaskCount { get; set; }
        public int ConfiguringTaskCount { get; set; }
        public int SubmittedTaskCount { get; set; }
        public int ValidatingTaskCount { get; set; }
        public int QueuedTaskCount { get; set; }
        public int DispatchingTaskCount { get; set; }
        public int RunningTaskCount { get; set; }
        public int FinishingTaskCount { get; set; }
        public int FinishedTaskCount { get; set; }
        public int FailedTaskCount { get; set; }
        public int CanceledTaskCount { get; set; }
        public int CancelingTaskCount { get; set; }

        public override string ToString() => ClusterName ?? string.Empty;
    }
}
