// The task properties Add-HpcTask and Set-HpcTask both take (HPC Pack's names and types; declared
// once in src/hpcpack/model/properties.py, which tests/test_properties.py checks this against).
// -Parametric is a switch on Add-HpcTask and a Boolean on Set-HpcTask, so each declares its own.
using System.Management.Automation;
using Microsoft.Hpc.Scheduler.Properties;

namespace Microsoft.ComputeCluster.CCPPSH
{
    public abstract class TaskPropertyCmdlet : HpcCmdlet
    {
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
        [Parameter] [ArgumentCompleter(typeof(NodeCompleter))] public string[] RequiredNodes { get; set; }
        [Parameter] public string WorkDir { get; set; }
        [Parameter] public string Stdin { get; set; }
        [Parameter] public string Stdout { get; set; }
        [Parameter] public string Stderr { get; set; }
        [Parameter] public string ValidExitCodes { get; set; }
        [Parameter] public string[] Depend { get; set; }
        [Parameter] public string[] CustomProperties { get; set; }
        [Parameter] public string[] Env { get; set; }
        [Parameter] public TaskType Type { get; set; }
        [Parameter] public int Start { get; set; }
        [Parameter] public int End { get; set; }
        [Parameter] public int Increment { get; set; }
    }
}
