// The objects scripts see: HPC Pack's type names, states and properties, filled from the
// backend's records. Behaviour (refresh, cancel, requeue) goes back to the backend.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;

namespace Microsoft.Hpc.Scheduler.Properties
{
    [Flags]
    public enum JobState
    {
        Configuring = 1, Submitted = 2, Validating = 4, ExternalValidation = 8, Queued = 16, Running = 32,
        Finishing = 64, Finished = 128, Failed = 256, Canceled = 512, Canceling = 1024, All = 2047,
    }

    [Flags]
    public enum TaskState
    {
        Configuring = 1, Submitted = 2, Validating = 4, Queued = 8, Dispatching = 16, Running = 32,
        Finishing = 64, Finished = 128, Failed = 256, Canceled = 512, Canceling = 1024, All = 2047,
    }

    public enum TaskType
    {
        Basic = 0, ParametricSweep = 1, NodePrep = 2, NodeRelease = 3, Service = 4,
    }
}

namespace Microsoft.ComputeCluster.CCPPSH
{
    using Microsoft.Hpc.Scheduler.Properties;

    /// <summary>An object the backend knows by a key; passed to Python as that key.</summary>
    public interface IHpcRecord
    {
        object GetKey();

        /// <summary>How the head node this object came from was reached (a piped object acts there).</summary>
        string Scheduler { get; }
    }

    /// <summary>Builds typed objects from backend records ("__type__" names the class).</summary>
    internal static class Records
    {
        private static readonly Dictionary<string, Type> Types = new Dictionary<string, Type>(StringComparer.Ordinal)
        {
            ["HpcJob"] = typeof(HpcJob),
            ["HpcTask"] = typeof(HpcTask),
            ["HpcJobHistory"] = typeof(HpcJobHistory),
            ["HpcJobEvent"] = typeof(HpcJobEvent),
            ["HpcJobTemplate"] = typeof(HpcJobTemplate),
            ["HpcVariable"] = typeof(HpcVariable),
            ["HpcNode"] = typeof(HpcNode),
            ["HpcGroup"] = typeof(HpcGroup),
            ["HpcNodeHistory"] = typeof(HpcNodeHistory),
            ["ClusterOverview"] = typeof(ClusterOverview),
        };

        /// <summary>The marker that more records follow (fetched with the "More" command).</summary>
        public static bool IsMore(Dictionary<string, object> record) =>
            record.TryGetValue("__type__", out object typeName) && (string)typeName == "More";

        private static readonly byte[] MoreAtEnd = System.Text.Encoding.ASCII.GetBytes("{\"__type__\":\"More\"}]");

        /// <summary>Whether an answer, as hpcpack.shim.call_json writes it (compact), ends with that marker:
        /// known before the answer is read, so that the next chunk can be asked for first.</summary>
        public static bool EndsWithMore(byte[] json) =>
            json.Length >= MoreAtEnd.Length && json.AsSpan(json.Length - MoreAtEnd.Length).SequenceEqual(MoreAtEnd);

        /// <summary>The record class a record's "__type__" names; null when it names none (a plan, the "More"
        /// marker), or names a class that is no record (a backend names only these).</summary>
        public static Type TypeOf(string typeName) =>
            typeName != null && Types.TryGetValue(typeName, out Type type) ? type : null;

        public static object Build(Dictionary<string, object> record)
        {
            record.TryGetValue("__type__", out object typeName);
            Type type = TypeOf(typeName as string)
                ?? throw new InvalidOperationException($"The backend returned a record of unknown type '{typeName}'.");
            object target = Activator.CreateInstance(type);
            Fill(target, record);
            return target;
        }

        public static void Fill(object target, Dictionary<string, object> record)
        {
            Dictionary<string, Slot> slots = Slots(target.GetType());
            foreach (KeyValuePair<string, object> field in record)
            {
                if (slots.TryGetValue(field.Key, out Slot slot)) slot.Set(target, field.Value);
            }
        }

        private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, Dictionary<string, Slot>> SlotCache =
            new System.Collections.Concurrent.ConcurrentDictionary<Type, Dictionary<string, Slot>>();

        /// <summary>A type's public settable properties by name, any case; looked up once per type (a search by
        /// name that ignores case walks all of them: for a listing of 5,000 jobs, 80 walks of 80 each).</summary>
        public static Dictionary<string, Slot> Slots(Type type) => SlotCache.GetOrAdd(type, t =>
        {
            var byName = new Dictionary<string, Slot>(StringComparer.OrdinalIgnoreCase);
            foreach (PropertyInfo p in t.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (p.CanWrite && p.GetIndexParameters().Length == 0 && !byName.ContainsKey(p.Name)) byName[p.Name] = new Slot(p); // the most derived first
            }
            return byName;
        });

        /// <summary>A class whose objects are filled from records (HpcJobTemplateItem...), not a string or table.</summary>
        private static bool IsRecordClass(Type type) =>
            type.IsClass && type != typeof(string) && !typeof(IEnumerable).IsAssignableFrom(type) && type.GetConstructor(Type.EmptyTypes) != null;

        private static Array RecordArray(object value, Type element)
        {
            object[] items = ((IEnumerable)value).Cast<object>().Select(o =>
            {
                object item = Activator.CreateInstance(element);
                var source = (IDictionary)o;
                Fill(item, source.Keys.Cast<object>().ToDictionary(k => k.ToString(), k => source[k]));
                return item;
            }).ToArray();
            Array array = Array.CreateInstance(element, items.Length);
            Array.Copy(items, array, items.Length);
            return array;
        }

        /// <summary>A record's value (as Marshal.FromJson reads it) as a property of type `type` takes it.</summary>
        public static object Convert(object value, Type type)
        {
            Type underlying = Nullable.GetUnderlyingType(type) ?? type;
            if (value == null) return type.IsValueType && underlying == type ? Activator.CreateInstance(type) : null;
            if (underlying.IsEnum) return Enum.Parse(underlying, value.ToString(), ignoreCase: true);
            if (underlying == typeof(DateTime)) return DateTime.Parse((string)value, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind).ToLocalTime();
            if (underlying == typeof(TimeSpan)) return TimeSpan.FromSeconds(System.Convert.ToDouble(value, CultureInfo.InvariantCulture));
            if (underlying == typeof(string[])) return ((IEnumerable)value).Cast<object>().Select(o => o?.ToString()).ToArray();
            if (underlying == typeof(int[])) return ((IEnumerable)value).Cast<object>().Select(o => System.Convert.ToInt32(o, CultureInfo.InvariantCulture)).ToArray();
            if (underlying.IsArray && IsRecordClass(underlying.GetElementType())) return RecordArray(value, underlying.GetElementType());
            if (underlying == typeof(Hashtable)) return new Hashtable((IDictionary)value, StringComparer.OrdinalIgnoreCase);
            return System.Convert.ChangeType(value, underlying, CultureInfo.InvariantCulture);
        }
    }

    /// <summary>A job as HPC Pack's PowerShell module shows it.</summary>
    [System.ComponentModel.TypeConverter(typeof(HpcJobConverter))]
    public class HpcJob : IHpcRecord
    {
        public int Id { get; set; }
        public string Name { get; set; }
        public string Owner { get; set; }
        public string UserName { get; set; }
        public JobState State { get; set; }
        public JobState PreviousState { get; set; }
        public string Priority { get; set; }
        public int ExpandedPriority { get; set; }
        public string Project { get; set; }
        public string Template { get; set; }
        public DateTime? CreateTime { get; set; }
        public DateTime? SubmitTime { get; set; }
        public DateTime? StartTime { get; set; }
        public DateTime? EndTime { get; set; }
        public DateTime? ChangeTime { get; set; }
        public string ErrorMessage { get; set; }
        public string RequestCancel { get; set; }
        public int RequeueCount { get; set; }
        public bool RunUntilCanceled { get; set; }
        public bool IsExclusive { get; set; }
        public bool FailOnTaskFailure { get; set; }
        public string UnitType { get; set; }
        public int MinCores { get; set; }
        public int MaxCores { get; set; }
        public int MinNodes { get; set; }
        public int MaxNodes { get; set; }
        public int MinSockets { get; set; }
        public int MaxSockets { get; set; }
        public bool AutoCalculateMin { get; set; }
        public bool AutoCalculateMax { get; set; }
        public int Runtime { get; set; }
        public string NodeGroups { get; set; }
        public string[] RequestedNodes { get; set; }
        public string[] AllocatedNodes { get; set; }
        public string[] ExcludedNodes { get; set; }
        public int CurrentAllocation { get; set; }
        public int[] ParentJobIds { get; set; }
        public Hashtable EnvironmentVariables { get; set; }
        public int Progress { get; set; }
        public string ProgressMessage { get; set; }
        public int NumberOfTasks { get; set; }
        public int TaskExecutionFailureRetryLimit { get; set; }
        public string ValidExitCodes { get; set; }
        public string Scheduler { get; set; }
        public int NumGpus { get; set; }
        public string NodeGroupOp { get; set; }
        public string[] OrderBy { get; set; }
        public bool FailDependentTasks { get; set; }
        public int MinMemory { get; set; }
        public int MaxMemory { get; set; }
        public int MinCoresPerNode { get; set; }
        public int MaxCoresPerNode { get; set; }
        public int EstimatedProcessMemory { get; set; }
        public string SoftwareLicense { get; set; }
        public bool NotifyOnStart { get; set; }
        public bool NotifyOnCompletion { get; set; }
        public string EmailAddress { get; set; }
        public DateTime? HoldUntil { get; set; }
        public bool SingleNode { get; set; }
        public Hashtable CustomProperties { get; set; }
        /// <summary>Why a queued job waits: Resources, Priority, Dependency (parent ids), HoldUntil.</summary>
        public string PendingReason { get; set; }
        // HPC Pack's job counters; a parametric sweep counts as its subtasks.
        public int TaskCount { get; set; }
        public int RunningTaskCount { get; set; }
        public int FinishedTaskCount { get; set; }
        public int FailedTaskCount { get; set; }
        public int CanceledTaskCount { get; set; }

        object IHpcRecord.GetKey() => Id;

        /// <summary>Reads the job's current properties from the head node.</summary>
        public void Refresh()
        {
            Records.Fill(this, Backend.Single("Get-HpcJob", new Hashtable { ["Id"] = Id, ["Scheduler"] = Scheduler }));
        }

        public void Cancel() => Cancel(false, false);

        public void Cancel(bool isForced, bool isGraceful)
        {
            Backend.Run("Stop-HpcJob", new Hashtable { ["Id"] = new[] { Id }, ["Force"] = isForced, ["Graceful"] = isGraceful, ["Scheduler"] = Scheduler });
            Refresh();
        }

        public void Finish() => Finish(false, false);

        public void Finish(bool isForced, bool isGraceful)
        {
            Backend.Run("Stop-HpcJob", new Hashtable { ["Id"] = new[] { Id }, ["State"] = "Finished", ["Force"] = isForced, ["Graceful"] = isGraceful, ["Scheduler"] = Scheduler });
            Refresh();
        }

        public override string ToString() => Id.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>A task (or a parametric sweep's subtask) of a job.</summary>
    [System.ComponentModel.TypeConverter(typeof(HpcTaskConverter))]
    public class HpcTask : IHpcRecord
    {
        public int JobId { get; set; }
        public int TaskId { get; set; }
        public int SubTaskId { get; set; }
        public string Id { get; set; }
        public string Name { get; set; }
        public string CommandLine { get; set; }
        public TaskState State { get; set; }
        public TaskState PreviousState { get; set; }
        public TaskType Type { get; set; }
        public int? ExitCode { get; set; }
        public string ErrorMessage { get; set; }
        public string Output { get; set; }
        public TimeSpan Runtime { get; set; }
        public int MinCores { get; set; }
        public int MaxCores { get; set; }
        public string[] DependsOn { get; set; }
        public string WorkDirectory { get; set; }
        public string StdInFilePath { get; set; }
        public string StdOutFilePath { get; set; }
        public string StdErrFilePath { get; set; }
        public bool IsRerunnable { get; set; }
        public bool IsParametric { get; set; }
        public int StartValue { get; set; }
        public int EndValue { get; set; }
        public int IncrementValue { get; set; }
        public int RequeueCount { get; set; }
        public string UnitType { get; set; }
        public int MinNodes { get; set; }
        public int MaxNodes { get; set; }
        public int MinSockets { get; set; }
        public int MaxSockets { get; set; }
        public bool FailJobOnFailure { get; set; }
        public int FailJobOnFailureCount { get; set; }
        public int AutoRequeueCount { get; set; }
        public bool IsExclusive { get; set; }
        /// <summary>The task's run-time limit in seconds (-1: none).</summary>
        public int RuntimeLimit { get; set; }
        public string[] AllocatedNodes { get; set; }
        public Hashtable EnvironmentVariables { get; set; }
        public string[] RequiredNodes { get; set; }
        public string ValidExitCodes { get; set; }
        public Hashtable CustomProperties { get; set; }
        public DateTime? CreateTime { get; set; }
        public DateTime? SubmitTime { get; set; }
        public DateTime? StartTime { get; set; }
        public DateTime? EndTime { get; set; }
        public string Scheduler { get; set; }

        object IHpcRecord.GetKey() => new Hashtable { ["JobId"] = JobId, ["TaskId"] = TaskId, ["SubTaskId"] = SubTaskId };

        private Hashtable Address() => new Hashtable { ["JobId"] = JobId, ["TaskId"] = TaskId, ["SubTaskId"] = SubTaskId, ["Scheduler"] = Scheduler };

        public void Refresh() => Records.Fill(this, Backend.Single("Get-HpcTask", Address()));

        public void Cancel()
        {
            Backend.Run("Stop-HpcTask", Address());
            Refresh();
        }

        public void Requeue()
        {
            Backend.Run("Requeue-HpcTask", Address());
            Refresh();
        }

        public void Submit()
        {
            Backend.Run("Submit-HpcTask", Address());
            Refresh();
        }

        public override string ToString() => Id;
    }

    /// <summary>One ended job, as Get-HpcJobHistory returns it (HPC Pack's job history record).</summary>
    public class HpcJobHistory
    {
        public int JobId { get; set; }
        public string Name { get; set; }
        public string Owner { get; set; }
        public string UserName { get; set; }
        public string Project { get; set; }
        public string Template { get; set; }
        public string Priority { get; set; }
        public JobState State { get; set; }
        /// <summary>How the job ended (its final state's name), as HPC Pack's history event.</summary>
        public string Event { get; set; }
        public DateTime? CreateTime { get; set; }
        public DateTime? SubmitTime { get; set; }
        public DateTime? StartTime { get; set; }
        public DateTime? EndTime { get; set; }
        /// <summary>Core time: each task's run time times the cores it held.</summary>
        public TimeSpan CpuTime { get; set; }
        public TimeSpan Runtime { get; set; }
        public long MemoryUsed { get; set; }
        public int NumberOfTasks { get; set; }
        public int FinishedTaskCount { get; set; }
        public int FailedTaskCount { get; set; }
        public int CanceledTaskCount { get; set; }
        public int RequeueCount { get; set; }
        public string ErrorMessage { get; set; }
        public string Service { get; set; }
        public string Type { get; set; }
        public int NumberOfCalls { get; set; }
        public double CallsPerSecond { get; set; }
        public int CallDuration { get; set; }
        public string[] AllocatedNodes { get; set; }

        public override string ToString() => JobId.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>One audit row of a job's life: who did what, and when (Get-HpcJobHistory -Audit or -JobId).</summary>
    public class HpcJobEvent
    {
        public int JobId { get; set; }
        public string Event { get; set; }
        public string Actor { get; set; }
        public string Message { get; set; }
        public string Details { get; set; }
        public DateTime? Time { get; set; }
    }

    /// <summary>A cluster property or environment variable, as Get-HpcClusterProperty returns it.</summary>
    public class HpcVariable
    {
        public string Name { get; set; }
        public string Value { get; set; }
    }
}
