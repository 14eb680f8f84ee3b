// A backend answer read straight into the objects a cmdlet writes: no dictionary of boxed values per
// record in between (a listing of 5,000 jobs held 400,000 of them, then set each by reflection).
using System;
using System.Collections.Generic;
using System.Reflection;
using System.Text.Json;

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>A settable property of a record class, and how a value read for it is converted.</summary>
    internal sealed class Slot
    {
        private readonly PropertyInfo _property;
        private readonly Type _type;

        public Slot(PropertyInfo property)
        {
            _property = property;
            _type = property.PropertyType;
        }

        /// <summary>Sets a value as Marshal.FromJson read it.</summary>
        public void Set(object target, object value) => _property.SetValue(target, Records.Convert(value, _type));

        /// <summary>Sets the value at the reader's position (read to its end). The common shapes are taken as
        /// they are; any other goes through Records.Convert, as in Set.</summary>
        public void Set(object target, ref Utf8JsonReader reader) => _property.SetValue(target, Read(ref reader));

        private object Read(ref Utf8JsonReader reader)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String when _type == typeof(string):
                    return reader.GetString();
                case JsonTokenType.Number when _type == typeof(int) && reader.TryGetInt32(out int number):
                    return number;
                case JsonTokenType.True or JsonTokenType.False when _type == typeof(bool):
                    return reader.GetBoolean();
                case JsonTokenType.Null when !_type.IsValueType:
                    return null;
                default:
                    return Records.Convert(Marshal.FromJson(ref reader), _type);
            }
        }
    }

    internal static class RecordReader
    {
        /// <summary>An answer, a JSON array of records (hpcpack.shim.call_json), as objects: when `typed`, a record
        /// whose first property is a "__type__" that names a class (Records.TypeOf) is an object of that class,
        /// filled as Records.Fill fills one; any other (an error, a plan, the "More" marker) is a dictionary of
        /// .NET values (Marshal.FromJson).</summary>
        public static List<object> Read(byte[] json, bool typed = true)
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 1000 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
            {
                throw new InvalidOperationException("The answer is not an array of records.");
            }
            var items = new List<object>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) items.Add(Record(ref reader, typed));
            if (reader.Read()) throw new InvalidOperationException("The answer goes on after its array of records.");
            return items;
        }

        private static object Record(ref Utf8JsonReader reader, bool typed)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InvalidOperationException($"The backend returned a record that is not an object ({reader.TokenType}).");
            }
            var dict = new Dictionary<string, object>(StringComparer.OrdinalIgnoreCase);
            if (!reader.Read() || reader.TokenType != JsonTokenType.PropertyName) return dict;
            string key = Marshal.Key(ref reader);
            reader.Read();
            object value = Marshal.FromJson(ref reader);
            Type type = typed && key == "__type__" ? Records.TypeOf(value as string) : null;
            if (type == null)
            {
                dict[key] = value;
                return Marshal.ReadProperties(ref reader, dict);
            }
            object target = Activator.CreateInstance(type);
            Dictionary<string, Slot> slots = Records.Slots(type);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool known = slots.TryGetValue(Marshal.Key(ref reader), out Slot slot);
                reader.Read();
                if (known) slot.Set(target, ref reader);
                else reader.Skip();
            }
            return target;
        }
    }
}
