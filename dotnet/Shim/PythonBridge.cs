// One embedded CPython per process, started on first use. Every call holds the GIL only
// for its own duration and hands back plain .NET values, never Python objects.
using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Management.Automation;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
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

    /// <summary>
    /// Import-Module starts Python on a pool thread: a session that imports the module is about to call a
    /// cmdlet, and the start (about 300 ms: libpython and CPython's own start, pythonnet's scan of every
    /// assembly pwsh has loaded, a third of it, and the backend's import) then overlaps the rest of the import
    /// (the format file) and the first cmdlet's binding instead of following them.
    /// </summary>
    public sealed class ModuleInitializer : IModuleAssemblyInitializer
    {
        public void OnImport() => PythonBridge.StartInBackground();
    }

    internal static class PythonBridge
    {
        private const string EntryModule = "hpcpack.shim";
        private static readonly object Gate = new object();
        private static Task _start;
        private static volatile bool _started;

        /// <summary>Calls hpcpack.shim.call(command, arguments) and reads its list of records (sent as JSON).</summary>
        public static List<Dictionary<string, object>> Call(string command, IDictionary arguments) =>
            Marshal.ToRecords(CallJson(command, arguments));

        /// <summary>The same call's records as they come, a JSON array (read with Marshal.ToRecords): read
        /// without the GIL, so that Python may go on meanwhile (with a listing's next chunk).</summary>
        public static byte[] CallJson(string command, IDictionary arguments)
        {
            EnsureStarted();
            byte[] json;
            using (Py.GIL())
            {
                try
                {
                    using (PyObject entry = Py.Import(EntryModule))
                    using (PyObject pyArgs = Marshal.ToPython(arguments))
                    using (PyObject result = entry.InvokeMethod("call_json", new PyString(command), pyArgs))
                    {
                        json = Marshal.Bytes(result);
                    }
                }
                catch (PythonException e)
                {
                    throw Translate(e);
                }
            }
            return json;
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
                    using (PyObject t = value.GetAttr("target"))
                    using (PyObject entry = Py.Import(EntryModule))
                    using (PyObject json = entry.InvokeMethod("to_json", t))
                    {
                        target = Marshal.FromJson(Marshal.Bytes(json));
                    }
                }
                return new BackendException(errorId, category, e.Message, target, traceback);
            }
        }

        private static string Attribute(PyObject value, string name)
        {
            if (value == null || !value.HasAttr(name)) return null;
            using (PyObject attr = value.GetAttr(name)) return attr.IsNone() ? null : attr.ToString();
        }

        /// <summary>Starts Python on a pool thread unless it is started or starting.</summary>
        public static void StartInBackground()
        {
            lock (Gate)
            {
                if (_start != null) return;
                // Before pythonnet's own exit handler, so that it runs first: a pwsh that ends while Python
                // is still starting waits for the start, the backend's import included, to finish, instead of
                // tearing down a half-made Python or exiting while a thread runs Python code (that crashed
                // pwsh with SIGSEGV in about one import-only session in ten).
                AppDomain.CurrentDomain.ProcessExit += (sender, e) => WaitForStart();
                _start = Task.Run(() => { Start(); ImportEntryModule(); });
                Task.Run(LoadExportedTypes);
            }
        }

        /// <summary>pythonnet's start lists every public type of every loaded assembly (its namespaces become
        /// importable); loading those types first, on the other core, while Python itself starts, makes that
        /// list cheap when it comes.</summary>
        private static void LoadExportedTypes()
        {
            foreach (Assembly assembly in AppDomain.CurrentDomain.GetAssemblies())
            {
                if (assembly.IsDynamic) continue;
                try { assembly.GetExportedTypes(); } catch (Exception) { }
            }
        }

        private static void WaitForStart()
        {
            try { _start?.Wait(TimeSpan.FromSeconds(30)); } catch (AggregateException) { }
        }

        /// <summary>Waits for the start (beginning it if no import did). A start that failed before loading
        /// libpython (the module's environment file) is tried again by the next call, as a first call would;
        /// one that failed loading it says so again, for pythonnet cannot load another in this process.</summary>
        private static void EnsureStarted()
        {
            if (_started) return;
            Task start;
            lock (Gate)
            {
                if (_start == null || _start.IsFaulted) _start = Task.Run(Start);
                start = _start;
            }
            start.GetAwaiter().GetResult();
        }

        private static Exception _loadFailure; // the first failed load of libpython: final in this process

        private static void Start()
        {
            if (_loadFailure != null) throw _loadFailure;
            PythonEnvironment env = PythonEnvironment.Locate();
            try
            {
                IgnorePythonVariables(env.LibPython);
                Runtime.PythonDLL = env.LibPython;
                PythonEngine.ProgramName = env.Interpreter;
                PythonEngine.Initialize();
            }
            catch (Exception e)
            {
                Exception cause = e is TypeInitializationException && e.InnerException != null ? e.InnerException : e;
                throw _loadFailure = PythonEnvironment.Fail(
                    $"loading {env.LibPython} failed: {cause.Message} Start a new pwsh after fixing it.");
            }
            // Initialize() leaves the GIL with this thread; release it so any pipeline thread can call in.
            PythonEngine.BeginAllowThreads();
            SkipShutdownAtExit();
            _started = true;
        }

        /// <summary>Imports the backend ahead of the first call; a failure is left for that call to report.</summary>
        private static void ImportEntryModule()
        {
            using (Py.GIL())
            {
                try
                {
                    Py.Import(EntryModule).Dispose();
                }
                catch (PythonException)
                {
                }
            }
        }

        /// <summary>
        /// The backend's Python is the module's own, as with 'python -E': the PYTHON* variables of the user's
        /// environment are meant for their own Python, and some of them end CPython's start with a fatal error
        /// (PYTHONHOME naming another Python, a PYTHONMALLOC it does not know) that takes pwsh with it, at
        /// Import-Module, where nothing can catch it. CPython reads its legacy flag Py_IgnoreEnvironmentFlag
        /// when pythonnet starts it (Py_InitializeEx); a libpython without that flag is started as it is.
        /// </summary>
        private static void IgnorePythonVariables(string libPython)
        {
            try
            {
                IntPtr library = Posix.dlopen(libPython, Posix.RTLD_NOW | Posix.RTLD_GLOBAL); // pythonnet's load shares it
                if (library == IntPtr.Zero) return; // pythonnet's load says why
                IntPtr flag = Posix.dlsym(library, "Py_IgnoreEnvironmentFlag");
                if (flag != IntPtr.Zero) System.Runtime.InteropServices.Marshal.WriteInt32(flag, 1);
            }
            catch (Exception e) when (e is DllNotFoundException || e is EntryPointNotFoundException)
            {
                // not glibc's loader: Python is started with the environment as it is
            }
        }

        private static class Posix
        {
            public const int RTLD_NOW = 2, RTLD_GLOBAL = 0x100;

            [System.Runtime.InteropServices.DllImport("libdl.so.2")]
            public static extern IntPtr dlopen(string file, int mode);

            [System.Runtime.InteropServices.DllImport("libdl.so.2")]
            public static extern IntPtr dlsym(IntPtr handle, string name);
        }

        /// <summary>
        /// pythonnet finalizes the interpreter when the process exits (PythonEngine.OnProcessExit): a full
        /// Py_Finalize and a walk of every wrapped object, about half a second added to every pwsh that
        /// used a cmdlet. Nothing of ours needs it: the head node keeps all state, sockets close with the
        /// process, and a pwsh never restarts its Python. So the handler is taken off again.
        /// </summary>
        private static void SkipShutdownAtExit()
        {
            MethodInfo handler = typeof(PythonEngine).GetMethod("OnProcessExit", BindingFlags.NonPublic | BindingFlags.Static);
            if (handler == null) return; // another pythonnet: it keeps its own exit path
            AppDomain.CurrentDomain.ProcessExit -= (EventHandler)Delegate.CreateDelegate(typeof(EventHandler), handler);
        }
    }

    /// <summary>
    /// The module's Python environment, named by bin/python-env.txt (written by 'make build' or 'make install'
    /// from what Python itself reports: venv, libpython, version). Every way it can be unusable is named
    /// with the file at fault, because a failed load cannot be retried in the same pwsh.
    /// </summary>
    internal sealed class PythonEnvironment
    {
        private const int MinMinor = 11, MaxMinor = 15; // what pythonnet 3.2.1 embeds

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
            string pointer = Path.Combine(moduleBin, "python-env.txt");
            string problem = Unreadable(pointer);
            if (problem != null)
            {
                throw Fail($"its Python environment file {pointer} {problem}. Run 'make build' in the project folder, or 'make install'.");
            }
            Dictionary<string, string> values = File.ReadAllLines(pointer)
                .Select(l => l.Split(new[] { '=' }, 2))
                .Where(p => p.Length == 2)
                .ToDictionary(p => p[0].Trim(), p => p[1].Trim());
            if (!values.TryGetValue("venv", out string venv) || !values.TryGetValue("libpython", out string lib))
            {
                throw Fail($"{pointer} does not name a venv and a libpython. Run 'make build' in the project folder, or 'make install'.");
            }
            string cfg = Path.Combine(venv, "pyvenv.cfg");
            problem = Unreadable(cfg);
            if (problem != null) throw Fail($"the Python environment {cfg} {problem}.");
            problem = Unreadable(lib);
            if (problem != null) throw Fail($"the Python library {lib} {problem}.");
            Match version = Regex.Match(Path.GetFileName(lib), @"^libpython3\.(\d+)t?\.so");
            if (!version.Success || !IsSharedObject(lib))
            {
                throw Fail($"{lib} is not a shared libpython: the module needs a Python built with --enable-shared.");
            }
            int minor = int.Parse(version.Groups[1].Value);
            if (minor < MinMinor || minor > MaxMinor)
            {
                throw Fail($"{lib} is Python 3.{minor}; the module needs Python 3.{MinMinor} to 3.{MaxMinor}.");
            }
            return new PythonEnvironment(venv, lib);
        }

        public static Exception Fail(string why) => new InvalidOperationException("The HPC module cannot start Python: " + why);

        /// <summary>Null when the file can be read, else why not ("does not exist", "cannot be read by ...").</summary>
        private static string Unreadable(string path)
        {
            try
            {
                using (File.OpenRead(path)) return null;
            }
            catch (UnauthorizedAccessException)
            {
                return $"cannot be read by user {Environment.UserName} (permission denied on the file or a folder above it). " +
                       "This copy of the module was built with a Python only its builder can read: build it with one every " +
                       "user can read ('make PYTHON=/usr/bin/python3'), or 'make install' as root, which does";
            }
            catch (Exception e) when (e is FileNotFoundException || e is DirectoryNotFoundException)
            {
                return "does not exist";
            }
            catch (IOException e)
            {
                return "cannot be read: " + e.Message;
            }
        }

        /// <summary>An ELF shared object (e_type ET_DYN), not a static archive or a linker script.</summary>
        private static bool IsSharedObject(string path)
        {
            byte[] header = new byte[18];
            using (FileStream f = File.OpenRead(path))
            {
                if (f.Read(header, 0, header.Length) < header.Length) return false;
            }
            return header[0] == 0x7F && header[1] == (byte)'E' && header[2] == (byte)'L' && header[3] == (byte)'F'
                && BitConverter.ToUInt16(header, 16) == 3;
        }
    }
}
