// One embedded CPython per process, started on first use. Every call holds the GIL only
// for its own duration and hands back plain .NET values, never Python objects.
using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Python.Runtime;

namespace Microsoft.ComputeCluster.CCPPSH
{
    /// <summary>A failure raised by the Python backend, with the error id and category it chose.</summary>
    public sealed class BackendException : Exception
    {
        public BackendException(string errorId, string category, string message, object target, string pythonTraceback)
            : base(message)
        {
            ErrorId = errorId;
            Category = category;
            Target = target;
            PythonTraceback = pythonTraceback;
        }

        public string ErrorId { get; }
        public string Category { get; }
        public object Target { get; }
        public string PythonTraceback { get; }
    }

    internal static class PythonBridge
    {
        private const string EntryModule = "hpcpack.shim";
        private static readonly object Gate = new object();
        private static bool _started;

        /// <summary>Calls hpcpack.shim.call(command, arguments) and converts its list of records.</summary>
        public static List<Dictionary<string, object>> Call(string command, IDictionary arguments)
        {
            EnsureStarted();
            using (Py.GIL())
            {
                try
                {
                    using (PyObject entry = Py.Import(EntryModule))
                    using (PyObject pyArgs = Marshal.ToPython(arguments))
                    using (PyObject result = entry.InvokeMethod("call", new PyString(command), pyArgs))
                    {
                        return Marshal.ToRecords(result);
                    }
                }
                catch (PythonException e)
                {
                    throw Translate(e);
                }
            }
        }

        /// <summary>Asks a running call to stop waiting (from PowerShell's stop thread).</summary>
        public static void Stop(string callId)
        {
            if (!_started) return;
            using (Py.GIL())
            using (PyObject entry = Py.Import(EntryModule))
            using (PyObject id = new PyString(callId))
            {
                entry.InvokeMethod("stop", id).Dispose();
            }
        }

        private static BackendException Translate(PythonException e)
        {
            string traceback;
            try { traceback = e.Format(); } catch (Exception) { traceback = e.StackTrace; }
            using (PyObject value = e.Value)
            {
                string errorId = Attribute(value, "error_id") ?? "Python" + e.Type.Name;
                string category = Attribute(value, "category") ?? "NotSpecified";
                object target = null;
                if (value != null && value.HasAttr("target"))
                {
                    using (PyObject t = value.GetAttr("target")) target = Marshal.ToClr(t);
                }
                return new BackendException(errorId, category, e.Message, target, traceback);
            }
        }

        private static string Attribute(PyObject value, string name)
        {
            if (value == null || !value.HasAttr(name)) return null;
            using (PyObject attr = value.GetAttr(name)) return attr.IsNone() ? null : attr.ToString();
        }

        private static void EnsureStarted()
        {
            lock (Gate)
            {
                if (_started) return;
                PythonEnvironment env = PythonEnvironment.Locate();
                Runtime.PythonDLL = env.LibPython;
                PythonEngine.ProgramName = env.Interpreter;
                PythonEngine.Initialize();
                // Initialize() leaves the GIL with this thread; release it so any pipeline thread can call in.
                PythonEngine.BeginAllowThreads();
                _started = true;
            }
        }
    }

    /// <summary>The project's virtual environment, found from the module folder: no variable to set.</summary>
    internal sealed class PythonEnvironment
    {
        private PythonEnvironment(string venv, string libPython)
        {
            Interpreter = Path.Combine(venv, "bin", "python");
            LibPython = libPython;
        }

        public string Interpreter { get; }
        public string LibPython { get; }

        public static PythonEnvironment Locate()
        {
            string moduleBin = Path.GetDirectoryName(typeof(PythonEnvironment).Assembly.Location);
            string venv = ReadPointer(Path.Combine(moduleBin, "python-env.txt"));
            if (venv == null || !File.Exists(Path.Combine(venv, "pyvenv.cfg")))
            {
                throw new InvalidOperationException(
                    $"The HPC module cannot find its Python environment (looked for {Path.Combine(moduleBin, "python-env.txt")}). Run 'make build' in the project folder.");
            }
            Dictionary<string, string> cfg = File.ReadAllLines(Path.Combine(venv, "pyvenv.cfg"))
                .Select(l => l.Split(new[] { '=' }, 2))
                .Where(p => p.Length == 2)
                .ToDictionary(p => p[0].Trim(), p => p[1].Trim());
            string home = cfg["home"];
            string[] version = cfg["version"].Split('.');
            string soname = $"libpython{version[0]}.{version[1]}.so";
            string lib = new[] { "lib", "lib64" }
                .Select(d => Path.GetFullPath(Path.Combine(home, "..", d, soname)))
                .FirstOrDefault(File.Exists);
            if (lib == null)
            {
                throw new InvalidOperationException($"The Python at {home} has no shared library {soname}; the HPC module needs a Python built with --enable-shared.");
            }
            return new PythonEnvironment(venv, lib);
        }

        private static string ReadPointer(string path)
        {
            if (!File.Exists(path)) return null;
            string line = File.ReadAllText(path).Trim();
            return line.Length == 0 ? null : line;
        }
    }
}
