// The job cmdlets: parameters, ShouldProcess and one backend call each. Behaviour is in Python.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using Microsoft.Hpc.Scheduler.Properties;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsLifecycle.Stop, "HpcJob", DefaultParameterSetName = "id", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class StopHpcJobCommand : HpcCmdlet
    {
        // Confirmed jobs are stopped in batches, across pipeline input too: one request for many jobs.
        private readonly List<object> _pending = new List<object>();
        private readonly List<HpcJob> _piped = new List<HpcJob>(); // piped in, not planned yet
        private int _stopped;

        // Jobs in one request, as each costs a round trip, a wait and a pass of the head node's loop over its
        // queue (it still commits them 500 at a time and serves others in between). The first is smaller, so
        // that a bulk stop soon shows how far it is, yet holds a common bulk stop whole (500 jobs in one
        // request took 15 ms less than in two); 4,000 queued jobs take about 300 ms: progress still moves
        // several times a second.
        private const int FirstStopBatchSize = 1000;
        private const int StopBatchSize = 4000;

        private int NextBatchSize => _stopped == 0 ? FirstStopBatchSize : StopBatchSize;

        [Parameter(ParameterSetName = "id", Mandatory = true, Position = 1)]
        [ArgumentCompleter(typeof(StoppableJobIdCompleter))]
        [Int32Array]
        public int[] Id { get; set; }

        [Parameter(ParameterSetName = "job", Mandatory = true, ValueFromPipeline = true)]
        public HpcJob[] Job { get; set; }

        [Parameter]
        public string Message { get; set; }

        [Parameter]
        [ValidateSet("Finished")]
        public string State { get; set; }

        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter Graceful { get; set; }

        protected override void ProcessRecord()
        {
            if (ParameterSetName != "job")
            {
                _pending.AddRange(ShowsPlans() ? Confirm("Stop-HpcJob", Arguments()) : Unplanned(Id)); // all at once
                return;
            }
            // Jobs piped in keep coming (how many is not known): they are planned, confirmed and stopped a
            // batch at a time, not with a request each.
            _piped.AddRange(Job);
            if (_piped.Count >= NextBatchSize) ConfirmPiped();
            while (_pending.Count >= NextBatchSize) Flush(NextBatchSize, 0);
        }

        private void ConfirmPiped()
        {
            _pending.AddRange(ShowsPlans() ? Confirm("Stop-HpcJob", Arguments(("Job", _piped.ToArray())))
                                           : Unplanned(_piped.Select(j => j.Id)));
            _piped.Clear();
        }

        /// <summary>Whether ShouldProcess may show or ask anything: -WhatIf, -Confirm or a ConfirmPreference of
        /// Medium or Low, -Verbose. Only then is each job planned first (a request for all: what the stop will do
        /// to it, in words); otherwise nobody reads the words, and the stop itself refuses what it must.</summary>
        private bool ShowsPlans()
        {
            if (Asked("WhatIf", "WhatIfPreference")) return true;
            if (MyInvocation.BoundParameters.ContainsKey("Verbose") ? Asked("Verbose", null) : !Quiet()) return true;
            if (MyInvocation.BoundParameters.ContainsKey("Confirm")) return Asked("Confirm", null);
            // A preference of an unexpected kind plans too: better words nobody reads than a question without them.
            object preference = SessionState.PSVariable.GetValue("ConfirmPreference");
            return !(preference is ConfirmImpact p) || (p != ConfirmImpact.None && p <= ConfirmImpact.Medium);
        }

        private bool Quiet() => SessionState.PSVariable.GetValue("VerbosePreference") is ActionPreference v
            && (v == ActionPreference.SilentlyContinue || v == ActionPreference.Ignore);

        /// <summary>The switch as given, else (with a preference variable) that variable's value.</summary>
        private bool Asked(string parameter, string preference)
        {
            if (MyInvocation.BoundParameters.TryGetValue(parameter, out object given)) return LanguagePrimitives.IsTrue(given);
            return preference != null && LanguagePrimitives.IsTrue(SessionState.PSVariable.GetValue(preference));
        }

        /// <summary>ShouldProcess for each job, named by its id, when ShouldProcess shows nothing (ShowsPlans).</summary>
        private List<object> Unplanned(IEnumerable<int> ids) =>
            ids.Where(id => ShouldProcess($"Job {id}", "Stop-HpcJob")).Cast<object>().ToList();

        protected override void EndProcessing()
        {
            if (_piped.Count > 0) ConfirmPiped();
            int total = _stopped + _pending.Count; // known here: EndProcessing shows the share done
            while (_pending.Count > 0) Flush(Math.Min(NextBatchSize, _pending.Count), total);
            if (_stopped > BatchSize) WriteProgress(new ProgressRecord(0, "Stop-HpcJob", "Done") { RecordType = ProgressRecordType.Completed });
        }

        private void Flush(int count, int total)
        {
            object[] batch = _pending.GetRange(0, count).ToArray();
            _pending.RemoveRange(0, count);
            if (_stopped > 0 || _pending.Count > 0)
            {
                BatchActivity = 0;
                string of = total > 0 ? $" of {total}" : "";
                WriteProgress(new ProgressRecord(0, "Stop-HpcJob", $"Stopping jobs {_stopped + 1}-{_stopped + batch.Length}{of}")
                {
                    PercentComplete = total > 0 ? _stopped * 100 / total : -1,
                });
            }
            // The batch names the jobs: -Id or -Job (every id, each time) would only be converted again.
            Hashtable arguments = Arguments(("Confirmed", batch));
            arguments.Remove("Id");
            arguments.Remove("Job");
            Call("Stop-HpcJob", arguments, batch); // failed as a whole: an error per job, and on to the next batch
            _stopped += batch.Length;
        }
    }

    [Cmdlet(VerbsCommon.New, "HpcJob", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
    [OutputType(typeof(HpcJob))]
    public sealed class NewHpcJobCommand : JobPropertyCmdlet
    {
        [Parameter] public string JobFile { get; set; }

        [Parameter(ValueFromPipeline = true)] public HpcJob Job { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("New-HpcJob", Arguments());
    }

    [Cmdlet(VerbsCommon.Set, "HpcJob", DefaultParameterSetName = "id", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
    [OutputType(typeof(HpcJob))]
    public sealed class SetHpcJobCommand : JobPropertyCmdlet
    {
        [Parameter(ParameterSetName = "id", Mandatory = true, Position = 1)] [ArgumentCompleter(typeof(ChangeableJobIdCompleter))] public int Id { get; set; }

        [Parameter(ParameterSetName = "job", Mandatory = true, ValueFromPipeline = true)] public HpcJob Job { get; set; }

        [Parameter] public PSCredential Credential { get; set; }
        [Parameter] public string[] AddExcludedNodes { get; set; }
        [Parameter] public string[] RemoveExcludedNodes { get; set; }
        [Parameter] public SwitchParameter ClearExcludedNodes { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Set-HpcJob", Arguments(("Credential", null)));
    }

    [Cmdlet(VerbsLifecycle.Submit, "HpcJob", DefaultParameterSetName = "job", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
    [OutputType(typeof(HpcJob))]
    public sealed class SubmitHpcJobCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "id", Mandatory = true, Position = 1)] [ArgumentCompleter(typeof(SubmittableJobIdCompleter))] [Int32Array] public int[] Id { get; set; }

        [Parameter(ParameterSetName = "job", Mandatory = true, ValueFromPipeline = true)] public HpcJob[] Job { get; set; }

        [Parameter] public PSCredential Credential { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Submit-HpcJob", Arguments(("Credential", null)));
    }

    [Cmdlet(VerbsCommon.Get, "HpcJob", DefaultParameterSetName = "id")]
    [OutputType(typeof(HpcJob))]
    public sealed class GetHpcJobCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "id", Position = 1, ValueFromPipeline = true)] [ArgumentCompleter(typeof(JobIdCompleter))] public int Id { get; set; }
        [Parameter(ParameterSetName = "id")] public Microsoft.Hpc.Scheduler.Properties.JobState State { get; set; }
        [Parameter(ParameterSetName = "id")] [ArgumentCompleter(typeof(JobNameCompleter))] public string Name { get; set; }
        [Parameter(ParameterSetName = "id")] [ArgumentCompleter(typeof(ProjectCompleter))] public string Project { get; set; }
        [Parameter(ParameterSetName = "id")] [ArgumentCompleter(typeof(TemplateCompleter))] public string TemplateName { get; set; }
        [Parameter(ParameterSetName = "id")] public string Pool { get; set; }
        [Parameter(ParameterSetName = "id")] [ArgumentCompleter(typeof(OwnerCompleter))] public string Owner { get; set; }
        [Parameter(ParameterSetName = "id")] public System.DateTime BeginSubmitDate { get; set; }
        [Parameter(ParameterSetName = "id")] public System.DateTime EndSubmitDate { get; set; }
        [Parameter(ParameterSetName = "nodename", Mandatory = true)] [ArgumentCompleter(typeof(NodeCompleter))] public string[] NodeName { get; set; }

        protected override void ProcessRecord() => Emit("Get-HpcJob", Arguments());
    }

    [Cmdlet(VerbsCommon.Add, "HpcTask", DefaultParameterSetName = "job", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
    [OutputType(typeof(HpcTask))]
    public sealed class AddHpcTaskCommand : TaskPropertyCmdlet
    {
        [Parameter(ParameterSetName = "job", Mandatory = true, ValueFromPipeline = true)] public HpcJob Job { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true)] [ArgumentCompleter(typeof(ChangeableJobIdCompleter))] public int JobId { get; set; }
        [Parameter] public string TaskFile { get; set; }
        [Parameter] public SwitchParameter Parametric { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Add-HpcTask", Arguments());
    }

    [Cmdlet(VerbsData.Export, "HpcJob", DefaultParameterSetName = "job", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class ExportHpcJobCommand : HpcCmdlet
    {
        [Parameter(ParameterSetName = "job", Mandatory = true, ValueFromPipeline = true)] public HpcJob Job { get; set; }
        [Parameter(ParameterSetName = "id", Mandatory = true, Position = 1)] [ArgumentCompleter(typeof(ChangeableJobIdCompleter))] public int Id { get; set; }
        [Parameter(Mandatory = true)] public string Path { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }

        protected override void ProcessRecord() => ConfirmThenEmit("Export-HpcJob", Arguments());
    }
}
