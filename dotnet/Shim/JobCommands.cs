// The job cmdlets: parameters, ShouldProcess and one backend call each. Behaviour is in Python.
using System.Collections;
using System.Collections.Generic;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    [Cmdlet(VerbsLifecycle.Stop, "HpcJob", DefaultParameterSetName = "id", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class StopHpcJobCommand : HpcCmdlet
    {
        // Confirmed jobs are stopped in batches: one request for many jobs, progress between batches.
        private const int BatchSize = 256;
        private readonly List<object> _pending = new List<object>();
        private int _stopped;

        [Parameter(ParameterSetName = "id", Mandatory = true, Position = 1)]
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
            Hashtable args = Arguments(("Id", Id), ("Job", Job));
            _pending.AddRange(Confirm("Stop-HpcJob", args));
            while (_pending.Count >= BatchSize) Flush(BatchSize);
        }

        protected override void EndProcessing()
        {
            while (_pending.Count > 0) Flush(_pending.Count);
            if (_stopped > BatchSize) WriteProgress(new ProgressRecord(0, "Stop-HpcJob", "Done") { RecordType = ProgressRecordType.Completed });
        }

        private void Flush(int count)
        {
            object[] batch = _pending.GetRange(0, count).ToArray();
            _pending.RemoveRange(0, count);
            if (_stopped > 0 || _pending.Count > 0)
            {
                var progress = new ProgressRecord(0, "Stop-HpcJob", $"Stopping jobs {_stopped + 1}-{_stopped + batch.Length}");
                WriteProgress(progress);
            }
            Call("Stop-HpcJob", Arguments(("Id", batch), ("Job", null)));
            _stopped += batch.Length;
        }
    }
}
