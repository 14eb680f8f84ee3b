// What every HPC cmdlet shares: the -Scheduler default, the call into Python, and the
// translation of backend records and failures into PowerShell objects and ErrorRecords.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Threading.Tasks;

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>A scheduler failure as PowerShell users see it; the Python original is the inner exception.</summary>
    public sealed class HpcException : Exception
    {
        public HpcException(string message, Exception inner) : base(message, inner) { }
    }

    /// <summary>Calls that are not made by a cmdlet (object methods): failures throw.</summary>
    internal static class Backend
    {
        public static List<Dictionary<string, object>> Run(string command, Hashtable arguments)
        {
            List<Dictionary<string, object>> records = PythonBridge.Call(command, arguments);
            Dictionary<string, object> failure = records.FirstOrDefault(Errors.IsError);
            if (failure == null) return records;
            ErrorRecord error = Errors.ToRecord(failure);
            throw new RuntimeException(error.Exception.Message, error.Exception, error);
        }

        public static Dictionary<string, object> Single(string command, Hashtable arguments) =>
            Run(command, arguments).FirstOrDefault() ?? throw new ItemNotFoundException($"{command} returned nothing.");
    }

    internal static class Errors
    {
        public static bool IsError(Dictionary<string, object> record) => record.ContainsKey("__error__");

        public static ErrorRecord ToRecord(Dictionary<string, object> record)
        {
            var error = (Dictionary<string, object>)record["__error__"];
            var inner = new BackendException((string)error["error_id"], (string)error["category"], (string)error["message"], error["target"], null);
            return ToRecord(inner);
        }

        public static ErrorRecord ToRecord(BackendException e)
        {
            if (!Enum.TryParse(e.Category, out ErrorCategory category)) category = ErrorCategory.NotSpecified;
            return new ErrorRecord(new HpcException(e.Message, e), e.ErrorId, category, e.Target);
        }
    }

    public abstract class HpcCmdlet : PSCmdlet
    {
        private readonly string _callId = Guid.NewGuid().ToString("N");

        /// <summary>Ctrl+C or PowerShell.Stop(): the backend ends its waits; work the head node began goes on,
        /// and the user is told which jobs or tasks it is still ending.</summary>
        protected override void StopProcessing()
        {
            _stopAsked.Start();
            PythonBridge.Stop(_callId);
            Dictionary<string, object> waiting = _waiting;
            if (waiting == null) return;
            try
            {
                Host.UI.WriteWarningLine($"Stopped waiting; the head node goes on stopping {waiting["What"]} {waiting["Remaining"]}.");
            }
            catch (Exception e) when (e is PipelineStoppedException || e is System.Management.Automation.Host.HostException || e is NotImplementedException)
            {
                // No host to tell (a runspace without UI): the stop itself still holds.
            }
        }

        // The backend's last word on the wait in progress (null when none): what the warning on Ctrl+C names.
        private volatile Dictionary<string, object> _waiting;

        /// <summary>How often a long call is asked how its wait is going (for Write-Progress).</summary>
        private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(250);

        /// <summary>How long a stop waits for the backend call to end (it ends its waits at once and says what the
        /// head node still does); after that, the cmdlet stops without it: a head node that stopped answering
        /// must not hold the user's pipeline (helper 39: PowerShell.Stop() never returned).</summary>
        private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(2);

        private readonly System.Diagnostics.Stopwatch _stopAsked = new System.Diagnostics.Stopwatch();

        /// <summary>Starts the backend call on a worker thread; its answer is read on the pipeline thread.</summary>
        private static Task<byte[]> Start(string command, Hashtable arguments) =>
            Task.Run(() => PythonBridge.CallJson(command, arguments));

        /// <summary>Waits for a backend call; meanwhile this (the pipeline) thread shows its progress.</summary>
        private byte[] ShowingProgress(Task<byte[]> work)
        {
            ProgressRecord shown = null;
            try
            {
                while (!work.Wait(ProgressInterval))
                {
                    if (_stopAsked.Elapsed > StopGrace) throw new PipelineStoppedException();
                    Dictionary<string, object> report = AskProgress();
                    if (report == null) continue;
                    _waiting = report;
                    if (shown != null && shown.StatusDescription == (string)report["Status"] && shown.CurrentOperation == (string)report["CurrentOperation"]) continue;
                    shown = new ProgressRecord(WaitActivityId, (string)report["Activity"], (string)report["Status"])
                    {
                        ParentActivityId = BatchActivity,
                        CurrentOperation = (string)report["CurrentOperation"],
                        PercentComplete = Convert.ToInt32(report["PercentComplete"]),
                        SecondsRemaining = Convert.ToInt32(report["SecondsRemaining"]),
                    };
                    WriteProgress(shown);
                }
            }
            catch (AggregateException e) when (e.InnerException != null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            }
            finally
            {
                _waiting = null;
            }
            if (shown != null)
            {
                WriteProgress(new ProgressRecord(WaitActivityId, shown.Activity, "Done") { ParentActivityId = BatchActivity, RecordType = ProgressRecordType.Completed });
            }
            return work.Result;
        }

        private const int WaitActivityId = 1;

        /// <summary>How the running call's wait is going, or null (none yet, or the question failed: progress
        /// is only shown, so it never fails the cmdlet). A call id of its own, so that it never touches the
        /// running call's stop request.</summary>
        private Dictionary<string, object> AskProgress()
        {
            try
            {
                var ask = new Hashtable { ["Of"] = _callId, ["__CallId__"] = Guid.NewGuid().ToString("N") };
                return PythonBridge.Call("Progress", ask).FirstOrDefault();
            }
            catch (BackendException)
            {
                return null;
            }
        }

        /// <summary>The activity a wait's progress belongs to: a bulk cmdlet's batches (0), or none (-1).</summary>
        protected int BatchActivity { get; set; } = -1;

        /// <summary>Head node(s) to use; without it, CCP_SCHEDULER, then the local embedded head node.</summary>
        [Parameter]
        public string[] Scheduler { get; set; }

        /// <summary>The bound parameters as the backend receives them (plus the resolved scheduler).</summary>
        protected Hashtable Arguments(params (string Name, object Value)[] extra)
        {
            var args = new Hashtable(StringComparer.OrdinalIgnoreCase);
            foreach (KeyValuePair<string, object> p in MyInvocation.BoundParameters)
            {
                if (EngineParameters.Contains(p.Key)) continue;
                // Paths are relative to PowerShell's location, which Python cannot see.
                // A Windows path (C:\..., \\server\share) is the head node's to map (headnode.yaml path_map).
                args[p.Key] = PathParameters.Contains(p.Key) && p.Value is string path && path.Length > 0 && !IsWindowsPath(path)
                    ? SessionState.Path.GetUnresolvedProviderPathFromPSPath(path)
                    : p.Value;
            }
            args["Scheduler"] = Scheduler ?? PipedScheduler() ?? DefaultScheduler();
            args["__CallId__"] = _callId;
            foreach ((string name, object value) in extra) args[name] = value;
            return args;
        }

        /// <summary>The head node of the job or task objects given (from the pipeline or -Job), so that
        /// they are acted on where they came from, not on the default head node.</summary>
        private string[] PipedScheduler()
        {
            foreach (object value in MyInvocation.BoundParameters.Values)
            {
                IEnumerable items = value is IHpcRecord one ? new[] { one } : value as IEnumerable;
                if (items == null || value is string) continue;
                foreach (object item in items)
                {
                    if (item is IHpcRecord record && !string.IsNullOrEmpty(record.Scheduler)) return new[] { record.Scheduler };
                }
            }
            return null;
        }

        private static bool IsWindowsPath(string path) =>
            path.StartsWith(@"\\", StringComparison.Ordinal)
            || (path.Length >= 2 && char.IsLetter(path[0]) && path[1] == ':' && (path.Length == 2 || path[2] == '\\' || path[2] == '/'));

        internal static string[] DefaultScheduler()
        {
            string env = Environment.GetEnvironmentVariable("CCP_SCHEDULER");
            return string.IsNullOrWhiteSpace(env) ? null : env.Split(',').Select(s => s.Trim()).Where(s => s.Length > 0).ToArray();
        }

        // Files this machine reads or writes. A task's Stdin, Stdout and Stderr are not among them: the
        // node opens those, relative to the task's working folder (HPC Pack's rule).
        private static readonly HashSet<string> PathParameters = new HashSet<string>(
            new[] { "Path", "JobFile", "TaskFile", "WorkDir" }, StringComparer.OrdinalIgnoreCase);

        private static readonly HashSet<string> EngineParameters = new HashSet<string>(
            PSCmdlet.CommonParameters.Concat(PSCmdlet.OptionalCommonParameters), StringComparer.OrdinalIgnoreCase);

        /// <summary>Calls the backend; error records become non-terminating errors, the rest are returned.
        /// A failure of the call as a whole is a terminating error; with `items` (one batch of a bulk
        /// cmdlet), one of ItemLevel is one non-terminating error per item instead (ItemsNotDone).</summary>
        protected List<Dictionary<string, object>> Call(string command, Hashtable arguments, IList<object> items = null) =>
            ReadRecords(Await(Start(command, arguments), items));

        /// <summary>Call's wait for a call already started: its answer as it came, or an empty one when it failed
        /// as a whole at item level (its items' errors are written).</summary>
        private byte[] Await(Task<byte[]> work, IList<object> items = null)
        {
            try
            {
                return ShowingProgress(work);
            }
            catch (BackendException e) when (items != null && ItemLevel.Contains(e.ErrorId))
            {
                ItemsNotDone(e, items);
                return NoRecords;
            }
            catch (BackendException e)
            {
                ThrowTerminatingError(Errors.ToRecord(e));
                throw; // not reached
            }
            catch (InvalidOperationException e)
            {
                ThrowTerminatingError(new ErrorRecord(e, "PythonEnvironmentUnavailable", ErrorCategory.ResourceUnavailable, null));
                throw;
            }
        }

        private static readonly byte[] NoRecords = System.Text.Encoding.ASCII.GetBytes("[]");

        /// <summary>An answer's records; its error records are written as non-terminating errors instead.</summary>
        private List<Dictionary<string, object>> ReadRecords(byte[] answer)
        {
            var results = new List<Dictionary<string, object>>();
            foreach (Dictionary<string, object> record in Marshal.ToRecords(answer))
            {
                if (Errors.IsError(record)) WriteError(Errors.ToRecord(record));
                else results.Add(record);
            }
            return results;
        }

        /// <summary>Failures of a whole request that are its items' failures (a bad argument, a stop asked for
        /// by the user or a fault of the module stay terminating).</summary>
        private static readonly HashSet<string> ItemLevel = new HashSet<string> { "StorageFailure" };

        /// <summary>A batch's request failed as a whole (a StorageFailure: nothing of this batch was saved,
        /// though earlier batches were): each of its items gets a non-terminating error of its own, named by
        /// it, as a refusal of that item would, and the cmdlet goes on with the next batch.</summary>
        private void ItemsNotDone(BackendException e, IList<object> items)
        {
            if (!Enum.TryParse(e.Category, out ErrorCategory category)) category = ErrorCategory.NotSpecified;
            foreach (object item in items)
            {
                string message = $"{MyInvocation.MyCommand.Name} did not act on {item}: {e.Message}";
                WriteError(new ErrorRecord(new HpcException(message, e), e.ErrorId, category, item));
            }
        }

        /// <summary>Calls the backend and writes the objects it returns. A long answer comes in chunks
        /// (a last record of type "More"): the second is fetched once the first is written, so that
        /// `Get-HpcJob -State All | Select-Object -First 10` stops early, costing the head node no more than
        /// the first; from then on each next chunk is fetched while the one before is read and written (the
        /// head node and Python make it on the other core meanwhile), so no more than two are held.
        /// With `items`, a failure of the first call is one error per item (Call).</summary>
        protected void Emit(string command, Hashtable arguments, IList<object> items = null)
        {
            bool more = false;
            Task<byte[]> next = null;
            try
            {
                byte[] answer = Await(Start(command, arguments), items);
                for (bool first = true; ; first = false)
                {
                    // Known before reading: a pipeline that stops mid-chunk must still let go of the rest.
                    more = Records.EndsWithMore(answer);
                    if (more && !first) next = Start("More", ChunkArguments());
                    foreach (object item in ReadObjects(answer))
                    {
                        if (item is ErrorRecord error) WriteError(error);
                        else WriteObject(item);
                    }
                    if (!more) break;
                    answer = Await(next ?? Start("More", ChunkArguments()));
                    next = null;
                }
            }
            finally
            {
                // The pipeline stopped early (Select-Object -First) or failed: let go of the rest, without
                // waiting for a chunk being fetched (the backend drops it when it comes).
                if (more) PythonBridge.Call("Close", ChunkArguments());
            }
        }

        /// <summary>An answer's objects (RecordReader), its error records as ErrorRecords, without the "More"
        /// marker. An answer the module cannot read (a head node that sent what is no JSON, a record of no known
        /// type, a value no property takes) ends the cmdlet with one error that says so.</summary>
        private List<object> ReadObjects(byte[] answer)
        {
            try
            {
                var objects = new List<object>();
                foreach (object item in RecordReader.Read(answer))
                {
                    if (item is not Dictionary<string, object> record) objects.Add(item);
                    else if (Errors.IsError(record)) objects.Add(Errors.ToRecord(record));
                    else if (!Records.IsMore(record)) objects.Add(Records.Build(record));
                }
                return objects;
            }
            catch (Exception e) when (e is not PipelineStoppedException && e is not OutOfMemoryException)
            {
                ThrowTerminatingError(new ErrorRecord(new HpcException($"The head node's answer cannot be read: {e.Message}", e),
                    "InvalidBackendAnswer", ErrorCategory.InvalidData, null));
                throw; // not reached
            }
        }

        private Hashtable ChunkArguments() => new Hashtable { ["Of"] = _callId, ["__CallId__"] = _callId };

        /// <summary>Asks ShouldProcess for each planned item, then lets the backend act on the confirmed ones.</summary>
        protected void ConfirmThenEmit(string command, Hashtable arguments)
        {
            List<object> confirmed = Confirm(command, arguments);
            // Many items go in batches, one request each, with progress between them.
            for (int done = 0; done < confirmed.Count; done += BatchSize)
            {
                int count = Math.Min(BatchSize, confirmed.Count - done);
                if (confirmed.Count > BatchSize)
                {
                    BatchActivity = 0;
                    WriteProgress(new ProgressRecord(0, MyInvocation.MyCommand.Name, $"{done + count} of {confirmed.Count}")
                    {
                        PercentComplete = (done + count) * 100 / confirmed.Count,
                    });
                }
                List<object> batch = confirmed.GetRange(done, count);
                arguments["Confirmed"] = batch.ToArray();
                // Of several batches, a failed one is its items' errors: the others' work stands, and is not hidden.
                Emit(command, arguments, confirmed.Count > BatchSize ? batch : null);
            }
        }

        /// <summary>How many items one backend request carries.</summary>
        protected const int BatchSize = 256;

        /// <summary>
        /// The uniform change pattern: the backend plans (resolves and describes each item), the user
        /// confirms each one through ShouldProcess, and the backend acts on the confirmed keys only.
        /// </summary>
        protected List<object> Confirm(string command, Hashtable arguments)
        {
            var confirmed = new List<object>();
            bool force = MyInvocation.BoundParameters.TryGetValue("Force", out object f) && f is SwitchParameter s && s.IsPresent;
            bool yesToAll = false, noToAll = false;
            foreach (Dictionary<string, object> plan in Call(command + ":plan", arguments))
            {
                if (!ShouldProcess((string)plan["target"], (string)plan["action"])) continue;
                // A plan with a query (an existing file to overwrite) also needs -Force or a yes.
                if (plan.TryGetValue("query", out object query) && query is string text && !force
                    && !ShouldContinue(text, "Confirm", ref yesToAll, ref noToAll)) continue;
                confirmed.Add(plan["key"]);
            }
            return confirmed;
        }
    }
}
