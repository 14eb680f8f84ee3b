// Plain data across the boundary: .NET arguments become Python builtins, Python records
// become dictionaries of .NET values. Call only while holding the GIL.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using Python.Runtime;

namespace Microsoft.ComputeCluster.CCPPSH
{
    internal static class Marshal
    {
        public static PyObject ToPython(object value)
        {
            switch (value)
            {
                case null: return PyObject.None;
                case PSObject ps: return ToPython(ps.BaseObject);
                case string s: return new PyString(s);
                case bool b: return Builtin(b ? "True" : "False");
                case SwitchParameter sw: return ToPython(sw.IsPresent);
                case int i: return new PyInt(i);
                case long l: return new PyInt(l);
                case double d: return new PyFloat(d);
                case DateTime t: return new PyString(t.ToUniversalTime().ToString("o", CultureInfo.InvariantCulture));
                case TimeSpan span: return new PyFloat(span.TotalSeconds);
                case Enum e: return new PyString(e.ToString());
                case IHpcRecord record: return ToPython(record.GetKey());
                case IDictionary dict:
                    var pyDict = new PyDict();
                    foreach (DictionaryEntry entry in dict)
                    {
                        using (PyObject v = ToPython(entry.Value)) pyDict[entry.Key.ToString()] = v;
                    }
                    return pyDict;
                case IEnumerable items:
                    var list = new PyList();
                    foreach (object item in items)
                    {
                        using (PyObject v = ToPython(item)) list.Append(v);
                    }
                    return list;
                default:
                    return new PyString(value.ToString());
            }
        }

        private static PyObject Builtin(string name)
        {
            using (PyObject builtins = Py.Import("builtins")) return builtins.GetAttr(name);
        }

        public static List<Dictionary<string, object>> ToRecords(PyObject result)
        {
            var records = new List<Dictionary<string, object>>();
            using (PyIter iter = PyIter.GetIter(result))
            {
                while (iter.MoveNext())
                {
                    using (PyObject item = iter.Current)
                    {
                        records.Add((Dictionary<string, object>)ToClr(item));
                    }
                }
            }
            return records;
        }

        public static object ToClr(PyObject value)
        {
            if (value == null || value.IsNone()) return null;
            string typeName;
            using (PyType type = value.GetPythonType()) typeName = type.Name;
            switch (typeName)
            {
                case "bool": return value.As<bool>();
                case "int":
                    long l = value.As<long>();
                    return l >= int.MinValue && l <= int.MaxValue ? (object)(int)l : l;
                case "float": return value.As<double>();
                case "str": return value.As<string>();
                case "dict":
                    var dict = new Dictionary<string, object>(StringComparer.OrdinalIgnoreCase);
                    using (var pyDict = new PyDict(value))
                    using (PyIterable keys = pyDict.Keys())
                    {
                        foreach (PyObject key in keys)
                        {
                            using (key)
                            using (PyObject v = pyDict[key])
                            {
                                dict[key.ToString()] = ToClr(v);
                            }
                        }
                    }
                    return dict;
                default:
                    var items = new List<object>();
                    using (PyIter iter = PyIter.GetIter(value))
                    {
                        while (iter.MoveNext())
                        {
                            using (PyObject item = iter.Current) items.Add(ToClr(item));
                        }
                    }
                    return items.ToArray();
            }
        }
    }
}
