// Plain data across the boundary: .NET arguments become Python builtins, Python records (sent as
// JSON) become dictionaries of .NET values. What touches a Python object runs only while holding the GIL.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Text.Json;
using Python.Runtime;

namespace Microsoft.ComputeCluster.CCPPSH
{
    internal static class Marshal
    {
        /// <summary>A .NET value as a Python one. `parameter` is the cmdlet parameter it came from: the keys
        /// of the arguments' top-level map, inherited by what is inside.</summary>
        public static PyObject ToPython(object value, string parameter = null)
        {
            switch (value)
            {
                case null: return PyObject.None;
                case PSObject ps: return ToPython(ps.BaseObject, parameter);
                case string s: return new PyString(Text(s, parameter));
                case bool b: return Builtin(b ? "True" : "False");
                case SwitchParameter sw: return ToPython(sw.IsPresent);
                case int i: return new PyInt(i);
                case long l: return new PyInt(l);
                case double d: return new PyFloat(d);
                case DateTime t: return new PyString(t.ToUniversalTime().ToString("o", CultureInfo.InvariantCulture));
                case TimeSpan span: return new PyFloat(span.TotalSeconds);
                case Enum e: return new PyString(e.ToString());
                case IHpcRecord record: return ToPython(record.GetKey(), parameter);
                case IDictionary dict:
                    var pyDict = new PyDict();
                    foreach (DictionaryEntry entry in dict)
                    {
                        string key = Text(entry.Key.ToString(), parameter);
                        using (PyObject v = ToPython(entry.Value, parameter ?? key)) pyDict[key] = v;
                    }
                    return pyDict;
                case IEnumerable items:
                    var list = new PyList();
                    foreach (object item in items)
                    {
                        using (PyObject v = ToPython(item, parameter)) list.Append(v);
                    }
                    return list;
                default:
                    return new PyString(Text(value.ToString(), parameter));
            }
        }

        /// <summary>
        /// Every string crosses into Python here, so this is where text is checked, once: a .NET string may
        /// hold a lone UTF-16 surrogate ("`u{D800}", half of a pair cut in two), which is no Unicode text and
        /// which Python cannot take (it would fail with a raw decode error). Refused as InvalidArgument,
        /// naming the parameter, before anything is sent.
        /// </summary>
        private static string Text(string s, string parameter)
        {
            for (int i = 0; i < s.Length; i++)
            {
                if (!char.IsSurrogate(s[i])) continue;
                if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                {
                    i++;
                    continue;
                }
                string where = parameter == null ? "A value" : $"The value of -{parameter}";
                throw new BackendException("InvalidArgument", "InvalidArgument",
                    $"{where} is not valid Unicode text: it holds a lone UTF-16 surrogate (U+{(int)s[i]:X4}) at character {i + 1}.",
                    parameter, null);
            }
            return s;
        }

        private static PyObject Builtin(string name)
        {
            using (PyObject builtins = Py.Import("builtins")) return builtins.GetAttr(name);
        }

        /// <summary>A Python bytes object's contents.</summary>
        public static byte[] Bytes(PyObject bytes)
        {
            var data = new byte[bytes.Length()];
            using (PyBuffer buffer = bytes.GetBuffer(PyBUF.SIMPLE)) buffer.Read(data, 0, data.Length, IntPtr.Zero);
            return data;
        }

        /// <summary>The backend's records, a JSON array of objects (hpcpack.shim.call_json), as dictionaries of
        /// .NET values (an integer is an Int32 when it fits, else an Int64).</summary>
        public static List<Dictionary<string, object>> ToRecords(byte[] json) =>
            RecordReader.Read(json, typed: false).ConvertAll(record => (Dictionary<string, object>)record);

        /// <summary>One JSON value (hpcpack.shim.to_json: an error's target) as a .NET one, as in ToRecords.</summary>
        public static object FromJson(byte[] json)
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 1000 });
            reader.Read();
            return FromJson(ref reader);
        }

        /// <summary>A property name, as the same string each time it comes again: a listing repeats the same
        /// 80 names thousands of times, and need not make a string of each.</summary>
        internal static string Key(ref Utf8JsonReader reader)
        {
            int hash = 17;
            foreach (byte b in reader.ValueSpan) hash = hash * 31 + b;
            int slot = (hash & 0x7FFFFFFF) % KeyCache.Length;
            string known = KeyCache[slot];
            if (known != null && !reader.ValueIsEscaped && reader.ValueTextEquals(known)) return known;
            return KeyCache[slot] = reader.GetString();
        }

        [ThreadStatic] private static string[] _keyCache;
        private static string[] KeyCache => _keyCache ?? (_keyCache = new string[1024]);

        /// <summary>An object's properties from the reader's position to its end, into `dict`.</summary>
        internal static Dictionary<string, object> ReadProperties(ref Utf8JsonReader reader, Dictionary<string, object> dict)
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string key = Key(ref reader);
                reader.Read();
                dict[key] = FromJson(ref reader);
            }
            return dict;
        }

        internal static object FromJson(ref Utf8JsonReader reader)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    return ReadProperties(ref reader, new Dictionary<string, object>(StringComparer.OrdinalIgnoreCase));
                case JsonTokenType.StartArray:
                    var items = new List<object>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) items.Add(FromJson(ref reader));
                    return items.ToArray();
                case JsonTokenType.String: return reader.GetString();
                case JsonTokenType.Number:
                    if (reader.TryGetInt32(out int i)) return i;
                    if (reader.TryGetInt64(out long l)) return l;
                    return reader.GetDouble();
                case JsonTokenType.True: return true;
                case JsonTokenType.False: return false;
                default: return null;
            }
        }
    }
}
