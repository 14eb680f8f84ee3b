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

    /// <summary>What Get-PSSnapin shows for Microsoft.HPC: the module that stands in for the snap-in.</summary>
    public sealed class HpcSnapinInfo
    {
        public string Name { get; set; }
        public string ModuleName { get; set; }
        public Version Version { get; set; }
        public Version PSVersion { get; set; }
        public string Description { get; set; }
        public string ApplicationBase { get; set; }
        public bool IsDefault { get; set; }
        public bool LogPipelineExecutionDetails { get; set; }

        public override string ToString() => Name;
    }

    /// <summary>Scripts test whether the HPC snap-in is loaded with 'Get-PSSnapin Microsoft.HPC' (often under
    /// $ErrorActionPreference = 'Stop'). pwsh 7 has no snap-ins and no Get-PSSnapin; this one answers for
    /// Microsoft.HPC (loaded: this module is) and, as Windows PowerShell does, errs for any other name.</summary>
    [Cmdlet(VerbsCommon.Get, "PSSnapin")]
    [OutputType(typeof(HpcSnapinInfo))]
    public sealed class GetPSSnapinCommand : PSCmdlet
    {
        [Parameter(Position = 0)]
        public string[] Name { get; set; }

        [Parameter]
        public SwitchParameter Registered { get; set; }

        protected override void ProcessRecord()
        {
            PSModuleInfo module = MyInvocation.MyCommand.Module;
            var info = new HpcSnapinInfo
            {
                Name = "Microsoft.HPC",
                ModuleName = module?.Name ?? "HPC",
                Version = module?.Version ?? new Version(0, 0),
                PSVersion = new Version(7, 4),
                Description = "HPC Pack job scheduler cmdlets (the HPC module, which stands in for the Microsoft.HPC snap-in on pwsh 7).",
                ApplicationBase = module?.ModuleBase,
            };
            if (Name == null || Name.Length == 0)
            {
                WriteObject(info);
                return;
            }
            foreach (string name in Name)
            {
                var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
                if (pattern.IsMatch(info.Name))
                {
                    WriteObject(info);
                }
                else if (!WildcardPattern.ContainsWildcardCharacters(name))
                {
                    var error = new PSArgumentException(
                        $"No Windows PowerShell snap-ins matching the pattern '{name}' were found. PowerShell 7 has no snap-ins; the HPC module stands in for Microsoft.HPC only.");
                    WriteError(new ErrorRecord(error, "NoPSSnapInsFound,Microsoft.PowerShell.Commands.GetPSSnapinCommand", ErrorCategory.InvalidArgument, name));
                }
            }
        }
    }
}
