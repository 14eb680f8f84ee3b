// The job properties New-HpcJob and Set-HpcJob both take (HPC Pack's names and types).
using System;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    public abstract class JobPropertyCmdlet : HpcCmdlet
    {
        [Parameter] public string Name { get; set; }
        [Parameter] [ArgumentCompleter(typeof(ProjectCompleter))] public string Project { get; set; }
        [Parameter] [ArgumentCompleter(typeof(TemplateCompleter))] public string TemplateName { get; set; }
        [Parameter] [ArgumentCompleter(typeof(PriorityCompleter))] public string Priority { get; set; }
        [Parameter] public string RunTime { get; set; }
        [Parameter] public string NumCores { get; set; }
        [Parameter] public string NumSockets { get; set; }
        [Parameter] public string NumNodes { get; set; }
        [Parameter] public string NumGpus { get; set; }
        [Parameter] [ArgumentCompleter(typeof(NodeCompleter))] public string[] RequestedNodes { get; set; }
        [Parameter] [ArgumentCompleter(typeof(NodeGroupCompleter))] public string[] NodeGroups { get; set; }
        [Parameter] [ValidateSet("Intersect", "Uniform", "Union")] public string NodeGroupOp { get; set; }
        [Parameter] public string[] OrderBy { get; set; }
        [Parameter] public bool Exclusive { get; set; }
        [Parameter] public bool RunUntilCanceled { get; set; }
        [Parameter] public bool FailOnTaskFailure { get; set; }
        [Parameter] public bool FailDependentTasks { get; set; }
        [Parameter] public int MinMemoryPerNode { get; set; }
        [Parameter] public int MaxMemoryPerNode { get; set; }
        [Parameter] public int MinCoresPerNode { get; set; }
        [Parameter] public int MaxCoresPerNode { get; set; }
        [Parameter] public int EstimatedProcessMemory { get; set; }
        [Parameter] public string[] License { get; set; }
        [Parameter] public int Progress { get; set; }
        [Parameter] public string ProgressMessage { get; set; }
        [Parameter] public bool NotifyOnStart { get; set; }
        [Parameter] public bool NotifyOnCompletion { get; set; }
        [Parameter] public string EmailAddress { get; set; }
        [Parameter] public DateTime HoldUntil { get; set; }
        [Parameter] public bool SingleNode { get; set; }
        [Parameter] public string[] JobEnv { get; set; }
        [Parameter] [Int32Array] public int[] ParentJobIds { get; set; }
        [Parameter] public int TaskExecutionFailureRetryLimit { get; set; }
        [Parameter] public string ValidExitCodes { get; set; }
        [Parameter] public string[] CustomProperties { get; set; }
    }
}
