// Int32[] parameters (job, node and parent job ids) bound in one step when PowerShell hands them an
// array of Int32: what a typed list ('-Id 1,2,3'), a range or a pipeline of numbers gives.
using System;
using System.Management.Automation;

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>
    /// PowerShell's binder converts an object[] to an Int32[] parameter element by element, through its
    /// general conversion for each one: about 12 µs an element, 60 ms of a 5,000-job Stop-HpcJob, where
    /// the same list already typed Int32[] binds in under a millisecond. When every element already is an
    /// Int32 (bare or wrapped in a PSObject) this hands the binder that Int32[]; anything else (strings,
    /// longs, nulls, a single value) is left as it came, to the binder's own conversions and errors.
    /// </summary>
    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
    public sealed class Int32ArrayAttribute : ArgumentTransformationAttribute
    {
        public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
        {
            if (!(Unwrap(inputData) is object[] items)) return inputData;
            var ids = new int[items.Length];
            for (int i = 0; i < items.Length; i++)
            {
                if (!(Unwrap(items[i]) is int id)) return inputData;
                ids[i] = id;
            }
            return ids;
        }

        private static object Unwrap(object value) => value is PSObject wrapped ? wrapped.BaseObject : value;
    }
}
