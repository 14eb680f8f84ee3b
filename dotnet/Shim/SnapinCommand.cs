// HPC Pack 2008-2012 scripts begin with 'Add-PSSnapin Microsoft.HPC'. pwsh 7 has no snap-ins; this
// cmdlet, found by command discovery in the installed module, loads the module and lets them run.
using System;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsCommon.Add, "PSSnapin")]
    [OutputType(typeof(PSModuleInfo))]
    public sealed class AddPSSnapinCommand : PSCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
        public string[] Name { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void ProcessRecord()
        {
            foreach (string name in Name)
            {
                if (string.Equals(name, "Microsoft.HPC", StringComparison.OrdinalIgnoreCase))
                {
                    // This cmdlet runs from the HPC module, so the module is already loaded.
                    WriteVerbose("Microsoft.HPC is provided by the HPC module, which is loaded.");
                    if (PassThru) WriteObject(MyInvocation.MyCommand.Module);
                    continue;
                }
                var error = new PSArgumentException(
                    $"The snap-in '{name}' is not installed: PowerShell 7 has no snap-ins, and the HPC module stands in for Microsoft.HPC only.");
                WriteError(new ErrorRecord(error, "SnapinNotInstalled", ErrorCategory.InvalidArgument, name));
            }
        }
    }
}
