using System;
using System.Globalization;
using System.Linq;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>
    /// How an object that is not an HpcJob or HpcTask binds to -Job or -Task (an Import-Csv row, a
    /// deserialized job from Import-Clixml, `[pscustomobject]@{Id = 5}`): by its key properties only,
    /// read through any PSObject wrapper. An object without them does not bind, so PowerShell reports it
    /// (InputObjectNotBound, per piped object) instead of acting on a job with Id 0. PowerShell's own
    /// conversion would set the properties one by one, and reads a wrapped value (`@{Id = $_}`) as 0.
    /// </summary>
    public abstract class RecordConverter<T> : PSTypeConverter where T : class
    {
        /// <summary>The record's keys, as the head node knows it; null when a key is missing or not positive.</summary>
        protected abstract T FromKeys(PSObject source);

        public override bool CanConvertFrom(object sourceValue, Type destinationType) =>
            destinationType == typeof(T) && sourceValue is PSObject;

        public override bool CanConvertTo(object sourceValue, Type destinationType) => false;

        public override object ConvertFrom(object sourceValue, Type destinationType, IFormatProvider formatProvider,
                                           bool ignoreCase)
        {
            if (sourceValue is PSObject source && source.BaseObject is T record) return record;
            T converted = sourceValue is PSObject ps ? FromKeys(ps) : null;
            return converted ?? throw new PSInvalidCastException(
                $"The object is not a {typeof(T).Name}: it has no {KeyNames} (positive whole numbers, or strings of digits).");
        }

        public override object ConvertTo(object sourceValue, Type destinationType, IFormatProvider formatProvider,
                                         bool ignoreCase) => throw new NotSupportedException();

        /// <summary>The key properties' names, for the error.</summary>
        protected abstract string KeyNames { get; }

        /// <summary>A positive Int32 property of `source` (unwrapped), else 0: a whole number or a string of
        /// digits only. Nothing is rounded or parsed loosely ("7.7", a task's Id in a CSV row, is not job 8).</summary>
        protected static int Key(PSObject source, string name)
        {
            object value = source.Properties[name]?.Value;
            if (value is PSObject wrapped) value = wrapped.BaseObject;
            long number = value switch
            {
                sbyte or byte or short or ushort or int or uint or long => Convert.ToInt64(value, CultureInfo.InvariantCulture),
                string text when text.Length is > 0 and <= 10 && text.All(c => c >= '0' && c <= '9') =>
                    long.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture),
                _ => 0,
            };
            return number is > 0 and <= int.MaxValue ? (int)number : 0;
        }

        protected static string Scheduler(PSObject source) => source.Properties["Scheduler"]?.Value?.ToString();
    }

    public sealed class HpcJobConverter : RecordConverter<HpcJob>
    {
        protected override string KeyNames => "Id";

        protected override HpcJob FromKeys(PSObject source)
        {
            int id = Key(source, "Id");
            return id > 0 ? new HpcJob { Id = id, Scheduler = Scheduler(source) } : null;
        }
    }

    public sealed class HpcTaskConverter : RecordConverter<HpcTask>
    {
        protected override string KeyNames => "JobId and TaskId";

        protected override HpcTask FromKeys(PSObject source)
        {
            int job = Key(source, "JobId"), task = Key(source, "TaskId");
            return job > 0 && task > 0
                ? new HpcTask { JobId = job, TaskId = task, SubTaskId = Key(source, "SubTaskId"), Scheduler = Scheduler(source) }
                : null;
        }
    }
}
