// Job templates: the HpcJobTemplate type and its cmdlets. Behaviour is in Python (cmdlets/templates.py).
using System;
using System.Collections;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>A job template: defaults and allowed ranges for job properties, and who may use it.</summary>
    public class HpcJobTemplate : IHpcRecord
    {
        public string Name { get; set; }
        public string Description { get; set; }
        /// <summary>Who may use it (user names, or group:name); empty: everyone.</summary>
        public string[] Users { get; set; }
        /// <summary>One per property the template sets or limits.</summary>
        public HpcJobTemplateItem[] Items { get; set; }
        public string Scheduler { get; set; }

        object IHpcRecord.GetKey() => Name;

        public override string ToString() => Name;
    }

    /// <summary>One property of a job template: its default, its range or allowed values, whether required or read-only.</summary>
    public class HpcJobTemplateItem
    {
        public string PropertyName { get; set; }
        public string Default { get; set; }
        public long? Min { get; set; }
        public long? Max { get; set; }
        public string[] Values { get; set; }
        public string Allowed { get; set; }
        public bool Required { get; set; }
        public bool ReadOnly { get; set; }

        public override string ToString() => PropertyName;
    }

    [Cmdlet(VerbsCommon.Get, "HpcJobTemplate")]
    [OutputType(typeof(HpcJobTemplate))]
    public sealed class GetHpcJobTemplateCommand : HpcCmdlet
    {
        [Parameter(Position = 0, ValueFromPipeline = true)] [ArgumentCompleter(typeof(TemplateCompleter))] public string[] Name { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcJobTemplate", Arguments());
    }

    [Cmdlet(VerbsCommon.New, "HpcJobTemplate", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
    [OutputType(typeof(HpcJobTemplate))]
    public sealed class NewHpcJobTemplateCommand : HpcCmdlet
    {
        [Parameter(Mandatory = true, Position = 0)] [ValidateLength(1, 80)] public string Name { get; set; }
        [Parameter] public string Description { get; set; }
        [Parameter] public Hashtable Defaults { get; set; }
        [Parameter] public Hashtable Ranges { get; set; }
        [Parameter] public string[] User { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("New-HpcJobTemplate", Arguments());
    }

    [Cmdlet(VerbsCommon.Remove, "HpcJobTemplate", DefaultParameterSetName = "name", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(void))]
    public sealed class RemoveHpcJobTemplateCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "name", Mandatory = true, Position = 0)] [ArgumentCompleter(typeof(TemplateCompleter))] public string[] Name { get; set; }
        [Parameter(ParameterSetName = "template", Mandatory = true, ValueFromPipeline = true)] public HpcJobTemplate[] Template { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Remove-HpcJobTemplate", Arguments());
    }

    [Cmdlet(VerbsData.Export, "HpcJobTemplate", DefaultParameterSetName = "template", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class ExportHpcJobTemplateCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "template", Mandatory = true, Position = 0, ValueFromPipeline = true)] public HpcJobTemplate Template { get; set; }
        [Parameter(ParameterSetName = "name", Mandatory = true)] [ArgumentCompleter(typeof(TemplateCompleter))] public string Name { get; set; }
        [Parameter(Mandatory = true)] public string Path { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Export-HpcJobTemplate", Arguments());
    }

    [Cmdlet(VerbsData.Import, "HpcJobTemplate", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(HpcJobTemplate))]
    public sealed class ImportHpcJobTemplateCommand : HpcCmdlet
    {
        [Parameter(Mandatory = true, Position = 0)] public string Path { get; set; }
        [Parameter] [ValidateLength(1, 80)] public string Name { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Import-HpcJobTemplate", Arguments());
    }
}
